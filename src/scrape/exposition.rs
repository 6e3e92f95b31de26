//! A parser for the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0: samples with
//! labels, optional timestamps (milliseconds in text 0.0.4, seconds in OpenMetrics), `# HELP`,
//! `# TYPE`, `# UNIT`, OpenMetrics exemplars and `# EOF`. Reads untrusted bytes: the input size
//! is capped by the caller, every error names the line, and nothing panics (fuzzed).

use std::collections::HashMap;

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `__name__` first, then the labels as written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Milliseconds, when the exposition gave one.
    pub timestamp: Option<i64>,
    pub exemplar: Option<ExemplarText>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarText {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp: Option<i64>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct MetricMeta {
    pub kind: String,
    pub help: String,
    pub unit: String,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub samples: Vec<Sample>,
    /// By metric family name.
    pub meta: HashMap<String, MetricMeta>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// From a response's Content-Type.
    pub fn from_content_type(ct: &str) -> Format {
        if ct.trim_start().starts_with("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

/// Parses a whole exposition.
pub fn parse(input: &str, format: Format) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    let mut saw_eof = false;
    for (i, raw) in input.split('\n').enumerate() {
        let line_no = i + 1;
        let err = |msg: &str| ParseError {
            line: line_no,
            msg: msg.to_string(),
        };
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if saw_eof {
            if line.is_empty() && i + 1 == input.split('\n').count() {
                continue;
            }
            return Err(err("content after # EOF"));
        }
        let trimmed = if format == Format::Text {
            line.trim()
        } else {
            line
        };
        if trimmed.is_empty() {
            if format == Format::OpenMetrics && i + 1 != input.split('\n').count() {
                return Err(err("empty line (OpenMetrics allows none)"));
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('#') {
            if format == Format::OpenMetrics && rest == " EOF" {
                saw_eof = true;
                continue;
            }
            let rest = rest.trim_start();
            let mut parts = rest.splitn(3, [' ', '\t']);
            let kw = parts.next().unwrap_or("");
            if !matches!(kw, "HELP" | "TYPE" | "UNIT") {
                if format == Format::OpenMetrics {
                    return Err(err(
                        "unknown comment (OpenMetrics allows HELP, TYPE, UNIT, EOF)",
                    ));
                }
                continue;
            }
            let Some(name) = parts.next().filter(|n| !n.is_empty()) else {
                if format == Format::OpenMetrics {
                    return Err(err("metadata line without a metric name"));
                }
                continue;
            };
            if !crate::tsdb::labels::valid_metric_name(name) {
                return Err(err(&format!("invalid metric name {name:?}")));
            }
            let text = parts.next().unwrap_or("").trim_start();
            let meta = out.meta.entry(name.to_string()).or_default();
            match kw {
                "HELP" => meta.help = unescape_help(text),
                "TYPE" => {
                    let t = text.trim();
                    let known = match format {
                        Format::Text => {
                            ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t)
                        }
                        Format::OpenMetrics => [
                            "counter",
                            "gauge",
                            "histogram",
                            "gaugehistogram",
                            "summary",
                            "info",
                            "stateset",
                            "unknown",
                        ]
                        .contains(&t),
                    };
                    if !known {
                        return Err(err(&format!("unknown metric type {t:?}")));
                    }
                    meta.kind = t.to_string();
                }
                _ => meta.unit = text.trim().to_string(),
            }
            continue;
        }
        out.samples
            .push(parse_sample(trimmed, format).map_err(|m| err(&m))?);
    }
    if format == Format::OpenMetrics && !saw_eof {
        return Err(ParseError {
            line: input.split('\n').count(),
            msg: "missing # EOF".into(),
        });
    }
    Ok(out)
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

struct Cur<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cur<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }
    fn skip_ws(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b' ') | Some(b'\t')) {
            self.i += 1;
        }
        self.i - start
    }
    fn name(&mut self, metric: bool) -> &'a str {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == b'_'
                || (metric && c == b':')
                || (self.i > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    fn token(&mut self) -> &'a str {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == b' ' || c == b'\t' {
                break;
            }
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    fn labels(&mut self, out: &mut Vec<(String, String)>) -> Result<(), String> {
        // At '{'.
        self.i += 1;
        loop {
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(());
            }
            let name = self.name(false);
            if name.is_empty() {
                return Err("expected a label name".into());
            }
            self.skip_ws();
            if self.peek() != Some(b'=') {
                return Err(format!("expected = after label name {name:?}"));
            }
            self.i += 1;
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(format!("expected a quoted value for label {name:?}"));
            }
            self.i += 1;
            let mut v = String::new();
            loop {
                let Some(c) = self.s[self.i..].chars().next() else {
                    return Err("unterminated label value".into());
                };
                self.i += c.len_utf8();
                match c {
                    '"' => break,
                    '\\' => {
                        let Some(e) = self.s[self.i..].chars().next() else {
                            return Err("unterminated label value".into());
                        };
                        self.i += e.len_utf8();
                        match e {
                            'n' => v.push('\n'),
                            '\\' => v.push('\\'),
                            '"' => v.push('"'),
                            other => {
                                v.push('\\');
                                v.push(other);
                            }
                        }
                    }
                    c => v.push(c),
                }
            }
            if out.iter().any(|(n, _)| n == name) {
                return Err(format!("duplicate label {name:?}"));
            }
            out.push((name.to_string(), v));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err("expected , or } in the label set".into()),
            }
        }
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => {
            let ok = !s.is_empty()
                && s.bytes()
                    .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'));
            if ok { s.parse::<f64>().ok() } else { None }
        }
    }
}

