//! Every error path of the Prometheus and Jaeger APIs, driven through `app::router()` with
//! `oneshot` (no socket): the status code, the envelope and Prometheus's `errorType` come from the
//! one error edge (`api/edge.rs`, issue 19). Stores are real, opened in a temporary directory;
//! the engine's sample limit is set low so that `execution` errors can be caused on purpose.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use sightline::config::Config;
use sightline::promql::{Engine, QueryService};
use sightline::telemetry::{Metrics, Registry};
use sightline::traces::TraceStore;
use sightline::tsdb::{Batch, Labels, Tsdb};
use tower::ServiceExt;

struct Fixture {
    router: Router,
    store: TraceStore,
    tsdb: Tsdb,
    _dir: tempfile::TempDir,
}

async fn fixture(max_samples: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_data_dir(dir.path());
    cfg.query.max_samples = max_samples;
    let metrics = Arc::new(Metrics::default());
    let counters = sightline::ui::Counters {
        ingest: metrics.clone(),
        tsdb: Default::default(),
        samplers: Default::default(),
        forward: Default::default(),
    };
    let (tsdb, _threads) = Tsdb::open(
        &dir.path().join("tsdb"),
        cfg.metrics.tsdb.clone(),
        counters.tsdb.clone(),
    )
    .unwrap();
    let (store, _store_threads) =
        TraceStore::open(dir.path(), &cfg.traces, metrics.clone(), None).unwrap();
    // 2,000 samples of one series (and 10 of another), so a query over all of them passes the limit of 1,000.
    let mut b = Batch::default();
    let l = Labels::from_pairs([("__name__", "m"), ("job", "a")]);
    for i in 0..2_000 {
        b.push(l.clone(), i * 1000, i as f64);
    }
    // A second series of the same name, so label_replace can make duplicate label sets.
    let l2 = Labels::from_pairs([("__name__", "m"), ("job", "b")]);
    for i in 0..10 {
        b.push(l2.clone(), i * 1000, i as f64);
    }
    tsdb.append(b).await.unwrap();
    let query = QueryService::new(tsdb.clone(), Engine::new(cfg.query.clone()));
    let ingest = Arc::new(sightline::ingest::Ingest::new(
        store.clone(),
        tsdb.clone(),
        &cfg.ingest,
        &cfg.metrics,
        metrics.clone(),
    ));
    let ui = sightline::ui::UiState::new(store.clone(), query.clone(), counters, &cfg);
    let router = sightline::app::router(
        store.clone(),
        tsdb.clone(),
        query,
        ingest,
        Registry::default(),
        "",
        ui,
    );
    Fixture {
        router,
        store,
        tsdb,
        _dir: dir,
    }
}

async fn get(r: &Router, uri: &str) -> (StatusCode, Value) {
    let res = r
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{uri}: not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, v)
}

