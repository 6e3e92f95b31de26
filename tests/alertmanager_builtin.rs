//! The built-in Alertmanager against Alertmanager 0.25 (Debian's `prometheus-alertmanager`):
//!
//! - `amtool check-config` and `sightline check alertmanager-config` agree on every file in
//!   `tests/alertmanager_configs/`.
//! - The same `alertmanager.yml` (nested routes with `continue`, `group_by` on two labels and
//!   `...`, an inhibition, a silence, a mute time interval, five webhook receivers, one of them
//!   failing three times before it succeeds) and the same alerts posted through
//!   `POST /api/v2/alerts` to both: every webhook sink gets the same notifications from both
//!   (group key, status, alerts with their labels and statuses, in order), each within one
//!   `group_interval` of the other's; `amtool alert query` and `amtool silence query` answer
//!   the same. The scenario is ten minutes of Alertmanager's defaults compressed 1:10 and cut to
//!   the part where things happen: `group_wait` 2 s, `group_interval` 6 s, `repeat_interval`
//!   21 s, 45 s in all; alerts are posted mid-interval so neither side races a flush.
//! - Restart: `kill -9` in the middle of a scenario; after the restart no group is notified
//!   again before its `repeat_interval`, the silence still holds, and an alert posted just
//!   before the kill is notified.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// ---------------------------------------------------------------- a webhook sink

#[derive(Clone, Debug)]
struct Hit {
    path: String,
    /// The `Authorization` header, if any.
    auth: String,
    from_sightline: bool,
    at: Instant,
    body: Value,
}

