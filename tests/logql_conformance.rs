//! LogQL conformance (issue 24): every case in `tests/logql/*.test` runs against the data set in
//! `tests/logql/data.txt` and must give exactly the answer written beside it. The answers were
//! written from Loki's documentation (and, where the documentation is silent, Loki's source),
//! and checked by hand; the file's header says how to read them.
//!
//! Data: `stream {labels}` starts a stream; each following line is `ID SEC LINE` with optional
//! structured metadata after ` ## ` as `k=v` pairs; `\x1b` in a line is the escape byte. Entry
//! times are `T + SEC` seconds, `T = 1700000000`.
//!
//! Cases: `=== name`, `query: ...`, then the frame: `logs: START END [forward|backward]
//! [LIMIT]` (seconds after T; defaults `0 10 forward 1000`), `at: SEC` (instant, the default
//! `at: 10` for metric queries) or `range: START END STEP`. Then `expect:` and the answer:
//! `{labels} ID` (the entry unchanged) or `{labels} ID => LINE` for streams, in the query's
//! direction within a stream; `{labels} VALUE` for vectors (`ordered` after `expect:` when the
//! order is part of the answer); `{labels} SEC:VALUE ...` for matrices; `scalar VALUE`;
//! `empty`; `error: MESSAGE` (exact) or `error^: PREFIX`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sightline::base::gofmt::{QuoteStyle, quote};
use sightline::logql::eval::{MemEntry, VecSource, run};
use sightline::logql::{Answer, Labels, Limits, Query};

const T: i64 = 1_700_000_000;
const NS: i64 = 1_000_000_000;

fn ns(sec: &str) -> i64 {
    let f: f64 = sec
        .parse()
        .unwrap_or_else(|_| panic!("bad seconds {sec:?}"));
    T * NS + (f * 1e9).round() as i64
}

fn labels_text(l: &Labels) -> String {
    let mut o = String::from("{");
    for (i, (k, v)) in l.iter().enumerate() {
        if i > 0 {
            o.push_str(", ");
        }
        let _ = write!(o, "{k}={}", quote(v, QuoteStyle::Go));
    }
    o.push('}');
    o
}

fn parse_labels(s: &str) -> Labels {
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    let mut out = Vec::new();
    for part in inner.split(", ").filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap();
        out.push((k.to_string(), v.trim_matches('"').to_string()));
    }
    out.sort();
    out
}

struct Data {
    source: VecSource,
    /// ID -> (ts ns, line).
    entries: BTreeMap<String, (i64, String)>,
}

fn load_data(text: &str) -> Data {
    let mut streams: Vec<(Labels, Vec<MemEntry>)> = Vec::new();
    let mut entries = BTreeMap::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(l) = line.strip_prefix("stream ") {
            streams.push((parse_labels(l), Vec::new()));
            continue;
        }
        let (id, rest) = line.split_once(' ').unwrap();
        let (sec, rest) = rest.split_once(' ').unwrap();
        let (body, meta) = match rest.split_once(" ## ") {
            Some((b, m)) => (b, m),
            None => (rest, ""),
        };
        let body = body.replace("\\x1b", "\x1b");
        let mut md: Labels = meta
            .split_whitespace()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        md.sort();
        let ts = ns(sec);
        assert!(
            entries.insert(id.to_string(), (ts, body.clone())).is_none(),
            "duplicate id {id}"
        );
        streams
            .last_mut()
            .expect("an entry before any stream")
            .1
            .push((ts, body, md));
    }
    Data {
        source: VecSource { streams },
        entries,
    }
}

struct Case {
    name: String,
    query: String,
    frame: String,
    ordered: bool,
    expect: Vec<String>,
}

