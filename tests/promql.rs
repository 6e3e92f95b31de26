//! Runs the data-driven PromQL tests in `tests/promql/*.test`, written in Prometheus's
//! promqltest format, against Sightline's engine over an in-memory store:
//!
//! ```text
//! load 1m
//!     http_requests{job="api"} 0+10x10 _ stale 5
//! eval instant at 5m sum(http_requests)
//!     {} 50
//! eval_ordered instant at 5m sort(x)   # result order matters
//! eval_fail instant at 5m 1 + "a"      # must fail
//! eval range from 0 to 10m step 1m rate(x[5m])
//!     {job="api"} _ 0.1 0.1x8          # expected points in series notation
//! clear
//! ```
//!
//! Values compare with a relative tolerance of 1e-6 (as promqltest does); NaN equals NaN.

use std::path::Path;
use std::time::Duration;

use sightline::promql::{Engine, EngineConfig, QueryValue, parse, parse_duration};
use sightline::tsdb::mem::MemQueryable;
use sightline::tsdb::{Labels, STALE_NAN_BITS, Series};

fn dur(s: &str) -> i64 {
    parse_duration(s).unwrap_or_else(|| panic!("bad duration {s:?}"))
}

/// `metric{a="b"}` or `{a="b"}` into labels.
fn parse_series_desc(s: &str) -> Labels {
    let s = s.trim();
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !name.is_empty() {
        pairs.push(("__name__".into(), name.to_string()));
    }
    let inner = rest.trim_start_matches('{').trim_end_matches('}');
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let lname: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if lname.trim().is_empty() {
            break;
        }
        chars.next(); // '='
        assert_eq!(chars.next(), Some('"'), "label value must be quoted in {s}");
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => v.push(chars.next().unwrap_or('\\')),
                '"' => break,
                c => v.push(c),
            }
        }
        pairs.push((lname.trim().to_string(), v));
    }
    Labels::from_pairs(pairs)
}

/// Splits `metric{...} values` at the end of the label part.
fn split_desc(line: &str) -> (&str, &str) {
    let line = line.trim();
    if let Some(close) = line.rfind('}') {
        return (&line[..=close], line[close + 1..].trim());
    }
    match line.split_once(char::is_whitespace) {
        Some((a, b)) => (a, b.trim()),
        None => (line, ""),
    }
}

fn parse_value(s: &str) -> f64 {
    match s {
        "stale" => f64::from_bits(STALE_NAN_BITS),
        "Inf" | "+Inf" | "inf" => f64::INFINITY,
        "-Inf" | "-inf" => f64::NEG_INFINITY,
        "NaN" | "nan" => f64::NAN,
        _ => s.parse().unwrap_or_else(|_| panic!("bad value {s:?}")),
    }
}

/// Series notation: `1 2 _ stale 0+10x5 1-1x3 _x2 7x2`. `None` is a missing point.
fn expand(values: &str) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for tok in values.split_whitespace() {
        if let Some((head, times)) = tok.rsplit_once('x')
            && let Ok(times) = times.parse::<usize>()
        {
            if head == "_" {
                out.extend(std::iter::repeat_n(None, times));
                continue;
            }
            // a+bxN, a-bxN, axN: N+1 values.
            let split = head[1..].find(['+', '-']).map(|i| i + 1);
            let (start, inc) = match split {
                Some(i) => (parse_value(&head[..i]), parse_value(&head[i..])),
                None => (parse_value(head), 0.0),
            };
            let mut v = start;
            for _ in 0..=times {
                out.push(Some(v));
                v += inc;
            }
            continue;
        }
        out.push(if tok == "_" {
            None
        } else {
            Some(parse_value(tok))
        });
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= 1e-6 * a.abs().max(b.abs()) || diff < 1e-12
}

struct Case<'a> {
    file: &'a str,
    line: usize,
}

impl Case<'_> {
    fn fail(&self, msg: String) -> String {
        format!("{}:{}: {msg}", self.file, self.line)
    }
}

