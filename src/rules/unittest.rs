//! `sightline test rules`: rule unit tests in promtool's format and with promtool 2.42's
//! semantics, so teams keep the tests they run in CI. A test group loads its `input_series`
//! (series notation: `1 2 _ stale 1+2x3 0x5 _x2`) up to each evaluation time, evaluates every
//! group at `0, evaluation_interval, ...` up to the largest `eval_time`, compares the firing
//! alerts at each `alert_rule_test` time and, at the end, each `promql_expr_test` result. Any
//! rule error stops the group. Output and exit codes are promtool's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::file::{self, RuleKind};
use super::group::{EvalCtx, Group};
use crate::promql::{self, Engine, QueryValue};
use crate::tsdb::labels::MatchOp;
use crate::tsdb::mem::MemQueryable;
use crate::tsdb::{Labels, STALE_NAN_BITS};

/// Largest test file read.
const MAX_TEST_FILE_BYTES: u64 = 32 << 20;
/// Most evaluation steps one test group may take (`eval_time / evaluation_interval`).
const MAX_STEPS: i64 = 1_000_000;
/// Most input samples one test group may load.
const MAX_INPUT_SAMPLES: usize = 10_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(default)]
    eval_time: Option<String>,
    #[serde(default)]
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    #[serde(default)]
    eval_time: Option<String>,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    value: f64,
}

/// Runs every file; prints as promtool does; returns the exit code (0 all passed, 1 not).
pub fn run_files(files: &[PathBuf]) -> i32 {
    let mut failed = false;
    for f in files {
        println!("Unit Testing:  {}", f.display());
        match run_file(f) {
            Ok(()) => println!("  SUCCESS"),
            Err(errs) => {
                eprintln!("  FAILED:");
                for e in errs {
                    eprintln!("{e}");
                    println!();
                }
                failed = true;
            }
        }
        println!();
    }
    i32::from(failed)
}

fn duration(s: &Option<String>) -> Result<i64, String> {
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(0),
        Some(t) => {
            promql::parse_duration(t).ok_or_else(|| format!("not a valid duration string: {t:?}"))
        }
    }
}

/// Go's `model.Duration.String()`: `1h30m`, `5m`, `0s`, `1d`.
fn duration_text(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, n) in [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= n {
            out.push_str(&format!("{}{unit}", rest / n));
            rest %= n;
        }
    }
    out
}

