//! `for` state survives `kill -9` (issue 20), on a short scale: an alert with `for: 20s` (for
//! `10m`), pending 12 s (for 8 minutes), the process killed and started again. As Prometheus
//! does it, the restored alert is still pending, its `activeAt` moved later by the downtime only
//! (not reset to the restart), and it fires `for` after that `activeAt`. The grace period is 2 s
//! (for 10 minutes' proportion of a longer `for`), so the remaining 8 s are kept.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// RFC 3339 with fraction -> Unix seconds.
fn secs(s: &str) -> f64 {
    let (date, rest) = s.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let rest = rest.trim_end_matches('Z');
    let (hms, frac) = rest.split_once('.').unwrap_or((rest, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    (days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) as f64
        + format!("0.{frac}").parse::<f64>().unwrap()
}

fn alert(sl: &common::Child) -> Option<Value> {
    let v: Value = reqwest::blocking::get(sl.api("/api/v1/alerts"))
        .ok()?
        .json()
        .ok()?;
    v["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == "LongFor")
        .cloned()
}

#[test]
fn pending_alert_keeps_its_for_state_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: restart\n    interval: 1s\n    rules:\n      - alert: LongFor\n        expr: vector(1)\n        for: 20s\n",
    )
    .unwrap();
    let rules_path = rules.display().to_string();
    let env = [
        ("SIGHTLINE_RULES_FILES", rules_path.as_str()),
        ("SIGHTLINE_RULES_BUILTIN", "false"),
        ("SIGHTLINE_RULES_FOR_GRACE_PERIOD", "2s"),
    ];
    let data = dir.path().join("data");
    let sl = common::Child::spawn_with(&data, &env);
    let ports = (sl.http, sl.otlp_http, sl.otlp_grpc);
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(a) = alert(&sl) {
            break a;
        }
        assert!(Instant::now() < deadline, "no pending alert");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(first["state"], "pending");
    let active_at = secs(first["activeAt"].as_str().unwrap());
    // Pending for 12 of its 20 seconds, then killed.
    while now_s() < active_at + 12.0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(alert(&sl).unwrap()["state"], "pending");
    sl.kill9();
    let killed = now_s();
    let sl = common::Child::spawn_at(&data, &env, ports);
    // The first two evaluations after a start come before the restore; wait for it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let restored = loop {
        if let Some(a) = alert(&sl) {
            let at = secs(a["activeAt"].as_str().unwrap());
            if at < killed {
                break a;
            }
        }
        assert!(
            Instant::now() < deadline,
            "for state was not restored: {:?}",
            alert(&sl)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let restarted = now_s();
    let at = secs(restored["activeAt"].as_str().unwrap());
    assert_eq!(restored["state"], "pending", "{restored}");
    let downtime = restarted - killed;
    // Prometheus's arithmetic: activeAt (whole seconds) + time down (from the last sample).
    assert!(
        at >= active_at.floor() && at <= active_at + downtime + 2.0,
        "activeAt {active_at} -> {at} after {downtime:.1}s down"
    );
    // It fires 20 s after the restored activeAt, not 20 s after the restart.
    let deadline = Instant::now() + Duration::from_secs(30);
    let fired = loop {
        if alert(&sl).is_some_and(|a| a["state"] == "firing") {
            break now_s();
        }
        assert!(Instant::now() < deadline, "never fired");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        fired >= at + 20.0 - 0.5 && fired <= at + 20.0 + 2.5,
        "fired at {fired}, activeAt {at}: expected about {}",
        at + 20.0
    );
    assert!(
        fired < restarted + 18.0,
        "the pending time before the kill was kept"
    );
}
