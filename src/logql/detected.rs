//! What Grafana's Logs Drilldown asks of a log query besides its lines: the stream labels worth
//! offering (`detected_labels`: label names with their number of values, leaving out labels
//! whose values are all ids or numbers) and the fields in the newest lines (`detected_fields`:
//! structured metadata, and what the `json` parser, else `logfmt`, extracts from each line,
//! with a type and the number of values), as Loki's querier and query frontend compute them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::ast::{Extraction, LogExpr, Stage};
use super::pipeline::{self, Row};
use super::{Labels, LogSource, QueryError};

/// A stream label and its distinct values.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectedLabel {
    pub label: String,
    pub cardinality: u64,
}

/// Loki's `shouldRejectLabel`: a label with no values, or whose values are all numbers or
/// UUIDs (unless there are at most two and they are `0`/`1`), is not worth offering.
fn reject(values: &BTreeSet<String>) -> bool {
    if values.is_empty() {
        return true;
    }
    let id = |v: &String| v.parse::<f64>().is_ok() || is_uuid(v);
    if values.len() <= 2 && values.iter().all(|v| v == "0" || v == "1") {
        return false;
    }
    values.iter().all(id)
}

fn is_uuid(v: &str) -> bool {
    let t = v
        .trim_start_matches("urn:uuid:")
        .trim_start_matches('{')
        .trim_end_matches('}');
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    hex.len() == 32
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && (t.len() == 32 || t.len() == 36)
}

/// `detected_labels` over the streams `matchers` select in `[start, end)`.
pub fn detected_labels(
    src: &dyn LogSource,
    start: i64,
    end: i64,
    matchers: &[super::Matcher],
) -> Result<Vec<DetectedLabel>, QueryError> {
    const STATIC: &[&str] = &["cluster", "namespace", "instance", "pod"];
    let mut seen: BTreeSet<Labels> = BTreeSet::new();
    src.scan(start, end, matchers, &mut |l, _| {
        if !seen.contains(l) {
            seen.insert(l.clone());
        }
        true
    })
    .map_err(QueryError::Store)?;
    let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in &seen {
        for (k, v) in l {
            values.entry(k.clone()).or_default().insert(v.clone());
        }
    }
    Ok(values
        .into_iter()
        .filter(|(k, v)| (STATIC.contains(&k.as_str()) && !v.is_empty()) || !reject(v))
        .map(|(label, v)| DetectedLabel {
            label,
            cardinality: v.len() as u64,
        })
        .collect())
}

/// A field found in log lines.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectedField {
    pub label: String,
    /// `int`, `float`, `boolean`, `duration`, `bytes` or `string`.
    pub kind: &'static str,
    pub values: BTreeSet<String>,
    /// `json` / `logfmt`; empty for structured metadata.
    pub parsers: Vec<&'static str>,
}

/// Loki's `determineType`, in its order.
pub fn field_type(v: &str) -> &'static str {
    if v.parse::<i64>().is_ok() {
        return "int";
    }
    if super::pipeline::parse_go_float(v).is_some() {
        return "float";
    }
    if matches!(
        v,
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False"
    ) {
        return "boolean";
    }
    if !v.contains(['d', 'w']) && crate::base::units::parse_duration(v).is_some() {
        return "duration";
    }
    if crate::base::units::parse_size_f64(v).is_some() {
        return "bytes";
    }
    "string"
}

