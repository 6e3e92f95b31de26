//! Lifecycle: health and own metrics, graceful shutdown on SIGTERM that commits everything
//! acknowledged, retention by age and by size that really gives disk space back, and a full disk
//! that answers 503 and recovers when space returns.

mod common;

use std::time::Duration;

use common::build::{bulky_spans, now_ns, request, span, trace_id};
use common::{Child, Server, get_json, post_proto, wait_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_own_metrics() {
    let server = Server::start().await;
    let r = reqwest::get(server.api("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::get(server.api("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let spans = (0..7)
        .map(|i| span(&trace_id(1, 3), i + 1, None, "m", now_ns(), 10))
        .collect();
    assert_eq!(
        post_proto(&server.otlp_http("/v1/traces"), &request("m", spans)).await,
        200
    );
    // Through the main port too.
    let spans = (0..3)
        .map(|i| span(&trace_id(2, 3), i + 1, None, "m", now_ns(), 10))
        .collect();
    assert_eq!(
        post_proto(&server.api("/v1/traces"), &request("m", spans)).await,
        200
    );
    let text = reqwest::get(server.api("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "sightline_otlp_accepted_items_total{signal=\"traces\",transport=\"http\"} 10"
        ),
        "{text}"
    );
    assert!(
        text.contains("sightline_store_commit_duration_seconds_count"),
        "{text}"
    );
    let r = reqwest::Client::new()
        .get(server.api("/"))
        .send()
        .await
        .unwrap();
    assert!(
        r.url().path().ends_with("/ui/"),
        "/ redirects to /ui/: {}",
        r.url()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_path_prefixes_routes_and_keeps_jaeger_at_root() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir, |c| c.base_path = "/observability".into()).await;
    let spans = vec![span(&trace_id(1, 8), 1, None, "bp", now_ns(), 10)];
    assert_eq!(
        post_proto(
            &server.api("/observability/v1/traces"),
            &request("bp", spans)
        )
        .await,
        200
    );
    let tid = hex::encode(trace_id(1, 8));
    assert_eq!(
        get_json(&server.api(&format!("/observability/api/traces/{tid}")))
            .await
            .0,
        200
    );
    assert_eq!(
        get_json(&server.api(&format!("/api/traces/{tid}"))).await.0,
        200
    );
    assert_eq!(
        reqwest::get(server.api("/observability/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn_with(
        dir.path(),
        &[("SIGHTLINE_TRACES_INDEX_COMMIT_INTERVAL", "60s")],
    );
    let url = child.otlp_http("/v1/traces");
    let mut tasks = Vec::new();
    for b in 0..20u64 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let spans = (0..100)
                .map(|i| span(&trace_id(b, 6), i + 1, None, "t", now_ns(), 10))
                .collect();
            post_proto(&url, &request("term", spans)).await
        }));
    }
    let mut acked = Vec::new();
    for (b, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() == 200 {
            acked.push(b as u64);
        }
    }
    assert_eq!(acked.len(), 20);
    let pid = child.child.id();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = child;
    let exit = child.child.wait().unwrap();
    assert!(exit.success(), "sightline exited with {exit:?} on SIGTERM");
    // The index was committed on the way out: searchable at once after restart.
    let child = Child::spawn(dir.path());
    let v = wait_json(&child.api("/api/traces?service=term&limit=100"), |v| {
        common::data_len(v) == 20
    })
    .await;
    assert_eq!(common::data_len(&v), 20);
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    // Load with a 100-day retention, so nothing is deleted while the data goes in.
    let server = Server::start_in(dir, |c| {
        c.traces.retention = Duration::from_secs(100 * 86400);
    })
    .await;
    let url = server.otlp_http("/v1/traces");
    let old = now_ns() - 2 * 3600 * 1_000_000_000;
    // 30 old traces (two hours ago) with bulky attributes, then one recent trace.
    for b in 0..30u64 {
        let spans = bulky_spans(
            &trace_id(b, 11),
            "old",
            200,
            |i| old + i,
            "blob",
            |i| b * 1000 + i,
            20,
        );
        assert_eq!(post_proto(&url, &request("aging", spans)).await, 200);
    }
    let recent = trace_id(99, 11);
    assert_eq!(
        post_proto(
            &url,
            &request("aging", vec![span(&recent, 1, None, "new", now_ns(), 10)])
        )
        .await,
        200
    );
    // A span without timestamps counts as received now, not as 1970 (it must not expire at once).
    let untimed = trace_id(98, 11);
    let zero = vec![span(&untimed, 1, None, "zero", 0, 0)];
    assert_eq!(post_proto(&url, &request("untimed", zero)).await, 200);
    // Everything stored, in traces.db and its WAL.
    let dir = server.stop().await;
    let db = dir.path().join("traces.db");
    let full = std::fs::metadata(&db).unwrap().len()
        + std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());
    // Now with a one-hour retention: the 30 old traces must go.
    let server = Server::start_in(dir, |c| {
        c.traces.retention = Duration::from_secs(3600);
        c.traces.retention_check_interval = Duration::from_millis(300);
    })
    .await;
    // Old traces disappear from lookups and from search; the recent one stays.
    let gone = hex::encode(trace_id(0, 11));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get_json(&server.api(&format!("/api/traces/{gone}")))
        .await
        .0
        != 404
    {
        assert!(
            std::time::Instant::now() < deadline,
            "old trace not deleted by age"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_json(&server.api("/api/traces?service=aging&limit=100"), |v| {
        common::data_len(v) == 1
    })
    .await;
    assert_eq!(
        get_json(&server.api(&format!("/api/traces/{}", hex::encode(&recent))))
            .await
            .0,
        200
    );
    let (status, _) =
        get_json(&server.api(&format!("/api/traces/{}", hex::encode(&untimed)))).await;
    assert_eq!(status, 200, "a span without timestamps expired at once");
    // Space goes back to the file system (retention vacuums until no free pages remain).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let after = std::fs::metadata(&db).unwrap().len();
        if after < full / 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "disk space not reclaimed: {full} -> {after} bytes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = server.stop().await;

    // By size: a limit far below what is stored deletes the oldest chunks first.
    let server = Server::start_in(dir, |c| {
        c.traces.max_size_bytes = 200 * 1024;
        c.traces.retention_check_interval = Duration::from_millis(300);
    })
    .await;
    let url = server.otlp_http("/v1/traces");
    for b in 0..40u64 {
        let start = now_ns() - (40 - b) * 1_000_000_000;
        let spans = bulky_spans(
            &trace_id(b, 12),
            "sized",
            200,
            |_| start,
            "blob",
            |i| b * 7919 + i,
            20,
        );
        assert_eq!(post_proto(&url, &request("sized", spans)).await, 200);
    }
    let first = hex::encode(trace_id(0, 12));
    let last = hex::encode(trace_id(39, 12));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get_json(&server.api(&format!("/api/traces/{first}")))
        .await
        .0
        != 404
    {
        assert!(
            std::time::Instant::now() < deadline,
            "oldest trace not deleted by size"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        get_json(&server.api(&format!("/api/traces/{last}")))
            .await
            .0,
        200,
        "newest trace must stay"
    );
    let dir = server.stop().await;
    let db_after = std::fs::metadata(dir.path().join("traces.db"))
        .unwrap()
        .len();
    eprintln!(
        "after size retention: traces.db {db_after} bytes, whole data dir {} bytes",
        dir_bytes(dir.path())
    );
    assert!(
        db_after < 400 * 1024,
        "traces.db still {db_after} bytes over a 200 KiB limit"
    );
}

/// A data directory on a 6 MiB tmpfs: exports get 503 (with Retry-After) when it is full,
/// nothing acknowledged is lost, and exports succeed again once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_is_503_and_recovers() {
    let fs = common::SmallTmpfs::mount("6m");
    let mnt = fs.path.clone();
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![1u8; 2 << 20]).unwrap();
    let data = mnt.join("data");
    let child = Child::spawn(&data);
    let url = child.otlp_http("/v1/traces");
    let fill_url = url.clone();
    let (acked, _) = tokio::task::spawn_blocking(move || common::fill_disk(&fill_url, 13, 400))
        .await
        .unwrap();
    let full_at = acked.len();
    assert_eq!(
        reqwest::get(child.api("/healthz")).await.unwrap().status(),
        200
    );
    // Free space; exports work again (allow a few retries, as a client would).
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = false;
    for attempt in 0..50u64 {
        let spans = vec![span(
            &trace_id(1000 + attempt, 13),
            1,
            None,
            "after",
            now_ns(),
            10,
        )];
        if post_proto(&url, &request("full", spans)).await == 200 {
            recovered = true;
            let (s, _) = get_json(&child.api(&format!(
                "/api/traces/{}",
                hex::encode(trace_id(1000 + attempt, 13))
            )))
            .await;
            assert_eq!(s, 200);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        recovered,
        "exports did not recover after space was freed (full at batch {full_at})"
    );
    for b in acked {
        let (s, _) =
            get_json(&child.api(&format!("/api/traces/{}", hex::encode(trace_id(b, 13))))).await;
        assert_eq!(s, 200, "acknowledged batch {b} lost after the disk filled");
    }
    drop(child);
}
