//! The Prometheus query API over HTTP (issue 4): envelopes, status codes and `errorType`s
//! as Prometheus gives them, GET and form POST alike, limits answered as errors, and the
//! small endpoints Grafana calls (buildinfo, rules, alerts, format_query).

mod common;

use common::promdiff::{generate_mixed, load_sightline};
use serde_json::Value;

fn get(url: &str) -> (u16, Value) {
    let r = reqwest::blocking::get(url).unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap())
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn query_api_behaves_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    load_sightline(&generate_mixed(7), dir.path());
    let sl = common::Child::spawn_with(dir.path(), &[("SIGHTLINE_QUERY_MAX_SAMPLES", "20000")]);
    let api = |p: &str| sl.api(p);

    // A vector answer, GET and POST the same.
    let q = "sum by (job) (rate(demo_requests_total[5m]))";
    let (code, v) = get(&api(&format!(
        "/api/v1/query?query={}&time=1700007200",
        enc(q)
    )));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2, "{v}");
    let posted: Value = reqwest::blocking::Client::new()
        .post(api("/api/v1/query"))
        .form(&[("query", q), ("time", "1700007200")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(posted, v);

    // A range answer: a matrix with one point per step.
    let (code, v) = get(&api(&format!(
        "/api/v1/query_range?query={}&start=1700003600&end=1700007200&step=60",
        enc(q)
    )));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().unwrap().len(),
        61
    );

    // Errors: bad_data 400 with the position, execution 422, timeout 503.
    let (code, v) = get(&api(&format!(
        "/api/v1/query?query={}",
        enc("sum(rate(x[5m])")
    )));
    assert_eq!(
        (code, v["errorType"].as_str()),
        (400, Some("bad_data")),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter \"query\": 1:16: parse error"),
        "{v}"
    );
    let (code, v) = get(&api(&format!(
        "/api/v1/query?query={}&time=1700007200",
        enc("demo_requests_total + on (job) demo_temperature_celsius")
    )));
    assert_eq!(
        (code, v["errorType"].as_str()),
        (422, Some("execution")),
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().contains("many-to-many"), "{v}");
    let (code, v) = get(&api(&format!(
        "/api/v1/query?query={}&time=1700007200&timeout=1ms",
        enc("count_over_time(vector(1)[2h:1ms])")
    )));
    assert!(
        (code == 503 && v["errorType"] == "timeout")
            || (code == 422 && v["errorType"] == "execution"),
        "{code} {v}"
    );
    // The sample limit (set to 20,000 here).
    let (code, v) = get(&api(&format!(
        "/api/v1/query_range?query={}&start=1700000000&end=1700010000&step=15",
        enc("demo_latency_seconds_bucket")
    )));
    assert_eq!(
        (code, v["errorType"].as_str()),
        (422, Some("execution")),
        "{v}"
    );
    assert!(
        v["error"].as_str().unwrap().contains("too many samples"),
        "{v}"
    );

    // Parameter errors, worded as Prometheus words them.
    for (path, want) in [
        (
            "/api/v1/query_range?query=up&start=10&end=5&step=1",
            "end timestamp must not be before start time",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=100000&step=1",
            "exceeded maximum resolution of 11,000 points",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=10&step=0",
            "zero or negative query resolution step",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=10&step=x",
            "invalid parameter \"step\"",
        ),
        (
            "/api/v1/query_range?query=up&end=10&step=1",
            "invalid parameter \"start\"",
        ),
        (
            "/api/v1/query?query=up&time=yesterday",
            "invalid parameter \"time\"",
        ),
        (
            "/api/v1/query_range?query=up[5m]&start=0&end=10&step=1",
            "invalid expression type \"range vector\" for range query",
        ),
        ("/api/v1/query", "no expression found"),
    ] {
        let (code, v) = get(&api(path));
        assert_eq!(code, 400, "{path}: {v}");
        assert_eq!(v["status"], "error");
        assert!(v["error"].as_str().unwrap().contains(want), "{path}: {v}");
    }

    // Scalars, strings and range vectors from instant queries.
    let (_, v) = get(&api("/api/v1/query?query=1%2B1&time=100.5"));
    assert_eq!(
        v["data"],
        serde_json::json!({"resultType": "scalar", "result": [100.5, "2"]})
    );
    let (_, v) = get(&api("/api/v1/query?query=%22hi%22&time=100"));
    assert_eq!(
        v["data"],
        serde_json::json!({"resultType": "string", "result": [100, "hi"]})
    );
    let (_, v) = get(&api(&format!(
        "/api/v1/query?query={}&time=1700000060",
        enc("demo_tiny[1m]")
    )));
    assert_eq!(v["data"]["resultType"], "matrix");
    assert!(
        v["data"]["result"][0]["values"].as_array().unwrap().len() >= 4,
        "{v}"
    );

    // The small endpoints.
    let (_, v) = get(&api(&format!(
        "/api/v1/format_query?query={}",
        enc("sum(rate(x[5m])) by (job)")
    )));
    assert_eq!(v["data"], "sum by (job) (rate(x[5m]))");
    let (_, v) = get(&api("/api/v1/status/buildinfo"));
    assert_eq!(v["data"]["version"], "2.42.0");
    assert!(
        v["data"]["revision"]
            .as_str()
            .unwrap()
            .starts_with("sightline-")
    );
    let (_, v) = get(&api("/api/v1/rules"));
    assert_eq!(v["data"]["groups"], serde_json::json!([]));
    let (_, v) = get(&api("/api/v1/alerts"));
    assert_eq!(v["data"]["alerts"], serde_json::json!([]));
    // Series and label endpoints see the same data.
    let (_, v) = get(&api("/api/v1/label/job/values"));
    assert_eq!(v["data"], serde_json::json!(["api", "db"]));
}