fn load_cases(text: &str, file: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut in_expect = false;
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.starts_with('#') {
            continue;
        }
        if let Some(n) = line.strip_prefix("=== ") {
            cases.push(Case {
                name: format!("{file}: {n}"),
                query: String::new(),
                frame: String::new(),
                ordered: false,
                expect: Vec::new(),
            });
            in_expect = false;
            continue;
        }
        let Some(c) = cases.last_mut() else { continue };
        if in_expect {
            if !line.trim().is_empty() {
                c.expect.push(line.trim().to_string());
            }
        } else if let Some(q) = line.strip_prefix("query: ") {
            c.query = q.to_string();
        } else if line.starts_with("logs:") || line.starts_with("at:") || line.starts_with("range:")
        {
            c.frame = line.to_string();
        } else if let Some(rest) = line.strip_prefix("expect:") {
            in_expect = true;
            c.ordered = rest.trim() == "ordered";
        } else if !line.trim().is_empty() {
            panic!("{}: unexpected line {line:?}", c.name);
        }
    }
    cases
}

fn fmt_value(v: f64) -> String {
    format!("{v}")
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Runs one case; `Err` says how the answer differs.
fn check(c: &Case, data: &Data) -> Result<(), String> {
    let expr = sightline::logql::parse(&c.query);
    let is_log = matches!(expr, Ok(sightline::logql::Expr::Log(_)));
    let words: Vec<&str> = c.frame.split_whitespace().collect();
    let mut q = Query {
        expr: match &expr {
            Ok(e) => e.clone(),
            Err(_) => sightline::logql::parse("{x=\"y\"}").unwrap(),
        },
        start: T * NS,
        end: T * NS + 10 * NS,
        step: 0,
        instant: !is_log,
        limit: 1000,
        forward: true,
    };
    match words.first().copied() {
        Some("logs:") => {
            q.start = ns(words[1]);
            q.end = ns(words[2]);
            q.forward = words.get(3).is_none_or(|d| *d == "forward");
            if let Some(l) = words.get(4) {
                q.limit = l.parse().unwrap();
            }
        }
        Some("at:") => {
            q.start = ns(words[1]);
            q.end = q.start;
            q.instant = true;
        }
        Some("range:") => {
            q.start = ns(words[1]);
            q.end = ns(words[2]);
            q.step = (words[3].parse::<f64>().unwrap() * 1e9) as i64;
            q.instant = false;
        }
        None if !is_log => {
            q.start = T * NS + 10 * NS;
            q.end = q.start;
        }
        _ => {}
    }
    let result = match expr {
        Ok(_) => run(&q, &data.source, &Limits::default()).map(|(a, _)| a),
        Err(e) => Err(e.into()),
    };
    let first = c.expect.first().map(String::as_str).unwrap_or("");
    if let Some(msg) = first.strip_prefix("error: ") {
        return match result {
            Err(e) if e.to_string() == msg => Ok(()),
            Err(e) => Err(format!("error {:?}, want {msg:?}", e.to_string())),
            Ok(a) => Err(format!("answered {a:?}, want error {msg:?}")),
        };
    }
    if let Some(msg) = first.strip_prefix("error^: ") {
        return match result {
            Err(e) if e.to_string().starts_with(msg) => Ok(()),
            Err(e) => Err(format!("error {:?}, want prefix {msg:?}", e.to_string())),
            Ok(a) => Err(format!("answered {a:?}, want error {msg:?}")),
        };
    }
    let answer = result.map_err(|e| format!("error: {e}"))?;
    let got: Vec<String> = match &answer {
        Answer::Streams(ss) => {
            let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for s in ss {
                let key = labels_text(&s.labels);
                for (ts, line) in &s.entries {
                    let id = data
                        .entries
                        .iter()
                        .find(|(_, (t, _))| t == ts)
                        .map(|(id, (_, orig))| (id.clone(), orig == line));
                    let text = match id {
                        Some((id, true)) => id,
                        Some((id, false)) => format!("{id} => {line}"),
                        None => format!("?{ts} => {line}"),
                    };
                    by.entry(key.clone()).or_default().push(text);
                }
            }
            by.into_iter()
                .flat_map(|(k, es)| es.into_iter().map(move |e| format!("{k} {e}")))
                .collect()
        }
        Answer::Vector(_, samples) => samples
            .iter()
            .map(|(l, v)| format!("{} {}", labels_text(l), fmt_value(*v)))
            .collect(),
        Answer::Matrix(series) => series
            .iter()
            .map(|(l, pts)| {
                let p: Vec<String> = pts
                    .iter()
                    .map(|(t, v)| {
                        format!("{}:{}", fmt_value((t - T * NS) as f64 / 1e9), fmt_value(*v))
                    })
                    .collect();
                format!("{} {}", labels_text(l), p.join(" "))
            })
            .collect(),
        Answer::Scalar(_, v) => vec![format!("scalar {}", fmt_value(*v))],
    };
    let want: Vec<String> = if first == "empty" {
        Vec::new()
    } else {
        c.expect.clone()
    };
    // Streams: entries whose ids collide across streams are distinguished by time only, so
    // entry ids in data.txt have unique times.
    let (mut g, mut w) = (got.clone(), want.clone());
    let ordered = c.ordered || matches!(answer, Answer::Streams(_));
    if !ordered {
        g.sort();
        w.sort();
    }
    if matches!(answer, Answer::Streams(_)) {
        // Streams may come in any order; entries within a stream keep theirs.
        let group = |v: &[String]| -> BTreeMap<String, Vec<String>> {
            let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for e in v {
                let cut = e.rfind("} ").map_or(0, |i| i + 1);
                let (k, rest) = e.split_at(cut);
                m.entry(normalise_labels(k))
                    .or_default()
                    .push(rest.trim().to_string());
            }
            m
        };
        return if group(&g) == group(&w) {
            Ok(())
        } else {
            Err(format!(
                "got:\n  {}\nwant:\n  {}",
                g.join("\n  "),
                w.join("\n  ")
            ))
        };
    }
    let same = g.len() == w.len() && g.iter().zip(&w).all(|(a, b)| same_line(a, b));
    if same {
        Ok(())
    } else {
        Err(format!(
            "got:\n  {}\nwant:\n  {}",
            g.join("\n  "),
            w.join("\n  ")
        ))
    }
}

fn normalise_labels(k: &str) -> String {
    labels_text(&parse_labels(k))
}

/// Two answer lines are the same when labels match and numbers are equal within 1e-9.
fn same_line(a: &str, b: &str) -> bool {
    let split = |s: &str| -> (String, Vec<String>) {
        let cut = s.rfind("} ").map_or(0, |i| i + 1);
        let (k, rest) = s.split_at(cut);
        (
            if k.is_empty() {
                String::new()
            } else {
                normalise_labels(k)
            },
            rest.split_whitespace().map(str::to_string).collect(),
        )
    };
    let ((ka, va), (kb, vb)) = (split(a), split(b));
    if ka != kb || va.len() != vb.len() {
        return false;
    }
    va.iter().zip(&vb).all(|(x, y)| {
        if x == y {
            return true;
        }
        let num = |s: &str| -> Option<(Option<f64>, f64)> {
            match s.split_once(':') {
                Some((t, v)) => Some((Some(t.parse().ok()?), v.parse().ok()?)),
                None => Some((None, s.parse().ok()?)),
            }
        };
        match (num(x), num(y)) {
            (Some((ta, a)), Some((tb, b))) => ta == tb && close(a, b),
            _ => false,
        }
    })
}

#[test]
fn logql_corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/logql");
    let data = load_data(&std::fs::read_to_string(format!("{dir}/data.txt")).unwrap());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut total = 0;
    let mut failures = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        for c in load_cases(&std::fs::read_to_string(&f).unwrap(), &name) {
            assert!(!c.query.is_empty(), "{}: no query", c.name);
            assert!(!c.expect.is_empty(), "{}: no expected answer", c.name);
            total += 1;
            if let Err(e) = check(&c, &data) {
                failures.push(format!("--- {}\n{}\n{e}", c.name, c.query));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        total >= 150,
        "the corpus has {total} cases; the issue asks for at least 150"
    );
}
