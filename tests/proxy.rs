//! The sub-path reverse proxy (issue 8): a stand-in upstream that records what reaches it checks
//! headers (X-Forwarded-*, trusted proxies, hop-by-hop and `Connection`-named headers, Host),
//! streamed bodies both ways, WebSocket upgrades and the Grafana sub-path recipe; a real
//! Prometheus 2.42 runs behind `/prometheus` and is used through Sightline (UI and API, with
//! `promtool`); a traversal corpus of thousands of encoded paths never reaches an upstream
//! outside its route's prefix, nor any host that is not configured.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::Server;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use sightline::config::Config;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body_len: u64,
    body_sum: u64,
}

impl Seen {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP upstream that records every request, streams bodies, echoes WebSockets, and can be
/// slow (`/slow`) or send a large body (`/big?bytes=N`).
#[derive(Clone)]
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    async fn start() -> Upstream {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Upstream {
            addr: l.local_addr().unwrap(),
            seen: Default::default(),
        };
        let seen = up.seen.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let seen = seen.clone();
            async move { handle(seen, req).await }
        });
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        up
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock())
    }
}

async fn handle(seen: Arc<Mutex<Vec<Seen>>>, mut req: Request) -> Response {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    let method = req.method().to_string();
    let websocket = req.headers().contains_key(header::UPGRADE);
    let on_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let mut body = req.into_body();
    let (mut len, mut sum) = (0u64, 0u64);
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(d) = frame.into_data() {
            len += d.len() as u64;
            sum = d.iter().fold(sum, |s, b| s.wrapping_add(*b as u64));
        }
    }
    seen.lock().push(Seen {
        method,
        target: target.clone(),
        headers,
        body_len: len,
        body_sum: sum,
    });
    if let Some(on) = on_upgrade {
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Ok(up) = on.await else { return };
            let mut io = hyper_util::rt::TokioIo::new(up);
            let mut buf = [0u8; 4096];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .body(Body::empty())
            .unwrap();
    }
    if target.contains("/slow") {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    if let Some(n) = target
        .split("bytes=")
        .nth(1)
        .and_then(|n| n.parse::<u64>().ok())
    {
        let chunks = futures_chunks(n);
        return Response::builder()
            .header("x-upstream", "yes")
            .header(header::CONNECTION, "x-hop")
            .header("x-hop", "must not pass")
            .body(Body::from_stream(chunks))
            .unwrap();
    }
    (
        [("x-upstream", "yes"), ("keep-alive", "timeout=5")],
        format!("upstream saw {target} ({len} bytes)"),
    )
        .into_response()
}

