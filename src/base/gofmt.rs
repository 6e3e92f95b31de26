//! Numbers and strings written as Go writes them, because Prometheus's answers, label values and
//! PromQL text are Go's output and clients compare them byte for byte. One float formatter (the
//! styles differ only in when the exponent form is used) and one quoter (two escape tables).

use std::fmt::Write as _;

/// When a float is written in exponent form; otherwise it is Rust's shortest decimal, which has
/// the same digits as Go's shortest form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatStyle {
    /// `strconv.FormatFloat(v, 'g', -1, 64)`: exponent below -4 or from 6 (`1e+06`); PromQL
    /// number literals when an expression is printed.
    G,
    /// `encoding/json` / Prometheus's sample values: below 1e-6 or from 1e21.
    Json,
    /// Prometheus's `le` and `quantile` label values: below 1e-4 or from 1e21.
    Label,
    /// `strconv.FormatFloat(v, 'f', -1, 64)`: never an exponent.
    F,
}

impl FloatStyle {
    /// The decimal exponents written without an exponent: `lo <= exp < hi`.
    fn plain_exponents(self) -> std::ops::Range<i32> {
        match self {
            FloatStyle::G => -4..6,
            FloatStyle::Json => -6..21,
            FloatStyle::Label => -4..21,
            FloatStyle::F => i32::MIN..i32::MAX,
        }
    }
}

/// A float64 as Go writes it in `style`: `NaN`, `+Inf`, `-Inf`, `-0`, `1e+21`, `1.5e-07`, `0.25`.
pub fn float(v: f64, style: FloatStyle) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{v:e}");
    let (mantissa, exp) = match e.split_once('e') {
        Some((m, x)) => (m, x.parse::<i32>().unwrap_or(0)),
        None => return e,
    };
    if style.plain_exponents().contains(&exp) {
        return format!("{v}");
    }
    // Go writes at least two exponent digits and always a sign.
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

/// Which escape table a quoted string follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteStyle {
    /// `strconv.Quote` for the text PromQL strings hold (`\a`, `\x7f`, ...).
    Go,
    /// `encoding/json`: HTML-sensitive characters and U+2028/9 escaped as `\uXXXX`.
    Json,
}

/// `s` in double quotes, escaped as Go's `style` escapes it.
pub fn quote(s: &str, style: QuoteStyle) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match (c, style) {
            ('"', _) => o.push_str("\\\""),
            ('\\', _) => o.push_str("\\\\"),
            ('\n', _) => o.push_str("\\n"),
            ('\r', _) => o.push_str("\\r"),
            ('\t', _) => o.push_str("\\t"),
            ('\x07', QuoteStyle::Go) => o.push_str("\\a"),
            ('\x08', QuoteStyle::Go) => o.push_str("\\b"),
            ('\x0c', QuoteStyle::Go) => o.push_str("\\f"),
            ('\x0b', QuoteStyle::Go) => o.push_str("\\v"),
            (c, QuoteStyle::Go) if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(o, "\\x{:02x}", c as u32);
            }
            ('<' | '>' | '&' | '\u{2028}' | '\u{2029}', QuoteStyle::Json) => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            (c, QuoteStyle::Json) if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            (c, _) => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Go's `labels.Labels.String()` / `model.LabelSet.String()`: `{a="b", c="d"}`, pairs in the
/// order given, values quoted as Go quotes them.
pub fn label_set<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let inner: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", quote(v, QuoteStyle::Go)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_in_every_style() {
        use FloatStyle::*;
        let cases: &[(f64, FloatStyle, &str)] = &[
            (1e21, G, "1e+21"),
            (1.5e-7, G, "1.5e-07"),
            (100000.0, G, "100000"),
            (1e6, G, "1e+06"),
            (1234567.0, G, "1.234567e+06"),
            (0.0001, G, "0.0001"),
            (0.25, G, "0.25"),
            (-0.0, G, "-0"),
            (1.0, Json, "1"),
            (0.1, Json, "0.1"),
            (1e21, Json, "1e+21"),
            (1e20, Json, "100000000000000000000"),
            (1.5e-7, Json, "1.5e-07"),
            (0.000001, Json, "0.000001"),
            (f64::NEG_INFINITY, Json, "-Inf"),
            (0.005, Label, "0.005"),
            (1.0, Label, "1"),
            (1e21, Label, "1e+21"),
            (0.00001, Label, "1e-05"),
            (f64::INFINITY, Label, "+Inf"),
            (1e300, F, &format!("{}", 1e300)),
            (f64::NAN, F, "NaN"),
            (-2.5e-100, G, "-2.5e-100"),
        ];
        for (v, style, want) in cases {
            assert_eq!(float(*v, *style), *want, "{v} in {style:?}");
        }
    }

    #[test]
    fn quotes_in_both_styles() {
        assert_eq!(quote("a\"b\\\n", QuoteStyle::Go), "\"a\\\"b\\\\\\n\"");
        assert_eq!(quote("\x07\x7f<", QuoteStyle::Go), "\"\\a\\x7f<\"");
        assert_eq!(
            quote("a<b>&\"\n", QuoteStyle::Json),
            "\"a\\u003cb\\u003e\\u0026\\\"\\n\"",
        );
        assert_eq!(
            quote("\x01\u{2028}", QuoteStyle::Json),
            "\"\\u0001\\u2028\""
        );
    }
}
