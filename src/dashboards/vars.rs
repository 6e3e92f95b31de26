//! Template variables, resolved in the order the dashboard declares them (a variable's query may
//! use the ones before it): their options (from PromQL for `query` variables), their current
//! value (the URL's `var-<name>`, else the dashboard's saved `current`, else the first option,
//! which is "All" where the variable includes it), and the values interpolation sees.

use std::collections::BTreeSet;

use serde_json::Value;

use super::interpolate::{self, Default, VarValue, Vars};
use super::time;
use crate::base::params::Params;
use crate::promql::{QueryService, QueryValue};
use crate::tsdb::Queryable;

/// The most options a variable keeps (the rest are dropped and the variable says so).
pub const MAX_OPTIONS: usize = 10_000;
/// The value Grafana puts in URLs and saved state for "All".
pub const ALL: &str = "$__all";
/// The data source a `datasource` variable of type `prometheus` offers.
pub const DATASOURCE_NAME: &str = "Sightline";

/// One variable as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct VarView {
    pub name: String,
    pub label: String,
    pub kind: String,
    /// 0 shown, 1 label hidden, 2 hidden.
    pub hide: u8,
    pub multi: bool,
    pub include_all: bool,
    /// `(text, value, selected)`, "All" first where included.
    pub options: Vec<(String, String, bool)>,
    /// The text box's value (`textbox` variables).
    pub text: String,
    pub error: Option<String>,
    /// How many options there were where more than [`MAX_OPTIONS`].
    pub truncated: Option<usize>,
}

/// All variables: what the page shows and what interpolation sees.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub views: Vec<VarView>,
    pub values: Vars,
    /// Data source variables by name, with the plugin type they select.
    pub datasource_types: Vec<(String, String)>,
}

