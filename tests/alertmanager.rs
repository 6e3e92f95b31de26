//! Sightline's alerts in a real Alertmanager 0.25 (Debian's `prometheus-alertmanager`, started
//! on free ports): `amtool alert query` shows them with their labels (external labels added)
//! and expanded annotations; an alert whose condition ends is resolved in Alertmanager; and
//! after Alertmanager is down for a while and comes back empty, the firing alert is there again
//! (re-sent every resend delay). Short scale: rules every 1 s, resend delay 2 s.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Alertmanager {
    child: Child,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_am(dir: &Path, port: u16) -> Alertmanager {
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: nobody\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: nobody\n",
    )
    .unwrap();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("alertmanager must be installed (apt-get install prometheus-alertmanager)");
    let am = Alertmanager { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::blocking::get(format!("http://127.0.0.1:{port}/-/ready"))
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "alertmanager did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    am
}

/// `amtool alert query` as JSON: the active alerts Alertmanager holds.
fn amtool_query(port: u16) -> Vec<Value> {
    let out = Command::new("amtool")
        .args([
            "-o",
            "json",
            "alert",
            "query",
            &format!("--alertmanager.url=http://127.0.0.1:{port}"),
        ])
        .output()
        .expect("amtool comes with prometheus-alertmanager");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn find<'a>(alerts: &'a [Value], name: &str) -> Option<&'a Value> {
    alerts.iter().find(|a| a["labels"]["alertname"] == name)
}

#[test]
fn alerts_reach_alertmanager_resolve_and_survive_its_outage() {
    let dir = tempfile::tempdir().unwrap();
    let am_port = common::free_port();
    let am = start_am(dir.path(), am_port);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let rules = dir.path().join("rules.yml");
    // `Temporary` holds for 12 s from now, then its condition ends.
    std::fs::write(
        &rules,
        format!(
            r#"groups:
  - name: am-test
    interval: 1s
    rules:
      - alert: AlwaysOn
        expr: vector(42)
        labels:
          severity: page
        annotations:
          summary: "value {{{{ $value }}}} in {{{{ $externalLabels.cluster }}}}"
      - alert: Temporary
        expr: vector(1) and on () (vector(time()) < {})
        labels:
          severity: ticket
"#,
            now_s + 12
        ),
    )
    .unwrap();
    let am_url = format!("http://127.0.0.1:{am_port}");
    let rules_path = rules.display().to_string();
    let sl = common::Child::spawn_with(
        &dir.path().join("sl"),
        &[
            ("SIGHTLINE_RULES_FILES", rules_path.as_str()),
            ("SIGHTLINE_RULES_BUILTIN", "false"),
            ("SIGHTLINE_RULES_RESEND_DELAY", "2s"),
            ("SIGHTLINE_ALERTING_ALERTMANAGERS", am_url.as_str()),
            ("SIGHTLINE_ALERTING_EXTERNAL_LABELS", "cluster=eu1"),
        ],
    );

    // 1. Both alerts arrive with their labels, the external label and expanded annotations.
    wait_for("both alerts in alertmanager", 30, || {
        let a = amtool_query(am_port);
        find(&a, "AlwaysOn").is_some() && find(&a, "Temporary").is_some()
    });
    let a = amtool_query(am_port);
    let on = find(&a, "AlwaysOn").unwrap();
    assert_eq!(on["labels"]["severity"], "page");
    assert_eq!(on["labels"]["cluster"], "eu1");
    assert_eq!(on["annotations"]["summary"], "value 42 in eu1");
    assert!(
        on["generatorURL"]
            .as_str()
            .unwrap()
            .contains("/ui/explore?q=vector%2842%29"),
        "{on}"
    );
    assert_eq!(
        find(&a, "Temporary").unwrap()["labels"]["severity"],
        "ticket"
    );

    // 2. The condition of `Temporary` ends: Sightline sends it resolved and Alertmanager drops it
    // from the active alerts, while `AlwaysOn` stays.
    wait_for("Temporary resolved", 40, || {
        let a = amtool_query(am_port);
        find(&a, "Temporary").is_none() && find(&a, "AlwaysOn").is_some()
    });

    // 3. Alertmanager down, then back with no memory: the firing alert comes back.
    let dir2 = tempfile::tempdir().unwrap();
    drop(am);
    std::thread::sleep(Duration::from_secs(5));
    let metrics = reqwest::blocking::get(sl.api("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let errors: f64 = metrics
        .lines()
        .find(|l| l.starts_with("sightline_notifications_errors_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        errors > 0.0,
        "sends while alertmanager was down are counted: {metrics}"
    );
    let _am2 = start_am(dir2.path(), am_port);
    assert!(
        find(&amtool_query(am_port), "AlwaysOn").is_none(),
        "a fresh alertmanager"
    );
    wait_for("AlwaysOn re-sent after the outage", 20, || {
        find(&amtool_query(am_port), "AlwaysOn").is_some()
    });
    let sent = metrics
        .lines()
        .find(|l| l.starts_with("sightline_notifications_sent_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(sent >= 3.0, "alerts sent before the outage: {sent}");
}
