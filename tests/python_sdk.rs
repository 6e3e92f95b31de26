//! The Python OpenTelemetry SDK as a real client (gRPC and HTTP/protobuf exporters): runs
//! `tests/python/sdk_roundtrip.py` against an in-process server; the script checks every span,
//! the searches and the dependencies, and exits non-zero on the first mismatch. The SDK must be
//! installed (`pip install -r tests/python/requirements.txt`; `scripts/test` does it): a missing
//! SDK fails this test rather than skipping it.

mod common;

use common::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_grpc_and_http() {
    let server = Server::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sdk_roundtrip.py");
    let grpc = server.otlp_grpc().trim_start_matches("http://").to_string();
    let http = server.otlp_http("");
    let api = server.api("");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args(["--grpc", &grpc, "--http", &http, "--api", &api])
        .output()
        .await
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "python SDK round trip failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("grpc: 24 spans") && stdout.contains("http: 24 spans"));
    server.stop().await;
}

/// The SDK's metrics exporters (cumulative over gRPC, delta over HTTP): the script checks the
/// stored series' names, labels and values through `/api/v1/export` (issue 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_metrics() {
    let server = Server::start().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/metrics_roundtrip.py"
    );
    let grpc = server.otlp_grpc().trim_start_matches("http://").to_string();
    let http = server.otlp_http("");
    let api = server.api("");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args(["--grpc", &grpc, "--http", &http, "--api", &api])
        .output()
        .await
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "python SDK metrics round trip failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("shop/cart: ") && stdout.contains("billing: ") && stdout.contains("ok")
    );
    server.stop().await;
}
