//! The Python OpenTelemetry SDK as a real client: runs scripts from `tests/python/` against an
//! in-process server. `sdk_roundtrip.py` (gRPC and HTTP/protobuf span exporters) checks every
//! span, the searches and the dependencies; `metrics_roundtrip.py` (metrics exporters) checks the
//! stored series. Each exits non-zero on the first mismatch. The SDK must be installed (`pip
//! install -r tests/python/requirements.txt`; `scripts/test` does it): a missing SDK fails these
//! tests rather than skipping them.

mod common;

use common::Server;

/// Runs `tests/python/<script>` against `server`; returns its stdout, fails on a non-zero exit.
async fn run_script(server: &Server, script: &str) -> String {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let grpc = server.otlp_grpc().trim_start_matches("http://").to_string();
    let http = server.otlp_http("");
    let api = server.api("");
    let out = tokio::process::Command::new("python3")
        .arg(&path)
        .args(["--grpc", &grpc, "--http", &http, "--api", &api])
        .output()
        .await
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_grpc_and_http() {
    let server = Server::start().await;
    let stdout = run_script(&server, "sdk_roundtrip.py").await;
    assert!(stdout.contains("grpc: 24 spans") && stdout.contains("http: 24 spans"));
    server.stop().await;
}

/// The SDK's metrics exporters (cumulative over gRPC, delta over HTTP): the script checks the
/// stored series' names, labels and values through `/api/v1/export`, and the exemplar through
/// `/api/v1/query_exemplars` (issue 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_metrics() {
    let server = Server::start().await;
    let stdout = run_script(&server, "metrics_roundtrip.py").await;
    assert!(
        stdout.contains("shop/cart: ")
            && stdout.contains("billing: ")
            && stdout.contains("exemplar links to trace")
    );
    server.stop().await;
}
