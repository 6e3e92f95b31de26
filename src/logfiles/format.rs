//! Reading one physical line of a log file: the container runtimes' wrappers (CRI, Docker's
//! json-file) and the fields Sightline takes from an application's line (time, severity, trace
//! and span ids) when it is JSON or logfmt. Every function here takes untrusted bytes, never
//! panics, and allocates at most in proportion to its input.

/// A line unwrapped from its runtime format.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrapped<'a> {
    pub ts_ns: Option<i64>,
    /// `stdout` / `stderr`, for CRI and Docker.
    pub stream: Option<&'a str>,
    /// The line is a piece of a longer one, continued by the next (CRI `P`, Docker without a
    /// trailing newline).
    pub partial: bool,
    pub content: std::borrow::Cow<'a, str>,
}

/// `2023-11-14T22:13:20.123456789Z stdout F the line` (Kubernetes' CRI format).
pub fn cri(line: &str) -> Option<Unwrapped<'_>> {
    let mut it = line.splitn(4, ' ');
    let ts = crate::base::clock::parse_rfc3339_ns(it.next()?)?;
    let stream = it.next()?;
    let tag = it.next()?;
    let content = it.next().unwrap_or("");
    let partial = tag.split(':').next() == Some("P");
    if !matches!(tag.split(':').next(), Some("P" | "F")) {
        return None;
    }
    Some(Unwrapped {
        ts_ns: Some(ts),
        stream: Some(stream),
        partial,
        content: content.into(),
    })
}

/// `{"log":"the line\n","stream":"stdout","time":"2023-11-14T22:13:20.1Z"}` (Docker json-file).
pub fn docker(line: &str) -> Option<Unwrapped<'static>> {
    #[derive(serde::Deserialize)]
    struct D {
        log: String,
        #[serde(default)]
        stream: String,
        #[serde(default)]
        time: String,
    }
    let d: D = serde_json::from_str(line).ok()?;
    let partial = !d.log.ends_with('\n');
    let content = d.log.strip_suffix('\n').unwrap_or(&d.log).to_string();
    let stream: &'static str = match d.stream.as_str() {
        "stderr" => "stderr",
        "stdout" => "stdout",
        _ => "",
    };
    Some(Unwrapped {
        ts_ns: crate::base::clock::parse_rfc3339_ns(&d.time),
        stream: (!stream.is_empty()).then_some(stream),
        partial,
        content: content.into(),
    })
}

/// What an application's line says about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    pub ts_ns: Option<i64>,
    pub level: Option<String>,
    pub trace_id: Option<[u8; 16]>,
    pub span_id: Option<[u8; 8]>,
}

fn hex_id<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    (out != [0u8; N]).then_some(out)
}

/// `00-<trace id>-<span id>-<flags>` (W3C traceparent).
fn traceparent(s: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut it = s.trim().split('-');
    let _version = it.next()?;
    Some((hex_id(it.next()?)?, hex_id(it.next()?)?))
}

/// A time field: RFC 3339, or a number of seconds, milliseconds or nanoseconds since the epoch
/// (told apart by size).
fn time_value(s: &str) -> Option<i64> {
    if let Some(ns) = crate::base::clock::parse_rfc3339_ns(s) {
        return Some(ns);
    }
    // Whole and fractional digits exactly (a float would round nanoseconds).
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if !whole.is_empty()
        && whole.len() <= 19
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let w: i64 = whole.parse().ok()?;
        let scale: i64 = match w {
            0..100_000_000_000 => 1_000_000_000,
            100_000_000_000..100_000_000_000_000 => 1_000_000,
            100_000_000_000_000..100_000_000_000_000_000 => 1_000,
            _ => 1,
        };
        let digits = (scale.ilog10() as usize).min(frac.len());
        let mut f: i64 = if digits == 0 {
            0
        } else {
            frac[..digits].parse().ok()?
        };
        for _ in digits..scale.ilog10() as usize {
            f *= 10;
        }
        return w.checked_mul(scale)?.checked_add(f).filter(|ns| *ns > 0);
    }
    let f: f64 = s.parse().ok()?;
    if !f.is_finite() || f <= 0.0 {
        return None;
    }
    let ns = if f < 1e11 {
        f * 1e9
    } else if f < 1e14 {
        f * 1e6
    } else if f < 1e17 {
        f * 1e3
    } else {
        f
    };
    (ns < 9.2e18).then_some(ns as i64)
}

