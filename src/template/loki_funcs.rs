//! Loki's template functions for LogQL's `line_format` and `label_format` (the sprig subset Loki
//! registers, plus `__line__` and `__timestamp__`). Arguments come as Go passes them: a piped
//! value is the last argument (`{{ .path | replace "/" "_" }}` is `replace "/" "_" .path`).
//! Times are values of Go's `time.Time` printed form (`2006-01-02 15:04:05.999999999 +0000 UTC`).

use super::Value;
use super::args::{as_str, title, to_float, want};

pub(super) const NAMES: &[&str] = &[
    "__line__",
    "__timestamp__",
    "ToLower",
    "ToUpper",
    "lower",
    "upper",
    "title",
    "trunc",
    "substr",
    "replace",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "indent",
    "nindent",
    "repeat",
    "default",
    "count",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "addf",
    "subf",
    "mulf",
    "divf",
    "max",
    "min",
    "maxf",
    "minf",
    "ceil",
    "floor",
    "round",
    "int",
    "float64",
    "alignLeft",
    "alignRight",
    "urlencode",
    "urldecode",
    "b64enc",
    "b64dec",
    "unixEpoch",
    "unixEpochMillis",
    "unixEpochNanos",
    "unixToTime",
    "toDate",
    "date",
    "now",
];

type Out = Result<Option<Value>, String>;

fn s(v: &Value) -> String {
    as_str(v)
}

fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) => Ok(*f as i64),
        Value::Bool(b) => Ok(i64::from(*b)),
        other => {
            let t = as_str(other);
            t.trim()
                .parse::<i64>()
                .or_else(|_| t.trim().parse::<f64>().map(|f| f as i64))
                .or(Ok(0))
        }
    }
}

fn float(v: &Value) -> f64 {
    to_float(v).unwrap_or(0.0)
}

/// The printed form of a `time.Time` in UTC.
pub(super) fn time_value(ns: i64) -> Value {
    Value::Str(crate::base::clock::go_time_text(ns, ' ', " +0000 UTC"))
}

fn time_ns(v: &Value) -> Result<i64, String> {
    let t = as_str(v);
    let rfc = t.strip_suffix(" +0000 UTC").map(|r| format!("{r}Z"));
    crate::base::clock::parse_rfc3339_ns(rfc.as_deref().unwrap_or(&t))
        .ok_or_else(|| format!("expected a time, got {t:?}"))
}

