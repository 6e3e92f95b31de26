//! The functions templates may call: Go's built-ins and Prometheus's template functions, with
//! Go's `fmt` number formatting (`%v`, `%.4g`, `printf`'s verbs) reproduced.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

use super::args::{as_str, go_quote, title, to_float, want};
use super::{Env, Sample, Value};

/// How many of [`NAMES`] are Go's built-ins (they come first).
const GO_BUILTINS: usize = 17;

const NAMES: &[&str] = &[
    // Go's built-ins.
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    // Prometheus's.
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "stripPort",
    "stripDomain",
];

/// Which functions a template may call: Prometheus's (alert rules) or Alertmanager's
/// (notification templates, which also define and call named templates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Prometheus,
    Alertmanager,
    /// LogQL's `line_format` and `label_format` (Go's built-ins and Loki's functions).
    Loki,
}

/// Alertmanager's template functions beyond Go's built-ins.
const ALERTMANAGER_NAMES: &[&str] = &[
    "toUpper",
    "toLower",
    "title",
    "join",
    "match",
    "safeHtml",
    "reReplaceAll",
    "stringSlice",
];

pub(super) fn exists(name: &str, dialect: Dialect) -> bool {
    match dialect {
        Dialect::Prometheus => NAMES.contains(&name),
        Dialect::Alertmanager => {
            ALERTMANAGER_NAMES.contains(&name) || NAMES[..GO_BUILTINS].contains(&name)
        }
        Dialect::Loki => {
            super::loki_funcs::NAMES.contains(&name) || NAMES[..GO_BUILTINS].contains(&name)
        }
    }
}

type FResult = Result<Value, String>;

fn sample(v: &Value) -> Result<Rc<Sample>, String> {
    match v {
        Value::Sample(s) => Ok(s.clone()),
        other => Err(format!("expected a sample, got {}", other.kind())),
    }
}