impl Fields {
    fn take(&mut self, key: &str, value: &str) {
        match key {
            "trace_id" | "traceid" | "traceId" | "trace.id" | "TraceId" => {
                self.trace_id = self.trace_id.or_else(|| hex_id(value));
            }
            "span_id" | "spanid" | "spanId" | "span.id" | "SpanId" => {
                self.span_id = self.span_id.or_else(|| hex_id(value));
            }
            "traceparent" => {
                if let Some((t, s)) = traceparent(value) {
                    self.trace_id.get_or_insert(t);
                    self.span_id.get_or_insert(s);
                }
            }
            "level" | "severity" | "lvl" | "loglevel" | "log.level" | "LEVEL" | "Level"
            | "Severity" | "SEVERITY" => {
                let ok = !value.is_empty() && value.len() <= 32;
                if ok && self.level.is_none() {
                    self.level = Some(value.to_string());
                }
            }
            "time" | "ts" | "timestamp" | "@timestamp" | "t" => {
                self.ts_ns = self.ts_ns.or_else(|| time_value(value));
            }
            _ => {}
        }
    }
}

/// The fields of a JSON object line (top-level keys only).
pub fn json_fields(line: &str) -> Option<Fields> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).ok()?;
    let mut f = Fields::default();
    for (k, v) in &v {
        match v {
            serde_json::Value::String(s) => f.take(k, s),
            serde_json::Value::Number(n) => f.take(k, &n.to_string()),
            _ => {}
        }
    }
    Some(f)
}

/// The fields of a logfmt line (`key=value key="quoted value"`); words without `=` are
/// skipped.
pub fn logfmt_fields(line: &str) -> Fields {
    let mut f = Fields::default();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        let key = &line[ks..i];
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let value: String = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let c = line[i..].chars().next().unwrap_or(' ');
                v.push(c);
                i += c.len_utf8();
            }
            i += 1;
            v
        } else {
            let vs = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            line[vs..i].to_string()
        };
        f.take(key, &value);
    }
    f
}

/// The fields of an application's line whatever its shape: JSON when it is an object, logfmt
/// otherwise.
pub fn fields(line: &str) -> Fields {
    if line.trim_start().starts_with('{')
        && let Some(f) = json_fields(line)
    {
        return f;
    }
    logfmt_fields(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines() {
        let u = cri("2023-11-14T22:13:20.5Z stderr P half a li").unwrap();
        assert_eq!(u.ts_ns, Some(1_700_000_000_500_000_000));
        assert_eq!(u.stream, Some("stderr"));
        assert!(u.partial);
        assert_eq!(u.content, "half a li");
        let u = cri("2023-11-14T22:13:20Z stdout F ").unwrap();
        assert!(!u.partial);
        assert_eq!(u.content, "");
        assert!(cri("not a cri line").is_none());
        assert!(cri("2023-11-14T22:13:20Z stdout X x").is_none());
    }

    #[test]
    fn docker_lines() {
        let u = docker(
            r#"{"log":"hello\n","stream":"stdout","time":"2023-11-14T22:13:20.000000001Z"}"#,
        )
        .unwrap();
        assert_eq!(
            (u.ts_ns, u.stream, u.partial, u.content.as_ref()),
            (
                Some(1_700_000_000_000_000_001),
                Some("stdout"),
                false,
                "hello"
            )
        );
        let u = docker(r#"{"log":"part","stream":"stderr","time":"x"}"#).unwrap();
        assert!(u.partial);
        assert!(docker("{").is_none());
    }

    #[test]
    fn fields_from_json_and_logfmt() {
        let f = fields(
            r#"{"level":"warn","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","ts":1700000000.25}"#,
        );
        assert_eq!(f.level.as_deref(), Some("warn"));
        assert_eq!(
            hex::encode(f.trace_id.unwrap()),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(hex::encode(f.span_id.unwrap()), "00f067aa0ba902b7");
        assert_eq!(f.ts_ns, Some(1_700_000_000_250_000_000));
        let f = fields(
            r#"ts=2023-11-14T22:13:20Z level=error msg="a b" traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"#,
        );
        assert_eq!(f.level.as_deref(), Some("error"));
        assert_eq!(f.ts_ns, Some(1_700_000_000_000_000_000));
        assert!(f.trace_id.is_some() && f.span_id.is_some());
        // Zero ids and bad hex are not ids.
        let f = fields("trace_id=00000000000000000000000000000000 span_id=xyz");
        assert_eq!(f, Fields::default());
        // Unterminated quotes and stray bytes do not panic.
        let _ = fields("a=\"unterminated \\");
        let _ = fields("=== = =\"");
    }
}
