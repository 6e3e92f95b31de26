//! Loki's query API (issue 24): logs delivered by real clients come back through `query_range`
//! exactly. One server takes a snappy protobuf push (the `logproto.PushRequest` of Loki's
//! `push.proto`), a JSON push, an OTLP/HTTP logs export and `python-logging-loki`'s handler (both
//! of its emitter versions); then every line is read back with its nanosecond timestamp and
//! labels, metric queries count them, and `/labels`, `/label/{name}/values`, `/series`,
//! `/index/stats` and `/index/volume` describe them. Errors come back as Loki words them.

mod common;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use serde_json::{Value, json};
use sightline::ingest::loki::{
    EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp,
};

const NS: i64 = 1_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Loki {
    base: String,
    client: reqwest::Client,
}

impl Loki {
    async fn get(&self, path: &str, params: &[(&str, String)]) -> (u16, String) {
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        let r = self
            .client
            .get(format!("{}{path}?{}", self.base, q.join("&")))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn json(&self, path: &str, params: &[(&str, String)]) -> Value {
        let (status, body) = self.get(path, params).await;
        assert_eq!(status, 200, "{path} {params:?}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// `query_range` over `[start, end)`; the `data` object.
    async fn range(&self, q: &str, start: i64, end: i64, extra: &[(&str, &str)]) -> Value {
        let mut p = vec![
            ("query", q.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
        ];
        p.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let v = self.json("/loki/api/v1/query_range", &p).await;
        assert_eq!(v["status"], "success", "{v}");
        v["data"].clone()
    }

    async fn instant(&self, q: &str, t: i64) -> Value {
        let v = self
            .json(
                "/loki/api/v1/query",
                &[("query", q.to_string()), ("time", t.to_string())],
            )
            .await;
        v["data"].clone()
    }
}

/// Streams of a `streams` answer as label set -> [(ts, line)].
fn streams(d: &Value) -> BTreeMap<String, Vec<(i64, String)>> {
    assert_eq!(d["resultType"], "streams", "{d}");
    d["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(s["stream"].clone()).unwrap();
            let key = labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let values = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    (
                        v[0].as_str().unwrap().parse::<i64>().unwrap(),
                        v[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (key, values)
        })
        .collect()
}

/// A `vector` answer as label set -> value.
fn vector(d: &Value) -> BTreeMap<String, f64> {
    assert_eq!(d["resultType"], "vector", "{d}");
    d["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(s["metric"].clone()).unwrap();
            let key = labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            (key, s["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_from_real_clients_come_back_through_the_loki_api() {
    let sl = common::Server::start().await;
    let client = reqwest::Client::new();
    let loki = Loki {
        base: sl.api(""),
        client: client.clone(),
    };
    // Whole seconds, ten minutes ago: 20 "info" lines a second apart on two pods, 5 errors.
    let t0 = (now_ns() / NS - 600) * NS;
    let info: Vec<(i64, String, String)> = (0..20)
        .map(|i| {
            (
                t0 + i * NS + 7,
                format!("GET /api/orders/{i} status=200 duration={}ms", 10 + i),
                format!("web-{}", i % 2),
            )
        })
        .collect();
    let errors: Vec<(i64, String)> = (0..5)
        .map(|i| {
            (
                t0 + i * NS + 500_000_000,
                format!("level=error msg=\"payment failed\" order={i} status=500"),
            )
        })
        .collect();
    let push = PushRequest {
        streams: vec![
            StreamAdapter {
                labels: r#"{service_name="checkout", level="info", env="prod"}"#.into(),
                entries: info
                    .iter()
                    .map(|(ts, line, pod)| EntryAdapter {
                        timestamp: Some(Timestamp {
                            seconds: ts / NS,
                            nanos: (ts % NS) as i32,
                        }),
                        line: line.clone(),
                        structured_metadata: vec![LabelPairAdapter {
                            name: "pod".into(),
                            value: pod.clone(),
                        }],
                    })
                    .collect(),
                hash: 0,
            },
            StreamAdapter {
                labels: r#"{service_name="checkout", level="error", env="prod"}"#.into(),
                entries: errors
                    .iter()
                    .map(|(ts, line)| EntryAdapter {
                        timestamp: Some(Timestamp {
                            seconds: ts / NS,
                            nanos: (ts % NS) as i32,
                        }),
                        line: line.clone(),
                        structured_metadata: vec![],
                    })
                    .collect(),
                hash: 0,
            },
        ],
    };
    let r = client
        .post(sl.api("/loki/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .body(
            snap::raw::Encoder::new()
                .compress_vec(&push.encode_to_vec())
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "{:?}", r.text().await);
    // JSON: three JSON lines from a batch job.
    let batch: Vec<(i64, String)> = (0..3)
        .map(|i| {
            (
                t0 + 100 * NS + i,
                format!(
                    r#"{{"level":"warn","took":"1.5s","rows":{},"table":"t{i}"}}"#,
                    10 * (i + 1)
                ),
            )
        })
        .collect();
    let values: Vec<Value> = batch
        .iter()
        .map(|(ts, l)| json!([ts.to_string(), l]))
        .collect();
    let r = client
        .post(sl.api("/loki/api/v1/push"))
        .json(&json!({"streams": [{"stream": {"job": "batch"}, "values": values}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    // OTLP/HTTP JSON logs: resource attributes map as Loki 3 maps them.
    let otlp_ts = t0 + 200 * NS + 123;
    let otlp = json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "api"}},
            {"key": "k8s.pod.name", "value": {"stringValue": "api-0"}},
            {"key": "host.name", "value": {"stringValue": "h1"}}
        ]},
        "scopeLogs": [{"logRecords": [
            {"timeUnixNano": otlp_ts.to_string(), "severityNumber": 17, "severityText": "ERROR",
             "body": {"stringValue": "upstream timed out"},
             "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7",
             "attributes": [{"key": "http.status_code", "value": {"intValue": "504"}}]},
            {"timeUnixNano": (otlp_ts + 1).to_string(), "severityNumber": 9,
             "body": {"stringValue": "served"},
             "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}]}
        ]}]
    }]});
    let r = client
        .post(sl.otlp_http("/v1/logs"))
        .json(&otlp)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    // python-logging-loki, both emitters.
    let base = sl.api("");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/loki_handler.py"
            ))
            .arg(&base)
            .arg("6")
            .output()
            .expect("python3 with tests/python/requirements.txt installed")
    })
    .await
    .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 12);

    let (start, end) = (t0 - NS, now_ns() + NS);

    // Every "info" line, oldest first, split by the structured metadata `pod` as Loki does
    // without the categorize-labels flag, with its exact nanosecond timestamp.
    let d = loki
        .range(
            r#"{service_name="checkout", level="info"}"#,
            start,
            end,
            &[("direction", "forward"), ("limit", "1000")],
        )
        .await;
    let got = streams(&d);
    let mut want: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for (ts, line, pod) in &info {
        want.entry(format!(
            "env=prod,level=info,pod={pod},service_name=checkout"
        ))
        .or_default()
        .push((*ts, line.clone()));
    }
    assert_eq!(got, want);
    assert_eq!(d["stats"]["summary"]["totalEntriesReturned"], 20, "{d}");
    // Backward with a limit: the newest three, newest first.
    let d = loki
        .range(
            r#"{service_name="checkout", level="info"}"#,
            start,
            end,
            &[("limit", "3")],
        )
        .await;
    let mut newest: Vec<(i64, String)> = streams(&d).into_values().flatten().collect();
    newest.sort_by_key(|e| std::cmp::Reverse(e.0));
    let want: Vec<(i64, String)> = info
        .iter()
        .rev()
        .take(3)
        .map(|(t, l, _)| (*t, l.clone()))
        .collect();
    assert_eq!(newest, want);
    for s in d["result"].as_array().unwrap() {
        let ts: Vec<i64> = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[0].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(ts.windows(2).all(|w| w[0] > w[1]), "backward order: {ts:?}");
    }
    // A pipeline: logfmt and a numeric label filter.
    let d = loki
        .range(
            r#"{service_name="checkout"} |= "payment failed" | logfmt | order >= 3"#,
            start,
            end,
            &[("direction", "forward")],
        )
        .await;
    let lines: Vec<String> = streams(&d).into_values().flatten().map(|e| e.1).collect();
    assert_eq!(lines.len(), 2, "{d}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("order=3") || l.contains("order=4"))
    );
    // Metric queries.
    let now = now_ns();
    let v = vector(
        &loki
            .instant(
                r#"sum by (level) (count_over_time({service_name="checkout"}[1h]))"#,
                now,
            )
            .await,
    );
    assert_eq!(
        v,
        BTreeMap::from([("level=error".into(), 5.0), ("level=info".into(), 20.0)])
    );
    let v = vector(
        &loki
            .instant(
                r#"sum(sum_over_time({job="batch"} | json | unwrap rows [1h]))"#,
                now,
            )
            .await,
    );
    assert_eq!(v, BTreeMap::from([(String::new(), 60.0)]));
    let v = vector(
        &loki
            .instant(r#"max by (table) (max_over_time({service_name="batch"} | json | unwrap duration(took) [1h]))"#, now)
            .await,
    );
    assert_eq!(v.len(), 3);
    assert!(v.values().all(|x| *x == 1.5), "{v:?}");
    // A range metric query: a matrix with one point per step.
    let d = loki
        .range(
            r#"sum(count_over_time({service_name="checkout", level="info"}[10s]))"#,
            t0 + 10 * NS,
            t0 + 30 * NS,
            &[("step", "10")],
        )
        .await;
    assert_eq!(d["resultType"], "matrix", "{d}");
    // Windows (t-10s, t]: entries at t0+i s+7ns; at t0+10s: i in 0..=9 minus none at exactly
    // t0 (i=0 is at t0+7ns > t0) -> 10; at t0+20s: i in 10..=19 -> 10; at t0+30s: none.
    let pts: Vec<(f64, String)> = d["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_str().unwrap().to_string()))
        .collect();
    let s0 = (t0 / NS) as f64;
    assert_eq!(
        pts,
        vec![(s0 + 10.0, "10".to_string()), (s0 + 20.0, "10".to_string())]
    );
    // OTLP logs: labels from the indexed resource attributes, the rest as structured metadata.
    let d = loki
        .range(
            r#"{service_name="api", k8s_pod_name="api-0"} | http_status_code >= 500"#,
            start,
            end,
            &[],
        )
        .await;
    let s = &d["result"][0];
    assert_eq!(d["result"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(
        s["values"],
        json!([[otlp_ts.to_string(), "upstream timed out"]])
    );
    assert_eq!(s["stream"]["host_name"], "h1");
    assert_eq!(s["stream"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(s["stream"]["span_id"], "00f067aa0ba902b7");
    assert_eq!(s["stream"]["detected_level"], "error");
    // python-logging-loki: every record back with its text and level label.
    let d = loki
        .range(r#"{app="pyapp"}"#, start, end, &[("direction", "forward")])
        .await;
    let mut back: Vec<(String, String, String)> = d["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            let emitter = s["stream"]["emitter"].as_str().unwrap().to_string();
            let sev = s["stream"]["severity"].as_str().unwrap().to_string();
            assert_eq!(s["stream"]["service_name"], "pyapp", "discovered from app");
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |v| {
                    (
                        emitter.clone(),
                        sev.clone(),
                        v[1].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    back.sort();
    let mut want: Vec<(String, String, String)> = sent
        .iter()
        .map(|s| {
            (
                format!("v{}", s["version"].as_str().unwrap()),
                s["severity"].as_str().unwrap().to_string(),
                s["line"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(back, want);

    // Labels, values, series, stats and volume.
    let range = [("start", start.to_string()), ("end", end.to_string())];
    let labels = loki.json("/loki/api/v1/labels", &range).await;
    for l in [
        "app",
        "emitter",
        "env",
        "job",
        "k8s_pod_name",
        "level",
        "service_name",
        "severity",
    ] {
        assert!(
            labels["data"].as_array().unwrap().contains(&json!(l)),
            "{l}: {labels}"
        );
    }
    assert!(
        !labels["data"].as_array().unwrap().contains(&json!("pod")),
        "metadata is not a stream label"
    );
    let vals = loki
        .json("/loki/api/v1/label/service_name/values", &range)
        .await;
    assert_eq!(vals["data"], json!(["api", "batch", "checkout", "pyapp"]));
    let mut p = range.to_vec();
    p.push(("query", r#"{service_name="checkout"}"#.to_string()));
    let vals = loki.json("/loki/api/v1/label/level/values", &p).await;
    assert_eq!(vals["data"], json!(["error", "info"]));
    let mut p = range.to_vec();
    p.push(("match[]", r#"{service_name="checkout"}"#.to_string()));
    let series = loki.json("/loki/api/v1/series", &p).await;
    assert_eq!(
        series["data"],
        json!([
            {"env": "prod", "level": "error", "service_name": "checkout"},
            {"env": "prod", "level": "info", "service_name": "checkout"}
        ])
    );
    let mut p = range.to_vec();
    p.push(("query", r#"{service_name="checkout"}"#.to_string()));
    let st = loki.json("/loki/api/v1/index/stats", &p).await;
    let bytes: usize = info.iter().map(|e| e.1.len()).sum::<usize>()
        + errors.iter().map(|e| e.1.len()).sum::<usize>();
    assert_eq!(st["streams"], 2);
    assert_eq!(st["entries"], 25);
    assert_eq!(st["bytes"], bytes);
    let vol = loki.json("/loki/api/v1/index/volume", &p).await;
    assert_eq!(vol["data"]["resultType"], "vector");
    assert_eq!(
        vol["data"]["result"][0]["metric"],
        json!({"service_name": "checkout"})
    );
    assert_eq!(
        vol["data"]["result"][0]["value"][1],
        json!(bytes.to_string())
    );
    p.push(("targetLabels", "level".to_string()));
    let vol = loki.json("/loki/api/v1/index/volume", &p).await;
    let info_bytes: usize = info.iter().map(|e| e.1.len()).sum();
    assert_eq!(vol["data"]["result"][0]["metric"], json!({"level": "info"}));
    assert_eq!(
        vol["data"]["result"][0]["value"][1],
        json!(info_bytes.to_string())
    );

    grafana_data_source_requests(&loki, start, end).await;

    // Live tail over a WebSocket: the history first, then lines pushed after it connects.
    {
        use futures_util::StreamExt;
        let url = format!(
            "ws://{}/loki/api/v1/tail?query={}&start={}&limit=2",
            sl.api("").trim_start_matches("http://"),
            enc(r#"{service_name="checkout", level="error"}"#),
            start
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| -> Value {
            let m = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
                .await
                .expect("a tail frame within 10 s")
                .unwrap()
                .unwrap();
            serde_json::from_str(m.to_text().unwrap()).unwrap()
        };
        let hist = next(&mut ws).await;
        let lines: Vec<&str> = hist["streams"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[1].as_str().unwrap())
            .collect();
        assert_eq!(
            lines,
            vec![errors[0].1.as_str(), errors[1].1.as_str()],
            "{hist}"
        );
        assert!(hist["dropped_entries"].is_null());
        let late = now_ns() - 3_600 * NS;
        let r = client
            .post(sl.api("/loki/api/v1/push"))
            .json(
                &json!({"streams": [{"stream": {"service_name": "checkout", "level": "error"},
                "values": [[late.to_string(), "tailed line with an old timestamp"]]}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        let live = next(&mut ws).await;
        assert_eq!(
            live["streams"][0]["values"],
            json!([[late.to_string(), "tailed line with an old timestamp"]]),
            "{live}"
        );
        assert_eq!(live["streams"][0]["stream"]["service_name"], "checkout");
    }

    // Errors as Loki words them, in plain text.
    let (status, body) = loki
        .get(
            "/loki/api/v1/query_range",
            &[("query", "{service_name=}".into())],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.starts_with("parse error at line 1, col "), "{body}");
    let (status, body) = loki
        .get(
            "/loki/api/v1/query",
            &[("query", r#"{app="pyapp"}"#.into())],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "log queries are not supported as an instant query type, please change your query to a range query type"
    );
    let (status, body) = loki
        .get(
            "/loki/api/v1/query_range",
            &[
                ("query", r#"{app="pyapp"}"#.into()),
                ("limit", "6000".into()),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with("max entries limit per query exceeded"),
        "{body}"
    );
    // Logs Drilldown: detected labels and fields.
    let mut p = range.to_vec();
    p.push(("query", r#"{service_name="checkout"}"#.to_string()));
    let dl = loki.json("/loki/api/v1/detected_labels", &p).await;
    assert_eq!(
        dl["detectedLabels"],
        json!([{"label": "env", "cardinality": 1}, {"label": "level", "cardinality": 2},
               {"label": "service_name", "cardinality": 1}])
    );
    let df = loki.json("/loki/api/v1/detected_fields", &p).await;
    let fields: BTreeMap<String, Value> = df["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["label"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    assert_eq!(fields["status"]["type"], "int", "{df}");
    assert_eq!(fields["status"]["cardinality"], 2);
    assert_eq!(fields["status"]["parsers"], json!(["logfmt"]));
    assert_eq!(fields["order"]["cardinality"], 5);
    assert_eq!(
        fields["pod"]["parsers"],
        Value::Null,
        "structured metadata: {df}"
    );
    assert_eq!(df["limit"], 1000);
    let vals = loki
        .json("/loki/api/v1/detected_field/status/values", &p)
        .await;
    let mut got: Vec<String> = vals["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(got, vec!["200", "500"]);

    // The web UI's Logs page runs LogQL too, newest first, with labels and trace links.
    let logs_page = async |logql: &str| -> String {
        let url = sl.api(&format!("/ui/logs?range=1h&logql={}", enc(logql)));
        client.get(url).send().await.unwrap().text().await.unwrap()
    };
    let page = logs_page(r#"{service_name="api"} | http_status_code >= 500"#).await;
    assert!(page.contains("upstream timed out"), "{page}");
    assert!(!page.contains(">served<"), "filtered out");
    assert!(page.contains("/ui/trace/4bf92f3577b34da6a3ce929d0e0e4736"));
    assert!(
        page.contains("k8s_pod_name=&#34;api-0&#34;")
            || page.contains("k8s_pod_name=&quot;api-0&quot;"),
        "labels shown"
    );
    let page = logs_page("{app=").await;
    assert!(page.contains("parse error at line 1"), "the error is shown");
    // The volume histogram by level: from the LogQL engine for a LogQL search, from the search
    // index for the simple search; both count 20 info and 5 error lines of "checkout".
    let get_page = async |path: &str| -> String {
        let r = client.get(sl.api(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    };
    let page = logs_page(r#"{service_name="checkout"}"#).await;
    assert_eq!(
        volume_totals(&page),
        BTreeMap::from([("error".into(), 5), ("info".into(), 20)])
    );
    assert!(page.contains(r#"id="log-tail""#), "live tail offered");
    let mut totals = BTreeMap::new();
    for _ in 0..50 {
        // The simple search reads the index, which commits about once a second.
        totals = volume_totals(&get_page("/ui/logs?range=1h&service=checkout").await);
        if totals.values().sum::<u64>() == 25 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        totals,
        BTreeMap::from([("error".into(), 5), ("info".into(), 20)])
    );
    // A trace's logs and a service's logs run as LogQL on the same page path.
    let page = get_page("/ui/logs?range=1h&traceID=4bf92f3577b34da6a3ce929d0e0e4736").await;
    assert!(page.contains("upstream timed out"), "{page}");
    assert!(
        page.contains("trace_id=&#34;4bf92f3577b34da6a3ce929d0e0e4736&#34;")
            || page.contains("trace_id=&quot;4bf92f3577b34da6a3ce929d0e0e4736&quot;"),
        "the LogQL is shown"
    );
    assert!(!page.contains("payment failed"), "only the trace's lines");
    let page = get_page("/ui/service/checkout?range=1h").await;
    assert!(page.contains("payment failed"), "the service's lines");
    assert!(
        page.contains("/ui/logs?logql=%7Bservice_name%3D%22checkout%22%7D"),
        "{page}"
    );

    // Bad queries: a clear 400 each, and the server keeps answering.
    let huge = format!("{{app=\"{}\"}}", "x".repeat(70 * 1024));
    let r = client
        .post(sl.api("/loki/api/v1/query_range"))
        .form(&[("query", huge.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("longer than 65536 bytes"));
    let (status, body) = loki
        .get(
            "/loki/api/v1/query_range",
            &[("query", r#"{app=~"(a{1000}){1000}"}"#.into())],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("error parsing regexp"), "{body}");
    let (status, _) = loki
        .get(
            "/loki/api/v1/query_range",
            &[("query", "sum(".repeat(200) + "x")],
        )
        .await;
    assert_eq!(status, 400);
    let d = loki
        .range(
            r#"{service_name="checkout"} |~ "(a*)*(b+)+$""#,
            start,
            end,
            &[],
        )
        .await;
    assert_eq!(d["result"], json!([]));
    sl.stop().await;
}

/// The Logs page's volume histogram (its `data-volume` attribute): lines per level.
fn volume_totals(page: &str) -> BTreeMap<String, u64> {
    let at = page.find("data-volume=\"").expect("a volume histogram") + 13;
    let raw = &page[at..at + page[at..].find('"').unwrap()];
    let text = raw.replace("&#34;", "\"").replace("&quot;", "\"");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let sum = l[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .sum();
            (l[0].as_str().unwrap().to_string(), sum)
        })
        .collect()
}

/// A `[float seconds, "value"]` pair as Grafana's converter reads it (`readTimeValuePair`: a JSON
/// number, then a string that parses as a float).
fn sample(v: &Value) -> (f64, f64) {
    let pair = v.as_array().expect("a [time, value] pair");
    assert_eq!(pair.len(), 2, "{v}");
    let t = pair[0].as_f64().expect("time is a JSON number");
    let x = pair[1]
        .as_str()
        .expect("value is a string")
        .parse::<f64>()
        .expect("value parses as a float");
    (t, x)
}

/// The requests Grafana's Loki data source sends for Explore, a logs panel, a time-series panel
/// over `rate`, label autocompletion and the logs volume histogram, answered in the shapes it
/// reads. The data: `{service_name="checkout"}` holds 20 `level="info"` lines (structured
/// metadata `pod`) and 5 `level="error"` lines. Sources, in grafana/grafana:
///
/// - `pkg/tsdb/loki/api.go` at 0d0434957a27, `makeDataRequest`: a range query goes to
///   `/loki/api/v1/query_range` with `query`, `direction`, `limit` (only when above zero),
///   `start` and `end` in nanoseconds and `step` as `"<milliseconds>ms"`; an instant query goes to
///   `/loki/api/v1/query` with `time` in nanoseconds. `DataQuery` reads the body with
///   `converter.ReadPrometheusStyleResult`.
/// - `pkg/util/converter/prom.go` at 0ce8598d42637, `readPrometheusData`: `data.resultType`, then
///   `data.result`; `data.stats` goes to the first frame's meta. `readStream`: each stream's
///   `stream` (a string map) and `values` as `[nanosecond string, line]` pairs (exactly two
///   elements: it reads two and closes the array). `readMatrixOrVectorMulti` and
///   `readTimeValuePair`: `metric`, then `values` (matrix) or `value` (vector) as
///   `[float seconds, "value"]`.
/// - `public/app/plugins/datasource/loki/datasource.ts` at 92c2d1ee6f69, `getSupplementaryQuery`:
///   the volume histogram is `sum by (level) (count_over_time(<expr>[$__interval]))` as a range
///   query; `metadataRequest` returns the answer's `data` (or the whole answer when it has none,
///   as `index/stats` answers); `labelNamesQuery` (`labels` with `start`/`end`),
///   `labelValuesQuery` (`label/<name>/values`), `labelValuesSeriesQuery` (`series` with
///   `match[]`, reading each stream's label map); `getQueryStats` (`index/stats` with `query`,
///   reading `streams`, `chunks`, `bytes`, `entries`).
/// - `public/app/plugins/datasource/loki/LanguageProvider.ts` at 49399ad3c3a1,
///   `fetchLabelsByLabelsEndpoint`: `labels` with `start`, `end` and the stream selector as
///   `query` when there is one; `fetchSeriesLabels`: `series` with `match[]`.
async fn grafana_data_source_requests(loki: &Loki, start: i64, end: i64) {
    let sel = r#"{service_name="checkout"}"#;
    let step = "15000ms";
    let range = |q: &str, dir: &str, limit: &str| {
        let mut p = vec![
            ("query", q.to_string()),
            ("direction", dir.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.to_string()),
        ];
        if !limit.is_empty() {
            p.push(("limit", limit.to_string()));
        }
        p
    };
    // Explore and a logs panel: log lines, backward (Explore's default) and forward (a panel
    // sorted oldest first).
    for (dir, limit) in [("backward", "1000"), ("forward", "100")] {
        let v = loki
            .json("/loki/api/v1/query_range", &range(sel, dir, limit))
            .await;
        assert_eq!(v["status"], "success");
        assert_eq!(v["data"]["resultType"], "streams");
        assert!(v["data"]["stats"].is_object(), "stats for the frame meta");
        let mut n = 0;
        for s in v["data"]["result"].as_array().unwrap() {
            let labels = s["stream"].as_object().expect("stream is a map");
            assert!(labels.values().all(Value::is_string), "{s}");
            let mut last: Option<i64> = None;
            for e in s["values"].as_array().unwrap() {
                let pair = e.as_array().unwrap();
                assert_eq!(pair.len(), 2, "[ts, line] only, no metadata: {e}");
                let ts = pair[0].as_str().expect("ns as a string");
                assert_eq!(ts.len(), 19, "{ts}");
                let ts: i64 = ts.parse().unwrap();
                assert!(pair[1].is_string());
                if let Some(prev) = last {
                    if dir == "forward" {
                        assert!(ts >= prev, "oldest first");
                    } else {
                        assert!(ts <= prev, "newest first");
                    }
                }
                last = Some(ts);
                n += 1;
            }
        }
        assert_eq!(n, 25, "{dir}");
    }
    // A time-series panel over `rate`: a matrix, one series per level.
    let v = loki
        .json(
            "/loki/api/v1/query_range",
            &range(&format!("sum by (level) (rate({sel}[1m]))"), "backward", ""),
        )
        .await;
    assert_eq!(v["data"]["resultType"], "matrix", "{v}");
    let mut levels = Vec::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let m = s["metric"].as_object().unwrap();
        assert_eq!(m.len(), 1, "{s}");
        levels.push(m["level"].as_str().unwrap().to_string());
        let values = s["values"].as_array().unwrap();
        assert!(!values.is_empty());
        let mut prev = f64::MIN;
        for x in values {
            let (t, r) = sample(x);
            assert!(t > prev && r > 0.0, "{x}");
            // Steps of 15 s from `start`.
            assert!(((t * 1e3) as i64 - start / 1_000_000) % 15_000 == 0, "{x}");
            prev = t;
        }
    }
    levels.sort();
    assert_eq!(levels, ["error", "info"]);
    // An instant query (a stat or table panel): a vector.
    let v = loki
        .json(
            "/loki/api/v1/query",
            &[
                (
                    "query",
                    format!("sum by (level) (count_over_time({sel}[1h]))"),
                ),
                ("direction", "backward".into()),
                ("time", end.to_string()),
            ],
        )
        .await;
    let got: BTreeMap<String, f64> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let (t, x) = sample(&s["value"]);
            assert!((t - end as f64 / 1e9).abs() < 1e-3, "evaluated at `time`");
            (s["metric"]["level"].as_str().unwrap().to_string(), x)
        })
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([("error".into(), 5.0), ("info".into(), 20.0)])
    );
    // The logs volume histogram: with the window equal to the step every line is counted in
    // exactly one bucket, so the buckets add up to the lines of each level.
    let v = loki
        .json(
            "/loki/api/v1/query_range",
            &range(
                &format!("sum by (level) (count_over_time({sel}[15s]))"),
                "backward",
                "1000",
            ),
        )
        .await;
    assert_eq!(v["data"]["resultType"], "matrix");
    let totals: BTreeMap<String, f64> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let sum: f64 = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| sample(x).1)
                .sum();
            (s["metric"]["level"].as_str().unwrap().to_string(), sum)
        })
        .collect();
    assert_eq!(
        totals,
        BTreeMap::from([("error".into(), 5.0), ("info".into(), 20.0)])
    );
    // Label autocompletion: names (all, and those of one selector), values, series.
    let t = [("start", start.to_string()), ("end", end.to_string())];
    let names = loki.json("/loki/api/v1/labels", &t).await;
    assert!(
        names["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_string)
    );
    let mut p = t.to_vec();
    p.push(("query", sel.to_string()));
    let names = loki.json("/loki/api/v1/labels", &p).await;
    assert_eq!(names["data"], json!(["env", "level", "service_name"]));
    let vals = loki.json("/loki/api/v1/label/level/values", &t).await;
    let vals: Vec<&str> = vals["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        vals.contains(&"info") && vals.contains(&"error"),
        "{vals:?}"
    );
    let mut p = t.to_vec();
    p.push(("match[]", sel.to_string()));
    let series = loki.json("/loki/api/v1/series", &p).await;
    let levels: Vec<&str> = series["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["error", "info"]);
    // The query hint's statistics: the answer itself, no `data` wrapper.
    let mut p = t.to_vec();
    p.push(("query", sel.to_string()));
    let st = loki.json("/loki/api/v1/index/stats", &p).await;
    for k in ["streams", "chunks", "bytes", "entries"] {
        assert!(st[k].is_u64(), "{k}: {st}");
    }
    assert_eq!(st["entries"], 25);
}