pub(super) fn call(name: &str, args: Vec<Value>, env: &Env<'_>) -> FResult {
    if let Some(line) = env.line
        && let Some(v) = super::loki_funcs::call(name, &args, line)?
    {
        return Ok(v);
    }
    match name {
        "and" => Ok(args
            .iter()
            .find(|a| !a.truth())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil)),
        "or" => Ok(args
            .iter()
            .find(|a| a.truth())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil)),
        "not" => {
            want(name, &args, 1)?;
            Ok(Value::Bool(!args[0].truth()))
        }
        "len" => {
            want(name, &args, 1)?;
            match &args[0] {
                Value::Str(s) => Ok(Value::Int(s.len() as i64)),
                Value::List(l) => Ok(Value::Int(l.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                other => Err(format!("len of type {}", other.kind())),
            }
        }
        "index" => {
            let mut it = args.into_iter();
            let mut v = it.next().ok_or("wrong number of args for index")?;
            for k in it {
                v = match (&v, &k) {
                    (Value::Map(m), Value::Str(key)) => {
                        m.get(key).cloned().unwrap_or(Value::Str(String::new()))
                    }
                    (Value::Map(_), key) => {
                        return Err(format!("value has type {}; should be string", key.kind()));
                    }
                    (Value::List(l), Value::Int(i)) => l
                        .get(usize::try_from(*i).map_err(|_| format!("index out of range: {i}"))?)
                        .cloned()
                        .ok_or(format!("index out of range: {i}"))?,
                    (Value::Sample(s), key) => match as_str(key).as_str() {
                        "Labels" => Value::str_map(&s.labels),
                        "Value" => Value::Float(s.value),
                        k => return Err(format!("can't index sample with {k:?}")),
                    },
                    (other, _) => return Err(format!("can't index item of type {}", other.kind())),
                };
            }
            Ok(v)
        }
        "print" => Ok(Value::Str(sprint(&args, false))),
        "println" => Ok(Value::Str(sprint(&args, true))),
        "printf" => {
            let fmt = args.first().ok_or("wrong number of args for printf")?;
            Ok(Value::Str(sprintf(&as_str(fmt), &args[1..])))
        }
        "eq" => {
            if args.len() < 2 {
                return Err("missing argument for comparison".into());
            }
            for b in &args[1..] {
                if compare(&args[0], b)? == Some(std::cmp::Ordering::Equal) {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(name, &args, 2)?;
            use std::cmp::Ordering::*;
            let o = compare(&args[0], &args[1])?;
            if name != "ne" && o.is_none() && !matches!(args[0], Value::Float(_)) {
                return Err("invalid type for comparison".into());
            }
            Ok(Value::Bool(match name {
                "ne" => o != Some(Equal),
                "lt" => o == Some(Less),
                "le" => matches!(o, Some(Less | Equal)),
                "gt" => o == Some(Greater),
                _ => matches!(o, Some(Greater | Equal)),
            }))
        }
        "html" => Ok(Value::Str(html_escape(&sprint(&args, false)))),
        "safeHtml" => Ok(Value::Html(sprint(&args, false))),
        "join" => {
            want(name, &args, 2)?;
            let sep = as_str(&args[0]);
            match &args[1] {
                Value::List(l) => Ok(Value::Str(
                    l.iter().map(as_str).collect::<Vec<_>>().join(&sep),
                )),
                Value::Nil => Ok(Value::Str(String::new())),
                other => Err(format!(
                    "wrong type for value; expected []string; got {}",
                    other.kind()
                )),
            }
        }
        "stringSlice" => Ok(Value::List(std::rc::Rc::new(
            args.iter().map(|a| Value::Str(as_str(a))).collect(),
        ))),
        "js" => Ok(Value::Str(js_escape(&sprint(&args, false)))),
        "urlquery" => Ok(Value::Str(query_escape(&sprint(&args, false)))),
        "query" => {
            want(name, &args, 1)?;
            let rows = env.query.query(&as_str(&args[0]))?;
            Ok(Value::List(Rc::new(
                rows.into_iter()
                    .map(|s| Value::Sample(Rc::new(s)))
                    .collect(),
            )))
        }
        "first" => {
            want(name, &args, 1)?;
            match &args[0] {
                Value::List(l) => l
                    .first()
                    .cloned()
                    .ok_or_else(|| "first() called on vector with no elements".to_string()),
                other => Err(format!("first() called on {}", other.kind())),
            }
        }
        "label" => {
            want(name, &args, 2)?;
            let s = sample(&args[1])?;
            Ok(Value::Str(
                s.labels.get(&as_str(&args[0])).cloned().unwrap_or_default(),
            ))
        }
        "value" => {
            want(name, &args, 1)?;
            Ok(Value::Float(sample(&args[0])?.value))
        }
        "strvalue" => {
            want(name, &args, 1)?;
            let s = sample(&args[0])?;
            Ok(Value::Str(
                s.labels.get("__value__").cloned().unwrap_or_default(),
            ))
        }
        "args" => {
            let m: BTreeMap<String, Value> = args
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v))
                .collect();
            Ok(Value::Map(Rc::new(m)))
        }
        "reReplaceAll" => {
            want(name, &args, 3)?;
            let re = regex::Regex::new(&as_str(&args[0])).map_err(|e| format!("regexp: {e}"))?;
            Ok(Value::Str(
                re.replace_all(&as_str(&args[2]), as_str(&args[1]).as_str())
                    .into_owned(),
            ))
        }
        "match" => {
            want(name, &args, 2)?;
            let re = regex::Regex::new(&as_str(&args[0])).map_err(|e| format!("regexp: {e}"))?;
            Ok(Value::Bool(re.is_match(&as_str(&args[1]))))
        }
        "title" => {
            want(name, &args, 1)?;
            Ok(Value::Str(title(&as_str(&args[0]))))
        }
        "toUpper" => {
            want(name, &args, 1)?;
            Ok(Value::Str(as_str(&args[0]).to_uppercase()))
        }
        "toLower" => {
            want(name, &args, 1)?;
            Ok(Value::Str(as_str(&args[0]).to_lowercase()))
        }
        "graphLink" | "tableLink" => {
            want(name, &args, 1)?;
            let tab = if name == "graphLink" { 0 } else { 1 };
            Ok(Value::Str(format!(
                "/graph?g0.expr={}&g0.tab={tab}",
                query_escape(&as_str(&args[0]))
            )))
        }
        "sortByLabel" => {
            want(name, &args, 2)?;
            let label = as_str(&args[0]);
            let Value::List(l) = &args[1] else {
                return Err("sortByLabel needs a query result".into());
            };
            let mut v: Vec<Value> = l.as_ref().clone();
            let key = |x: &Value| match x {
                Value::Sample(s) => s.labels.get(&label).cloned().unwrap_or_default(),
                _ => String::new(),
            };
            v.sort_by_key(key);
            Ok(Value::List(Rc::new(v)))
        }
        "humanize" => {
            want(name, &args, 1)?;
            Ok(Value::Str(humanize(to_float(&args[0])?)))
        }
        "humanize1024" => {
            want(name, &args, 1)?;
            let mut v = to_float(&args[0])?;
            if v.abs() <= 1.0 || !v.is_finite() {
                return Ok(Value::Str(go_format_float(v, 'g', Some(4))));
            }
            let mut prefix = "";
            for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
                if v.abs() < 1024.0 {
                    break;
                }
                prefix = p;
                v /= 1024.0;
            }
            Ok(Value::Str(format!(
                "{}{prefix}",
                go_format_float(v, 'g', Some(4))
            )))
        }
        "humanizeDuration" => {
            want(name, &args, 1)?;
            Ok(Value::Str(humanize_duration(to_float(&args[0])?)))
        }
        "humanizePercentage" => {
            want(name, &args, 1)?;
            let v = to_float(&args[0])?;
            Ok(Value::Str(format!(
                "{}%",
                go_format_float(v * 100.0, 'g', Some(4))
            )))
        }
        "humanizeTimestamp" | "toTime" => {
            want(name, &args, 1)?;
            let v = to_float(&args[0])?;
            if !v.is_finite() {
                return Ok(Value::Str(go_format_float(v, 'g', Some(4))));
            }
            Ok(Value::Str(go_time((v * 1e9) as i64)))
        }
        "pathPrefix" => Ok(Value::Str(env.path_prefix.to_string())),
        "externalURL" => Ok(Value::Str(env.external_url.to_string())),
        "parseDuration" => {
            want(name, &args, 1)?;
            let s = as_str(&args[0]);
            let ms = crate::base::units::parse_prom_duration(&s)
                .ok_or_else(|| format!("not a valid duration string: {s:?}"))?;
            Ok(Value::Float(ms as f64 / 1000.0))
        }
        "stripPort" => {
            want(name, &args, 1)?;
            Ok(Value::Str(strip_port(&as_str(&args[0]))))
        }
        "stripDomain" => {
            want(name, &args, 1)?;
            let s = as_str(&args[0]);
            let (host, port) = match split_host_port(&s) {
                Some((h, p)) => (h, Some(p)),
                None => (s.as_str(), None),
            };
            if host.parse::<std::net::IpAddr>().is_ok() {
                return Ok(Value::Str(s.clone()));
            }
            let short = host.split('.').next().unwrap_or(host);
            Ok(Value::Str(match port {
                Some(p) => format!("{short}:{p}"),
                None => short.to_string(),
            }))
        }
        other => Err(format!("function {other:?} not defined")),
    }
}

fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let port = rest[end + 1..].strip_prefix(':')?;
        return Some((&rest[..end], port));
    }
    let (h, p) = s.rsplit_once(':')?;
    if h.contains(':') {
        return None;
    }
    Some((h, p))
}

fn strip_port(s: &str) -> String {
    match split_host_port(s) {
        Some((h, _)) => h.to_string(),
        None => s.to_string(),
    }
}

/// Go's `eq`/`lt` rules: same basic kind (ints, floats, strings, bools), else an error.
fn compare(a: &Value, b: &Value) -> Result<Option<std::cmp::Ordering>, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(Some(x.cmp(y))),
        (Value::Float(x), Value::Float(y)) => Ok(x.partial_cmp(y)),
        (Value::Str(x), Value::Str(y)) => Ok(Some(x.cmp(y))),
        (Value::Bool(x), Value::Bool(y)) => Ok(Some(x.cmp(y))),
        (Value::Nil, Value::Nil) => Ok(Some(std::cmp::Ordering::Equal)),
        _ => Err("incompatible types for comparison".into()),
    }
}

/// Go's `fmt.Sprint` (spaces between operands when neither is a string) or `Sprintln`.
fn sprint(args: &[Value], ln: bool) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && (ln || !(matches!(a, Value::Str(_)) || matches!(args[i - 1], Value::Str(_)))) {
            out.push(' ');
        }
        a.write_to(&mut out);
    }
    if ln {
        out.push('\n');
    }
    out
}