/// The time range variables are resolved over.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub from_ms: i64,
    pub to_ms: i64,
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn flag(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// A query variable's query: a string, or `{"query": ...}` as Grafana 9+ saves it; Grafana's
/// `definition` (the query as shown in its editor) where neither is set.
fn query_text(v: &Value) -> String {
    let q = match v.get("query") {
        Some(Value::String(q)) => q.clone(),
        Some(Value::Object(o)) => o
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if q.is_empty() {
        return v
            .get("definition")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
    }
    q
}

pub async fn resolve(list: &[Value], p: &Params, q: &QueryService, span: Span) -> Resolved {
    let mut r = Resolved::default();
    // Built-ins a variable query may use.
    let range_s = (span.to_ms - span.from_ms) / 1000;
    r.values
        .insert("__range".into(), VarValue::single(format!("{range_s}s")));
    r.values
        .insert("__range_s".into(), VarValue::single(range_s.to_string()));
    r.values.insert(
        "__range_ms".into(),
        VarValue::single((span.to_ms - span.from_ms).to_string()),
    );
    r.values
        .insert("__from".into(), VarValue::single(span.from_ms.to_string()));
    r.values
        .insert("__to".into(), VarValue::single(span.to_ms.to_string()));
    for v in list {
        let name = s(v, "name").to_string();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let kind = s(v, "type").to_string();
        let mut view = VarView {
            label: match s(v, "label") {
                "" => name.clone(),
                l => l.to_string(),
            },
            name: name.clone(),
            kind: kind.clone(),
            hide: v.get("hide").and_then(Value::as_u64).unwrap_or(0).min(2) as u8,
            multi: flag(v, "multi"),
            include_all: flag(v, "includeAll"),
            options: Vec::new(),
            text: String::new(),
            error: None,
            truncated: None,
        };
        let url: Vec<String> = p.all(&format!("var-{name}")).map(str::to_string).collect();
        let value = match kind.as_str() {
            "constant" => {
                view.hide = 2;
                Some(VarValue::single(query_text(v)))
            }
            "textbox" => {
                let t = url
                    .first()
                    .cloned()
                    .unwrap_or_else(|| saved(v).first().cloned().unwrap_or_else(|| query_text(v)));
                view.text = t.clone();
                Some(VarValue::single(t))
            }
            "adhoc" => {
                view.error = Some("ad hoc filters are not applied by Sightline".into());
                None
            }
            _ => {
                let opts = match kind.as_str() {
                    "custom" => Ok(custom_options(&query_text(v))),
                    "interval" => Ok(interval_options(v)),
                    "datasource" => {
                        let t = query_text(v);
                        r.datasource_types.push((name.clone(), t.clone()));
                        if t == "prometheus" {
                            Ok(vec![(
                                DATASOURCE_NAME.to_string(),
                                DATASOURCE_NAME.to_string(),
                            )])
                        } else {
                            Err(format!("Sightline has no {t:?} data source"))
                        }
                    }
                    "query" => {
                        let query = interpolate::interpolate(
                            &query_text(v),
                            &r.values,
                            Default::Prometheus,
                        );
                        query_options(&query, q, span).await.and_then(|vals| {
                            let re = s(v, "regex");
                            let re = interpolate::interpolate(re, &r.values, Default::Glob);
                            let mut opts = apply_regex(&vals, &re)?;
                            sort(
                                &mut opts,
                                v.get("sort").and_then(Value::as_u64).unwrap_or(0),
                            );
                            Ok(opts)
                        })
                    }
                    other => Err(format!("variables of type {other:?} are not supported")),
                };
                let mut opts = match opts {
                    Ok(o) => o,
                    Err(e) => {
                        view.error = Some(e);
                        Vec::new()
                    }
                };
                let mut seen = BTreeSet::new();
                opts.retain(|(_, val)| seen.insert(val.clone()));
                if opts.len() > MAX_OPTIONS {
                    view.truncated = Some(opts.len());
                    opts.truncate(MAX_OPTIONS);
                }
                Some(select(v, &mut view, opts, &url, span))
            }
        };
        if let Some(val) = value {
            r.values.insert(name, val);
        }
        r.views.push(view);
    }
    r
}

/// The saved `current.value` (a string or a list).
fn saved(v: &Value) -> Vec<String> {
    match v.get("current").and_then(|c| c.get("value")) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Picks the current value among `opts` and fills the view's option list.
fn select(
    v: &Value,
    view: &mut VarView,
    opts: Vec<(String, String)>,
    url: &[String],
    span: Span,
) -> VarValue {
    let known = |x: &String| opts.iter().any(|(_, val)| val == x);
    let pick = |cands: Vec<String>| -> Option<Vec<String>> {
        if cands.iter().any(|c| c == ALL || c == "All") && view.include_all {
            return Some(vec![ALL.to_string()]);
        }
        let mut keep: Vec<String> = cands.into_iter().filter(known).collect();
        if !view.multi {
            keep.truncate(1);
        }
        (!keep.is_empty()).then_some(keep)
    };
    let chosen = pick(url.to_vec())
        .or_else(|| pick(saved(v)))
        .unwrap_or_else(|| {
            if view.include_all {
                vec![ALL.to_string()]
            } else {
                opts.first()
                    .map(|(_, val)| vec![val.clone()])
                    .unwrap_or_default()
            }
        });
    let is_all = chosen.first().is_some_and(|c| c == ALL);
    if view.include_all {
        view.options.push(("All".into(), ALL.into(), is_all));
    }
    for (text, val) in &opts {
        view.options
            .push((text.clone(), val.clone(), !is_all && chosen.contains(val)));
    }
    let all_value = v
        .get("allValue")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty());
    let text_of = |val: &String| {
        opts.iter()
            .find(|(_, v)| v == val)
            .map(|(t, _)| t.clone())
            .unwrap_or_else(|| val.clone())
    };
    let mut out = if is_all {
        VarValue {
            values: opts.iter().map(|(_, v)| v.clone()).collect(),
            texts: opts.iter().map(|(t, _)| t.clone()).collect(),
            multi: true,
            custom_all: all_value.map(str::to_string),
        }
    } else {
        VarValue {
            texts: chosen.iter().map(text_of).collect(),
            values: chosen,
            multi: view.multi || view.include_all,
            custom_all: None,
        }
    };
    // `auto` of an interval variable is the range divided into `auto_count` steps.
    if view.kind == "interval" && out.values.first().is_some_and(|x| x == "auto") {
        let count = v
            .get("auto_count")
            .and_then(Value::as_i64)
            .unwrap_or(30)
            .max(1);
        let min = time::parse_interval(s(v, "auto_min")).unwrap_or(10_000);
        let ms = time::calculate_interval(span.to_ms - span.from_ms, count, min);
        out = VarValue::single(time::format_interval(ms));
    }
    out
}

/// `a,b,c` or `Text : value` pairs; `\,` is a literal comma.
fn custom_options(q: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                cur.push(',');
                chars.next();
            }
            ',' => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once(" : ") {
            Some((t, v)) => (t.trim().to_string(), v.trim().to_string()),
            None => (p.clone(), p),
        })
        .collect()
}

fn interval_options(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if flag(v, "auto") {
        out.push(("auto".into(), "auto".into()));
    }
    out.extend(custom_options(&query_text(v)));
    out
}