/// Records every POST; `/flaky` answers 500 to the first three posts from each sender.
struct Sink {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

fn read_request(s: &mut std::net::TcpStream) -> Option<(String, String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut len = 0;
    let mut agent = String::new();
    let mut auth = String::new();
    for l in head.lines() {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("authorization:") {
            auth = l[14..].trim().to_string();
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("user-agent:") {
            agent = l[11..].trim().to_string();
        }
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some((path, agent, auth, body))
}

impl Sink {
    fn start() -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h = hits.clone();
        std::thread::spawn(move || {
            let mut flaky: BTreeMap<bool, u32> = BTreeMap::new();
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let Some((path, agent, auth, body)) = read_request(&mut s) else {
                    continue;
                };
                let from_sightline = agent.starts_with("Sightline");
                let mut status = "200 OK";
                if path == "/flaky" {
                    let n = flaky.entry(from_sightline).or_default();
                    *n += 1;
                    if *n <= 3 {
                        status = "500 Internal Server Error";
                    }
                }
                if status.starts_with("200") {
                    h.lock().unwrap().push(Hit {
                        path,
                        auth,
                        from_sightline,
                        at: Instant::now(),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Sink { port, hits }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------- the two Alertmanagers

struct RealAm {
    child: std::process::Child,
    port: u16,
}

impl Drop for RealAm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::blocking::get(url).is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "{url} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_real(dir: &Path, cfg: &Path) -> RealAm {
    let port = common::free_port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("alertmanager must be installed (apt-get install prometheus-alertmanager)");
    let am = RealAm { child, port };
    wait_ready(&format!("http://127.0.0.1:{port}/-/ready"));
    am
}

fn start_sightline(dir: &Path, cfg: &Path) -> common::Child {
    let c = common::Child::spawn_with(
        dir,
        &[
            ("SIGHTLINE_NOTIFY_CONFIG_FILE", cfg.to_str().unwrap()),
            ("SIGHTLINE_SPANMETRICS_ENABLED", "false"),
        ],
    );
    wait_ready(&c.api("/api/v2/status"));
    c
}

fn post(url: &str, body: &Value) -> u16 {
    reqwest::blocking::Client::new()
        .post(url)
        .json(body)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn rfc3339(t: std::time::SystemTime) -> String {
    let ns = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    sightline::base::clock::go_time_text(ns, 'T', "Z")
}

fn alert(labels: &[(&str, &str)], resolved: bool) -> Value {
    let mut a = json!({
        "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "annotations": {"summary": format!("{} on {}", labels[0].1, labels.iter().find(|l| l.0 == "instance").map(|l| l.1).unwrap_or("-"))},
        "generatorURL": "http://prometheus.example:9090/graph",
        // Starting now: a group's first notification waits group_wait for the rest of the batch
        // (an alert that started long ago flushes its group at once, and Alertmanager's
        // goroutines then race the rest of the batch).
        "startsAt": rfc3339(std::time::SystemTime::now()),
    });
    if resolved {
        a["endsAt"] = rfc3339(std::time::SystemTime::now()).into();
    }
    a
}

const CONFIG: &str = r#"
global:
  resolve_timeout: 5m
route:
  receiver: default
  group_by: [alertname, cluster]
  group_wait: 2s
  group_interval: 6s
  repeat_interval: 21s
  routes:
    - matchers: [team="db"]
      receiver: db
      continue: true
      routes:
        - matchers: [severity="critical"]
          receiver: db-critical
          group_by: ['...']
    - matchers: ['team=~"db|web"']
      receiver: web
    - matchers: [team="muted"]
      receiver: web
      mute_time_intervals: [always]
    - matchers: [team="flaky"]
      receiver: flaky
receivers:
  - name: default
    webhook_configs: [{url: "http://127.0.0.1:SINK/default"}]
  - name: db
    webhook_configs: [{url: "http://127.0.0.1:SINK/db", send_resolved: true}]
  - name: db-critical
    webhook_configs: [{url: "http://127.0.0.1:SINK/dbcrit", max_alerts: 1}]
  - name: web
    webhook_configs: [{url: "http://127.0.0.1:SINK/web", send_resolved: false}]
  - name: flaky
    webhook_configs: [{url: "http://127.0.0.1:SINK/flaky"}]
time_intervals:
  - name: always
    time_intervals: [{years: ['2000:2999']}]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname, instance]
"#;

/// A notification reduced to what both must agree on.
fn essence(h: &Hit) -> Value {
    let b = &h.body;
    let alerts: Vec<Value> = b["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| json!({"status": x["status"], "labels": x["labels"], "fingerprint": x["fingerprint"], "annotations": x["annotations"], "startsAt": x["startsAt"]}))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "groupKey": b["groupKey"],
        "status": b["status"],
        "receiver": b["receiver"],
        "groupLabels": b["groupLabels"],
        "commonLabels": b["commonLabels"],
        "commonAnnotations": b["commonAnnotations"],
        "truncatedAlerts": b["truncatedAlerts"],
        "version": b["version"],
        "alerts": alerts,
    })
}

#[test]
fn check_config_agrees_with_amtool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/alertmanager_configs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "corpus too small");
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let am = Command::new("amtool")
            .arg("check-config")
            .arg(f)
            .output()
            .expect("amtool comes with prometheus-alertmanager");
        let sl = Command::new(env!("CARGO_BIN_EXE_sightline"))
            .args(["check", "alertmanager-config"])
            .arg(f)
            .output()
            .unwrap();
        let want_ok = name.starts_with("good_");
        assert_eq!(am.status.success(), want_ok, "amtool on {name}");
        assert_eq!(
            sl.status.success(),
            am.status.success(),
            "{name}: amtool {:?}, sightline {:?}: {}",
            am.status.code(),
            sl.status.code(),
            String::from_utf8_lossy(&sl.stdout)
        );
    }
}

#[test]
fn notifies_as_alertmanager_0_25_does() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("alertmanager.yml");
    std::fs::write(&cfg, CONFIG.replace("SINK", &sink.port.to_string())).unwrap();
    let real = start_real(dir.path(), &cfg);
    let sl = start_sightline(&dir.path().join("sl"), &cfg);
    let urls = [
        format!("http://127.0.0.1:{}/api/v2", real.port),
        sl.api("/alertmanager/api/v2"),
    ];
    let to_both = |path: &str, body: &Value| {
        for u in &urls {
            assert_eq!(post(&format!("{u}{path}"), body), 200, "{u}{path}");
        }
    };
    // A silence for instance i4, on both.
    let far = rfc3339(std::time::SystemTime::now() + Duration::from_secs(3600));
    let now = rfc3339(std::time::SystemTime::now());
    to_both(
        "/silences",
        &json!({"matchers": [{"name": "instance", "value": "i4", "isRegex": false}], "startsAt": now, "endsAt": far, "createdBy": "test", "comment": "maintenance"}),
    );
    let a1 = [
        ("alertname", "HighLatency"),
        ("cluster", "c1"),
        ("team", "db"),
        ("severity", "warning"),
        ("instance", "i1"),
    ];
    let a2 = [
        ("alertname", "HighLatency"),
        ("cluster", "c1"),
        ("team", "db"),
        ("severity", "warning"),
        ("instance", "i2"),
    ];
    let c1 = [
        ("alertname", "HighLatency"),
        ("cluster", "c1"),
        ("team", "db"),
        ("severity", "critical"),
        ("instance", "i1"),
    ];
    let c2 = [
        ("alertname", "HighLatency"),
        ("cluster", "c1"),
        ("team", "db"),
        ("severity", "critical"),
        ("instance", "i9"),
    ];
    let w1 = [
        ("alertname", "Errors"),
        ("cluster", "c2"),
        ("team", "web"),
        ("severity", "warning"),
        ("instance", "i3"),
    ];
    let s1 = [
        ("alertname", "Errors"),
        ("cluster", "c2"),
        ("team", "web"),
        ("severity", "warning"),
        ("instance", "i4"),
    ];
    let m1 = [
        ("alertname", "Muted"),
        ("team", "muted"),
        ("instance", "i5"),
    ];
    let d1 = [("alertname", "Other"), ("instance", "i6")];
    let f1 = [
        ("alertname", "Flaky"),
        ("team", "flaky"),
        ("instance", "i7"),
    ];
    let t0 = Instant::now();
    let at = |s: f64| {
        let target = t0 + Duration::from_secs_f64(s);
        if let Some(d) = target.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    };
    // Groups start their clocks here; their flushes fall at 2, 8, 14, ... s.
    to_both(
        "/alerts",
        &json!([
            alert(&a1, false),
            alert(&a2, false),
            alert(&w1, false),
            alert(&s1, false),
            alert(&m1, false),
            alert(&d1, false),
            alert(&f1, false)
        ]),
    );
    at(5.0);
    // Critical alerts: c1 inhibits a1; db-critical groups by everything (max_alerts 1).
    to_both("/alerts", &json!([alert(&c1, false), alert(&c2, false)]));
    at(11.0);
    to_both("/alerts", &json!([alert(&a2, true)]));
    at(17.0);
    to_both("/alerts", &json!([alert(&w1, true)]));
    at(20.0);
    // amtool's view, in the quiet middle of an interval.
    let queries: Vec<(Value, Value)> = [real.port, sl.http]
        .iter()
        .map(|&p| {
            let base = if p == sl.http {
                // amtool appends /api/v2 to the URL it is given.
                format!("http://127.0.0.1:{p}/alertmanager")
            } else {
                format!("http://127.0.0.1:{p}")
            };
            let run = |args: &[&str]| {
                let out = Command::new("amtool")
                    .args(["-o", "json"])
                    .args(args)
                    .arg(format!("--alertmanager.url={base}"))
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                serde_json::from_slice::<Value>(&out.stdout).unwrap()
            };
            (run(&["alert", "query"]), run(&["silence", "query"]))
        })
        .collect();
    let alert_view = |v: &Value| -> Vec<Value> {
        let mut l: Vec<Value> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|a| json!({"labels": a["labels"], "annotations": a["annotations"], "fingerprint": a["fingerprint"], "status": a["status"]["state"], "receivers": a["receivers"]}))
            .collect();
        l.sort_by_key(|x| x["fingerprint"].to_string());
        l
    };
    let silence_view = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| json!({"matchers": s["matchers"], "comment": s["comment"], "createdBy": s["createdBy"], "state": s["status"]["state"]}))
            .collect()
    };
    assert_eq!(
        alert_view(&queries[1].0),
        alert_view(&queries[0].0),
        "amtool alert query"
    );
    assert!(!alert_view(&queries[0].0).is_empty());
    assert_eq!(
        silence_view(&queries[1].1),
        silence_view(&queries[0].1),
        "amtool silence query"
    );
    // Let the repeat interval pass once.
    at(45.0);
    let hits = sink.hits();
    let mut paths: Vec<String> = hits.iter().map(|h| h.path.clone()).collect();
    paths.sort();
    paths.dedup();
    assert!(paths.len() >= 5, "sinks reached: {paths:?}");
    // Per sink and aggregation group (groups flushing at the same instant may reach a sink in
    // either order), the same notifications in the same order.
    let mut keys: Vec<(String, String)> = hits
        .iter()
        .map(|h| (h.path.clone(), h.body["groupKey"].to_string()))
        .collect();
    keys.sort();
    keys.dedup();
    for (p, k) in &keys {
        let side = |s: bool| -> Vec<&Hit> {
            hits.iter()
                .filter(|h| {
                    &h.path == p && &h.body["groupKey"].to_string() == k && h.from_sightline == s
                })
                .collect()
        };
        let (am, sl) = (side(false), side(true));
        let ea: Vec<Value> = am.iter().map(|h| essence(h)).collect();
        let es: Vec<Value> = sl.iter().map(|h| essence(h)).collect();
        assert_eq!(
            es, ea,
            "{p} {k}: sightline's notifications (left) differ from alertmanager's (right)"
        );
        for (x, y) in am.iter().zip(&sl) {
            let gap = if x.at > y.at {
                x.at - y.at
            } else {
                y.at - x.at
            };
            // `/flaky` is reached only after three refused posts, each retried after a randomised
            // exponential backoff on both sides, so its delivery may drift a little further.
            let bound = if p == "/flaky" { 9 } else { 6 };
            assert!(gap <= Duration::from_secs(bound), "{p} {k}: {gap:?} apart");
        }
    }
    // The scenario produced what it was built to show.
    let count = |p: &str| {
        hits.iter()
            .filter(|h| h.path == p && h.from_sightline)
            .count()
    };
    // db: a1 and a2 firing, then a2 resolved (c1 and c2 route to db-critical, the deeper match;
    // a1 is inhibited by c1, so the db group has nothing new until a2 resolves).
    assert_eq!(count("/db"), 2, "db notifications");
    assert!(count("/web") >= 3, "web notifications: {}", count("/web"));
    assert!(count("/dbcrit") >= 2);
    assert_eq!(
        count("/flaky"),
        hits.iter()
            .filter(|h| h.path == "/flaky" && !h.from_sightline)
            .count()
    );
    assert!(
        count("/flaky") >= 1,
        "the flaky webhook got its notification after three failures"
    );
    let all: Vec<&Hit> = hits.iter().filter(|h| h.from_sightline).collect();
    let labels_seen = |inst: &str| {
        all.iter().any(|h| {
            h.body["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["labels"]["instance"] == inst))
        })
    };
    assert!(!labels_seen("i4"), "silenced alert notified");
    assert!(!labels_seen("i5"), "alert in a mute time interval notified");
}

#[test]
fn restart_keeps_log_silences_and_alerts() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("alertmanager.yml");
    std::fs::write(&cfg, CONFIG.replace("SINK", &sink.port.to_string())).unwrap();
    let data = dir.path().join("sl");
    let ports = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let spawn = || {
        let c = common::Child::spawn_at(
            &data,
            &[
                ("SIGHTLINE_NOTIFY_CONFIG_FILE", cfg.to_str().unwrap()),
                ("SIGHTLINE_SPANMETRICS_ENABLED", "false"),
            ],
            ports,
        );
        wait_ready(&c.api("/api/v2/status"));
        c
    };
    let sl = spawn();
    let api = sl.api("/api/v2");
    let far = rfc3339(std::time::SystemTime::now() + Duration::from_secs(3600));
    let now = rfc3339(std::time::SystemTime::now());
    assert_eq!(
        post(
            &format!("{api}/silences"),
            &json!({"matchers": [{"name": "instance", "value": "i4", "isRegex": false}], "startsAt": now, "endsAt": far, "createdBy": "t", "comment": "c"}),
        ),
        200
    );
    let d1 = [("alertname", "Other"), ("instance", "i6")];
    let s1 = [
        ("alertname", "Errors"),
        ("cluster", "c2"),
        ("team", "web"),
        ("instance", "i4"),
    ];
    assert_eq!(
        post(
            &format!("{api}/alerts"),
            &json!([alert(&d1, false), alert(&s1, false)])
        ),
        200
    );
    // The default group is notified once after group_wait.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sink.hits().iter().any(|h| h.path == "/default") {
        assert!(Instant::now() < deadline, "first notification never came");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new alert, acknowledged, then the process dies before its group_wait ends.
    let w1 = [("alertname", "Fresh"), ("instance", "i8")];
    // Starting now, its group waits group_wait (2 s) before the first notification.
    let mut fresh = alert(&w1, false);
    fresh["startsAt"] = rfc3339(std::time::SystemTime::now()).into();
    assert_eq!(post(&format!("{api}/alerts"), &json!([fresh])), 200);
    sl.kill9();
    assert!(
        !sink
            .hits()
            .iter()
            .any(|h| h.body["groupLabels"]["alertname"] == "Fresh"),
        "notified before the kill: the test needs the kill first"
    );
    let sl = spawn();
    // Within the repeat interval (21 s), nothing is notified twice; the new alert is notified.
    std::thread::sleep(Duration::from_secs(12));
    let hits = sink.hits();
    let other: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.body["groupLabels"]["alertname"] == "Other")
        .collect();
    assert_eq!(
        other.len(),
        1,
        "the Other group was notified again after the restart"
    );
    assert!(
        hits.iter()
            .any(|h| h.body["groupLabels"]["alertname"] == "Fresh"),
        "an alert acknowledged before the kill was never notified"
    );
    assert!(
        !hits.iter().any(|h| h.body["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["labels"]["instance"] == "i4"))),
        "the silence did not hold"
    );
    let sils: Value = reqwest::blocking::get(sl.api("/api/v2/silences"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(sils[0]["status"]["state"], "active");
    drop(sl);
}

const RECEIVERS: &str = r#"
global:
  smtp_smarthost: '127.0.0.1:SMTP'
  smtp_from: 'alerts@example.org'
  smtp_require_tls: false
  slack_api_url: 'http://127.0.0.1:SINK/slack'
route:
  receiver: slack
  group_by: [alertname]
  group_wait: 1s
  group_interval: 60s
  routes:
    - matchers: [kind="email"]
      receiver: email
    - matchers: [kind="pagerduty"]
      receiver: pagerduty
    - matchers: [kind="discord"]
      receiver: discord
    - matchers: [kind="basic"]
      receiver: basic
    - matchers: [kind="bearer"]
      receiver: bearer
receivers:
  - name: basic
    webhook_configs: [{url: 'http://127.0.0.1:SINK/basic', http_config: {basic_auth: {username: alice, password: s3cret}}}]
  - name: bearer
    webhook_configs: [{url: 'http://127.0.0.1:SINK/bearer', http_config: {authorization: {credentials: tok-123}}}]
  - name: slack
    slack_configs: [{channel: '#alerts', send_resolved: true}]
  - name: email
    email_configs: [{to: 'oncall@example.org', auth_username: u, auth_password: p}]
  - name: pagerduty
    pagerduty_configs: [{routing_key: rk, url: 'http://127.0.0.1:SINK/pagerduty'}]
  - name: discord
    discord_configs: [{webhook_url: 'http://127.0.0.1:SINK/discord'}]
"#;

struct SmtpSink {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_sink(dir: &Path) -> (SmtpSink, u16) {
    let port = common::free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/smtp_sink.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 with aiosmtpd (tests/python/requirements.txt)");
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "smtp sink did not start");
    (
        SmtpSink {
            child,
            dir: dir.to_path_buf(),
        },
        port,
    )
}

fn mails(s: &SmtpSink) -> Vec<String> {
    let mut out: Vec<(u32, String)> = std::fs::read_dir(&s.dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .filter_map(|e| {
                    let n = e.path().file_stem()?.to_str()?.parse().ok()?;
                    Some((n, std::fs::read_to_string(e.path()).ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.into_iter().map(|x| x.1).collect()
}

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    mail.lines()
        .take_while(|l| !l.is_empty())
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim())
}

#[test]
fn receivers_send_what_alertmanager_sends() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let (smtp_am, port_am) = smtp_sink(&dir.path().join("mail-am"));
    let (smtp_sl, port_sl) = smtp_sink(&dir.path().join("mail-sl"));
    let write = |name: &str, smtp: u16| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            RECEIVERS
                .replace("SINK", &sink.port.to_string())
                .replace("SMTP", &smtp.to_string()),
        )
        .unwrap();
        p
    };
    let (cfg_am, cfg_sl) = (write("am.yml", port_am), write("sl.yml", port_sl));
    // Both link to the same external URL, so links in messages compare equal.
    let port = common::free_port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", cfg_am.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("am-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.external-url=http://alertmanager.example")
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let real = RealAm { child, port };
    wait_ready(&format!("http://127.0.0.1:{port}/-/ready"));
    let sl = common::Child::spawn_with(
        &dir.path().join("sl"),
        &[
            ("SIGHTLINE_NOTIFY_CONFIG_FILE", cfg_sl.to_str().unwrap()),
            (
                "SIGHTLINE_NOTIFY_EXTERNAL_URL",
                "http://alertmanager.example",
            ),
            ("SIGHTLINE_SPANMETRICS_ENABLED", "false"),
        ],
    );
    wait_ready(&sl.api("/api/v2/status"));
    let alerts = json!([
        alert(
            &[
                ("alertname", "DiskFull"),
                ("kind", "slack"),
                ("instance", "a"),
                ("job", "node")
            ],
            false
        ),
        alert(
            &[
                ("alertname", "DiskFull"),
                ("kind", "slack"),
                ("instance", "b"),
                ("job", "node")
            ],
            false
        ),
        alert(
            &[("alertname", "Mail"), ("kind", "email"), ("instance", "c")],
            false
        ),
        alert(
            &[
                ("alertname", "Page"),
                ("kind", "pagerduty"),
                ("instance", "d"),
                ("severity", "critical")
            ],
            false
        ),
        alert(
            &[
                ("alertname", "Chat"),
                ("kind", "discord"),
                ("instance", "e")
            ],
            false
        ),
        alert(
            &[("alertname", "Basic"), ("kind", "basic"), ("instance", "f")],
            false
        ),
        alert(
            &[
                ("alertname", "Bearer"),
                ("kind", "bearer"),
                ("instance", "g")
            ],
            false
        ),
    ]);
    for u in [
        format!("http://127.0.0.1:{}/api/v2/alerts", real.port),
        sl.api("/api/v2/alerts"),
    ] {
        assert_eq!(post(&u, &alerts), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = sink.hits();
        let n = |p: &str, s: bool| {
            h.iter()
                .filter(|x| x.path == p && x.from_sightline == s)
                .count()
        };
        let done = ["/slack", "/pagerduty", "/discord", "/basic", "/bearer"]
            .iter()
            .all(|p| n(p, true) >= 1 && n(p, false) >= 1)
            && !mails(&smtp_am).is_empty()
            && !mails(&smtp_sl).is_empty();
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every receiver was notified by both: {:?}, mails am {} sl {}",
            h.iter()
                .map(|x| (&x.path, x.from_sightline))
                .collect::<Vec<_>>(),
            mails(&smtp_am).len(),
            mails(&smtp_sl).len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let h = sink.hits();
    for p in ["/slack", "/pagerduty", "/discord"] {
        let body = |s: bool| {
            h.iter()
                .find(|x| x.path == p && x.from_sightline == s)
                .unwrap()
                .body
                .clone()
        };
        assert_eq!(
            body(true),
            body(false),
            "{p}: sightline's message (left) differs from alertmanager's (right)"
        );
    }
    // http_config: the same Authorization header from both.
    for (p, want) in [
        ("/basic", "Basic YWxpY2U6czNjcmV0"),
        ("/bearer", "Bearer tok-123"),
    ] {
        let auth = |s: bool| {
            h.iter()
                .find(|x| x.path == p && x.from_sightline == s)
                .unwrap()
                .auth
                .clone()
        };
        assert_eq!(auth(false), want, "alertmanager's {p}");
        assert_eq!(auth(true), want, "sightline's {p}");
    }
    let (ma, ms) = (mails(&smtp_am), mails(&smtp_sl));
    let (ma, ms) = (&ma[0], &ms[0]);
    for name in ["Subject", "To", "From", "X-Envelope-From", "X-Envelope-To"] {
        assert_eq!(header(ms, name), header(ma, name), "email header {name}");
    }
    assert_eq!(header(ms, "Subject"), Some("[FIRING:1] Mail (c email)"));
    assert!(ms.contains("text/html"), "the email body is HTML: {ms}");
    drop(real);
}

fn rss_mb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// 100,000 alerts in one POST are taken with bounded memory while rule evaluation goes on.
/// Alertmanager 0.25 on the same load, same machine: 244 MB after the POST, 635 MB after
/// listing them all (see the issue 21 note for Sightline's figures).
#[test]
fn a_hundred_thousand_alerts_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("am.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 5s\nreceivers:\n  - name: hook\n    webhook_configs: [{url: 'http://127.0.0.1:9/hook', max_alerts: 100}]\n",
    )
    .unwrap();
    let rules = dir.path().join("r.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: tick\n    interval: 1s\n    rules:\n      - record: tick\n        expr: vector(1)\n",
    )
    .unwrap();
    let sl = common::Child::spawn_with(
        &dir.path().join("sl"),
        &[
            ("SIGHTLINE_NOTIFY_CONFIG_FILE", cfg.to_str().unwrap()),
            ("SIGHTLINE_RULES_FILES", rules.to_str().unwrap()),
            ("SIGHTLINE_SPANMETRICS_ENABLED", "false"),
        ],
    );
    wait_ready(&sl.api("/api/v2/status"));
    let pid = sl.child.id();
    let alerts: Vec<Value> = (0..100_000)
        .map(|i| {
            json!({"labels": {"alertname": format!("A{}", i % 50), "instance": format!("host-{i}"), "job": "node"},
                   "annotations": {"summary": format!("thing {i} is broken")}})
        })
        .collect();
    let body = serde_json::to_vec(&alerts).unwrap();
    let last_eval = || -> String {
        let v: Value = reqwest::blocking::get(sl.api("/api/v1/rules"))
            .unwrap()
            .json()
            .unwrap();
        v["data"]["groups"][0]["lastEvaluation"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let before = last_eval();
    let started = Instant::now();
    let r = reqwest::blocking::Client::new()
        .post(sl.api("/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(120))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let took = started.elapsed();
    // Dispatch is under way (50 groups of 2,000 alerts, a receiver that refuses): the process
    // answers and the rules keep their 1 s rhythm.
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    assert!(
        reqwest::blocking::get(sl.api("/healthz"))
            .unwrap()
            .status()
            .is_success()
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "health check took {:?}",
        t.elapsed()
    );
    let after = last_eval();
    assert_ne!(before, after, "rule evaluation stalled");
    let listed: Value = reqwest::blocking::Client::new()
        .get(sl.api("/api/v2/alerts"))
        .timeout(Duration::from_secs(120))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 100_000);
    let peak = rss_mb(pid, "VmHWM:");
    eprintln!(
        "100,000 alerts: POST {:?}, resident {} MB, peak {} MB",
        took,
        rss_mb(pid, "VmRSS:"),
        peak
    );
    assert!(peak < 1500, "peak resident memory {peak} MB");
}

/// The Alerts page with the built-in Alertmanager: notification groups with a link that opens
/// the silence form for an alert, a preview of what a silence would match, saving it, the
/// silence listed and expired, and the receiver's last delivery.
#[test]
fn alerts_page_shows_groups_silences_and_deliveries() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("alertmanager.yml");
    std::fs::write(&cfg, CONFIG.replace("SINK", &sink.port.to_string())).unwrap();
    let sl = start_sightline(&dir.path().join("sl"), &cfg);
    let d1 = [("alertname", "Other"), ("instance", "i6")];
    assert_eq!(
        post(&sl.api("/api/v2/alerts"), &json!([alert(&d1, false)])),
        200
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sink.hits().iter().any(|h| h.path == "/default") {
        assert!(Instant::now() < deadline, "no notification");
        std::thread::sleep(Duration::from_millis(100));
    }
    let page = |q: &str| {
        reqwest::blocking::get(sl.api(&format!("/ui/alerts{q}")))
            .unwrap()
            .text()
            .unwrap()
    };
    let html = page("");
    assert!(html.contains("Notification groups"), "{html}");
    let groups = &html[html.find("Notification groups").unwrap()..];
    assert!(
        groups.contains("Other") && groups.contains("i6"),
        "the alert is not in its group"
    );
    assert!(html.contains("/ui/alerts?silence="), "no silence link");
    assert!(
        html.contains("default/webhook/0"),
        "receiver delivery missing"
    );
    // Preview: what the matchers would silence now.
    let html = page("?silence=%7Binstance%3D%22i6%22%7D");
    assert!(html.contains("Would silence 1 active alert(s)"), "{html}");
    // Save, then it is listed, then expire it.
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(sl.api("/ui/alerts/silences"))
        .form(&[
            ("silence", "{instance=\"i6\"}"),
            ("duration", "1h"),
            ("created_by", "me"),
            ("comment", "deploy"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let sils: Value = reqwest::blocking::get(sl.api("/api/v2/silences"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(sils.as_array().unwrap().len(), 1);
    assert_eq!(sils[0]["createdBy"], "me");
    assert_eq!(sils[0]["status"]["state"], "active");
    let id = sils[0]["id"].as_str().unwrap().to_string();
    assert!(page("").contains("deploy"));
    let r = client
        .post(sl.api("/ui/alerts/silences/expire"))
        .form(&[("id", id.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let s: Value = reqwest::blocking::get(sl.api(&format!("/api/v2/silence/{id}")))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(s["status"]["state"], "expired");
    // A bad matcher comes back to the form with the reason.
    let r = client
        .post(sl.api("/ui/alerts/silences"))
        .form(&[("silence", "{instance=~\"(\"}"), ("duration", "1h")])
        .send()
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.contains("silence_error="), "{loc}");
}

/// Sightline's own alerting rules notify through the built-in Alertmanager; `POST /-/reload`
/// takes a changed alertmanager.yml (new receiver URL) and refuses a broken one, keeping the
/// one in use.
#[test]
fn own_rules_notify_through_it_and_reload_works() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("alertmanager.yml");
    let write = |path: &str| {
        std::fs::write(
            &cfg,
            format!(
                "route:\n  receiver: hook\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs: [{{url: 'http://127.0.0.1:{}/{path}'}}]\n",
                sink.port
            ),
        )
        .unwrap();
    };
    write("first");
    let rules = dir.path().join("r.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: AlwaysOn\n        expr: vector(1)\n        labels: {team: core}\n        annotations: {summary: 'value {{ $value }}'}\n",
    )
    .unwrap();
    let sl = common::Child::spawn_with(
        &dir.path().join("sl"),
        &[
            ("SIGHTLINE_NOTIFY_CONFIG_FILE", cfg.to_str().unwrap()),
            ("SIGHTLINE_RULES_FILES", rules.to_str().unwrap()),
            ("SIGHTLINE_RULES_RESEND_DELAY", "1s"),
            ("SIGHTLINE_SPANMETRICS_ENABLED", "false"),
        ],
    );
    let wait_path = |p: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(h) = sink.hits().into_iter().find(|h| h.path == p) {
                return h;
            }
            assert!(Instant::now() < deadline, "nothing reached /{p}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let h = wait_path("/first");
    let a = &h.body["alerts"][0];
    assert_eq!(a["labels"]["alertname"], "AlwaysOn");
    assert_eq!(a["labels"]["team"], "core");
    assert_eq!(a["annotations"]["summary"], "value 1");
    assert!(
        a["generatorURL"].as_str().unwrap().contains("/ui/explore")
            || a["generatorURL"].as_str().unwrap().contains("graph")
    );
    // A broken file is refused and the configuration in use stays.
    std::fs::write(&cfg, "route: {receiver: nobody}\nreceivers: []\n").unwrap();
    let r = reqwest::blocking::Client::new()
        .post(sl.api("/-/reload"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    assert!(r.text().unwrap().contains("undefined receiver"));
    let status: Value = reqwest::blocking::get(sl.api("/api/v2/status"))
        .unwrap()
        .json()
        .unwrap();
    assert!(
        status["config"]["original"]
            .as_str()
            .unwrap()
            .contains("/first")
    );
    // A good change is taken (the notification log still knows the group was notified, so, as in
    // Alertmanager, the new URL hears of it at the next change or repeat).
    write("second");
    let r = reqwest::blocking::Client::new()
        .post(sl.api("/-/reload"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let status: Value = reqwest::blocking::get(sl.api("/api/v2/status"))
        .unwrap()
        .json()
        .unwrap();
    assert!(
        status["config"]["original"]
            .as_str()
            .unwrap()
            .contains("/second")
    );
    let metrics = reqwest::blocking::get(sl.api("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("sightline_alertmanager_config_reloads_failed_total 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("alertmanager_config"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