fn run_file(path: &Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut store: Vec<Series> = Vec::new();
    let mut failures = Vec::new();
    let mut evals = 0;
    let engine = Engine::new(EngineConfig::default());
    let mut i = 0;
    let body = |from: usize| -> Vec<&str> {
        lines[from..]
            .iter()
            .take_while(|l| l.starts_with(' ') || l.starts_with('\t'))
            .map(|l| l.trim())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    };
    while i < lines.len() {
        let line = lines[i].trim_end();
        let case = Case {
            file: &file,
            line: i + 1,
        };
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            i += 1;
            continue;
        }
        let b = body(i + 1);
        let consumed = lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with(' ') || l.starts_with('\t'))
            .count();
        if line == "clear" {
            store.clear();
        } else if let Some(interval) = line.strip_prefix("load ") {
            let iv = dur(interval.trim());
            for l in b {
                let (desc, vals) = split_desc(l);
                let labels = parse_series_desc(desc);
                let mut samples: Vec<(i64, f64)> = expand(vals)
                    .into_iter()
                    .enumerate()
                    .filter_map(|(k, v)| v.map(|v| (k as i64 * iv, v)))
                    .collect();
                match store.iter_mut().find(|s| s.labels == labels) {
                    Some(s) => {
                        s.samples.append(&mut samples);
                        s.samples.sort_by_key(|x| x.0);
                    }
                    None => store.push(Series { labels, samples }),
                }
            }
        } else if line.starts_with("eval") {
            evals += 1;
            let (kind, rest) = line.split_once(' ').unwrap();
            let db = MemQueryable::new(store.clone());
            let result = if let Some(r) = rest.strip_prefix("instant at ") {
                let (at, q) = r.split_once(' ').unwrap();
                parse(q)
                    .map_err(|e| e.to_string())
                    .and_then(|e| {
                        engine
                            .instant(&db, &e, dur(at), Some(Duration::from_secs(30)))
                            .map_err(|e| e.to_string())
                    })
                    .map(|v| (v, q.to_string(), None))
            } else if let Some(r) = rest.strip_prefix("range from ") {
                let parts: Vec<&str> = r.splitn(6, ' ').collect();
                assert!(
                    parts.len() == 6 && parts[1] == "to" && parts[3] == "step",
                    "{}",
                    case.fail("expected: eval range from S to E step D expr".into())
                );
                let (s, e, st) = (dur(parts[0]), dur(parts[2]), dur(parts[4]));
                let q = parts[5];
                parse(q)
                    .map_err(|e| e.to_string())
                    .and_then(|x| {
                        engine
                            .range(&db, &x, s, e, st, Some(Duration::from_secs(30)))
                            .map_err(|e| e.to_string())
                    })
                    .map(|v| (v, format!("{q} (range {s}..{e} step {st})"), Some((s, st))))
            } else {
                failures.push(case.fail(format!("unknown eval form: {line}")));
                i += 1 + consumed;
                continue;
            };
            match (kind, result) {
                ("eval_fail", Ok((v, q, _))) => {
                    failures.push(case.fail(format!("{q}: expected an error, got {v:?}")))
                }
                ("eval_fail", Err(_)) => {}
                (_, Err(e)) => failures.push(case.fail(format!("unexpected error: {e}"))),
                (_, Ok((v, q, grid))) => {
                    if let Err(m) = compare(&v, &b, kind == "eval_ordered", grid) {
                        failures.push(case.fail(format!("{q}: {m}\n  got: {v:?}")));
                    }
                }
            }
        } else {
            failures.push(case.fail(format!("unknown command: {line}")));
        }
        i += 1 + consumed;
    }
    (evals, failures)
}

