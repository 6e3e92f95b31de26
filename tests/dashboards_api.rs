//! Dashboards over HTTP, without a browser (issue 23): import answers (JSON body as Grafana's
//! API takes it, form fields), their refusals in words, chained query variables resolved over
//! the store and interpolated into every panel's queries, a query variable of 100,000 values
//! bounded, and a provisioning folder watched for new files.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::dashspec::specs;
use common::promdiff::{Dataset, load_sightline};
use serde_json::{Value, json};

async fn import(s: &Server, body: Vec<u8>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(s.api("/ui/dashboards/import"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

async fn page(s: &Server, path: &str) -> String {
    reqwest::get(s.api(path))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn labels(name: &str, pairs: &[(&str, String)]) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    l.push(("__name__".into(), name.into()));
    l.sort();
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_variables_bounds_and_provisioning() {
    let dir = tempfile::tempdir().unwrap();
    let now = sightline::base::clock::now_ms();
    // Three jobs with instances, and one metric with 100,000 series.
    let mut series = Vec::new();
    for (job, inst) in [("api", "a:1"), ("api", "a:2"), ("db", "d:1")] {
        series.push((
            labels("up", &[("job", job.into()), ("instance", inst.into())]),
            vec![(now - 60_000, 1.0), (now - 1_000, 1.0)],
        ));
    }
    for i in 0..100_000 {
        series.push((
            labels("wide", &[("id", format!("{i:06}"))]),
            vec![(now - 1_000, i as f64)],
        ));
    }
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        load_sightline(
            &Dataset {
                series,
                start: now - 60_000,
                end: now,
            },
            &path,
        )
    })
    .await
    .unwrap();
    let prov = dir.path().join("provisioned");
    std::fs::create_dir_all(&prov).unwrap();
    let prov2 = prov.clone();
    let s = Server::start_in(dir, move |c| c.dashboard_dirs = vec![prov2]).await;

    // Refusals, in words.
    let (code, v) = import(&s, b"{\"title\": \"x\", \"panels\": [".to_vec()).await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );
    let (code, v) = import(&s, br#"{"title": "x"}"#.to_vec()).await;
    assert_eq!(code, 400);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("not a Grafana dashboard"),
        "{v}"
    );
    let big = format!(
        r#"{{"title":"big","panels":[],"d":"{}"}}"#,
        "x".repeat(11 << 20)
    );
    let (code, v) = import(&s, big.into_bytes()).await;
    assert_eq!(code, 413, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("the limit is 10485760 bytes"),
        "{v}"
    );

    // Chained variables: job -> instance (multi, include All), a regex-escaped alternation.
    let d = json!({"dashboard": {"uid": "chain", "title": "chain",
        "templating": {"list": [
            {"name": "job", "type": "query", "query": {"query": "label_values(up, job)"}, "sort": 2},
            {"name": "instance", "type": "query", "query": "label_values(up{job=\"$job\"}, instance)", "multi": true, "includeAll": true},
            {"name": "wide", "type": "query", "query": "label_values(wide, id)", "multi": true, "includeAll": true, "allValue": ".*"},
            {"name": "step", "type": "interval", "query": "1m,10m", "auto": true, "auto_count": 10, "auto_min": "1s"},
            {"name": "names", "type": "query", "query": "label_names()"},
            {"name": "metric", "type": "query", "query": "metrics(^u)"},
            {"name": "qr", "type": "query", "query": "query_result(up{job=\"api\"})", "regex": "/instance=\"([^\"]+)\"/", "sort": 1},
            {"name": "series", "type": "query", "query": "up{job=\"db\"}"},
        ]},
        "panels": [{"id": 1, "type": "timeseries", "title": "$job on $instance", "gridPos": {"x":0,"y":0,"w":24,"h":8},
                    "targets": [{"expr": "rate(up{job=\"$job\", instance=~\"$instance\"}[$step])", "refId": "A"},
                                {"expr": "count(wide{id=~\"$wide\"})", "refId": "B", "instant": true}]}]},
        "overwrite": false});
    let (code, v) = import(&s, serde_json::to_vec(&d).unwrap()).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["uid"], "chain");
    let (code, v) = import(&s, serde_json::to_vec(&d).unwrap()).await;
    assert_eq!(code, 412, "{v}");
    assert!(v["message"].as_str().unwrap().contains("overwrite"), "{v}");

    let t0 = Instant::now();
    let html = page(&s, "/ui/dashboards/chain?from=now-1h&to=now").await;
    let took = t0.elapsed();
    // job sorted descending -> "db" first and selected; its one instance under All.
    let sp = specs(&html);
    assert_eq!(
        sp[0]["targets"][0]["expr"], "rate(up{job=\"db\", instance=~\"d:1\"}[5m])",
        "{sp:?}"
    );
    assert_eq!(sp[0]["targets"][1]["expr"], "count(wide{id=~\".*\"})");
    assert!(
        html.contains("first 10000 of 100000 values"),
        "the wide variable says it was cut"
    );
    assert_eq!(html.matches("<option value=\"0").count(), 10_000);
    assert!(
        took < Duration::from_secs(20),
        "a 100,000-value variable took {took:?}"
    );
    // The URL chooses: job=api, two instances -> a regex alternation with escaped values.
    let html = page(
        &s,
        "/ui/dashboards/chain?var-job=api&var-instance=a:1&var-instance=a:2&var-step=1m",
    )
    .await;
    let sp = specs(&html);
    assert_eq!(
        sp[0]["targets"][0]["expr"],
        "rate(up{job=\"api\", instance=~\"(a:1|a:2)\"}[1m])"
    );
    assert!(
        html.contains("api on a:1 + a:2"),
        "title interpolated as text"
    );
    // A variable value that is not an option is not taken from the URL.
    let html = page(&s, "/ui/dashboards/chain?var-job=nope").await;
    assert!(
        specs(&html)[0]["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .contains("job=\"db\"")
    );

    // Grafana's dashboard API, as tools that push and back up dashboards call it.
    let c = reqwest::Client::new();
    let r = c
        .post(s.api("/api/dashboards/db"))
        .json(&json!({"dashboard": {"uid": "via-api", "title": "Via the API", "tags": ["gpu"], "panels": []}, "overwrite": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["uid"].as_str(), v["slug"].as_str()),
        (Some("success"), Some("via-api"), Some("via-the-api"))
    );
    assert_eq!(v["url"], "/ui/dashboards/via-api");
    let found: Value = reqwest::get(s.api("/api/search?query=via&tag=gpu"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["type"], "dash-db");
    let got: Value = reqwest::get(s.api("/api/dashboards/uid/via-api"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["dashboard"]["title"], "Via the API");
    assert_eq!(got["meta"]["provisioned"], false);
    let r = c
        .post(s.api("/api/dashboards/db"))
        .json(&json!({"dashboard": {"uid": "via-api", "title": "again", "panels": []}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "name-exists");
    let r = c
        .post(s.api("/api/dashboards/db"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .delete(s.api("/api/dashboards/uid/via-api"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        reqwest::get(s.api("/api/dashboards/uid/via-api"))
            .await
            .unwrap()
            .status(),
        404
    );

    // Provisioning: a file dropped into the folder appears within the watch interval.
    std::fs::write(
        prov.join("new.json"),
        br#"{"uid":"prov-new","title":"Dropped in","panels":[]}"#,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        if page(&s, "/ui/dashboards").await.contains("Dropped in") {
            break;
        }
        assert!(Instant::now() < deadline, "provisioned file not picked up");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A provisioned dashboard cannot be replaced by an upload.
    let (code, v) = import(
        &s,
        br#"{"uid":"prov-new","title":"y","panels":[]}"#.to_vec(),
    )
    .await;
    assert_eq!(code, 412, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("provisioned from"),
        "{v}"
    );
    s.stop().await;
}
