//! Grafana's variable interpolation: `$var`, `${var}`, `${var:format}` and the deprecated
//! `[[var]]` / `[[var:format]]`, each replaced by the variable's current value as the format
//! says. Without a format, queries get the Prometheus data source's escaping (a single value
//! escaped for a PromQL string, several as a regex alternation `(a|b)` of regex-escaped values),
//! titles get the values' text, and anything else Grafana's `glob` (`{a,b}`). A variable whose
//! "All" is selected and that has a custom all value gets that value verbatim. Unknown names
//! stay as written, as in Grafana.

use std::collections::BTreeMap;

/// A variable's current value, as interpolation needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VarValue {
    pub values: Vec<String>,
    /// Display texts, one per value (the `text` format joins them).
    pub texts: Vec<String>,
    /// Multi-value or include-All: Prometheus formatting regex-escapes it.
    pub multi: bool,
    /// "All" is selected and the variable has a custom all value.
    pub custom_all: Option<String>,
}

impl VarValue {
    pub fn single(v: impl Into<String>) -> VarValue {
        let v = v.into();
        VarValue {
            values: vec![v.clone()],
            texts: vec![v],
            ..VarValue::default()
        }
    }
}

pub type Vars = BTreeMap<String, VarValue>;

/// The format applied where a reference names none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    /// A query for the Prometheus data source.
    Prometheus,
    /// A title or other display text.
    Text,
    /// Anything else (legend templates): Grafana's `glob`.
    Glob,
}

