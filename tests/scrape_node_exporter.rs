//! Scraping a real `prometheus-node-exporter` (Debian's) side by side with a real Prometheus 2.42
//! scraping the same exporter at the same interval (issue 3): both store the same series (label
//! sets of a few families, compared exactly), the same values for quantities that do not move
//! between scrapes, and `up` = 1; Sightline's answers come from its Prometheus-shaped
//! `/api/v1/series` and `/api/v1/export`. Needs `apt-get install prometheus
//! prometheus-node-exporter` (`scripts/test` installs them); a missing binary fails the test.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Server, export, free_port};
use serde_json::Value;

async fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "port {port} never opened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Label sets from a Prometheus-API `/api/v1/series` answer, as sorted JSON strings.
fn label_sets(v: &Value) -> BTreeSet<String> {
    assert_eq!(v["status"], "success", "{v}");
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let m: std::collections::BTreeMap<String, String> =
                serde_json::from_value(s.clone()).unwrap();
            serde_json::to_string(&m).unwrap()
        })
        .collect()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_same_as_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let ne_port = free_port();
    let _ne = common::spawn_proc(
        "prometheus-node-exporter",
        &[format!("--web.listen-address=127.0.0.1:{ne_port}")],
    );
    wait_port(ne_port).await;
    let target = format!("127.0.0.1:{ne_port}");

    let prom_port = free_port();
    let prom_cfg = tmp.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{target}']\n"),
    )
    .unwrap();
    let _prom = common::spawn_proc(
        "prometheus",
        &[
            format!("--config.file={}", prom_cfg.display()),
            format!(
                "--storage.tsdb.path={}",
                tmp.path().join("prom-data").display()
            ),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
    );
    let t = target.clone();
    let server = Server::start_in(tempfile::tempdir().unwrap(), move |c| {
        c.scrape = vec![sightline::config::ScrapeConfig {
            job: "node".into(),
            targets: vec![t],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            path: "/metrics".into(),
            scheme: "http".into(),
            honor_labels: false,
        }];
    })
    .await;
    wait_port(prom_port).await;
    let prom = format!("http://127.0.0.1:{prom_port}");
    // Prometheus opens its port before its storage is ready (it answers 503 in plain text until
    // then): wait for /-/ready.
    let ready_by = Instant::now() + Duration::from_secs(60);
    while !reqwest::get(format!("{prom}/-/ready"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < ready_by, "Prometheus never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ours = server.api("");

    // Both have scraped a few times.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = json(&format!("{prom}/api/v1/query?query=up")).await;
        let s = export(&ours, "{__name__=\"up\",job=\"node\"}").await;
        let p_up = p["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        let s_up = s.values().next().is_some_and(|(ts, _)| ts.len() >= 3);
        if p_up && s_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no scrapes after 60 s: prometheus {p}, sightline {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // `up` is 1 in both, with the same labels.
    let up = export(&ours, "{__name__=\"up\",job=\"node\"}").await;
    let (labels, (_, vals)) = up.iter().next().unwrap();
    assert_eq!(vals.last(), Some(&1.0));
    assert!(labels.contains(&("instance".to_string(), target.clone())));

    // The same series, exactly, for families whose membership does not change between scrapes.
    let families = [
        "node_cpu_seconds_total",
        "node_filesystem_size_bytes",
        "node_memory_MemTotal_bytes",
        "node_network_mtu_bytes",
        "node_exporter_build_info",
        "node_uname_info",
        "scrape_samples_scraped",
    ];
    for f in families {
        let sel = enc(&format!("{f}{{job=\"node\"}}"));
        let p = label_sets(&json(&format!("{prom}/api/v1/series?match[]={sel}")).await);
        let s = label_sets(&json(&format!("{ours}/api/v1/series?match[]={sel}")).await);
        assert!(!p.is_empty(), "prometheus has no {f}");
        assert_eq!(s, p, "{f}: series differ");
    }

    // The same values for quantities that do not move between scrapes.
    for f in [
        "node_memory_MemTotal_bytes",
        "node_filesystem_size_bytes",
        "node_network_mtu_bytes",
        "node_exporter_build_info",
    ] {
        let p = json(&format!(
            "{prom}/api/v1/query?query={}",
            enc(&format!("{f}{{job=\"node\"}}"))
        ))
        .await;
        let s = export(&ours, &format!("{f}{{job=\"node\"}}")).await;
        let results = p["data"]["result"].as_array().unwrap();
        assert_eq!(results.len(), s.len(), "{f}");
        for r in results {
            // Prometheus's answer carries __name__ for a plain selector.
            let mut l: Vec<(String, String)> = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            l.sort();
            let want: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
            let got = s.get(&l).unwrap_or_else(|| panic!("sightline lacks {l:?}"));
            assert_eq!(got.1.last().copied(), Some(want), "{l:?}");
        }
    }

    // Counters move, but both stored values from the same exporter within a few seconds.
    let p = json(&format!(
        "{prom}/api/v1/query?query={}",
        enc("node_cpu_seconds_total{job=\"node\",mode=\"idle\",cpu=\"0\"}")
    ))
    .await;
    let pv: f64 = p["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let s = export(
        &ours,
        "node_cpu_seconds_total{job=\"node\",mode=\"idle\",cpu=\"0\"}",
    )
    .await;
    let sv = *s.values().next().unwrap().1.last().unwrap();
    assert!(
        (pv - sv).abs() < 10.0,
        "idle seconds: prometheus {pv}, sightline {sv}"
    );

    // Metadata from # HELP / # TYPE.
    let md = json(&format!(
        "{ours}/api/v1/metadata?metric=node_cpu_seconds_total"
    ))
    .await;
    assert_eq!(
        md["data"]["node_cpu_seconds_total"][0]["type"], "counter",
        "{md}"
    );

    // The target goes away: up becomes 0 and its series get staleness markers.
    drop(_ne);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let up = export(&ours, "{__name__=\"up\",job=\"node\"}").await;
    assert_eq!(up.values().next().unwrap().1.last(), Some(&0.0));
    let mem = export(&ours, "node_memory_MemTotal_bytes{job=\"node\"}").await;
    assert!(
        mem.values().next().unwrap().1.last().unwrap().is_nan(),
        "a staleness marker ends the series"
    );
    server.stop().await;
}