fn compare(
    got: &QueryValue,
    expected: &[&str],
    ordered: bool,
    grid: Option<(i64, i64)>,
) -> Result<(), String> {
    match got {
        QueryValue::Scalar(_, v) => {
            let want = expected.first().map(|s| parse_value(s.trim()));
            match want {
                Some(w) if expected.len() == 1 && close(*v, w) => Ok(()),
                _ => Err(format!("scalar {v} != {expected:?}")),
            }
        }
        QueryValue::Str(_, s) => {
            if expected.len() == 1 && expected[0].trim_matches('"') == s {
                Ok(())
            } else {
                Err(format!("string {s:?} != {expected:?}"))
            }
        }
        QueryValue::Vector(_, v) => {
            if v.len() != expected.len() {
                return Err(format!("{} series, expected {}", v.len(), expected.len()));
            }
            for (pos, line) in expected.iter().enumerate() {
                let (desc, val) = split_desc(line);
                let labels = parse_series_desc(desc);
                let want = parse_value(val);
                let found = v.iter().position(|(l, _)| *l == labels);
                match found {
                    None => return Err(format!("missing series {desc}")),
                    Some(i) if ordered && i != pos => {
                        return Err(format!("{desc} at position {i}, expected {pos}"));
                    }
                    Some(i) if !close(v[i].1, want) => {
                        return Err(format!("{desc}: {} != {want}", v[i].1));
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        QueryValue::Matrix(m) => {
            if m.len() != expected.len() {
                return Err(format!("{} series, expected {}", m.len(), expected.len()));
            }
            for line in expected {
                let (desc, vals) = split_desc(line);
                let labels = parse_series_desc(desc);
                let Some(s) = m.iter().find(|s| s.labels == labels) else {
                    return Err(format!("missing series {desc}"));
                };
                // A range query lists expected points step by step from the range's start
                // (`_` where there is none); an instant query of a range selector lists its
                // raw samples.
                let mut want = expand(vals);
                let mut got: Vec<Option<f64>> = match grid {
                    Some((start, step)) => {
                        let mut g = Vec::new();
                        for &(t, v) in &s.samples {
                            let k = ((t - start) / step) as usize;
                            if g.len() <= k {
                                g.resize(k + 1, None);
                            }
                            g[k] = Some(v);
                        }
                        g
                    }
                    None => {
                        want.retain(Option::is_some);
                        s.samples.iter().map(|x| Some(x.1)).collect()
                    }
                };
                while want.last() == Some(&None) {
                    want.pop();
                }
                while got.last() == Some(&None) {
                    got.pop();
                }
                let same = want.len() == got.len()
                    && want.iter().zip(&got).all(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) => close(*a, *b),
                        (None, None) => true,
                        _ => false,
                    });
                if !same {
                    return Err(format!("{desc}: {got:?} != {want:?}"));
                }
            }
            Ok(())
        }
    }
}

#[test]
fn promql_test_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    let mut all = Vec::new();
    let mut total = 0;
    for f in &files {
        let (n, fails) = run_file(f);
        assert!(n > 0, "{} has no eval commands", f.display());
        total += n;
        all.extend(fails);
    }
    println!("{total} evals in {} files", files.len());
    assert!(
        all.is_empty(),
        "{} failures:\n{}",
        all.len(),
        all.join("\n")
    );
}

fn counters(n_series: usize, n: usize) -> MemQueryable {
    MemQueryable::new(
        (0..n_series)
            .map(|i| Series {
                labels: Labels::from_pairs([("__name__", "x".to_string()), ("i", i.to_string())]),
                samples: (0..n as i64).map(|k| (k * 15_000, k as f64)).collect(),
            })
            .collect(),
    )
}

#[test]
fn sample_limit_stops_a_query() {
    let db = counters(50, 100);
    let engine = Engine::new(EngineConfig {
        max_samples: 1000,
        ..EngineConfig::default()
    });
    let e = parse("sum(x)").unwrap();
    let err = engine
        .range(&db, &e, 0, 1_485_000, 15_000, None)
        .unwrap_err();
    assert!(err.to_string().contains("too many samples"), "{err}");
    // Small enough, the same query runs.
    let ok = engine.instant(&db, &parse("sum(x{i=\"1\"})").unwrap(), 60_000, None);
    assert_eq!(
        ok.unwrap(),
        QueryValue::Vector(60_000, vec![(Labels::default(), 4.0)])
    );
    // A subquery with a step of one millisecond over a day is refused before it allocates.
    let big = parse("count_over_time(vector(1)[1d:1ms])").unwrap();
    let err = Engine::new(EngineConfig::default())
        .instant(&db, &big, 0, None)
        .unwrap_err();
    assert!(err.to_string().contains("too many samples"), "{err}");
}

#[test]
fn timeout_stops_a_query() {
    let db = counters(200, 400);
    let engine = Engine::new(EngineConfig::default());
    let e = parse("sum by (i) (rate(x[5m]))").unwrap();
    let err = engine
        .range(&db, &e, 0, 6_000_000, 15_000, Some(Duration::from_nanos(1)))
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        engine
            .range(&db, &e, 0, 6_000_000, 15_000, Some(Duration::from_secs(30)))
            .is_ok()
    );
}

#[test]
fn hostile_regexes_are_refused_at_parse_time() {
    // Compiles to far more than the size limit; refused instead of built.
    let q = format!("x{{i=~\"{}\"}}", "((a{100}){100}){100}");
    let err = parse(&q).unwrap_err().to_string();
    assert!(err.contains("invalid regular expression"), "{err}");
    let err = parse("label_replace(x, \"a\", \"b\", \"i\", \"((a{100}){100}){100}\")");
    // label_replace's regex compiles at evaluation; the same limit applies there.
    let db = counters(1, 1);
    let err = Engine::new(EngineConfig::default())
        .instant(&db, &err.unwrap(), 0, None)
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid regular expression"),
        "{err}"
    );
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let engine = Engine::new(EngineConfig {
        max_concurrency: 1,
        ..EngineConfig::default()
    });
    let first = engine.acquire().await;
    let e2 = engine.clone();
    let waiter = tokio::spawn(async move { e2.acquire().await });
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "a second query ran beside the first");
    drop(first);
    let _second = waiter.await.unwrap();
}

#[test]
fn printed_queries_parse_back_to_the_same_text() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql");
    let mut n = 0;
    for f in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        for line in text.lines().filter(|l| l.starts_with("eval")) {
            let q = if let Some(i) = line.find(" instant at ") {
                line[i + 12..].split_once(' ').unwrap().1
            } else {
                line.splitn(9, ' ').nth(8).unwrap_or("")
            };
            let Ok(e) = parse(q) else { continue };
            let printed = e.to_string();
            let again = parse(&printed)
                .unwrap_or_else(|err| panic!("{q} printed as {printed}, which fails: {err}"));
            assert_eq!(again.to_string(), printed, "{q}");
            n += 1;
        }
    }
    assert!(n > 200, "only {n} queries round-tripped");
}