fn parse_timestamp(s: &str, format: Format) -> Result<i64, String> {
    match format {
        Format::Text => s
            .parse::<i64>()
            .map_err(|_| format!("invalid timestamp {s:?} (milliseconds expected)")),
        Format::OpenMetrics => {
            let f = parse_value(s)
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("invalid timestamp {s:?} (seconds expected)"))?;
            Ok((f * 1000.0).round() as i64)
        }
    }
}

fn parse_sample(line: &str, format: Format) -> Result<Sample, String> {
    let mut c = Cur { s: line, i: 0 };
    let name = c.name(true);
    if name.is_empty() {
        return Err("expected a metric name".into());
    }
    let mut labels = vec![("__name__".to_string(), name.to_string())];
    let mut ws = c.skip_ws();
    if c.peek() == Some(b'{') && (ws == 0 || format == Format::Text) {
        c.labels(&mut labels)?;
        ws = c.skip_ws();
    }
    if ws == 0 {
        return Err("expected whitespace before the value".into());
    }
    let v = c.token();
    let value = parse_value(v).ok_or_else(|| format!("invalid value {v:?}"))?;
    c.skip_ws();
    let mut timestamp = None;
    let mut exemplar = None;
    if c.peek().is_some() && c.peek() != Some(b'#') {
        timestamp = Some(parse_timestamp(c.token(), format)?);
        c.skip_ws();
    }
    if c.peek() == Some(b'#') {
        if format == Format::Text {
            return Err("unexpected # after the sample".into());
        }
        c.i += 1;
        c.skip_ws();
        if c.peek() != Some(b'{') {
            return Err("expected { to start the exemplar's labels".into());
        }
        let mut el = Vec::new();
        c.labels(&mut el)?;
        c.skip_ws();
        let v = c.token();
        let ev = parse_value(v).ok_or_else(|| format!("invalid exemplar value {v:?}"))?;
        c.skip_ws();
        let mut ets = None;
        if c.peek().is_some() {
            ets = Some(parse_timestamp(c.token(), format)?);
            c.skip_ws();
        }
        exemplar = Some(ExemplarText {
            labels: el,
            value: ev,
            timestamp: ets,
        });
    }
    if c.peek().is_some() {
        return Err("unexpected text after the sample".into());
    }
    Ok(Sample {
        labels,
        value,
        timestamp,
        exemplar,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let t = "# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.42\n\
                 node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1.2e+06 1700000000000\n\
                 weird{a=\"x\\\"y\\\\z\\n\",} -Inf\n  spaced { b = \"1\" }  NaN  \n";
        let p = parse(t, Format::Text).unwrap();
        assert_eq!(p.samples.len(), 4);
        assert_eq!(p.samples[1].timestamp, Some(1_700_000_000_000));
        assert_eq!(p.samples[1].value, 1.2e6);
        assert_eq!(p.samples[2].labels[1].1, "x\"y\\z\n");
        assert!(p.samples[3].value.is_nan());
        assert_eq!(p.meta["node_load1"].kind, "gauge");
        assert_eq!(p.meta["node_load1"].help, "1m load average.");
    }

    #[test]
    fn openmetrics() {
        let t = "# TYPE foo counter\n# UNIT foo seconds\nfoo_total 17.0 1520879607.789 # {trace_id=\"0123\"} 0.67 1520879607.7\nfoo_created 1520430000.123\n# EOF\n";
        let p = parse(t, Format::OpenMetrics).unwrap();
        assert_eq!(p.samples[0].timestamp, Some(1_520_879_607_789));
        assert_eq!(p.samples[0].exemplar.as_ref().unwrap().labels[0].1, "0123");
        assert_eq!(p.meta["foo"].unit, "seconds");
        assert!(
            parse("foo 1\n", Format::OpenMetrics).is_err(),
            "missing EOF"
        );
        assert!(parse("# EOF\nfoo 1\n", Format::OpenMetrics).is_err());
    }

    #[test]
    fn errors_name_the_line() {
        for bad in [
            "x{a=\"1\" 1",
            "x 1 2 3",
            "x{a=1} 1",
            "x{a=\"1\",a=\"2\"} 1",
            "x abc",
            "{a=\"b\"} 1",
            "x{} 1 1.5",
        ] {
            let e = parse(&format!("ok 1\n{bad}\n"), Format::Text).unwrap_err();
            assert_eq!(e.line, 2, "{bad}");
        }
    }
}
