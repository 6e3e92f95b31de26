//! The auth layer (issue 8): an auth matrix over every route the routers define (read from the
//! `.route("...")` calls in `src/`, so a new route is in the matrix the day it is added), plus the
//! proxied route, the OTLP/HTTP listener and the three gRPC services, each with no, wrong and
//! right credentials; and the browser flow (login form with CSRF, session cookie attributes,
//! CSRF on cookie-authenticated writes, sign-out), open-redirect refusal, and what a proxied
//! upstream sees (no Sightline cookie or Authorization, the trusted user header).

mod common;

use std::time::Duration;

use common::Server;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use parking_lot::Mutex;
use std::sync::Arc;

const BASE: &str = "/obs";

/// Every route path the routers define, read from the source.
fn routes() -> Vec<String> {
    let re = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for c in re.captures_iter(&text) {
                    out.push(c[1].to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A concrete path for a route pattern.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{*path}", "app.css")
        .replace("{id}", "0123456789abcdef0123456789abcdef")
        .replace("{span}", "0123456789abcdef")
        .replace("{name}", "job")
        .replace("{service}", "svc")
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Headers>>>);

type Headers = Vec<(String, String)>;

async fn upstream() -> (String, Seen) {
    let seen = Seen::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let s = s.clone();
        async move {
            s.0.lock().push(
                req.headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
            );
            "upstream"
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

async fn start(up: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let hash = sightline::auth::hash_password("wonderland");
    let cfg = common::load_toml(
        dir.path(),
        &format!(
            "base_path = \"{BASE}\"\n[auth]\nenabled = true\nusers = [\"alice:{hash}\"]\ntokens = [\"tok-read\"]\ningest_keys = [\"ingest-key\"]\ntrusted_header = \"X-WEBAUTH-USER\"\n[[proxy]]\npath = \"/app\"\nupstream = \"{up}\"\n"
        ),
    )
    .unwrap();
    Server::start_in(dir, move |c| {
        c.base_path = cfg.base_path;
        c.auth = cfg.auth;
        c.proxy = cfg.proxy;
    })
    .await
}

/// A gRPC request carrying `cred` (if any) as its `authorization` metadata.
fn grpc_request<T>(cred: Option<&str>, body: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(body);
    if let Some(c) = cred {
        r.metadata_mut().insert("authorization", c.parse().unwrap());
    }
    r
}

#[derive(Clone, Copy, Debug)]
enum Cred {
    None,
    WrongBasic,
    WrongBearer,
    Basic,
    Bearer,
    Ingest,
}

fn with(rb: reqwest::RequestBuilder, c: Cred) -> reqwest::RequestBuilder {
    match c {
        Cred::None => rb,
        Cred::WrongBasic => rb.basic_auth("alice", Some("rabbit")),
        Cred::WrongBearer => rb.bearer_auth("tok-wrong"),
        Cred::Basic => rb.basic_auth("alice", Some("wonderland")),
        Cred::Bearer => rb.bearer_auth("tok-read"),
        Cred::Ingest => rb.bearer_auth("ingest-key"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_over_http_and_grpc_with_no_wrong_and_right_credentials() {
    let (up, _seen) = upstream().await;
    let s = start(&up).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut checked = 0;
    let mut paths: Vec<(String, bool)> = routes()
        .iter()
        .map(|r| {
            // Telemetry front doors: OTLP/HTTP, remote write, Prometheus 3's OTLP path, Loki push.
            let ingest = r.starts_with("/v1/")
                || r == "/api/v1/write"
                || r == "/api/v1/otlp/v1/metrics"
                || r == "/loki/api/v1/push"
                || r == "/api/prom/push";
            (format!("{BASE}{}", concrete(r)), ingest)
        })
        .collect();
    // The Jaeger API also answers at the root; the proxied route; OTLP/HTTP on its own port.
    paths.push(("/api/services".into(), false));
    paths.push(("/api/traces/0123456789abcdef0123456789abcdef".into(), false));
    paths.push((format!("{BASE}/app/anything"), false));
    assert!(paths.len() > 40, "{} routes found", paths.len());
    let mut failures = Vec::new();
    for (path, ingest) in &paths {
        let open =
            path == &format!("{BASE}/healthz") || path.starts_with(&format!("{BASE}/ui/assets/"));
        for cred in [
            Cred::None,
            Cred::WrongBasic,
            Cred::WrongBearer,
            Cred::Basic,
            Cred::Bearer,
            Cred::Ingest,
        ] {
            let url = s.api(path);
            let rb = if *ingest {
                client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(Vec::new())
            } else {
                client.get(&url)
            };
            let status = with(rb, cred).send().await.unwrap().status().as_u16();
            let allowed = match cred {
                Cred::None | Cred::WrongBasic | Cred::WrongBearer => open,
                Cred::Basic | Cred::Bearer => open || !ingest,
                // Telemetry senders cannot read.
                Cred::Ingest => open || *ingest,
            };
            let ok = if allowed {
                status != 401 && status != 403
            } else {
                status == 401
            };
            if !ok {
                failures.push(format!("{path} {cred:?}: {status}"));
            }
            checked += 1;
        }
    }
    for cred in [Cred::None, Cred::WrongBearer, Cred::Basic, Cred::Ingest] {
        for sig in ["traces", "metrics", "logs"] {
            let status = with(
                client
                    .post(s.otlp_http(&format!("/v1/{sig}")))
                    .header("content-type", "application/x-protobuf")
                    .body(Vec::new()),
                cred,
            )
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
            let want_ok = matches!(cred, Cred::Ingest);
            if (status == 200) != want_ok || (!want_ok && status != 401) {
                failures.push(format!(":4318/v1/{sig} {cred:?}: {status}"));
            }
            checked += 1;
        }
    }
    // gRPC: TraceService, MetricsService, LogsService.
    for (cred, want) in [
        (None, tonic::Code::Unauthenticated),
        (Some("Bearer wrong"), tonic::Code::Unauthenticated),
        (Some("Bearer tok-read"), tonic::Code::Unauthenticated),
        (Some("Bearer ingest-key"), tonic::Code::Ok),
    ] {
        let ch = tonic::transport::Endpoint::from_shared(s.otlp_grpc())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let codes = [
            TraceServiceClient::new(ch.clone())
                .export(grpc_request(cred, ExportTraceServiceRequest::default()))
                .await
                .map_or_else(|e| e.code(), |_| tonic::Code::Ok),
            MetricsServiceClient::new(ch.clone())
                .export(grpc_request(cred, ExportMetricsServiceRequest::default()))
                .await
                .map_or_else(|e| e.code(), |_| tonic::Code::Ok),
            LogsServiceClient::new(ch)
                .export(grpc_request(cred, ExportLogsServiceRequest::default()))
                .await
                .map_or_else(|e| e.code(), |_| tonic::Code::Ok),
        ];
        for (svc, code) in ["trace", "metrics", "logs"].iter().zip(codes) {
            if code != want {
                failures.push(format!("grpc {svc} {cred:?}: {code:?}"));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "{checked} auth checks over {} HTTP routes, OTLP/HTTP and 3 gRPC services",
        paths.len()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_flow_csrf_and_what_upstreams_see() {
    let (up, seen) = upstream().await;
    let s = start(&up).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A browser asking for a page goes to the login page, and will come back.
    let r = client
        .get(s.api("/obs/ui/traces?range=1h"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/obs/ui/login?next=%2Fobs%2Fui%2Ftraces%3Frange%3D1h"
    );
    // The form and its double-submit cookie.
    let r = client
        .get(s.api("/obs/ui/login?next=%2Fobs%2Fui%2Ftraces"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/obs/"),
        "{set}"
    );
    let csrf = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("name=\"csrf\" value=\"{csrf}\"")));
    let login = |token: &str, pw: &str, next: &str| {
        client
            .post(s.api("/obs/ui/login"))
            .header("cookie", format!("sightline_csrf={csrf}"))
            .form(&[
                ("csrf", token),
                ("username", "alice"),
                ("password", pw),
                ("next", next),
            ])
            .send()
    };
    assert_eq!(
        login("forged", "wonderland", "/obs/ui/")
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        login(&csrf, "rabbit", "/obs/ui/").await.unwrap().status(),
        401
    );
    // An open redirect is refused: the next page is always under the base path.
    let r = login(&csrf, "wonderland", "https://evil.example/")
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/obs/ui/");
    let r = login(&csrf, "wonderland", "/obs/ui/traces").await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/obs/ui/traces");
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("sightline_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Lax")
            && session.contains("Path=/obs/")
    );
    let cookie = session.split(';').next().unwrap().to_string();
    // Signed in: pages render with a sign-out form carrying the session's CSRF token.
    let page = client
        .get(s.api("/obs/ui/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("action=\"/obs/ui/logout\""), "sign-out form");
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    // Cookie-authenticated writes need the CSRF token or the same origin.
    let q = [("query", "1+1")];
    let r = client
        .post(s.api("/obs/api/v1/query"))
        .header("cookie", &cookie)
        .form(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .post(s.api("/obs/api/v1/query"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .post(s.api("/obs/api/v1/query"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &token)
        .form(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A proxied upstream never sees Sightline's cookie or credentials, and learns the user only
    // from the trusted header (a client cannot forge it).
    client
        .get(s.api("/obs/app/x"))
        .header("cookie", format!("{cookie}; app_session=keep"))
        .header("x-webauth-user", "mallory")
        .send()
        .await
        .unwrap();
    client
        .get(s.api("/obs/app/y"))
        .bearer_auth("tok-read")
        .header("x-webauth-user", "mallory")
        .send()
        .await
        .unwrap();
    let got = std::mem::take(&mut *seen.0.lock());
    let get =
        |h: &Vec<(String, String)>, k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get(&got[0], "cookie").as_deref(), Some("app_session=keep"));
    assert_eq!(get(&got[0], "x-webauth-user").as_deref(), Some("alice"));
    assert_eq!(get(&got[1], "authorization"), None);
    assert_eq!(get(&got[1], "x-webauth-user").as_deref(), Some("token"));
    // Sign out (POST with the token); the session is gone.
    let r = client
        .post(s.api("/obs/ui/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .post(s.api("/obs/ui/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = client
        .get(s.api("/obs/api/services"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    tokio::time::sleep(Duration::from_millis(10)).await;
    s.stop().await;
}