/// Runs a query variable's query: Grafana's Prometheus functions, else the text as a series
/// selector (each series' label set, as the data source's classic query does).
async fn query_options(q: &str, qs: &QueryService, span: Span) -> Result<Vec<String>, String> {
    let q = q.trim();
    let call = |name: &str| -> Option<&str> {
        q.strip_prefix(name)?
            .trim_start()
            .strip_prefix('(')?
            .strip_suffix(')')
            .map(str::trim)
    };
    let db = qs.db().clone();
    let (from, to) = (span.from_ms, span.to_ms);
    let blocking = |f: Box<dyn FnOnce() -> Result<Vec<String>, String> + Send>| async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| e.to_string())?
    };
    if let Some(args) = call("label_names") {
        let ms = if args.is_empty() {
            Vec::new()
        } else {
            selector(args)?
        };
        return blocking(Box::new(move || {
            db.label_names(from, to, &ms).map_err(|e| e.to_string())
        }))
        .await;
    }
    if let Some(args) = call("label_values") {
        let (sel, label) = match args.rsplit_once(',') {
            Some((sel, label)) => (sel.trim(), label.trim()),
            None => ("", args),
        };
        if !crate::tsdb::labels::valid_label_name(label) {
            return Err(format!("label_values: invalid label name {label:?}"));
        }
        let ms = if sel.is_empty() {
            Vec::new()
        } else {
            selector(sel)?
        };
        let label = label.to_string();
        return blocking(Box::new(move || {
            db.label_values(&label, from, to, &ms)
                .map_err(|e| e.to_string())
        }))
        .await;
    }
    if let Some(args) = call("metrics") {
        let re = crate::base::regex::compile_bounded(args)?;
        let names = blocking(Box::new(move || {
            db.label_values("__name__", from, to, &[])
                .map_err(|e| e.to_string())
        }))
        .await?;
        return Ok(names.into_iter().filter(|n| re.is_match(n)).collect());
    }
    if let Some(args) = call("query_result") {
        let expr = crate::promql::parse(args).map_err(|e| format!("query_result: {e}"))?;
        let v = qs
            .instant(expr, to, Some(std::time::Duration::from_secs(30)))
            .await
            .map_err(|e| format!("query_result: {e}"))?;
        return Ok(match v {
            QueryValue::Vector(_, rows) => rows
                .into_iter()
                .map(|(l, val)| {
                    format!(
                        "{} {} {}",
                        series_text(&l),
                        crate::base::gofmt::float(val, crate::base::gofmt::FloatStyle::Json),
                        to
                    )
                })
                .collect(),
            QueryValue::Scalar(_, val) => vec![format!(
                "scalar() {} {to}",
                crate::base::gofmt::float(val, crate::base::gofmt::FloatStyle::Json)
            )],
            _ => Vec::new(),
        });
    }
    if q.is_empty() {
        return Ok(Vec::new());
    }
    let ms = selector(q)?;
    blocking(Box::new(move || {
        let it = db.select(from, to, &ms).map_err(|e| e.to_string())?;
        Ok(it
            .take(MAX_OPTIONS + 1)
            .map(|s| series_text(&s.labels))
            .collect())
    }))
    .await
}

fn selector(s: &str) -> Result<Vec<crate::tsdb::Matcher>, String> {
    crate::promql::parse_selector(s).map_err(|e| format!("{s}: {e}"))
}

/// `name{a="1", b="2"}` as Grafana writes a series in `query_result` answers (Prometheus's
/// own form of a label set).
fn series_text(l: &crate::tsdb::Labels) -> String {
    l.to_string()
}