/// `n` bytes of a known pattern, 64 KiB at a time.
fn futures_chunks(
    n: u64,
) -> impl tokio_stream::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    let chunk = bytes::Bytes::from((0..65536u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let count = n / 65536;
    tokio_stream::iter((0..count).map(move |_| Ok(chunk.clone())))
}

fn routes_config(routes: &[(&str, &str, &str)]) -> String {
    let mut t = String::new();
    for (path, upstream, extra) in routes {
        t.push_str(&format!(
            "[[proxy]]\npath = \"{path}\"\nupstream = \"{upstream}\"\n{extra}\n"
        ));
    }
    t
}

/// Sightline with `[[proxy]]` routes from TOML (through the real config loader).
async fn sightline_with(toml_text: &str, tweak: impl FnOnce(&mut Config)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::load_toml(dir.path(), toml_text).unwrap();
    Server::start_in(dir, move |c| {
        c.proxy = cfg.proxy;
        c.trusted_proxies = cfg.trusted_proxies;
        tweak(c);
    })
    .await
}

/// One raw HTTP/1.1 exchange (no client-side path normalisation): the status code and the
/// whole answer.
fn raw(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_bodies_websockets_and_failures_through_the_proxy() {
    let up = Upstream::start().await;
    let closed = common::free_port();
    let config = format!(
        "trusted_proxies = \"127.0.0.2\"\n{}",
        routes_config(&[
            ("/app", &up.url(), "name = \"App\""),
            (
                "/grafana",
                &up.url(),
                "name = \"Grafana\"\ntimeout = \"1s\""
            ),
            (
                "/stripped",
                &format!("{}/base", up.url()),
                "strip_prefix = true\npreserve_host = true"
            ),
            ("/down", &format!("http://127.0.0.1:{closed}"), ""),
        ])
    );
    let s = sightline_with(&config, |_| {}).await;
    let host = s.api("").trim_start_matches("http://").to_string();
    let client = reqwest::Client::new();

    // Forwarded headers: set by Sightline; the client's own are dropped (untrusted peer).
    let r = client
        .get(s.api("/app/hello?x=1&y=%2F"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-prefix", "/evil")
        .header("forwarded", "for=6.6.6.6")
        .header("x-custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-upstream"], "yes");
    assert!(
        r.headers().get("keep-alive").is_none(),
        "hop-by-hop removed from answers"
    );
    let seen = up.take();
    let h = &seen[0];
    assert_eq!(h.target, "/app/hello?x=1&y=%2F");
    assert_eq!(h.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(h.header("x-forwarded-host"), Some(host.as_str()));
    assert_eq!(h.header("x-forwarded-proto"), Some("http"));
    assert_eq!(h.header("x-forwarded-prefix"), Some("/app"));
    assert_eq!(h.header("forwarded"), None);
    assert_eq!(h.header("x-custom"), Some("kept"));
    assert_eq!(h.header("host"), Some(up.addr.to_string().as_str()));

    // From a trusted proxy (127.0.0.2), its X-Forwarded-* are believed and extended.
    let trusted = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    trusted
        .get(s.api("/app/t"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "obs.example.com")
        .send()
        .await
        .unwrap();
    let h = &up.take()[0];
    assert_eq!(h.header("x-forwarded-for"), Some("203.0.113.9, 127.0.0.2"));
    assert_eq!(h.header("x-forwarded-proto"), Some("https"));
    assert_eq!(h.header("x-forwarded-host"), Some("obs.example.com"));

    // Connection-named headers go; they cannot take Sightline's X-Forwarded-For with them.
    let (code, _) = tokio::task::spawn_blocking({
        let host = host.clone();
        move || {
            raw(
                &host,
                &format!(
                    "GET /app/conn HTTP/1.1\r\nHost: {host}\r\nConnection: close, X-Forwarded-For, X-Remove-Me\r\nX-Remove-Me: 1\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n\r\n"
                ),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 200);
    let h = &up.take()[0];
    assert_eq!(h.header("x-remove-me"), None);
    assert_eq!(h.header("te"), None);
    assert_eq!(h.header("proxy-authorization"), None);
    assert_eq!(h.header("x-forwarded-for"), Some("127.0.0.1"));

    // Streamed bodies both ways: 64 MiB up, 64 MiB down.
    let up_bytes = 64u64 << 20;
    let chunk = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let stream = tokio_stream::iter(
        (0..64).map(move |_| Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk.clone()))),
    );
    let r = client
        .post(s.api(&format!("/app/upload?bytes={up_bytes}")))
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(stream)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("x-hop").is_none(),
        "Connection-named answer header removed"
    );
    let mut got = 0u64;
    let mut sum = 0u64;
    let mut r = r;
    while let Some(c) = r.chunk().await.unwrap() {
        got += c.len() as u64;
        sum = c.iter().fold(sum, |s, b| s.wrapping_add(*b as u64));
    }
    assert_eq!(got, up_bytes);
    let want_sum = (0..65536u64).map(|i| i % 251).sum::<u64>() * 1024;
    assert_eq!(sum, want_sum);
    let h = &up.take()[0];
    assert_eq!(
        (h.method.as_str(), h.body_len, h.body_sum),
        ("POST", up_bytes, 7 * up_bytes)
    );

    // WebSocket through the Grafana route (Grafana Live lives at /grafana/api/live/ws).
    let echoed = tokio::task::spawn_blocking({
        let host = host.clone();
        move || {
            let mut s = TcpStream::connect(&host).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(format!("GET /grafana/api/live/ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").as_bytes()).unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut b).unwrap();
                head.push(b[0]);
            }
            let head = String::from_utf8(head).unwrap();
            s.write_all(b"\x81\x05hello").unwrap();
            let mut back = [0u8; 7];
            s.read_exact(&mut back).unwrap();
            (head, back.to_vec())
        }
    })
    .await
    .unwrap();
    assert!(echoed.0.starts_with("HTTP/1.1 101"), "{}", echoed.0);
    assert!(echoed.0.to_ascii_lowercase().contains("upgrade: websocket"));
    assert_eq!(echoed.1, b"\x81\x05hello");
    let h = &up.take()[0];
    assert_eq!(
        h.target, "/grafana/api/live/ws",
        "Grafana's serve_from_sub_path: prefix kept"
    );
    assert_eq!(h.header("upgrade"), Some("websocket"));
    assert_eq!(h.header("x-forwarded-prefix"), Some("/grafana"));

    // strip_prefix and preserve_host, onto an upstream path prefix.
    client
        .get(s.api("/stripped/api/health"))
        .send()
        .await
        .unwrap();
    client.get(s.api("/stripped")).send().await.unwrap();
    let seen = up.take();
    assert_eq!(seen[0].target, "/base/api/health");
    assert_eq!(seen[1].target, "/base/");
    assert_eq!(seen[0].header("host"), Some(host.as_str()));
    assert_eq!(seen[0].header("x-forwarded-prefix"), Some("/stripped"));

    // Failures: refused -> 502, too slow -> 504, each a page naming the route.
    let r = client.get(s.api("/down/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("/down") && page.contains("refused the connection"),
        "{page}"
    );
    let t = Instant::now();
    let r = client.get(s.api("/grafana/slow")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert!(t.elapsed() < Duration::from_secs(4));
    assert!(r.text().await.unwrap().contains("did not answer in time"));
    up.take();

    // Only configured upstreams: CONNECT and absolute-form targets are refused.
    for req in [
        format!(
            "CONNECT {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            up.addr, up.addr
        ),
        format!(
            "GET {}/app/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
            up.url()
        ),
        format!("GET http://{host}/app/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    ] {
        let (code, _) = tokio::task::spawn_blocking({
            let host = host.clone();
            move || raw(&host, &req)
        })
        .await
        .unwrap();
        assert_eq!(code, 400);
    }
    assert!(up.take().is_empty(), "nothing reached the upstream");

    // The UI lists the proxied routes.
    let ui = client
        .get(s.api("/ui/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        ui.contains("href=\"/app/\"") && ui.contains(">App<"),
        "proxied routes in the navigation"
    );
    assert!(ui.contains("href=\"/grafana/\""));
    s.stop().await;
}

/// HTTP/2 clients (prior knowledge on the plain listener; over TLS, ALPN picks it, see tests/tls.rs):
/// requests reach the HTTP/1.1 upstream with their cookies in one header and the forwarded
/// headers from `:authority`; bodies stream both ways; answers lose their hop-by-hop headers
/// (HTTP/2 forbids them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_through_the_proxy() {
    let up = Upstream::start().await;
    let s = sightline_with(&routes_config(&[("/app", &up.url(), "")]), |_| {}).await;
    let host = s.api("").trim_start_matches("http://").to_string();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2
        .get(s.api("/app/h2?q=1"))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("keep-alive").is_none());
    assert_eq!(
        r.text().await.unwrap(),
        "upstream saw /app/h2?q=1 (0 bytes)"
    );
    let h = &up.take()[0];
    let cookies: Vec<&str> = h
        .headers
        .iter()
        .filter(|(k, _)| k == "cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["a=1; b=2"]);
    assert_eq!(h.header("x-forwarded-host"), Some(host.as_str()));
    assert_eq!(h.header("x-forwarded-proto"), Some("http"));
    assert_eq!(h.header("host"), Some(up.addr.to_string().as_str()));

    // 16 MiB up and 16 MiB down over one HTTP/2 stream, with a Connection-named header in the
    // upstream's answer that must not reach the HTTP/2 client.
    let n = 16u64 << 20;
    let chunk = bytes::Bytes::from(vec![3u8; 1 << 20]);
    let stream = tokio_stream::iter(
        (0..16).map(move |_| Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk.clone()))),
    );
    let mut r = h2
        .post(s.api(&format!("/app/upload?bytes={n}")))
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(stream)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-hop").is_none());
    let (mut got, mut sum) = (0u64, 0u64);
    while let Some(c) = r.chunk().await.unwrap() {
        got += c.len() as u64;
        sum = c.iter().fold(sum, |s, b| s.wrapping_add(*b as u64));
    }
    assert_eq!(got, n);
    assert_eq!(sum, (0..65536u64).map(|i| i % 251).sum::<u64>() * 256);
    let h = &up.take()[0];
    assert_eq!((h.body_len, h.body_sum), (n, 3 * n));
    // Sightline's own routes over HTTP/2 too.
    let r = h2.get(s.api("/api/v1/labels")).send().await.unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 200)
    );
    s.stop().await;
}

/// Debian's Prometheus 2.42 under `/prometheus`, as its documentation sets it up behind a
/// reverse proxy: its UI, its assets and its API used through Sightline, and `promtool` as the
/// API client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_behind_a_sub_path() {
    let pport = common::free_port();
    let s = sightline_with(
        &routes_config(&[(
            "/prometheus",
            &format!("http://127.0.0.1:{pport}"),
            "name = \"Prometheus\"",
        )]),
        |_| {},
    )
    .await;
    let host = s.api("").trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    metrics_path: /prometheus/metrics\n    static_configs:\n      - targets: ['127.0.0.1:{pport}']\n"
        ),
    )
    .unwrap();
    let mut prom = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
        .arg(format!("--web.external-url=http://{host}/prometheus/"))
        .arg("--web.route-prefix=/prometheus")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("Debian's prometheus must be installed (apt-get install prometheus)");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = client
            .get(s.api("/prometheus/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never became ready behind the proxy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The UI: /prometheus redirects within the prefix; the page and its script load through it.
    let r = client.get(s.api("/prometheus")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.url().path().starts_with("/prometheus/"), "{}", r.url());
    let html = r.text().await.unwrap();
    assert!(html.contains("Prometheus"), "{html}");
    // Debian builds the classic UI: its scripts live under /prometheus/classic/static/.
    let script = html
        .split('"')
        .find(|p| p.starts_with("/prometheus/") && p.contains("static/") && p.contains(".js"))
        .expect("the UI's scripts under the prefix")
        .to_string();
    let r = client.get(s.api(&script)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{script}");
    assert!(r.bytes().await.unwrap().len() > 10_000, "{script}");
    let graph = client.get(s.api("/prometheus/graph")).send().await.unwrap();
    assert_eq!(graph.status(), 200);
    // The API, once Prometheus has scraped itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: serde_json::Value = client
            .get(s.api("/prometheus/api/v1/query?query=up"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["data"]["result"][0]["value"][1] == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "no up sample: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("promtool")
            .args([
                "query",
                "instant",
                &format!("http://{host}/prometheus"),
                "up",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "up{{instance=\"127.0.0.1:{pport}\", job=\"prometheus\"}} => 1"
        )),
        "{text}"
    );
    let _ = prom.kill();
    let _ = prom.wait();
    s.stop().await;
}

/// Tokens traversal attempts are made of (Traefik CVE-2025-32431, Grafana CVE-2021-43798, and
/// the usual encodings).
const TOKENS: &[&str] = &[
    "..",
    ".",
    "%2e%2e",
    "%2E%2e",
    "%2e",
    ".%2e",
    "%2e.",
    "%252e%252e",
    "%25252e",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "\\",
    "",
    "secret",
    "app",
    "etc",
    "passwd",
    "x",
    "..;",
    ";",
    "%3b",
    "%00",
    "..%2f",
    "%2e%2e%2f",
    "..%5c",
    "%c0%ae%c0%ae",
    "%e0%80%ae",
    "..%00",
    "%2e%2e%5c",
    "...",
    "%20..",
    "..%20",
    "%u002e",
    "%%32%65",
    "~",
    "%7e",
];
const SEPS: &[&str] = &["/", "//", "\\", "/./", "%2f", "/%2e/"];
const STARTS: &[&str] = &[
    "/app/", "/app", "//app/", "/app\\", "/%61pp/", "/APP/", "/", "/secret/", "/ui/", "/./app/",
];

fn corpus(n: usize) -> Vec<String> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % m as u64) as usize
    };
    let mut out = vec![
        "/app/../secret/x".to_string(),
        "/app/..%2fsecret".to_string(),
        "/app/%2e%2e/%2e%2e/etc/passwd".to_string(),
        "/app/%252e%252e/secret".to_string(),
        "/app/..\\..\\secret".to_string(),
        "/app/public/plugins/alertlist/../../../../../../etc/passwd".to_string(),
        "/app/public/plugins/alertlist/..%2f..%2f..%2f..%2fetc%2fpasswd".to_string(),
        "/app/%2e%2e%2fsecret%2fx".to_string(),
        "/app/;/../secret".to_string(),
    ];
    while out.len() < n {
        let mut p = STARTS[next(STARTS.len())].to_string();
        for i in 0..1 + next(6) {
            if i > 0 {
                p.push_str(SEPS[next(SEPS.len())]);
            }
            p.push_str(TOKENS[next(TOKENS.len())]);
        }
        if next(4) == 0 {
            p.push_str("?q=..%2f..%2f&x=/../");
        }
        out.push(p);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traversal_corpus_never_leaves_a_route_nor_reaches_other_hosts() {
    let app = Upstream::start().await;
    let secret = Upstream::start().await;
    // A host no route names: nothing may ever connect to it.
    let canary = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let canary_addr = canary.local_addr().unwrap();
    let canary_hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let hits = canary_hits.clone();
        tokio::spawn(async move {
            while canary.accept().await.is_ok() {
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    let s = sightline_with(
        &routes_config(&[("/app", &app.url(), ""), ("/secret", &secret.url(), "")]),
        |_| {},
    )
    .await;
    let host = s.api("").trim_start_matches("http://").to_string();
    let paths = corpus(4000);
    let mut requests: Vec<(String, String)> = paths
        .iter()
        .map(|p| {
            (
                p.clone(),
                format!("GET {p} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            )
        })
        .collect();
    // Requests aimed at the canary: absolute-form targets, CONNECT, its address as Host.
    for p in ["/app/x", "/", "/secret/y"] {
        requests.push((
            format!("absolute {p}"),
            format!("GET http://{canary_addr}{p} HTTP/1.1\r\nHost: {canary_addr}\r\nConnection: close\r\n\r\n"),
        ));
        requests.push((
            format!("host {p}"),
            format!("GET {p} HTTP/1.1\r\nHost: {canary_addr}\r\nConnection: close\r\n\r\n"),
        ));
    }
    requests.push((
        "connect".into(),
        format!("CONNECT {canary_addr} HTTP/1.1\r\nHost: {canary_addr}\r\n\r\n"),
    ));
    let total = requests.len();
    let statuses = tokio::task::spawn_blocking(move || {
        let chunks: Vec<Vec<(String, String)>> =
            requests.chunks(total / 8 + 1).map(|c| c.to_vec()).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let host = host.clone();
                std::thread::spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(p, r)| (p, raw(&host, &r).0))
                        .collect::<Vec<_>>()
                })
            })
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<_>>();
        handles
    })
    .await
    .unwrap();
    assert_eq!(statuses.len(), total);
    for (p, code) in &statuses {
        assert!(
            [200, 400, 404, 405, 307, 308].contains(code),
            "{p:?} answered {code}"
        );
    }
    let check = |up: &Upstream, prefix: &str| {
        let seen = up.take();
        for s in &seen {
            let path = s.target.split('?').next().unwrap();
            assert!(
                sightline::base::urlpath::under(path, prefix),
                "{prefix} upstream got {path:?}"
            );
            assert_eq!(
                sightline::base::urlpath::normalise(path, true).as_deref(),
                Ok(path),
                "{prefix} upstream got a path that is not normal"
            );
            let lower = path.to_ascii_lowercase();
            for bad in ["/../", "/./", "//", "%2e", "%2f", "%5c", "%25", "\\"] {
                assert!(!lower.contains(bad), "{prefix} upstream got {path:?}");
            }
        }
        seen.len()
    };
    let (a, b) = (check(&app, "/app"), check(&secret, "/secret"));
    assert!(
        a > 200 && b > 30,
        "the corpus exercised both routes: {a} and {b}"
    );
    let refused = statuses.iter().filter(|(_, c)| *c == 400).count();
    assert!(refused > 500, "{refused} refused");
    assert_eq!(
        canary_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "an unconfigured host was contacted"
    );
    println!(
        "{total} requests: {a} reached /app, {b} reached /secret (each inside its prefix), {refused} refused with 400"
    );
    s.stop().await;
}
