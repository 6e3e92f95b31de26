//! Rule evaluation against real Prometheus 2.42 (issue 20): the same samples in both (the
//! PromQL differential test's data, moved to end ten minutes from now, plus square waves at
//! one-second resolution that make alerts go pending, fire and resolve), the same rule file
//! (`tests/rules/diff.rules.yml`: 35 recording and alerting rules with ranges, `for`,
//! `keep_firing_for`, templates in labels and annotations, a rule that reads the one before it,
//! rules that fail, group limits).
//!
//! Method: Prometheus (remote-write receiver on) is given the samples by remote write, then the
//! rule file by a reload, and evaluates the rules live (groups every 2 s). Backfilled blocks
//! cannot be used: Prometheus refuses head appends older than its newest block, and the data
//! must reach past the evaluation times.
//! Every group records `rules_tick`, so its samples tell the timestamps Prometheus evaluated
//! at; the test checks they sit on the slots Sightline computes for the group (the same
//! xxHash64 offset), then replays Sightline's groups at exactly those timestamps (nanosecond
//! slots, the first two rounds without `ALERTS` as after a start, `for` state restored after the
//! second) over a store holding the same samples. Compared: every recorded series and the
//! `ALERTS` and `ALERTS_FOR_STATE` series sample for sample, and `/api/v1/rules` and
//! `/api/v1/alerts` field for field apart from `evaluationTime` and `lastEvaluation` (wall-clock
//! times of evaluation), taken from Prometheus at a moment no group was evaluating.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::promdiff::{Dataset, close, generate_mixed, load_sightline, post};
use parking_lot::Mutex;
use serde_json::Value;
use sightline::base::params::Params;
use sightline::promql::{Engine, EngineConfig, QueryValue};
use sightline::rules::{EvalCtx, Group, SharedGroup};
use sightline::tsdb::{Tsdb, TsdbConfig, TsdbCounters};

const INTERVAL_NS: i64 = 2_000_000_000;
const ROUNDS: usize = 18;
const SELECTOR: &str = r#"{__name__=~"rules_tick|demo:.+|job:.+|job_code:.+|instance:.+|alerts:.+|ALERTS|ALERTS_FOR_STATE"}[20m]"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The mixed data set's last 40 minutes, moved to end ten minutes from now, plus
/// `demo_blink{phase}` square waves at one-second resolution.
fn dataset(now: i64) -> Dataset {
    let mut d = generate_mixed(7);
    let end = now + 10 * 60_000;
    let delta = end - d.end;
    let keep_from = end - 40 * 60_000;
    for (_, s) in &mut d.series {
        for p in s.iter_mut() {
            p.0 += delta;
        }
        s.retain(|p| p.0 >= keep_from);
    }
    d.series.retain(|(_, s)| !s.is_empty());
    d.start = keep_from;
    d.end = end;
    for (phase, period) in [("a", 8), ("b", 12), ("c", 6)] {
        let mut s = Vec::new();
        let mut t = (now - 12 * 60_000) / 1000 * 1000;
        while t <= end {
            let on = (t / 1000 / period) % 2 == 0;
            s.push((t, if on { 1.0 } else { 0.0 }));
            t += 1000;
        }
        d.series.push((
            vec![
                ("__name__".to_string(), "demo_blink".to_string()),
                ("phase".to_string(), phase.to_string()),
            ],
            s,
        ));
    }
    d
}

/// Remote write 1.0 messages (prometheus/prompb), for feeding Prometheus.
#[derive(Clone, PartialEq, prost::Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<PLabel>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<PSample>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct PLabel {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}
#[derive(Clone, PartialEq, prost::Message)]
struct PSample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

