//! Argument handling every function table shares (Go's, Prometheus's, Alertmanager's and
//! Loki's): arity checks, text and number conversion as Go's templates do them, Go quoting and
//! `strings.Title`.

use super::Value;

pub(super) fn want(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

pub(super) fn as_str(v: &Value) -> String {
    match v {
        Value::Str(s) | Value::Html(s) => s.clone(),
        other => other.to_text(),
    }
}

/// Prometheus's `convertToFloat`: numbers, and strings that parse as one.
pub(super) fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_go_float(s).ok_or_else(|| {
            format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                go_quote(s)
            )
        }),
        other => Err(format!("can't convert {} to float", other.kind())),
    }
}

pub(super) fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

pub(super) fn go_quote(s: &str) -> String {
    crate::base::gofmt::quote(s, crate::base::gofmt::QuoteStyle::Go)
}

/// Go's `strings.Title`: the first letter of each word upper-cased.
pub(super) fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}
