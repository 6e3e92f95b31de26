//! The metrics store through its front doors (issue 3): acknowledged samples survive `kill -9`;
//! a torn or corrupt WAL tail is cut on start without losing earlier records (and the repair is
//! counted); the active-series limit answers with partial success; a full disk answers 503 and
//! recovers; samples in the head after a block cut survive a restart.

mod common;

use common::{Child, Server, export, labels};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

const T0_MS: u64 = 1_790_000_000_000;

/// One gauge `batch_value` with `series` series (label `s`), all at `t_ms`, value `b * 1000 + s`.
fn gauge_request(job: &str, b: u64, series: u64, t_ms: u64) -> ExportMetricsServiceRequest {
    let points = (0..series)
        .map(|s| NumberDataPoint {
            attributes: vec![kv("s", &s.to_string()), kv("batch", &b.to_string())],
            time_unix_nano: t_ms * 1_000_000,
            value: Some(number_data_point::Value::AsDouble((b * 1000 + s) as f64)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", job)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "batch.value".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    req: &ExportMetricsServiceRequest,
) -> (u16, Option<ExportMetricsServiceResponse>, bool) {
    let r = client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().contains_key("retry-after");
    let body = r.bytes().await.unwrap();
    (
        status,
        ExportMetricsServiceResponse::decode(body)
            .ok()
            .filter(|_| status == 200),
        retry_after,
    )
}

fn batch_label(l: &[(String, String)]) -> u64 {
    l.iter()
        .find(|(k, _)| k == "batch")
        .unwrap()
        .1
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_samples_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(dir.path());
    let client = reqwest::Client::new();
    // Concurrent exports share group commits; the kill follows the last acknowledgement.
    let mut tasks = Vec::new();
    for b in 0..40u64 {
        let url = child.otlp_http("/v1/metrics");
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let (status, resp, _) =
                post(&client, &url, &gauge_request("durable", b, 50, T0_MS + b)).await;
            assert_eq!(status, 200);
            assert!(resp.unwrap().partial_success.is_none());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    child.kill9();
    let child = Child::spawn(dir.path());
    let got = export(&child.api(""), "{job=\"durable\"}").await;
    // 40 x 50 series; no target_info, as the resource has no attribute but service.name.
    assert_eq!(got.len(), 40 * 50);
    for (l, (ts, vals)) in &got {
        if l.iter().any(|(k, v)| k == "__name__" && v == "target_info") {
            continue;
        }
        let b = batch_label(l);
        let s: u64 = l.iter().find(|(k, _)| k == "s").unwrap().1.parse().unwrap();
        assert_eq!(ts, &vec![(T0_MS + b) as i64]);
        assert_eq!(vals, &vec![(b * 1000 + s) as f64]);
    }
}

/// The newest WAL segment with records in it.
fn last_segment(data: &std::path::Path) -> std::path::PathBuf {
    let wal = data.join("tsdb/wal");
    let mut segs: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .parse::<u32>()
                .is_ok()
        })
        .filter(|p| std::fs::metadata(p).unwrap().len() > 8)
        .collect();
    segs.sort();
    segs.pop().expect("a segment with records")
}

async fn repairs(child: &Child) -> u64 {
    let text = reqwest::get(child.api("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("sightline_tsdb_wal_repairs_total "))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_and_corrupt_wal_tails_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    for (round, damage) in ["truncate", "flip"].iter().enumerate() {
        let child = Child::spawn(dir.path());
        let job = format!("torn{round}");
        // One export after another: each is its own WAL write, the last one is the tail.
        for b in 0..10u64 {
            let (status, _, _) = post(
                &client,
                &child.otlp_http("/v1/metrics"),
                &gauge_request(&job, b, 20, T0_MS + b),
            )
            .await;
            assert_eq!(status, 200);
        }
        child.kill9();
        let seg = last_segment(dir.path());
        let mut bytes = std::fs::read(&seg).unwrap();
        let len = bytes.len();
        match *damage {
            "truncate" => bytes.truncate(len - 7),
            _ => {
                for b in &mut bytes[len - 40..len - 30] {
                    *b ^= 0xa5;
                }
            }
        }
        std::fs::write(&seg, &bytes).unwrap();
        let child = Child::spawn(dir.path());
        assert_eq!(repairs(&child).await, 1, "{damage}: the repair is counted");
        let got = export(&child.api(""), &format!("{{job=\"{job}\"}}")).await;
        let mut batches: Vec<u64> = got
            .keys()
            .filter(|l| !l.iter().any(|(k, v)| k == "__name__" && v == "target_info"))
            .map(|l| batch_label(l))
            .collect();
        batches.sort();
        batches.dedup();
        // Everything before the damaged record is kept; the damaged tail (the last export) goes.
        assert_eq!(batches, (0..9).collect::<Vec<_>>(), "{damage}");
        for (l, (_, vals)) in &got {
            if l.iter().any(|(k, v)| k == "__name__" && v == "target_info") {
                continue;
            }
            assert_eq!(vals.len(), 1);
            let _ = batch_label(l);
        }
        // The store takes writes again after the repair.
        let (status, _, _) = post(
            &client,
            &child.otlp_http("/v1/metrics"),
            &gauge_request(&job, 99, 1, T0_MS + 99),
        )
        .await;
        assert_eq!(status, 200);
        child.kill9();
    }
}

/// A 200 with partial success: three points refused for the active series limit.
fn three_refused_by_the_series_limit(status: u16, resp: Option<ExportMetricsServiceResponse>) {
    assert_eq!(status, 200);
    let ps = resp.unwrap().partial_success.expect("partial success");
    assert_eq!(ps.rejected_data_points, 3);
    assert!(
        ps.error_message.contains("active series limit"),
        "{}",
        ps.error_message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_limit_is_partial_success() {
    let server = Server::start_in(tempfile::tempdir().unwrap(), |c| {
        c.metrics.tsdb.max_series = 5
    })
    .await;
    let client = reqwest::Client::new();
    // 8 gauge series + target_info is not sent (no other resource attributes): 3 refused.
    let (status, resp, _) = post(
        &client,
        &server.otlp_http("/v1/metrics"),
        &gauge_request("limited", 0, 8, T0_MS),
    )
    .await;
    three_refused_by_the_series_limit(status, resp);
    let got = export(&server.api(""), "{job=\"limited\"}").await;
    assert_eq!(got.len(), 5);
    let text = reqwest::get(server.api("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("sightline_tsdb_samples_rejected_total{reason=\"series_limit\"} 3"),
        "{text}"
    );
    // Existing series still take samples.
    let mut again = gauge_request("limited", 0, 1, T0_MS + 15_000);
    again.resource_metrics[0].scope_metrics[0].metrics[0].data = Some(metric::Data::Gauge(Gauge {
        data_points: vec![NumberDataPoint {
            attributes: vec![kv("s", "0"), kv("batch", "0")],
            time_unix_nano: (T0_MS + 15_000) * 1_000_000,
            value: Some(number_data_point::Value::AsInt(42)),
            ..Default::default()
        }],
    }));
    let (status, resp, _) = post(&client, &server.otlp_http("/v1/metrics"), &again).await;
    assert_eq!(status, 200);
    assert!(resp.unwrap().partial_success.is_none());
    let got = export(&server.api(""), "{job=\"limited\",s=\"0\"}").await;
    assert_eq!(
        got[&labels(&[
            ("__name__", "batch_value"),
            ("job", "limited"),
            ("s", "0"),
            ("batch", "0")
        ])]
            .1,
        vec![0.0, 42.0]
    );
    // All eight again: the five stored go by series key now, the three refused come back from
    // the store as unknown keys, are sent again with their labels and refused again (counted
    // once each).
    let (status, resp, _) = post(
        &client,
        &server.otlp_http("/v1/metrics"),
        &gauge_request("limited", 0, 8, T0_MS + 30_000),
    )
    .await;
    three_refused_by_the_series_limit(status, resp);
    let got = export(&server.api(""), "{job=\"limited\"}").await;
    assert_eq!(got.len(), 5);
    for (l, (_, values)) in &got {
        let s: f64 = l
            .iter()
            .find(|(k, _)| k == "s")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        assert_eq!(values.last(), Some(&s), "{l:?}: {values:?}");
    }
    server.stop().await;
}

/// A data directory on a small tmpfs: metric exports get 503 with Retry-After when the WAL
/// cannot be written, everything acknowledged is kept, and exports succeed once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_is_503_and_recovers() {
    let fs = common::SmallTmpfs::mount("4m");
    let mnt = fs.path.clone();
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![1u8; 1 << 20]).unwrap();
    let data = mnt.join("data");
    let child = Child::spawn(&data);
    let client = reqwest::Client::new();
    let url = child.otlp_http("/v1/metrics");
    let mut acked = Vec::new();
    let mut full = false;
    for b in 0..2000u64 {
        let (status, _, retry_after) =
            post(&client, &url, &gauge_request("full", b, 200, T0_MS + b)).await;
        match status {
            200 => acked.push(b),
            503 => {
                assert!(retry_after);
                full = true;
                break;
            }
            other => panic!("unexpected status {other} while filling the disk"),
        }
    }
    assert!(full, "the disk never filled up");
    assert!(!acked.is_empty());
    assert_eq!(
        reqwest::get(child.api("/readyz")).await.unwrap().status(),
        503
    );
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = false;
    for attempt in 0..50u64 {
        let (status, _, _) = post(
            &client,
            &url,
            &gauge_request("full", 5000 + attempt, 10, T0_MS + 5000 + attempt),
        )
        .await;
        if status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "exports did not succeed after space was freed");
    assert_eq!(
        reqwest::get(child.api("/readyz")).await.unwrap().status(),
        200
    );
    // Everything acknowledged is there, after a crash too.
    child.kill9();
    let child = Child::spawn(&data);
    let got = export(&child.api(""), "{job=\"full\"}").await;
    let mut batches: Vec<u64> = got.keys().map(|l| batch_label(l)).collect();
    batches.sort();
    batches.dedup();
    for b in &acked {
        assert!(
            batches.binary_search(b).is_ok(),
            "acknowledged batch {b} lost"
        );
    }
}

/// Regression: replaying a WAL whose checkpoint holds a block-cut marker used to garbage-collect
/// the series it had just recreated (empty at that point), so every head sample written after
/// the cut was lost on restart. Seventeen hours of 30 s samples make the store cut blocks while
/// they arrive; after close and reopen every sample must still be there, blocks and head alike.
#[test]
fn head_samples_after_block_cuts_survive_a_restart() {
    use common::promdiff::{generate_bench, load_sightline};
    use sightline::tsdb::{Matcher, Queryable, Tsdb, TsdbConfig, TsdbCounters};
    let data = generate_bench(3, 40, 2100, 30_000);
    let dir = tempfile::tempdir().unwrap();
    load_sightline(&data, dir.path());
    let blocks = std::fs::read_dir(dir.path().join("tsdb/blocks"))
        .unwrap()
        .count();
    assert!(
        blocks >= 2,
        "the load should have cut blocks, found {blocks}"
    );
    let (db, threads) = Tsdb::open(
        &dir.path().join("tsdb"),
        TsdbConfig::default(),
        std::sync::Arc::new(TsdbCounters::default()),
    )
    .unwrap();
    for (l, samples) in &data.series {
        let ms: Vec<Matcher> = l
            .iter()
            .map(|(k, v)| Matcher::eq(k.as_str(), v.as_str()))
            .collect();
        let got: Vec<_> = db
            .select(i64::MIN / 2, i64::MAX / 2, &ms)
            .unwrap()
            .collect();
        assert_eq!(got.len(), 1, "{l:?}");
        assert_eq!(got[0].samples.len(), samples.len(), "{l:?}");
        assert_eq!(got[0].samples.last(), samples.last(), "{l:?}");
    }
    db.close();
    threads.join();
}