/// Prometheus's envelope: exactly `status`, `errorType`, `error`.
fn assert_prometheus(uri: &str, status: StatusCode, v: &Value, code: u16, kind: &str) {
    assert_eq!(status.as_u16(), code, "{uri}: {v}");
    assert_eq!(v["status"], "error", "{uri}: {v}");
    assert_eq!(v["errorType"], kind, "{uri}: {v}");
    assert!(
        v["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{uri}: {v}"
    );
    assert_eq!(v.as_object().unwrap().len(), 3, "{uri}: {v}");
}

/// Jaeger's envelope: `data` null, `errors` with one entry whose code is the status.
fn assert_jaeger(uri: &str, status: StatusCode, v: &Value, code: u16) {
    assert_eq!(status.as_u16(), code, "{uri}: {v}");
    assert_eq!(v["data"], Value::Null, "{uri}: {v}");
    for k in ["total", "limit", "offset"] {
        assert_eq!(v[k], 0, "{uri}: {k} in {v}");
    }
    let errors = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{uri}: {v}"));
    assert_eq!(errors.len(), 1, "{uri}: {v}");
    assert_eq!(errors[0]["code"], code, "{uri}: {v}");
    assert!(
        errors[0]["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{uri}: {v}"
    );
}

#[tokio::test]
async fn prometheus_api_error_paths() {
    let f = fixture(1_000).await;
    let cases: &[(&str, u16, &str)] = &[
        // /api/v1/query
        ("/api/v1/query", 400, "bad_data"),
        ("/api/v1/query?query=sum(", 400, "bad_data"),
        ("/api/v1/query?query=up&time=yesterday", 400, "bad_data"),
        ("/api/v1/query?query=up&timeout=soon", 400, "bad_data"),
        ("/api/v1/query?query=up&timeout=-1s", 400, "bad_data"),
        (
            "/api/v1/query?query=m%5B2000s%5D&time=2000",
            422,
            "execution",
        ),
        (
            "/api/v1/query?query=label_replace(m,%22a%22,%22x%22,%22job%22,%22(%22)&time=10",
            422,
            "execution",
        ),
        (
            // Both series become m{job="x"}: "vector cannot contain metrics with the same labelset".
            "/api/v1/query?query=label_replace(m,%22job%22,%22x%22,%22%22,%22%22)&time=5",
            422,
            "execution",
        ),
        // /api/v1/query_range
        ("/api/v1/query_range?query=m&end=10&step=1", 400, "bad_data"),
        (
            "/api/v1/query_range?query=m&start=10&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=m&start=10&end=5&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=m&start=0&end=10",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=m&start=0&end=10&step=0",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=m&start=0&end=100000&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=m%5B5m%5D&start=0&end=10&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=%22s%22&start=0&end=10&step=1",
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=m&start=0&end=2000&step=1",
            422,
            "execution",
        ),
        // /api/v1/format_query
        ("/api/v1/format_query", 400, "bad_data"),
        ("/api/v1/format_query?query=1%20%2B", 400, "bad_data"),
        // /api/v1/query_exemplars
        ("/api/v1/query_exemplars?query=(", 400, "bad_data"),
        ("/api/v1/query_exemplars?query=m&start=x", 400, "bad_data"),
        (
            "/api/v1/query_exemplars?query=m&start=10&end=5",
            400,
            "bad_data",
        ),
        // /api/v1/series, labels, label values, export
        ("/api/v1/series", 400, "bad_data"),
        ("/api/v1/series?match[]=%7B", 400, "bad_data"),
        ("/api/v1/series?match[]=%7Bjob%3D%22%22%7D", 400, "bad_data"),
        ("/api/v1/series?match[]=rate(m%5B5m%5D)", 400, "bad_data"),
        ("/api/v1/series?match[]=m%20offset%205m", 400, "bad_data"),
        ("/api/v1/series?match[]=m&start=x", 400, "bad_data"),
        ("/api/v1/series?match[]=m&start=10&end=5", 400, "bad_data"),
        ("/api/v1/labels?match[]=%7B", 400, "bad_data"),
        ("/api/v1/labels?start=never", 400, "bad_data"),
        ("/api/v1/label/1bad/values", 400, "bad_data"),
        (
            "/api/v1/label/job/values?match[]=%7Bjob%3D~%22(%22%7D",
            400,
            "bad_data",
        ),
        ("/api/v1/export", 400, "bad_data"),
        ("/api/v1/export?match[]=%7D", 400, "bad_data"),
    ];
    for (uri, code, kind) in cases {
        let (s, v) = get(&f.router, uri).await;
        assert_prometheus(uri, s, &v, *code, kind);
    }
    // The same answers as POSTed forms.
    for (body, code, kind) in [
        ("query=sum(", 400, "bad_data"),
        ("query=m&start=0&end=2000&step=1", 422, "execution"),
    ] {
        let uri = if body.contains("step") {
            "/api/v1/query_range"
        } else {
            "/api/v1/query"
        };
        let res = f
            .router
            .clone()
            .oneshot(
                Request::post(uri)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        let s = res.status();
        let b = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_prometheus(body, s, &serde_json::from_slice(&b).unwrap(), code, kind);
    }
    f.store.close();
    f.tsdb.close();
}

#[tokio::test]
async fn prometheus_query_timeout_is_503_timeout() {
    // No sample limit to hit first; a 1 ms timeout on a query with a million-step subquery.
    let f = fixture(50_000_000).await;
    let uri = "/api/v1/query?query=count_over_time(sum(rate(m%5B1m%5D))%5B2000s:1ms%5D)&time=2000&timeout=0.001";
    let (s, v) = get(&f.router, uri).await;
    assert_prometheus(uri, s, &v, 503, "timeout");
    f.store.close();
    f.tsdb.close();
}

#[tokio::test]
async fn jaeger_api_error_paths() {
    let f = fixture(1_000).await;
    let cases: &[(&str, u16)] = &[
        ("/api/operations", 400),
        ("/api/operations?service=a&spanKind=sideways", 400),
        ("/api/traces/not-hex", 400),
        ("/api/traces/0123456789abcdef0123456789abcdef", 404),
        ("/api/traces", 400),
        ("/api/traces?service=a&limit=many", 400),
        ("/api/traces?service=a&minDuration=fast", 400),
        ("/api/traces?service=a&maxDuration=1parsec", 400),
        ("/api/traces?service=a&tags=%7Bnot-json", 400),
        ("/api/traces?traceID=zz", 400),
        ("/api/dependencies?endTs=now", 400),
        ("/api/dependencies?lookback=-", 400),
        ("/api/traces/not-hex/gpu", 400),
        ("/api/traces/0123456789abcdef0123456789abcdef/gpu", 404),
        (
            "/api/traces/0123456789abcdef0123456789abcdef/gpu?pad=x",
            400,
        ),
        ("/api/logs?severity=loud", 400),
        ("/api/logs?limit=lots", 400),
        ("/api/logs?tags=%7Bbroken", 400),
        ("/api/metrics/calls", 400),
        ("/api/metrics/calls?service=a&spanKind=sideways", 400),
        ("/api/metrics/calls?service=a&step=0", 400),
        ("/api/metrics/calls?service=a&groupByOperation=maybe", 400),
        ("/api/metrics/calls?service=a&endTs=x", 400),
        (
            "/api/metrics/calls?service=a&lookback=100000000&step=1",
            400,
        ),
        ("/api/metrics/latencies?service=a", 400),
        ("/api/metrics/latencies?service=a&quantile=high", 400),
        ("/api/metrics/latencies?quantile=0.95", 400),
        ("/api/metrics/errors", 400),
        ("/api/metrics/errors?service=a&ratePer=0", 400),
    ];
    for (uri, code) in cases {
        let (s, v) = get(&f.router, uri).await;
        assert_jaeger(uri, s, &v, *code);
    }
    f.store.close();
    f.tsdb.close();
}