/// Grafana's `regex` option: `/pattern/flags` or a bare pattern, matched anywhere; a value
/// that does not match is dropped; the first group (or the `text` and `value` named groups)
/// becomes the option.
fn apply_regex(vals: &[String], re: &str) -> Result<Vec<(String, String)>, String> {
    if re.is_empty() {
        return Ok(vals.iter().map(|v| (v.clone(), v.clone())).collect());
    }
    let pattern = match re.strip_prefix('/').and_then(|r| r.rsplit_once('/')) {
        Some((body, flags)) if flags.chars().all(|c| "gimsuy".contains(c)) => {
            let mut f = String::new();
            for (js, rs) in [('i', 'i'), ('m', 'm'), ('s', 's')] {
                if flags.contains(js) {
                    f.push(rs);
                }
            }
            if f.is_empty() {
                body.to_string()
            } else {
                format!("(?{f}){body}")
            }
        }
        _ => re.to_string(),
    };
    let rx = crate::base::regex::compile_bounded(&pattern).map_err(|e| format!("regex: {e}"))?;
    let named = rx
        .capture_names()
        .flatten()
        .any(|n| n == "text" || n == "value");
    let mut out = Vec::new();
    for v in vals {
        let Some(c) = rx.captures(v) else { continue };
        if named {
            let value = c
                .name("value")
                .or_else(|| c.name("text"))
                .map(|m| m.as_str());
            let text = c
                .name("text")
                .or_else(|| c.name("value"))
                .map(|m| m.as_str());
            if let (Some(t), Some(val)) = (text, value) {
                out.push((t.to_string(), val.to_string()));
            }
        } else if let Some(g) = c.get(1) {
            out.push((g.as_str().to_string(), g.as_str().to_string()));
        } else {
            out.push((v.clone(), v.clone()));
        }
    }
    Ok(out)
}

/// Grafana's variable sort orders: 1/2 alphabetical, 3/4 numerical (the first number in the
/// text), 5/6 alphabetical ignoring case, 7/8 natural; odd ascending, even descending.
fn sort(opts: &mut [(String, String)], how: u64) {
    let num = |t: &str| -> f64 {
        let start = t.find(|c: char| c.is_ascii_digit());
        match start {
            Some(i) => t[i..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|d| d.parse().ok())
                .unwrap_or(-1.0),
            None => -1.0,
        }
    };
    match how {
        1 | 2 => opts.sort_by(|a, b| a.0.cmp(&b.0)),
        3 | 4 => opts.sort_by(|a, b| num(&a.0).total_cmp(&num(&b.0))),
        5 | 6 => opts.sort_by_key(|a| a.0.to_lowercase()),
        7 | 8 => opts.sort_by(|a, b| natural(&a.0, &b.0)),
        _ => return,
    }
    if how.is_multiple_of(2) {
        opts.reverse();
    }
}

/// Natural order: runs of digits compare as numbers.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        match (x.chars().next(), y.chars().next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let i = x.find(|c: char| !c.is_ascii_digit()).unwrap_or(x.len());
                let j = y.find(|c: char| !c.is_ascii_digit()).unwrap_or(y.len());
                let (n, m) = (
                    x[..i].trim_start_matches('0'),
                    y[..j].trim_start_matches('0'),
                );
                let o = n.len().cmp(&m.len()).then(n.cmp(m));
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
                x = &x[i..];
                y = &y[j..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(&d);
                }
                x = &x[c.len_utf8()..];
                y = &y[d.len_utf8()..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<(String, String)> {
        v.iter().map(|s| (s.to_string(), s.to_string())).collect()
    }

    #[test]
    fn custom_regex_and_sort() {
        assert_eq!(
            custom_options("a, b\\,c ,Prod : prod-1"),
            vec![
                ("a".to_string(), "a".to_string()),
                ("b,c".into(), "b,c".into()),
                ("Prod".into(), "prod-1".into())
            ]
        );
        let vals: Vec<String> = [
            "up{instance=\"a:1\"} 1 5",
            "up{instance=\"b:2\"} 1 5",
            "other",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            apply_regex(&vals, "/instance=\"([^\"]+)\"/").unwrap(),
            opts(&["a:1", "b:2"])
        );
        assert_eq!(
            apply_regex(&vals, "/instance=\"(?<text>[^:]+):(?<value>\\d)\"/").unwrap(),
            vec![("a".to_string(), "1".to_string()), ("b".into(), "2".into())]
        );
        assert_eq!(apply_regex(&vals, "/OTHER/i").unwrap(), opts(&["other"]));
        assert!(apply_regex(&vals, "(").is_err());
        let mut o = opts(&["gpu10", "gpu2", "Gpu1", "x"]);
        sort(&mut o, 1);
        assert_eq!(o, opts(&["Gpu1", "gpu10", "gpu2", "x"]));
        sort(&mut o, 3);
        assert_eq!(o, opts(&["x", "Gpu1", "gpu2", "gpu10"]));
        sort(&mut o, 4);
        assert_eq!(o, opts(&["gpu10", "gpu2", "Gpu1", "x"]));
        sort(&mut o, 5);
        assert_eq!(o, opts(&["Gpu1", "gpu10", "gpu2", "x"]));
        let mut o = opts(&["a10", "a9", "a10b", "a09"]);
        sort(&mut o, 7);
        assert_eq!(o, opts(&["a9", "a09", "a10", "a10b"]));
    }
}