/// Calls Loki's function `name` for the log line `line` (text, ns); `None` when the name is not
/// one of Loki's (Go's built-ins then apply).
pub(super) fn call(name: &str, a: &[Value], line: (&str, i64)) -> Out {
    let n = |k: usize| want(name, a, k);
    let v = match name {
        "__line__" => Value::Str(line.0.to_string()),
        "__timestamp__" => time_value(line.1),
        "ToLower" | "lower" => {
            n(1)?;
            Value::Str(s(&a[0]).to_lowercase())
        }
        "ToUpper" | "upper" => {
            n(1)?;
            Value::Str(s(&a[0]).to_uppercase())
        }
        "title" => {
            n(1)?;
            Value::Str(title(&s(&a[0])))
        }
        "trunc" => {
            n(2)?;
            let c = int(&a[0])?;
            let t = s(&a[1]);
            let chars: Vec<char> = t.chars().collect();
            let len = chars.len() as i64;
            Value::Str(if c >= 0 {
                chars[..c.min(len) as usize].iter().collect()
            } else {
                chars[(len + c).max(0) as usize..].iter().collect()
            })
        }
        "substr" => {
            n(3)?;
            let (start, end) = (int(&a[0])?, int(&a[1])?);
            let t = s(&a[2]);
            let len = t.len() as i64;
            let start = start.clamp(0, len) as usize;
            let end = if end < 0 || end > len {
                len as usize
            } else {
                end as usize
            };
            Value::Str(t.get(start..end.max(start)).unwrap_or("").to_string())
        }
        "replace" => {
            n(3)?;
            Value::Str(s(&a[2]).replace(&s(&a[0]), &s(&a[1])))
        }
        "trim" => {
            n(1)?;
            Value::Str(s(&a[0]).trim().to_string())
        }
        "trimAll" => {
            n(2)?;
            let cut = s(&a[0]);
            Value::Str(s(&a[1]).trim_matches(|c| cut.contains(c)).to_string())
        }
        "trimPrefix" => {
            n(2)?;
            let t = s(&a[1]);
            Value::Str(t.strip_prefix(&s(&a[0])).unwrap_or(&t).to_string())
        }
        "trimSuffix" => {
            n(2)?;
            let t = s(&a[1]);
            Value::Str(t.strip_suffix(&s(&a[0])).unwrap_or(&t).to_string())
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            n(3)?;
            let re = crate::base::regex::compile_bounded(&s(&a[0]))?;
            // sprig's and Loki's order: regex, text, replacement.
            let text = s(&a[1]);
            let repl = s(&a[2]);
            Value::Str(if name == "regexReplaceAll" {
                re.replace_all(&text, repl.as_str()).into_owned()
            } else {
                re.replace_all(&text, regex::NoExpand(&repl)).into_owned()
            })
        }
        "contains" => {
            n(2)?;
            Value::Bool(s(&a[1]).contains(&s(&a[0])))
        }
        "hasPrefix" => {
            n(2)?;
            Value::Bool(s(&a[1]).starts_with(&s(&a[0])))
        }
        "hasSuffix" => {
            n(2)?;
            Value::Bool(s(&a[1]).ends_with(&s(&a[0])))
        }
        "indent" | "nindent" => {
            n(2)?;
            let pad = " ".repeat(int(&a[0])?.clamp(0, 1024) as usize);
            let body = s(&a[1])
                .split('\n')
                .map(|l| format!("{pad}{l}"))
                .collect::<Vec<_>>()
                .join("\n");
            Value::Str(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            })
        }
        "repeat" => {
            n(2)?;
            let c = int(&a[0])?.clamp(0, 10_000) as usize;
            let t = s(&a[1]);
            if t.len().saturating_mul(c) > 1 << 20 {
                return Err("repeat: result longer than 1 MiB".into());
            }
            Value::Str(t.repeat(c))
        }
        "default" => {
            n(2)?;
            if a[1].truth() {
                a[1].clone()
            } else {
                a[0].clone()
            }
        }
        "count" => {
            n(2)?;
            let re = crate::base::regex::compile_bounded(&s(&a[0]))?;
            Value::Int(re.find_iter(&s(&a[1])).count() as i64)
        }
        "add" | "sub" | "mul" | "div" | "mod" | "max" | "min" => {
            if a.len() < 2 {
                return Err(format!(
                    "wrong number of args for {name}: want 2 got {}",
                    a.len()
                ));
            }
            let mut acc = int(&a[0])?;
            for b in &a[1..] {
                let b = int(b)?;
                acc = match name {
                    "add" => acc.wrapping_add(b),
                    "sub" => acc.wrapping_sub(b),
                    "mul" => acc.wrapping_mul(b),
                    "div" | "mod" if b == 0 => return Err("integer divide by zero".into()),
                    "div" => acc.wrapping_div(b),
                    "mod" => acc.wrapping_rem(b),
                    "max" => acc.max(b),
                    _ => acc.min(b),
                };
            }
            Value::Int(acc)
        }
        "addf" | "subf" | "mulf" | "divf" | "maxf" | "minf" => {
            if a.len() < 2 {
                return Err(format!(
                    "wrong number of args for {name}: want 2 got {}",
                    a.len()
                ));
            }
            let mut acc = float(&a[0]);
            for b in &a[1..] {
                let b = float(b);
                acc = match name {
                    "addf" => acc + b,
                    "subf" => acc - b,
                    "mulf" => acc * b,
                    "divf" => acc / b,
                    "maxf" => acc.max(b),
                    _ => acc.min(b),
                };
            }
            Value::Float(acc)
        }
        "ceil" => {
            n(1)?;
            Value::Float(float(&a[0]).ceil())
        }
        "floor" => {
            n(1)?;
            Value::Float(float(&a[0]).floor())
        }
        "round" => {
            if a.is_empty() || a.len() > 3 {
                return Err(format!(
                    "wrong number of args for round: want 2 got {}",
                    a.len()
                ));
            }
            let places = if a.len() >= 2 { int(&a[1])? } else { 0 };
            let p = 10f64.powi(places.clamp(-300, 300) as i32);
            Value::Float((float(&a[0]) * p).round() / p)
        }
        "int" => {
            n(1)?;
            Value::Int(int(&a[0])?)
        }
        "float64" => {
            n(1)?;
            Value::Float(float(&a[0]))
        }
        "alignLeft" | "alignRight" => {
            n(2)?;
            let w = int(&a[0])?.clamp(0, 1 << 16) as usize;
            let t = s(&a[1]);
            let chars: Vec<char> = t.chars().collect();
            Value::Str(if chars.len() >= w {
                chars[..w].iter().collect()
            } else if name == "alignLeft" {
                format!("{t}{}", " ".repeat(w - chars.len()))
            } else {
                format!("{}{t}", " ".repeat(w - chars.len()))
            })
        }
        "urlencode" => {
            n(1)?;
            Value::Str(form_urlencoded::byte_serialize(s(&a[0]).as_bytes()).collect())
        }
        "urldecode" => {
            n(1)?;
            let t = s(&a[0]);
            Value::Str(
                form_urlencoded::parse(format!("x={t}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default(),
            )
        }
        "b64enc" => {
            n(1)?;
            use base64::Engine as _;
            Value::Str(base64::engine::general_purpose::STANDARD.encode(s(&a[0])))
        }
        "b64dec" => {
            n(1)?;
            use base64::Engine as _;
            match base64::engine::general_purpose::STANDARD.decode(s(&a[0])) {
                Ok(b) => Value::Str(String::from_utf8_lossy(&b).into_owned()),
                Err(e) => Value::Str(e.to_string()),
            }
        }
        "unixEpoch" | "unixEpochMillis" | "unixEpochNanos" => {
            n(1)?;
            let ns = time_ns(&a[0])?;
            Value::Int(match name {
                "unixEpoch" => ns.div_euclid(1_000_000_000),
                "unixEpochMillis" => ns.div_euclid(1_000_000),
                _ => ns,
            })
        }
        "unixToTime" => {
            n(1)?;
            let t = s(&a[0]);
            let v: i64 = t
                .trim()
                .parse()
                .map_err(|_| format!("unable to parse {t:?} as a unix time"))?;
            // Seconds, milliseconds, microseconds or nanoseconds, by the number of digits.
            let ns = match t.trim().trim_start_matches('-').len() {
                0..=10 => v.saturating_mul(1_000_000_000),
                11..=13 => v.saturating_mul(1_000_000),
                14..=16 => v.saturating_mul(1_000),
                _ => v,
            };
            time_value(ns)
        }
        "toDate" => {
            n(2)?;
            match go_parse(&s(&a[0]), &s(&a[1])) {
                Some(ns) => time_value(ns),
                None => {
                    return Err(format!(
                        "parsing time {:?} as {:?}: cannot parse",
                        s(&a[1]),
                        s(&a[0])
                    ));
                }
            }
        }
        "date" => {
            n(2)?;
            let ns = time_ns(&a[1])?;
            Value::Str(go_format(&s(&a[0]), ns))
        }
        "now" => {
            n(0)?;
            time_value(crate::base::clock::now_ns() as i64)
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

/// Go's reference-time layout tokens, longest first.
const TOKENS: &[&str] = &[
    "January",
    "Monday",
    "2006",
    "Z07:00",
    "-07:00",
    "-0700",
    ".000000000",
    ".999999999",
    ".000000",
    ".999999",
    ".000",
    ".999",
    "Jan",
    "Mon",
    "MST",
    "__2",
    "_2",
    "01",
    "02",
    "03",
    "04",
    "05",
    "06",
    "15",
    "PM",
    "pm",
    "1",
    "2",
    "3",
    "4",
    "5",
];

/// Formats a UTC time with a Go layout (`2006-01-02T15:04:05Z07:00`).
pub(super) fn go_format(layout: &str, ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let (y, mo, d, sod) = crate::base::clock::civil(secs);
    let (h, mi, se) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let wd = DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for t in TOKENS {
            if let Some(r) = rest.strip_prefix(t) {
                let h12 = if h % 12 == 0 { 12 } else { h % 12 };
                match *t {
                    "January" => out.push_str(MONTHS[mo as usize - 1]),
                    "Jan" => out.push_str(&MONTHS[mo as usize - 1][..3]),
                    "Monday" => out.push_str(wd),
                    "Mon" => out.push_str(&wd[..3]),
                    "2006" => out.push_str(&format!("{y:04}")),
                    "06" => out.push_str(&format!("{:02}", y.rem_euclid(100))),
                    "01" => out.push_str(&format!("{mo:02}")),
                    "1" => out.push_str(&mo.to_string()),
                    "02" => out.push_str(&format!("{d:02}")),
                    "_2" => out.push_str(&format!("{d:>2}")),
                    "2" => out.push_str(&d.to_string()),
                    "__2" => out.push_str(&format!("{:>3}", 1 + day_of_year(y, mo, d))),
                    "15" => out.push_str(&format!("{h:02}")),
                    "03" => out.push_str(&format!("{h12:02}")),
                    "3" => out.push_str(&h12.to_string()),
                    "04" => out.push_str(&format!("{mi:02}")),
                    "4" => out.push_str(&mi.to_string()),
                    "05" => out.push_str(&format!("{se:02}")),
                    "5" => out.push_str(&se.to_string()),
                    "PM" => out.push_str(if h >= 12 { "PM" } else { "AM" }),
                    "pm" => out.push_str(if h >= 12 { "pm" } else { "am" }),
                    "MST" => out.push_str("UTC"),
                    "Z07:00" => out.push('Z'),
                    "-07:00" => out.push_str("+00:00"),
                    "-0700" => out.push_str("+0000"),
                    f if f.starts_with(".0") => {
                        out.push('.');
                        out.push_str(&format!("{frac:09}")[..f.len() - 1]);
                    }
                    f => {
                        let digits = format!("{frac:09}");
                        let cut = digits[..f.len() - 1].trim_end_matches('0');
                        if !cut.is_empty() {
                            out.push('.');
                            out.push_str(cut);
                        }
                    }
                }
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn day_of_year(y: i64, mo: u32, d: u32) -> u32 {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    cum[mo as usize - 1] + d - 1 + u32::from(leap && mo > 2)
}

/// Parses `text` with a Go layout of the common numeric tokens (year, month, day, hours,
/// minutes, seconds, fraction, `Z07:00`); None when it does not fit.
pub(super) fn go_parse(layout: &str, text: &str) -> Option<i64> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut se, mut frac) = (1i64, 1i64, 1i64, 0, 0, 0, 0i64);
    let mut offset_s = 0i64;
    let mut rest = layout;
    let mut t = text;
    let take_num = |t: &mut &str, n: usize| -> Option<i64> {
        let digits: String = t
            .chars()
            .take(n)
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if digits.is_empty() {
            return None;
        }
        *t = &t[digits.len()..];
        digits.parse().ok()
    };
    'outer: while !rest.is_empty() {
        for tok in TOKENS {
            if let Some(r) = rest.strip_prefix(tok) {
                match *tok {
                    "2006" => y = take_num(&mut t, 4)?,
                    "01" | "1" => mo = take_num(&mut t, 2)?,
                    "02" | "2" | "_2" => {
                        t = t.trim_start_matches(' ');
                        d = take_num(&mut t, 2)?
                    }
                    "15" | "03" | "3" => h = take_num(&mut t, 2)?,
                    "04" | "4" => mi = take_num(&mut t, 2)?,
                    "05" | "5" => se = take_num(&mut t, 2)?,
                    "Z07:00" | "-07:00" | "-0700" => {
                        if let Some(r2) = t.strip_prefix('Z') {
                            t = r2;
                        } else {
                            let sign = if t.starts_with('-') { -1 } else { 1 };
                            t = t.get(1..)?;
                            let oh = take_num(&mut t, 2)?;
                            t = t.strip_prefix(':').unwrap_or(t);
                            let om = take_num(&mut t, 2)?;
                            offset_s = sign * (oh * 3600 + om * 60);
                        }
                    }
                    f if f.starts_with('.') => {
                        if let Some(r2) = t.strip_prefix('.') {
                            t = r2;
                            let digits: String =
                                t.chars().take_while(|c| c.is_ascii_digit()).collect();
                            t = &t[digits.len()..];
                            frac = format!("{:0<9}", &digits[..digits.len().min(9)])
                                .parse()
                                .ok()?;
                        }
                    }
                    _ => return None,
                }
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next()?;
        t = t.strip_prefix(c)?;
        rest = &rest[c.len_utf8()..];
    }
    if !t.is_empty() {
        return None;
    }
    let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}Z");
    let base = crate::base::clock::parse_rfc3339_ns(&text)?;
    Some(base - offset_s * 1_000_000_000 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_go_layouts() {
        // 2024-02-29T13:04:05.123Z was a Thursday.
        let ns = 1_709_211_845_123_000_000;
        assert_eq!(
            go_format("2006-01-02T15:04:05.000Z07:00", ns),
            "2024-02-29T13:04:05.123Z"
        );
        assert_eq!(go_format("Mon Jan _2 3:04PM", ns), "Thu Feb 29 1:04PM");
        assert_eq!(
            go_parse("2006-01-02T15:04:05Z07:00", "2024-02-29T13:04:05Z"),
            Some(ns - 123_000_000)
        );
        assert_eq!(
            go_parse("2006-01-02", "2024-02-29"),
            Some(1_709_164_800_000_000_000)
        );
        assert_eq!(go_parse("2006-01-02", "yesterday"), None);
    }

    #[test]
    fn string_functions_follow_sprig() {
        let call1 = |name: &str, args: Vec<Value>| {
            call(name, &args, ("line", 0)).unwrap().unwrap().to_text()
        };
        let st = |x: &str| Value::Str(x.into());
        assert_eq!(call1("trunc", vec![Value::Int(3), st("abcdef")]), "abc");
        assert_eq!(call1("trunc", vec![Value::Int(-2), st("abcdef")]), "ef");
        assert_eq!(
            call1("substr", vec![Value::Int(1), Value::Int(3), st("abcdef")]),
            "bc"
        );
        assert_eq!(call1("replace", vec![st("/"), st("_"), st("/a/b")]), "_a_b");
        assert_eq!(call1("default", vec![st("none"), st("")]), "none");
        assert_eq!(
            call1(
                "regexReplaceAll",
                vec![st("a(x*)b"), st("-ab-axxb-"), st("${1}W")]
            ),
            "-W-xxW-"
        );
        assert_eq!(
            call1(
                "regexReplaceAllLiteral",
                vec![st("a(x*)b"), st("-ab-"), st("${1}")]
            ),
            "-${1}-"
        );
        assert_eq!(call1("__line__", vec![]), "line");
        assert_eq!(call1("alignRight", vec![Value::Int(5), st("ab")]), "   ab");
        assert_eq!(
            call1("unixEpoch", vec![time_value(1_500_000_000_000_000_000)]),
            "1500000000"
        );
    }
}