/// `detected_fields`: the fields of the newest `line_limit` lines the log query selects, at most
/// `field_limit` of them; `only` limits the answer to one field (its values).
pub fn detected_fields(
    src: &dyn LogSource,
    q: &LogExpr,
    start: i64,
    end: i64,
    line_limit: usize,
    field_limit: usize,
) -> Result<Vec<DetectedField>, QueryError> {
    // The newest lines after the query's pipeline, with their categorised labels.
    type Kept = (i64, u64, String, Labels, Labels);
    let mut newest: BinaryHeap<Reverse<(i64, u64)>> = BinaryHeap::new();
    let mut kept: BTreeMap<(i64, u64), Kept> = BTreeMap::new();
    let mut seq = 0u64;
    src.scan(start, end, &q.matchers, &mut |l, e| {
        let mut row = Row::new(e.ts, e.line, l, e.metadata);
        if !pipeline::run(&q.stages, &mut row) {
            return true;
        }
        seq += 1;
        let key = (e.ts, seq);
        if newest.len() >= line_limit.max(1) {
            match newest.peek() {
                Some(Reverse(oldest)) if *oldest < key => {
                    let o = *oldest;
                    newest.pop();
                    kept.remove(&o);
                }
                _ => return true,
            }
        }
        let (meta, parsed) = row.categorized();
        newest.push(Reverse(key));
        kept.insert(key, (e.ts, seq, row.line, meta, parsed));
        true
    })
    .map_err(QueryError::Store)?;
    let json = [Stage::Json(Vec::<Extraction>::new())];
    let logfmt = [Stage::Logfmt {
        strict: false,
        keep_empty: false,
        params: Vec::new(),
    }];
    let mut fields: BTreeMap<String, DetectedField> = BTreeMap::new();
    let mut add = |name: &str, value: &str, parser: Option<&'static str>| {
        if name == pipeline::ERROR_LABEL || name == pipeline::ERROR_DETAILS_LABEL {
            return;
        }
        if !fields.contains_key(name) {
            if fields.len() >= field_limit {
                return;
            }
            fields.insert(
                name.to_string(),
                DetectedField {
                    label: name.to_string(),
                    kind: "string",
                    values: BTreeSet::new(),
                    parsers: Vec::new(),
                },
            );
        }
        let f = fields.get_mut(name).unwrap();
        f.kind = field_type(value);
        if f.values.len() < 10_000 {
            f.values.insert(value.to_string());
        }
        if let Some(p) = parser
            && !f.parsers.contains(&p)
        {
            f.parsers.push(p);
        }
    };
    // Newest first, as Loki reads them (backward).
    for (ts, _, line, meta, parsed) in kept.into_values().rev() {
        for (k, v) in &meta {
            add(k, v, None);
        }
        for (k, v) in &parsed {
            add(k, v, None);
        }
        let no_labels: Labels = Vec::new();
        let mut row = Row::new(ts, &line, &no_labels, &[]);
        pipeline::run(&json, &mut row);
        let mut parser = "json";
        if row.err.is_some() {
            row = Row::new(ts, &line, &no_labels, &[]);
            pipeline::run(&logfmt, &mut row);
            parser = "logfmt";
            if row.err.is_some() {
                continue;
            }
        }
        for (k, v) in row.categorized().1 {
            add(&k, &v, Some(parser));
        }
    }
    Ok(fields.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::eval::VecSource;

    #[test]
    fn types_as_loki_determines_them() {
        for (v, t) in [
            ("42", "int"),
            ("-3", "int"),
            ("0.25", "float"),
            ("true", "boolean"),
            ("1.5s", "duration"),
            ("250ms", "duration"),
            ("20KB", "bytes"),
            ("3MiB", "bytes"),
            ("GET", "string"),
        ] {
            assert_eq!(field_type(v), t, "{v}");
        }
    }

    fn src() -> VecSource {
        let s = |app: &str, pod: &str| {
            vec![
                ("app".to_string(), app.to_string()),
                ("pod_uid".to_string(), pod.to_string()),
            ]
        };
        VecSource {
            streams: vec![
                (
                    s("web", "7f0c2f7e-4b4e-4a27-9d1e-0c2b1a4f5e61"),
                    vec![
                        (
                            1,
                            "level=info status=200 took=15ms".into(),
                            vec![("trace_id".into(), "ab".into())],
                        ),
                        (2, "level=warn status=404 took=3ms".into(), vec![]),
                    ],
                ),
                (
                    s("api", "0d7bb6a9-6a4f-4f0e-8a6e-3c0f6a1b2c3d"),
                    vec![(
                        3,
                        r#"{"level":"error","user":{"id":7},"ok":false}"#.into(),
                        vec![],
                    )],
                ),
            ],
        }
    }

    #[test]
    fn labels_leave_out_ids() {
        let got = detected_labels(&src(), 0, 10, &[]).unwrap();
        assert_eq!(
            got,
            vec![DetectedLabel {
                label: "app".into(),
                cardinality: 2
            }]
        );
    }

    #[test]
    fn fields_from_metadata_json_and_logfmt() {
        let q = match crate::logql::parse(r#"{app=~".+"}"#).unwrap() {
            crate::logql::Expr::Log(l) => l,
            _ => unreachable!(),
        };
        let got = detected_fields(&src(), &q, 0, 10, 1000, 1000).unwrap();
        let by: BTreeMap<&str, (&str, usize, Vec<&str>)> = got
            .iter()
            .map(|f| {
                (
                    f.label.as_str(),
                    (f.kind, f.values.len(), f.parsers.clone()),
                )
            })
            .collect();
        assert_eq!(by["status"], ("int", 2, vec!["logfmt"]));
        assert_eq!(by["took"], ("duration", 2, vec!["logfmt"]));
        assert_eq!(by["level"], ("string", 3, vec!["json", "logfmt"]));
        assert_eq!(by["user_id"], ("int", 1, vec!["json"]));
        assert_eq!(by["ok"], ("boolean", 1, vec!["json"]));
        assert_eq!(by["trace_id"], ("string", 1, vec![]));
        // The newest line only.
        let got = detected_fields(&src(), &q, 0, 10, 1, 1000).unwrap();
        assert!(got.iter().all(|f| f.parsers == vec!["json"]), "{got:?}");
    }
}