/// Runs one test file; the errors promtool would print.
pub fn run_file(path: &Path) -> Result<(), Vec<String>> {
    let meta = std::fs::metadata(path).map_err(|e| vec![e.to_string()])?;
    if meta.len() > MAX_TEST_FILE_BYTES {
        return Err(vec![format!(
            "{}: {} bytes is more than a test file may have",
            path.display(),
            meta.len()
        )]);
    }
    let text = std::fs::read_to_string(path).map_err(|e| vec![e.to_string()])?;
    let tf: TestFile =
        serde_norway::from_str(&text).map_err(|e| vec![e.to_string().replace('`', "\"")])?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut rule_files = Vec::new();
    for rf in &tf.rule_files {
        let full = if Path::new(rf).is_absolute() {
            PathBuf::from(rf)
        } else {
            base.join(rf)
        };
        let matched: Vec<PathBuf> = glob::glob(&full.display().to_string())
            .map_err(|e| vec![e.to_string()])?
            .filter_map(Result::ok)
            .collect();
        if matched.is_empty() {
            eprintln!("  WARNING: no file match pattern {}", full.display());
        }
        rule_files.extend(matched);
    }
    let eval_interval = match duration(&tf.evaluation_interval).map_err(|e| vec![e])? {
        0 => 60_000,
        ms => ms,
    };
    let mut order = BTreeMap::new();
    for (i, g) in tf.group_eval_order.iter().enumerate() {
        if order.insert(g.clone(), i).is_some() {
            return Err(vec![format!(
                "group name repeated in evaluation order: {g}"
            )]);
        }
    }
    let mut errs = Vec::new();
    for tg in &tf.tests {
        if let Err(mut e) = run_group(tg, eval_interval, &order, &rule_files) {
            errs.append(&mut e);
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Parses series notation values into (index, value) pairs, `None` for `_`.
pub fn parse_values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        let bad = || {
            format!(
                "bad series value {tok:?}: expected a number, \"stale\", \"_\", \"a+bxn\", \"a-bxn\", \"axn\" or \"_xn\""
            )
        };
        let num = |s: &str| -> Option<f64> {
            match s {
                "stale" => Some(f64::from_bits(STALE_NAN_BITS)),
                "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
                "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
                "NaN" | "nan" => Some(f64::NAN),
                _ if s
                    .bytes()
                    .any(|c| c.is_ascii_alphabetic() && c != b'e' && c != b'E') =>
                {
                    None
                }
                _ => s.parse().ok(),
            }
        };
        if tok == "_" {
            out.push(None);
            continue;
        }
        let Some((head, n)) = tok.rsplit_once('x') else {
            out.push(Some(num(tok).ok_or_else(bad)?));
            continue;
        };
        let n: usize = n.parse().map_err(|_| bad())?;
        if out.len() + n > MAX_INPUT_SAMPLES {
            return Err(format!(
                "series {tok:?} expands past {MAX_INPUT_SAMPLES} samples"
            ));
        }
        if head == "_" {
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        // a+b or a-b: the sign that is not the first character and not part of an exponent.
        let b = head.as_bytes();
        let split = (1..b.len())
            .rev()
            .find(|&i| (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E'));
        match split {
            None => {
                let v = num(head).ok_or_else(bad)?;
                out.extend(std::iter::repeat_n(Some(v), n + 1));
            }
            Some(i) => {
                let mut v = num(&head[..i]).ok_or_else(bad)?;
                let step = num(&head[i..]).ok_or_else(bad)?;
                out.push(Some(v));
                for _ in 0..n {
                    v += step;
                    out.push(Some(v));
                }
            }
        }
    }
    Ok(out)
}

/// `name{l="v"}` (Prometheus's `ParseMetric`) -> a label set.
pub fn parse_metric(text: &str) -> Result<Labels, String> {
    // `{}`: no labels at all (a scalar's sample), which a selector may not be.
    if text
        .trim()
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(|r| r.trim().is_empty())
    {
        return Ok(Labels::default());
    }
    let ms = promql::parse_selector(text).map_err(|e| e.to_string())?;
    let mut pairs = Vec::new();
    for m in ms {
        if m.op != MatchOp::Equal {
            return Err(format!("{text:?}: only label=\"value\" pairs are allowed"));
        }
        pairs.push((m.name.clone(), m.value.clone()));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Go's `labels.Labels.String()`: `{a="b", c="d"}`.
fn labels_text(pairs: &[(String, String)]) -> String {
    crate::base::gofmt::label_set(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

type AlertPairs = (Vec<(String, String)>, Vec<(String, String)>);

/// promtool's `labelsAndAnnotations.String()`, indented as it prints it.
fn alerts_text(v: &[AlertPairs]) -> String {
    if v.is_empty() {
        return "[]".into();
    }
    let pad = "            ";
    let mut s = String::from("[");
    for (i, (l, a)) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "\n{pad}{i}:\n{pad}  Labels:{}\n{pad}  Annotations:{}",
            labels_text(l),
            labels_text(a)
        ));
    }
    s.push_str(&format!("\n{pad}]"));
    s
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`.
fn go_e_shortest(v: f64) -> String {
    let s = crate::template::go_format_float(v, 'e', None);
    if v.is_finite() { s.to_uppercase() } else { s }
}

fn run_group(
    tg: &TestGroup,
    eval_interval: i64,
    order: &BTreeMap<String, usize>,
    rule_files: &[PathBuf],
) -> Result<(), Vec<String>> {
    let interval = duration(&tg.interval).map_err(|e| vec![e])?;
    let mut loaded: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
    let mut total = 0usize;
    for s in &tg.input_series {
        let labels = parse_metric(&s.series).map_err(|e| vec![e])?;
        let vals = parse_values(&s.values).map_err(|e| vec![e])?;
        total += vals.len();
        if total > MAX_INPUT_SAMPLES {
            return Err(vec![format!(
                "input series have more than {MAX_INPUT_SAMPLES} samples"
            )]);
        }
        let samples: Vec<(i64, f64)> = vals
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as i64 * interval, v)))
            .collect();
        loaded.push((labels, samples));
    }
    let mut specs = Vec::new();
    for f in rule_files {
        let rf = file::load_file(f).map_err(|e| vec![e.to_string()])?;
        specs.extend(rf.groups);
    }
    // promtool's partial order: groups named in group_eval_order first, by position.
    specs.sort_by_key(|g| order.get(&g.name).copied().unwrap_or(0));
    let mut groups: Vec<Group> = specs
        .into_iter()
        .map(|s| Group::new(s, interval.max(1), true))
        .collect();
    for a in &tg.alert_rule_test {
        if a.alertname.is_empty() {
            let in_group = if tg.name.is_empty() {
                String::new()
            } else {
                format!(" (in TestGroup {})", tg.name)
            };
            return Err(vec![format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                duration_text(duration(&a.eval_time).map_err(|e| vec![e])?)
            )]);
        }
    }
    let mut alert_times: Vec<i64> = Vec::new();
    for a in &tg.alert_rule_test {
        alert_times.push(duration(&a.eval_time).map_err(|e| vec![e])?);
    }
    let mut expr_times = Vec::new();
    for e in &tg.promql_expr_test {
        expr_times.push(duration(&e.eval_time).map_err(|e| vec![e])?);
    }
    let maxt = alert_times
        .iter()
        .chain(&expr_times)
        .copied()
        .max()
        .unwrap_or(0);
    if maxt / eval_interval > MAX_STEPS {
        return Err(vec![format!(
            "eval_time {} needs more than {MAX_STEPS} evaluations",
            duration_text(maxt)
        )]);
    }
    let mut sorted_times: Vec<i64> = alert_times.clone();
    sorted_times.sort();
    sorted_times.dedup();
    let engine = Engine::new(crate::promql::EngineConfig::default());
    let mut store = MemQueryable::default();
    let mut next_input = vec![0usize; loaded.len()];
    let mut errs = Vec::new();
    let mut curr = 0;
    let ext_url = tg.external_url.clone();
    let mut ts = 0i64;
    while ts <= maxt {
        // Input samples up to ts, as promtool's lazy loader appends them.
        for (k, (l, samples)) in loaded.iter().enumerate() {
            while next_input[k] < samples.len() && samples[next_input[k]].0 <= ts {
                let (t, v) = samples[next_input[k]];
                store.add(l, t, v);
                next_input[k] += 1;
            }
        }
        let mut eval_errs = Vec::new();
        for g in &mut groups {
            let out = {
                let ctx = EvalCtx {
                    engine: &engine,
                    store: &store,
                    external_labels: &tg.external_labels,
                    external_url: &ext_url,
                    timeout: None,
                    resend_delay: 60_000_000_000,
                };
                g.eval(ts * 1_000_000, &ctx)
            };
            for (i, t, v) in out.batch.samples {
                store.add(&out.batch.series[i as usize], t, v);
            }
            for r in &g.rules {
                if let Some(e) = &r.last_error {
                    eval_errs.push(format!(
                        "    rule: {}, time: {}, err: {e}",
                        r.spec.name,
                        go_duration(ts)
                    ));
                }
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return Err(errs);
        }
        while curr < sorted_times.len()
            && ts <= sorted_times[curr]
            && sorted_times[curr] < ts + eval_interval
        {
            let t = sorted_times[curr];
            for (k, at) in tg.alert_rule_test.iter().enumerate() {
                if alert_times[k] != t {
                    continue;
                }
                let mut got: Vec<AlertPairs> = Vec::new();
                for g in &groups {
                    for r in &g.rules {
                        if r.spec.kind != RuleKind::Alert || r.spec.name != at.alertname {
                            continue;
                        }
                        for a in r.alerts.active.values() {
                            if a.state == super::alert::AlertState::Firing {
                                got.push((
                                    a.labels
                                        .iter()
                                        .map(|l| (l.name.clone(), l.value.clone()))
                                        .collect(),
                                    a.annotations.clone(),
                                ));
                            }
                        }
                    }
                }
                let mut exp: Vec<AlertPairs> = at
                    .exp_alerts
                    .iter()
                    .map(|e| {
                        let mut l = e.exp_labels.clone();
                        l.insert("alertname".into(), at.alertname.clone());
                        (
                            l.into_iter().collect(),
                            e.exp_annotations.clone().into_iter().collect(),
                        )
                    })
                    .collect();
                got.sort();
                exp.sort();
                if got != exp {
                    let name = if tg.name.is_empty() {
                        String::new()
                    } else {
                        format!("    name: {},\n", tg.name)
                    };
                    errs.push(format!(
                        "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        at.alertname,
                        duration_text(t),
                        alerts_text(&exp),
                        alerts_text(&got)
                    ));
                }
            }
            curr += 1;
        }
        ts += eval_interval;
    }
    'outer: for (k, et) in tg.promql_expr_test.iter().enumerate() {
        let t = expr_times[k];
        let when = duration_text(t);
        let got = match query(&engine, &store, &et.expr, t) {
            Ok(v) => v,
            Err(e) => {
                errs.push(format!("    expr: {:?}, time: {when}, err: {e}", et.expr));
                continue;
            }
        };
        let mut exp = Vec::new();
        for s in &et.exp_samples {
            match parse_metric(&s.labels) {
                Ok(l) => exp.push((l, s.value)),
                Err(e) => {
                    errs.push(format!(
                        "    expr: {:?}, time: {when}, err: labels {:?}: {e}",
                        et.expr, s.labels
                    ));
                    continue 'outer;
                }
            }
        }
        let mut got = got;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        // reflect.DeepEqual on float64: NaN never equals NaN.
        let equal =
            got.len() == exp.len() && got.iter().zip(&exp).all(|(g, e)| g.0 == e.0 && g.1 == e.1);
        if !equal {
            let text = |v: &[(Labels, f64)]| -> String {
                if v.is_empty() {
                    return "nil".into();
                }
                v.iter()
                    .map(|(l, x)| {
                        let pairs: Vec<(String, String)> = l
                            .iter()
                            .map(|p| (p.name.clone(), p.value.clone()))
                            .collect();
                        format!("{} {}", labels_text(&pairs), go_e_shortest(*x))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            errs.push(format!(
                "    expr: {:?}, time: {when},\n        exp: {}\n        got: {}",
                et.expr,
                text(&exp),
                text(&got)
            ));
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Go's `time.Duration.String()` for whole milliseconds: `1m30s`, `2h0m0s`, `0s`.
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let (h, m, s, frac) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        secs
    }
}

fn query(
    engine: &Engine,
    store: &MemQueryable,
    expr: &str,
    t: i64,
) -> Result<Vec<(Labels, f64)>, String> {
    let e = promql::parse(expr).map_err(|e| e.to_string())?;
    match engine.instant(store, &e, t, None) {
        Ok(QueryValue::Vector(_, rows)) => Ok(rows),
        Ok(QueryValue::Scalar(_, v)) => Ok(vec![(Labels::default(), v)]),
        Ok(_) => Err("rule result is not a vector or scalar".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_notation() {
        let v = parse_values("1 _ 2+3x2 5x1 _x2 stale -1-1x1 1e3").unwrap();
        let shown: Vec<String> = v
            .iter()
            .map(|x| match x {
                None => "_".into(),
                Some(f) if crate::tsdb::is_stale(*f) => "stale".into(),
                Some(f) => f.to_string(),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "1", "_", "2", "5", "8", "5", "5", "_", "_", "stale", "-1", "-2", "1000"
            ]
        );
        assert!(parse_values("1 abc").is_err());
        assert!(parse_values("1+1xq").is_err());
    }

    #[test]
    fn go_texts() {
        assert_eq!(go_duration(150_000), "2m30s");
        assert_eq!(go_duration(7_200_000), "2h0m0s");
        assert_eq!(duration_text(150_000), "2m30s");
        assert_eq!(duration_text(7_200_000), "2h");
        assert_eq!(go_e_shortest(1.0), "1E+00");
        assert_eq!(go_e_shortest(0.25), "2.5E-01");
        assert_eq!(
            labels_text(&[("a".into(), "x\"y".into())]),
            "{a=\"x\\\"y\"}"
        );
    }
}