/// `text` with every known variable reference replaced.
pub fn interpolate(text: &str, vars: &Vars, default: Default) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        match reference(rest) {
            Some((len, name, fmt)) => match vars.get(name) {
                Some(v) => {
                    out.push_str(&format(v, name, fmt, default));
                    rest = &rest[len..];
                }
                None => {
                    out.push_str(&rest[..len]);
                    rest = &rest[len..];
                }
            },
            None => {
                out.push_str(&rest[..1]);
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A reference at the start of `s`: its length, the variable's name, and its format.
fn reference(s: &str) -> Option<(usize, &str, Option<&str>)> {
    let b = s.as_bytes();
    if let Some(inner) = s.strip_prefix("${") {
        let end = inner.find('}')?;
        let body = &inner[..end];
        let (name_part, fmt) = match body.split_once(':') {
            Some((n, f)) => (n, Some(f)),
            None => (body, None),
        };
        // `${var.field}` (a field path of an object value): the name is before the dot.
        let name = name_part.split('.').next().unwrap_or("");
        if name.is_empty() || !name.bytes().all(is_word) {
            return None;
        }
        return Some((2 + end + 1, name, fmt));
    }
    if let Some(inner) = s.strip_prefix("[[") {
        let end = inner.find("]]")?;
        let body = &inner[..end];
        let (name, fmt) = match body.split_once(':') {
            Some((n, f)) => (n, Some(f)),
            None => (body, None),
        };
        if name.is_empty() || !name.bytes().all(is_word) {
            return None;
        }
        return Some((2 + end + 2, name, fmt));
    }
    if b.first() == Some(&b'$') {
        let n = b[1..].iter().take_while(|c| is_word(**c)).count();
        if n > 0 {
            return Some((1 + n, &s[1..1 + n], None));
        }
    }
    None
}

fn format(v: &VarValue, name: &str, fmt: Option<&str>, default: Default) -> String {
    let fmt = fmt.or((default == Default::Text).then_some("text"));
    if let Some(all) = &v.custom_all
        && !matches!(fmt, Some("text") | Some("percentencode"))
    {
        return all.clone();
    }
    let vals = &v.values;
    match fmt {
        None => match default {
            Default::Prometheus => prometheus(v),
            Default::Text => text(v),
            Default::Glob => glob(vals),
        },
        Some("csv") | Some("raw") => vals.join(","),
        Some("pipe") => vals.join("|"),
        Some("regex") => {
            let e: Vec<String> = vals.iter().map(|s| regex_escape(s)).collect();
            if e.len() == 1 {
                e[0].clone()
            } else {
                format!("({})", e.join("|"))
            }
        }
        Some("json") => serde_json::to_string(vals).unwrap_or_default(),
        Some("lucene") => {
            if vals.len() == 1 {
                lucene_escape(&vals[0])
            } else {
                let q: Vec<String> = vals
                    .iter()
                    .map(|s| format!("\"{}\"", lucene_escape(s)))
                    .collect();
                format!("({})", q.join(" OR "))
            }
        }
        Some("doublequote") => quoted(vals, '"', "\\\""),
        Some("singlequote") => quoted(vals, '\'', "\\'"),
        Some("sqlstring") => quoted(vals, '\'', "''"),
        Some("text") => text(v),
        Some("queryparam") => vals
            .iter()
            .map(|s| format!("var-{}={}", percent_encode(name), percent_encode(s)))
            .collect::<Vec<_>>()
            .join("&"),
        Some("percentencode") => {
            if v.custom_all.is_some() {
                return percent_encode(v.custom_all.as_deref().unwrap_or_default());
            }
            percent_encode(&vals.join(","))
        }
        Some("distributed") => match vals.split_first() {
            Some((first, rest)) => std::iter::once(first.clone())
                .chain(rest.iter().map(|s| format!("{name}={s}")))
                .collect::<Vec<_>>()
                .join(","),
            None => String::new(),
        },
        // Grafana falls back to glob for a format it does not know.
        Some(_) => glob(vals),
    }
}

fn text(v: &VarValue) -> String {
    if v.custom_all.is_some() {
        return "All".into();
    }
    v.texts.join(" + ")
}

fn glob(vals: &[String]) -> String {
    if vals.len() > 1 {
        format!("{{{}}}", vals.join(","))
    } else {
        vals.join(",")
    }
}

fn quoted(vals: &[String], q: char, escaped: &str) -> String {
    vals.iter()
        .map(|s| format!("{q}{}{q}", s.replace(q, escaped)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The Prometheus data source's default: a single-valued variable escaped for a PromQL string
/// literal (backslash and single quote), a multi-value one as `(a|b)` of values regex-escaped
/// inside a string literal (so `.` becomes `\\.`).
fn prometheus(v: &VarValue) -> String {
    if !v.multi {
        return v
            .values
            .iter()
            .map(|s| s.replace('\\', "\\\\").replace('\'', "\\\\'"))
            .collect::<Vec<_>>()
            .join(",");
    }
    let e: Vec<String> = v.values.iter().map(|s| prom_regex_escape(s)).collect();
    if e.len() == 1 {
        e[0].clone()
    } else {
        format!("({})", e.join("|"))
    }
}

fn prom_regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A regex-escaped value as Grafana's `regex` format writes it (one backslash).
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if "\\^$*+?.()|[]{}/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn lucene_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if "+-&|!(){}[]^\"~*?:\\/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Percent-encoding of everything but letters, digits and `-_.~`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multi(vals: &[&str]) -> VarValue {
        VarValue {
            values: vals.iter().map(|s| s.to_string()).collect(),
            texts: vals.iter().map(|s| s.to_string()).collect(),
            multi: true,
            custom_all: None,
        }
    }

    /// The examples of Grafana's "Variable syntax" page (docs/sources/dashboards/variables/
    /// variable-syntax/index.md, "Advanced variable format options"), each with the value list
    /// the page gives. Where the page and Grafana disagree, Grafana's behaviour wins and the
    /// case says so.
    #[test]
    fn grafana_documented_formats() {
        let cases: &[(&[&str], &str, &str)] = &[
            (&["test1", "test2"], "${servers:csv}", "test1,test2"),
            (
                &["test1", "test2"],
                "${servers:distributed}",
                "test1,servers=test2",
            ),
            (
                &["test1", "test2"],
                "${servers:doublequote}",
                "\"test1\",\"test2\"",
            ),
            (&["test1", "test2"], "${servers:glob}", "{test1,test2}"),
            // The page prints `["test1", "test2"]`; Grafana's JSON.stringify writes no space.
            (
                &["test1", "test2"],
                "${servers:json}",
                "[\"test1\",\"test2\"]",
            ),
            (
                &["test1", "test2"],
                "${servers:lucene}",
                "(\"test1\" OR \"test2\")",
            ),
            (
                &["foo()bar BAZ", "test2"],
                "${servers:percentencode}",
                "foo%28%29bar%20BAZ%2Ctest2",
            ),
            (&["test1.", "test2"], "${servers:pipe}", "test1.|test2"),
            // The page's raw example drops the dot of `test1.`; raw changes no value.
            (&["test1.", "test2"], "${servers:raw}", "test1.,test2"),
            (&["test1.", "test2"], "${servers:regex}", "(test1\\.|test2)"),
            (
                &["test1", "test2"],
                "${servers:singlequote}",
                "'test1','test2'",
            ),
            (
                &["test'1", "test2"],
                "${servers:sqlstring}",
                "'test''1','test2'",
            ),
            (&["test1", "test2"], "${servers:text}", "test1 + test2"),
            (
                &["test1", "test2"],
                "${servers:queryparam}",
                "var-servers=test1&var-servers=test2",
            ),
            // An unknown format falls back to glob.
            (&["test1", "test2"], "${servers:nonsense}", "{test1,test2}"),
            // The deprecated bracket syntax, with and without a format.
            (&["test1", "test2"], "[[servers:csv]]", "test1,test2"),
            // The page's Prometheus example prints `(test1 | test2)`; the data source writes
            // the values regex-escaped inside a string literal, without spaces.
            (&["test1.", "test2"], "${servers}", "(test1\\\\.|test2)"),
            (&["test1.", "test2"], "$servers", "(test1\\\\.|test2)"),
            (&["test1.", "test2"], "[[servers]]", "(test1\\\\.|test2)"),
        ];
        for (vals, text, want) in cases {
            let vars = Vars::from([("servers".to_string(), multi(vals))]);
            assert_eq!(
                interpolate(text, &vars, Default::Prometheus),
                *want,
                "{text} with {vals:?}"
            );
        }
    }

    #[test]
    fn prometheus_queries() {
        let mut vars = Vars::new();
        vars.insert("job".into(), VarValue::single("node"));
        vars.insert("node".into(), VarValue::single("10.0.0.1:9100"));
        vars.insert("path".into(), VarValue::single(r"C:\tmp 'x'"));
        vars.insert("gpu".into(), multi(&["0", "1"]));
        vars.insert("one".into(), multi(&["a.b"]));
        vars.insert("__rate_interval".into(), VarValue::single("1m"));
        vars.insert("__interval".into(), VarValue::single("15s"));
        let all = VarValue {
            custom_all: Some(".*".into()),
            ..multi(&["x", "y"])
        };
        vars.insert("inst".into(), all);
        let cases = [
            (
                r#"rate(node_cpu_seconds_total{instance="$node",job="$job"}[$__rate_interval])"#,
                r#"rate(node_cpu_seconds_total{instance="10.0.0.1:9100",job="node"}[1m])"#,
            ),
            (
                r#"DCGM_FI_DEV_GPU_TEMP{gpu=~"$gpu", instance=~"$inst"}"#,
                r#"DCGM_FI_DEV_GPU_TEMP{gpu=~"(0|1)", instance=~".*"}"#,
            ),
            (r#"x{a=~"$one"}"#, r#"x{a=~"a\\.b"}"#),
            (r#"x{p="$path"}"#, r#"x{p="C:\\tmp \\'x\\'"}"#),
            // `$__interval_ms` is not `$__interval` followed by `_ms`; unknown names stay.
            (
                "$__interval_ms $__interval $nope ${nope:csv} $ [[",
                "$__interval_ms 15s $nope ${nope:csv} $ [[",
            ),
            // label_replace's `$1` is not a variable.
            (
                r#"label_replace(up, "a", "$1", "b", "(.*)")"#,
                r#"label_replace(up, "a", "$1", "b", "(.*)")"#,
            ),
            ("${job}-${node:text}", "node-10.0.0.1:9100"),
        ];
        for (text, want) in cases {
            assert_eq!(
                interpolate(text, &vars, Default::Prometheus),
                want,
                "{text}"
            );
        }
        assert_eq!(interpolate("GPU $gpu", &vars, Default::Text), "GPU 0 + 1");
        assert_eq!(interpolate("$inst", &vars, Default::Text), "All");
        assert_eq!(interpolate("$inst", &vars, Default::Glob), ".*");
        assert_eq!(interpolate("${inst:text}", &vars, Default::Text), "All");
        assert_eq!(
            interpolate("{{gpu}} $gpu", &vars, Default::Glob),
            "{{gpu}} {0,1}"
        );
    }
}