fn go_type(v: &Value) -> &'static str {
    v.kind()
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %d %f %F %e %E %g %G %q %x %X %t %%`
/// with flags `-+ 0`, width and precision.
pub(super) fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut ai = 0;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width: Option<usize> = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = Some(width.unwrap_or(0) * 10 + d as usize);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                chars.next();
            }
            prec = Some(p.min(1000));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(ai) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        ai += 1;
        let bad = || format!("%!{verb}({}={})", go_type(arg), arg.to_text());
        let mut s = match (verb, arg) {
            ('v', _) => arg.to_text(),
            ('s', Value::Str(s)) => s.clone(),
            ('s', _) => arg.to_text(),
            ('q', Value::Str(s)) => go_quote(s),
            ('d', Value::Int(i)) => i.to_string(),
            ('x', Value::Int(i)) => format!("{i:x}"),
            ('X', Value::Int(i)) => format!("{i:X}"),
            ('x', Value::Str(s)) => hex::encode(s.as_bytes()),
            ('t', Value::Bool(b)) => b.to_string(),
            ('f' | 'F' | 'e' | 'E' | 'g' | 'G', Value::Float(f)) => {
                let lower = verb.to_ascii_lowercase();
                let p = match lower {
                    'g' => prec,
                    _ => Some(prec.unwrap_or(6)),
                };
                let s = go_format_float(*f, lower, p);
                if verb.is_ascii_uppercase() {
                    s.to_uppercase()
                } else {
                    s
                }
            }
            _ => bad(),
        };
        if let ('s' | 'v', Some(p)) = (verb, prec)
            && matches!(arg, Value::Str(_))
        {
            s = s.chars().take(p).collect();
        }
        let numeric = matches!(arg, Value::Int(_) | Value::Float(_));
        if numeric && !s.starts_with('-') && !s.starts_with('%') {
            if plus {
                s.insert(0, '+');
            } else if space {
                s.insert(0, ' ');
            }
        }
        if let Some(w) = width {
            let len = s.chars().count();
            if len < w {
                let pad = w - len;
                if minus {
                    s.push_str(&" ".repeat(pad));
                } else if zero && numeric && s.chars().all(|c| c != 'N' && c != 'I') {
                    let sign = s.starts_with(['-', '+', ' ']);
                    let at = usize::from(sign);
                    s.insert_str(at, &"0".repeat(pad));
                } else {
                    s.insert_str(0, &" ".repeat(pad));
                }
            }
        }
        out.push_str(&s);
    }
    if ai < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[ai..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}={}", go_type(a), a.to_text());
        }
        out.push(')');
    }
    out
}

/// Go's float formatting: `verb` 'e', 'f' or 'g'; `prec` None is the shortest form (`%v` for
/// 'g', `FormatFloat(v, 'e', -1, 64)` for 'e').
pub fn go_format_float(v: f64, verb: char, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    match verb {
        'f' => format!("{:.*}", prec.unwrap_or(6), v),
        'e' => match prec {
            Some(p) => fix_exp(&format!("{v:.p$e}")),
            None => fix_exp(&format!("{v:e}")),
        },
        _ => {
            // Significant digits (no trailing zeros) and the decimal exponent.
            let sci = match prec {
                None => format!("{v:e}"),
                Some(p) => format!("{:.*e}", p.max(1) - 1, v),
            };
            let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
            let exp: i32 = exp.parse().unwrap_or(0);
            let digits: String = mant
                .trim_start_matches('-')
                .chars()
                .filter(|c| c.is_ascii_digit())
                .collect();
            let digits = digits.trim_end_matches('0');
            let nd = digits.len().max(1) as i32;
            let dp = exp + 1;
            let (mut p, eprec) = match prec {
                None => (nd, 6),
                Some(p) => {
                    let p = p.max(1) as i32;
                    let e = if p > nd && nd >= dp { nd } else { p };
                    (p, e)
                }
            };
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                fix_exp(&format!("{:.*e}", (p - 1).max(0) as usize, v))
            } else {
                if p > dp {
                    p = nd;
                }
                format!("{:.*}", (p - dp).max(0) as usize, v)
            }
        }
    }
}

/// Rust's `1.5e3` -> Go's `1.5e+03`.
fn fix_exp(s: &str) -> String {
    let Some((m, e)) = s.split_once('e') else {
        return s.to_string();
    };
    let (sign, digits) = match e.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', e),
    };
    if digits.len() < 2 {
        format!("{m}e{sign}0{digits}")
    } else {
        format!("{m}e{sign}{digits}")
    }
}

/// Prometheus's `humanize`: SI prefixes, four significant digits.
pub fn humanize(mut v: f64) -> String {
    let g4 = |x: f64| go_format_float(x, 'g', Some(4));
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// Prometheus's `humanizeDuration`: `1d 2h 3m 4s`, or seconds with four significant digits.
pub fn humanize_duration(mut v: f64) -> String {
    let g4 = |x: f64| go_format_float(x, 'g', Some(4));
    if !v.is_finite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        if days != 0 {
            return format!("{sign}{days}d {h}h {m}m {s}s");
        }
        if h != 0 {
            return format!("{sign}{h}h {m}m {s}s");
        }
        if m != 0 {
            return format!("{sign}{m}m {s}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
fn go_time(ns: i64) -> String {
    crate::base::clock::go_time_text(ns, ' ', " +0000 UTC")
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.HTMLEscapeString`.
pub(super) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