/// Pushes `d` to Prometheus's remote-write receiver in time order, ten minutes at a time.
fn remote_write(url: &str, d: &Dataset) {
    let client = reqwest::blocking::Client::new();
    let mut t = d.start;
    while t <= d.end {
        let w = t + 10 * 60_000;
        let req = WriteRequest {
            timeseries: d
                .series
                .iter()
                .map(|(l, s)| TimeSeries {
                    labels: l
                        .iter()
                        .map(|(n, v)| PLabel {
                            name: n.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                    samples: s
                        .iter()
                        .filter(|p| p.0 >= t && p.0 < w)
                        .map(|p| PSample {
                            value: p.1,
                            timestamp: p.0,
                        })
                        .collect(),
                })
                .filter(|ts| !ts.samples.is_empty())
                .collect(),
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&prost::Message::encode_to_vec(&req))
            .unwrap();
        let r = client
            .post(url)
            .header("content-encoding", "snappy")
            .header("content-type", "application/x-protobuf")
            .header("x-prometheus-remote-write-version", "0.1.0")
            .body(body)
            .send()
            .unwrap();
        assert!(
            r.status().is_success(),
            "remote write: {}",
            r.text().unwrap()
        );
        t = w;
    }
}

/// Prometheus 2.42 with an empty store, remote write and reloads enabled.
struct Prometheus {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start() -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, "global:\n  scrape_interval: 1h\n").unwrap();
        let port = common::free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args([
                "--web.enable-remote-write-receiver",
                "--web.enable-lifecycle",
                "--web.external-url=http://prom.test:9090",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus must be installed (apt-get install prometheus)");
        let p = Prometheus { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reqwest::blocking::get(format!("{}/-/ready", p.url()))
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Writes `prometheus.yml` and reloads it.
    fn reload(&self, config: &str) {
        std::fs::write(self.dir.path().join("prometheus.yml"), config).unwrap();
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/-/reload", self.url()))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "reload: {}", r.text().unwrap());
    }
}

fn get(url: &str) -> Value {
    reqwest::blocking::get(url).unwrap().json().unwrap()
}

/// Go's RFC 3339 time (ns) -> ns since the epoch.
fn parse_time_ns(s: &str) -> i64 {
    let (date, rest) = s.split_once('T').unwrap();
    let mut dp = date.split('-').map(|x| x.parse::<i64>().unwrap());
    let (y, m, d) = (dp.next().unwrap(), dp.next().unwrap(), dp.next().unwrap());
    let rest = rest.trim_end_matches('Z');
    let (hms, frac) = rest.split_once('.').unwrap_or((rest, "0"));
    let mut hp = hms.split(':').map(|x| x.parse::<i64>().unwrap());
    let (h, mi, se) = (hp.next().unwrap(), hp.next().unwrap(), hp.next().unwrap());
    let frac_ns: i64 = format!("{frac:0<9}")[..9].parse().unwrap();
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000_000) + frac_ns
}

/// Removes the wall-clock fields and orders what Prometheus leaves unordered.
fn normalise_rules(v: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for g in v["groups"].as_array().unwrap() {
        let mut g = g.clone();
        let o = g.as_object_mut().unwrap();
        o.remove("evaluationTime");
        o.remove("lastEvaluation");
        for r in o.get_mut("rules").unwrap().as_array_mut().unwrap() {
            let ro = r.as_object_mut().unwrap();
            ro.remove("evaluationTime");
            ro.remove("lastEvaluation");
            if let Some(Value::Array(alerts)) = ro.get_mut("alerts") {
                alerts.sort_by_key(|a| a["labels"].to_string());
            }
        }
        out.insert(g["name"].as_str().unwrap().to_string(), g);
    }
    out
}

fn sorted_alerts(v: &Value) -> Vec<Value> {
    let mut a = v["alerts"].as_array().unwrap().clone();
    a.sort_by_key(|x| x["labels"].to_string());
    a
}

#[test]
fn rules_match_prometheus_2_42() {
    let rule_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules/diff.rules.yml");
    let rule_path = rule_file.display().to_string();
    let now = now_ms();
    let data = dataset(now);
    let config = format!(
        "global:\n  scrape_interval: 1h\n  evaluation_interval: 2s\n  external_labels:\n    cluster: eu1\nrule_files:\n  - {rule_path}\n"
    );
    let prom = Prometheus::start();
    let pu = prom.url();
    remote_write(&format!("{pu}/api/v1/write"), &data);
    // The rules arrive by a reload: after the first load, Prometheus starts new alerting rules
    // as restored (ALERTS from the first evaluation) and restores no `for` state.
    prom.reload(&config);

    // Let every group evaluate ROUNDS times.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = post(
            &format!("{pu}/api/v1/query"),
            &[("query", "count_over_time(rules_tick[20m])".to_string())],
        );
        let counts: Vec<f64> = v["data"]["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        if counts.len() == 4 && counts.iter().all(|&c| c >= ROUNDS as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not evaluate: {v}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // A moment when no group evaluated between two reads of the rules.
    let (rules_p, alerts_p) = loop {
        let r1 = get(&format!("{pu}/api/v1/rules"));
        let a = get(&format!("{pu}/api/v1/alerts"));
        let r2 = get(&format!("{pu}/api/v1/rules"));
        let times = |r: &Value| -> Vec<String> {
            r["data"]["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["lastEvaluation"].to_string())
                .collect()
        };
        if times(&r1) == times(&r2) {
            break (r1["data"].clone(), a["data"].clone());
        }
        std::thread::sleep(Duration::from_millis(150));
    };
    let data_p = post(
        &format!("{pu}/api/v1/query"),
        &[
            ("query", SELECTOR.to_string()),
            ("time", format!("{:.3}", now_ms() as f64 / 1000.0)),
        ],
    );
    assert_eq!(data_p["status"], "success", "{data_p}");
    drop(prom);

    // Sightline: the same samples, the same groups, replayed at Prometheus's timestamps.
    let dir = tempfile::tempdir().unwrap();
    load_sightline(&data, dir.path());
    let (db, threads) = Tsdb::open(
        &dir.path().join("tsdb"),
        TsdbConfig::default(),
        Arc::new(TsdbCounters::default()),
    )
    .unwrap();
    let engine = Engine::new(EngineConfig::default());
    let specs = sightline::rules::file::load_file(&rule_file)
        .unwrap()
        .groups;
    let mut group_of: BTreeMap<String, String> = BTreeMap::new();
    for s in &specs {
        for r in &s.rules {
            if r.name != "rules_tick" {
                group_of.insert(r.name.clone(), s.name.clone());
            }
        }
    }
    let prom_series = data_p["data"]["result"].as_array().unwrap().clone();
    let ext = BTreeMap::from([("cluster".to_string(), "eu1".to_string())]);
    let mut shared: Vec<SharedGroup> = Vec::new();
    let mut slots: BTreeMap<String, i64> = BTreeMap::new();
    for spec in specs {
        let mut g = Group::new(spec, 2000, true);
        assert_eq!(g.interval_ns, INTERVAL_NS);
        let pg = rules_p["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == g.name.as_str())
            .unwrap_or_else(|| panic!("prometheus has no group {}", g.name));
        let last_wall = parse_time_ns(pg["lastEvaluation"].as_str().unwrap());
        let slot = g.eval_timestamp(last_wall);
        slots.insert(g.name.clone(), slot);
        let offset = g.offset_ns();
        let ticks: Vec<i64> = prom_series
            .iter()
            .find(|s| {
                s["metric"]["__name__"] == "rules_tick" && s["metric"]["group"] == g.name.as_str()
            })
            .unwrap()["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap() * 1000.0).round() as i64)
            .collect();
        let mut times = Vec::new();
        for t in ticks {
            // Prometheus's slot for this sample: the same offset as ours, to the millisecond.
            let k = (t * 1_000_000 - offset + INTERVAL_NS - 1).div_euclid(INTERVAL_NS);
            let ts = offset + k * INTERVAL_NS;
            assert_eq!(
                ts.div_euclid(1_000_000),
                t,
                "group {}: prometheus evaluated at {t} ms, off the slot Sightline computes (offset {offset} ns)",
                g.name
            );
            if ts <= slot {
                times.push(ts);
            }
        }
        assert!(
            times.len() >= ROUNDS,
            "group {}: {} rounds",
            g.name,
            times.len()
        );
        assert_eq!(*times.last().unwrap(), slot, "group {}", g.name);
        for &ts in &times {
            let out = g.eval(
                ts,
                &EvalCtx {
                    engine: &engine,
                    store: &db,
                    external_labels: &ext,
                    external_url: "http://prom.test:9090",
                    timeout: None,
                    resend_delay: 60_000_000_000,
                },
            );
            db.append_blocking(out.batch).unwrap();
        }
        shared.push(Arc::new(Mutex::new(g)));
    }

    // 1. Every recorded, ALERTS and ALERTS_FOR_STATE series, sample for sample.
    let group_of_series = |m: &Value| -> String {
        let name = m["__name__"].as_str().unwrap();
        match name {
            "rules_tick" => m["group"].as_str().unwrap().to_string(),
            "ALERTS" | "ALERTS_FOR_STATE" => group_of[m["alertname"].as_str().unwrap()].clone(),
            n => group_of[n].clone(),
        }
    };
    let mut want: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for s in &prom_series {
        let slot = slots[&group_of_series(&s["metric"])];
        let pts: Vec<(i64, String)> = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .filter(|(t, _)| *t * 1_000_000 <= slot)
            .collect();
        if !pts.is_empty() {
            want.insert(s["metric"].to_string(), pts);
        }
    }
    let expr = sightline::promql::parse(SELECTOR).unwrap();
    let QueryValue::Matrix(got_m) = engine.instant(&db, &expr, now_ms(), None).unwrap() else {
        panic!("not a matrix")
    };
    let mut got: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for s in got_m {
        let m: serde_json::Map<String, Value> = s
            .labels
            .iter()
            .map(|l| (l.name.clone(), Value::String(l.value.clone())))
            .collect();
        let pts = s
            .samples
            .iter()
            .filter(|(_, v)| !sightline::tsdb::is_stale(*v))
            .map(|(t, v)| {
                (
                    *t,
                    sightline::base::gofmt::float(*v, sightline::base::gofmt::FloatStyle::Json),
                )
            })
            .collect();
        got.insert(Value::Object(m).to_string(), pts);
    }
    let mut failures = Vec::new();
    for k in want
        .keys()
        .chain(got.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (want.get(k), got.get(k)) {
            (Some(w), Some(g)) => {
                let same = w.len() == g.len()
                    && w.iter().zip(g).all(|(a, b)| {
                        a.0 == b.0
                            && close(
                                a.1.parse().unwrap_or(f64::NAN),
                                b.1.parse().unwrap_or(f64::NAN),
                            )
                    });
                if !same {
                    failures.push(format!("{k}:\n  prometheus {w:?}\n  sightline  {g:?}"));
                }
            }
            (w, _) => failures.push(format!(
                "{k}: only in {}",
                if w.is_some() {
                    "prometheus"
                } else {
                    "sightline"
                }
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} series differ:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The data must exercise what the test claims: alerts in both states, series that come and
    // go, failing rules.
    let alerts_series: Vec<&String> = want.keys().filter(|k| k.contains("\"ALERTS\"")).collect();
    assert!(
        alerts_series.iter().any(|k| k.contains("\"pending\"")),
        "no pending alert"
    );
    assert!(
        alerts_series.iter().any(|k| k.contains("\"firing\"")),
        "no firing alert"
    );
    assert!(want.len() >= 40, "only {} series compared", want.len());
    let blink_on = want
        .iter()
        .find(|(k, _)| k.contains("demo:blink_on\""))
        .map(|(_, v)| v.len())
        .unwrap_or(0);
    assert!(
        blink_on > 0 && blink_on < ROUNDS,
        "demo:blink_on should come and go: {blink_on}"
    );

    // 2. /api/v1/rules and /api/v1/alerts, apart from evaluation times.
    let rules_s = sightline::api::rules::rules_json(&shared, &Params::parse(None)).unwrap();
    let (np, ns) = (normalise_rules(&rules_p), normalise_rules(&rules_s));
    assert_eq!(np.keys().collect::<Vec<_>>(), ns.keys().collect::<Vec<_>>());
    for (name, pg) in &np {
        let sg = &ns[name];
        for (key, pv) in pg.as_object().unwrap() {
            if key == "rules" {
                let (pr, sr) = (pv.as_array().unwrap(), sg["rules"].as_array().unwrap());
                assert_eq!(pr.len(), sr.len(), "group {name}: rule count");
                for (a, b) in pr.iter().zip(sr) {
                    assert_eq!(a, b, "group {name}, rule {}", a["name"]);
                }
            } else {
                assert_eq!(pv, &sg[key], "group {name}: {key}");
            }
        }
        assert_eq!(
            pg.as_object().unwrap().keys().collect::<Vec<_>>(),
            sg.as_object().unwrap().keys().collect::<Vec<_>>(),
            "group {name}: fields"
        );
    }
    let errs = rules_p["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter(|r| r["health"] == "err")
        .count();
    assert!(errs >= 4, "only {errs} failing rules");
    let alerts_s = sightline::api::rules::alerts_json(&shared);
    assert_eq!(
        sorted_alerts(&alerts_p),
        sorted_alerts(&alerts_s),
        "/api/v1/alerts"
    );
    assert!(sorted_alerts(&alerts_p).len() >= 3);
    db.close();
    threads.join();
}
