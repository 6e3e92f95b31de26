//! TLS on the listeners: every listener over TLS with real clients (reqwest over HTTP/2 and
//! HTTP/1.1, the `opentelemetry-otlp` crate over gRPC and HTTP), what changes under TLS (Secure
//! cookies, X-Forwarded-Proto for proxied apps), certificate reloads on SIGHUP sent to the real
//! binary (a good reload switches new handshakes to the new certificate; a broken file or a key
//! that does not fit keeps the old one and the process up), and clear errors at start.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Child, Server, get_json};
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use tokio_rustls::rustls;

/// A test CA and the certificates it signs for `localhost` and 127.0.0.1.
struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A leaf certificate and its key, as PEM, with the certificate's DER for comparisons.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new() -> Ca {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "sightline TLS test CA");
        Ca {
            issuer: rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().unwrap())
                .unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self, cn: &str) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

fn write_pair(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, &leaf.cert_pem).unwrap();
    std::fs::write(&k, &leaf.key_pem).unwrap();
    (c, k)
}

fn https_client(ca: &Ca) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The certificate a TLS handshake with `port` presents, checked against `ca`.
async fn presented(ca: &Ca, port: u16) -> Result<Vec<u8>, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            ca.issuer.der().to_vec(),
        ))
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].to_vec())
}

async fn upstream_recording_headers() -> (String, Arc<parking_lot::Mutex<Vec<(String, String)>>>) {
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let s = s.clone();
        async move {
            *s.lock() = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            "upstream"
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_serves_tls_to_real_clients() {
    let ca = Ca::new();
    let leaf = ca.leaf("sightline");
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = write_pair(certs.path(), &leaf);
    let (up, seen) = upstream_recording_headers().await;
    let hash = sightline::auth::hash_password("wonderland");
    let cfg = common::load_toml(
        certs.path(),
        &format!(
            "[tls]\ncert_file = {cert_file:?}\nkey_file = {key_file:?}\n[auth]\nenabled = true\nusers = [\"alice:{hash}\"]\ntokens = [\"tok\"]\ningest_keys = [\"ik\"]\n[[proxy]]\npath = \"/app\"\nupstream = \"{up}\"\n"
        ),
    )
    .unwrap();
    let s = Server::start_in(dir, move |c| {
        c.tls = cfg.tls;
        c.auth = cfg.auth;
        c.proxy = cfg.proxy;
    })
    .await;
    let r = s.running.as_ref().unwrap();
    let (http, otlp_http, otlp_grpc) = (r.http.port(), r.otlp_http.port(), r.otlp_grpc.port());
    let base = format!("https://localhost:{http}");
    let client = https_client(&ca);

    // The certificate from the file, on all three listeners.
    for port in [http, otlp_http, otlp_grpc] {
        assert_eq!(presented(&ca, port).await.unwrap(), leaf.der, "port {port}");
    }
    // HTTP/2 by ALPN, and HTTP/1.1 for clients that only speak that.
    let resp = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let h1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let resp = h1.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    // A client that does not trust the CA, and plain HTTP to a TLS port, get nothing.
    assert!(
        reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{http}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.unwrap().status() != 200,
        "plain HTTP must not be served on a TLS listener"
    );
    // The API with a bearer token, over TLS.
    let resp = client
        .get(format!("{base}/api/v1/query?query=1%2B1"))
        .bearer_auth("tok")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["data"]["result"][1], "2");

    // Under TLS the browser's cookies are Secure: the login form's CSRF cookie and the session.
    let r = client.get(format!("{base}/ui/login")).send().await.unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("; Secure") && set.contains("HttpOnly"),
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
    let r = client
        .post(format!("{base}/ui/login"))
        .header("cookie", format!("sightline_csrf={csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", "wonderland"),
            ("next", "/ui/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("sightline_session="))
        .expect("a session cookie");
    assert!(
        session.contains("; Secure") && session.contains("HttpOnly"),
        "{session}"
    );

    // A proxied app learns that its clients came over https.
    let resp = client
        .get(format!("{base}/app/x"))
        .bearer_auth("tok")
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let headers = seen.lock().clone();
    let get = |k: &str| {
        headers
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("x-forwarded-proto"), ["https"]);
    assert_eq!(get("x-forwarded-host"), [format!("localhost:{http}")]);

    // OTLP over TLS with real SDKs, each trusting the test's CA and sending the ingest key: the
    // opentelemetry-otlp crate over gRPC, the Python SDK over HTTP/protobuf.
    let ca_pem = ca.pem();
    let grpc = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("https://localhost:{otlp_grpc}"))
        .with_tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem.clone()))
                .domain_name("localhost"),
        )
        .with_metadata({
            let mut m = tonic::metadata::MetadataMap::new();
            m.insert("authorization", "Bearer ik".parse().unwrap());
            m
        })
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("tls-grpc")
                .build(),
        )
        .with_batch_exporter(grpc)
        .build();
    provider.tracer("t").in_span("over-grpc-tls", |_| {});
    provider.force_flush().unwrap();
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let out = tokio::process::Command::new("python3")
        .arg(format!(
            "{}/tests/python/tls_export.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg("--endpoint")
        .arg(format!("https://localhost:{otlp_http}/v1/traces"))
        .arg("--ca")
        .arg(&ca_file)
        .args(["--key", "ik"])
        // requests lets these variables override a session's CA file (psf/requests#3829).
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .await
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Both arrived: the Jaeger API (over TLS, with the token) lists both services.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v: serde_json::Value = client
            .get(format!("{base}/api/services"))
            .bearer_auth("tok")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_str())
            .collect();
        if names.contains(&"tls-grpc") && names.contains(&"tls-http") {
            break;
        }
        assert!(Instant::now() < deadline, "services seen: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

async fn reloads(client: &reqwest::Client, port: u16) -> (f64, f64) {
    let text = client
        .get(format!("https://localhost:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |result: &str| {
        let prefix = format!("sightline_tls_certificate_reloads_total{{result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
            .parse::<f64>()
            .unwrap()
    };
    (value("ok"), value("failed"))
}

async fn wait_reloads(client: &reqwest::Client, port: u16, want: (f64, f64)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = reloads(client, port).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "reloads {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sighup(child: &Child) {
    let rc = unsafe { libc::kill(child.child.id() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(rc, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_a_bad_one_is_refused() {
    let ca = Ca::new();
    let (a, b) = (ca.leaf("first"), ca.leaf("second"));
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = write_pair(certs.path(), &a);
    let mut child = Child::spawn_with(
        data.path(),
        &[
            ("SIGHTLINE_TLS_CERT_FILE", cert_file.to_str().unwrap()),
            ("SIGHTLINE_TLS_KEY_FILE", key_file.to_str().unwrap()),
        ],
    );
    let client = https_client(&ca);
    // The first certificate, and a keep-alive connection opened with it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(der) = presented(&ca, child.http).await {
            assert_eq!(der, a.der);
            break;
        }
        assert!(Instant::now() < deadline, "no TLS on the main listener");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reloads(&client, child.http).await, (0.0, 0.0));

    // Renewed files + SIGHUP: new handshakes on every listener get the second certificate, and
    // the connection opened before keeps working.
    write_pair(certs.path(), &b);
    sighup(&child);
    wait_reloads(&client, child.http, (1.0, 0.0)).await;
    for port in [child.http, child.otlp_http, child.otlp_grpc] {
        assert_eq!(presented(&ca, port).await.unwrap(), b.der, "port {port}");
    }
    let r = client
        .get(format!("https://localhost:{}/healthz", child.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A half-written certificate file: refused, the second certificate stays.
    std::fs::write(&cert_file, &b.cert_pem[..b.cert_pem.len() / 2]).unwrap();
    sighup(&child);
    wait_reloads(&client, child.http, (1.0, 1.0)).await;
    assert_eq!(presented(&ca, child.http).await.unwrap(), b.der);
    // A certificate whose key is not the one in the key file: refused too.
    let c = ca.leaf("third");
    std::fs::write(&cert_file, &c.cert_pem).unwrap();
    sighup(&child);
    wait_reloads(&client, child.http, (1.0, 2.0)).await;
    assert_eq!(presented(&ca, child.otlp_grpc).await.unwrap(), b.der);
    // A missing key file: refused.
    std::fs::remove_file(&key_file).unwrap();
    sighup(&child);
    wait_reloads(&client, child.http, (1.0, 3.0)).await;
    // Fixed files: taken.
    write_pair(certs.path(), &c);
    sighup(&child);
    wait_reloads(&client, child.http, (2.0, 3.0)).await;
    assert_eq!(presented(&ca, child.otlp_http).await.unwrap(), c.der);
    // The process lived through all of it, and acknowledged data is still served.
    assert!(
        child.child.try_wait().unwrap().is_none(),
        "sightline exited"
    );
    let r = client
        .get(format!("https://localhost:{}/healthz", child.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn some_listeners_only_and_clear_errors_at_start() {
    let ca = Ca::new();
    let leaf = ca.leaf("sightline");
    let certs = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = write_pair(certs.path(), &leaf);
    let load = |env: Vec<(&str, &str)>| {
        sightline::config::load(
            None,
            env.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
            &sightline::config::Overrides::default(),
        )
        .map(|(c, _)| c)
    };
    // listeners = "otlp_grpc, otlp_http": the main listener stays plain HTTP.
    let cfg = load(vec![
        ("SIGHTLINE_TLS_CERT_FILE", cert_file.to_str().unwrap()),
        ("SIGHTLINE_TLS_KEY_FILE", key_file.to_str().unwrap()),
        ("SIGHTLINE_TLS_LISTENERS", "otlp_grpc, otlp_http"),
    ])
    .unwrap();
    let s = Server::start_in(tempfile::tempdir().unwrap(), move |c| c.tls = cfg.tls).await;
    let (status, _) = get_json(&s.api("/api/v1/labels")).await;
    assert_eq!(status, 200);
    let r = s.running.as_ref().unwrap();
    assert_eq!(presented(&ca, r.otlp_grpc.port()).await.unwrap(), leaf.der);
    assert_eq!(presented(&ca, r.otlp_http.port()).await.unwrap(), leaf.der);
    assert!(presented(&ca, r.http.port()).await.is_err());
    s.stop().await;

    // Half a pair, or an unknown listener name: the configuration is refused, naming the key.
    let e = load(vec![(
        "SIGHTLINE_TLS_CERT_FILE",
        cert_file.to_str().unwrap(),
    )])
    .unwrap_err()
    .to_string();
    assert!(e.contains("tls.key_file"), "{e}");
    let e = load(vec![
        ("SIGHTLINE_TLS_CERT_FILE", cert_file.to_str().unwrap()),
        ("SIGHTLINE_TLS_KEY_FILE", key_file.to_str().unwrap()),
        ("SIGHTLINE_TLS_LISTENERS", "http, grpc"),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("tls.listeners") && e.contains("grpc"), "{e}");

    // Files that are missing, not PEM, or do not fit together: the binary does not start, and
    // says which file and why.
    let garbage = certs.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let other = ca.leaf("other");
    let other_key = certs.path().join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let missing = certs.path().join("missing.pem");
    for (cert, key, says) in [
        (&missing, &key_file, "cannot open the TLS certificate file"),
        (&garbage, &key_file, "holds no CERTIFICATE block"),
        (&cert_file, &garbage, "holds no usable private key"),
        (&cert_file, &other_key, "does not fit the certificate"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["--http", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0"])
            .args(["--otlp-grpc", "127.0.0.1:0"])
            .env("SIGHTLINE_TLS_CERT_FILE", cert)
            .env("SIGHTLINE_TLS_KEY_FILE", key)
            .env("SIGHTLINE_HOST_ENABLED", "false")
            .env("SIGHTLINE_GPU_ENABLED", "false")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {cert:?} {key:?}");
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
}

/// An https upstream behind a route, trusted through the route's `ca_file`; the same upstream
/// behind a route without it is a 502 (the system's roots do not know the test CA).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_trusted_through_its_ca_file() {
    let ca = Ca::new();
    let leaf = ca.leaf("upstream");
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    // The stand-in upstream: rustls with the test CA's certificate, answering with what it saw.
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![rustls::pki_types::CertificateDer::from(leaf.der.clone())],
        rustls::pki_types::pem::PemObject::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let host = req
                            .headers()
                            .get("host")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(format!(
                                "tls upstream saw {} host {host}",
                                req.uri()
                            ))),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    let toml = format!(
        "[[proxy]]\npath = \"/sec\"\nupstream = \"https://localhost:{port}/base\"\nca_file = {ca_file:?}\n[[proxy]]\npath = \"/untrusted\"\nupstream = \"https://localhost:{port}\"\n"
    );
    let proxy = common::load_toml(files.path(), &toml).unwrap().proxy;
    let s = Server::start_in(tempfile::tempdir().unwrap(), move |c| c.proxy = proxy).await;
    let r = reqwest::get(s.api("/sec/x?y=1")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        format!("tls upstream saw /base/sec/x?y=1 host localhost:{port}")
    );
    let r = reqwest::get(s.api("/untrusted/x")).await.unwrap();
    assert_eq!(r.status(), 502);
    s.stop().await;

    // ca_file on an http upstream, and a CA file that is not PEM, are refused with the route named.
    let e = common::load_toml(
        files.path(),
        &format!(
            "[[proxy]]\npath = \"/p\"\nupstream = \"http://127.0.0.1:1\"\nca_file = {ca_file:?}\n"
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("proxy[0].ca_file"), "{e}");
    let garbage = files.path().join("garbage.pem");
    std::fs::write(&garbage, "no certificates here").unwrap();
    let cfg = common::load_toml(
        files.path(),
        &format!(
            "[[proxy]]\npath = \"/p\"\nupstream = \"https://127.0.0.1:1\"\nca_file = {garbage:?}\n"
        ),
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut c = sightline::config::Config::for_data_dir(data.path());
    c.proxy = cfg.proxy;
    let e = format!("{:#}", sightline::app::start(c).await.err().unwrap());
    assert!(
        e.contains("/p") && e.contains("holds no CERTIFICATE block"),
        "{e}"
    );
}

/// Scraping over TLS from a `prometheus.yml` (issue 22): a Sightline serving `/metrics` over
/// TLS behind an API token is scraped by a second Sightline with `scheme: https`, `tls_config`
/// and credentials. Trusted through `ca_file` with the token: up; through
/// `insecure_skip_verify` with the token read from `bearer_token_file`: up; without the token: down
/// with the 401; without trusting the CA: down with a certificate error.
#[test]
fn scrapes_https_targets_with_tls_config_and_credentials() {
    let ca = Ca::new();
    let leaf = ca.leaf("target");
    let certs = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = write_pair(certs.path(), &leaf);
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let token_file = certs.path().join("token");
    std::fs::write(&token_file, "tok\n").unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let target = Child::spawn_with(
        target_dir.path(),
        &[
            ("SIGHTLINE_TLS_CERT_FILE", cert_file.to_str().unwrap()),
            ("SIGHTLINE_TLS_KEY_FILE", key_file.to_str().unwrap()),
            ("SIGHTLINE_AUTH_ENABLED", "true"),
            ("SIGHTLINE_AUTH_TOKENS", "tok"),
            ("SIGHTLINE_AUTH_INGEST_KEYS", "ik"),
        ],
    );
    let addr = format!("127.0.0.1:{}", target.http);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            r#"scrape_configs:
  - job_name: ca_and_token
    scrape_interval: 1s
    scheme: https
    tls_config: {{ca_file: {ca:?}}}
    authorization: {{credentials: tok}}
    static_configs: [{{targets: ['{addr}']}}]
  - job_name: skip_verify_token_file
    scrape_interval: 1s
    scheme: https
    tls_config: {{insecure_skip_verify: true}}
    bearer_token_file: {tf:?}
    static_configs: [{{targets: ['{addr}']}}]
  - job_name: no_token
    scrape_interval: 1s
    scheme: https
    tls_config: {{ca_file: {ca:?}}}
    static_configs: [{{targets: ['{addr}']}}]
  - job_name: untrusted
    scrape_interval: 1s
    scheme: https
    authorization: {{credentials: tok}}
    static_configs: [{{targets: ['{addr}']}}]
"#,
            ca = ca_file.to_str().unwrap(),
            tf = token_file.to_str().unwrap(),
        ),
    )
    .unwrap();
    let toml = dir.path().join("sightline.toml");
    std::fs::write(&toml, "[scrape]\nprometheus_config = \"prometheus.yml\"\n").unwrap();
    let scraper = Child::spawn_with(
        &dir.path().join("data"),
        &[("SIGHTLINE_CONFIG", toml.to_str().unwrap())],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let v: serde_json::Value = reqwest::blocking::get(scraper.api("/api/v1/targets"))
            .unwrap()
            .json()
            .unwrap();
        let h: std::collections::BTreeMap<String, (String, String)> = v["data"]["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["scrapePool"].as_str().unwrap().to_string(),
                    (
                        t["health"].as_str().unwrap().to_string(),
                        t["lastError"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect();
        if h.len() == 4 && h.values().all(|(s, _)| s != "unknown") {
            break h;
        }
        assert!(Instant::now() < deadline, "targets never scraped: {v}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(health["ca_and_token"], ("up".into(), String::new()));
    assert_eq!(
        health["skip_verify_token_file"],
        ("up".into(), String::new())
    );
    assert_eq!(health["no_token"].0, "down");
    assert!(health["no_token"].1.contains("401"), "{health:?}");
    assert_eq!(health["untrusted"].0, "down");
    assert!(
        health["untrusted"].1.to_lowercase().contains("certificate"),
        "{health:?}"
    );
    // The scraped samples are stored with the target's labels.
    let v: serde_json::Value = reqwest::blocking::get(
        scraper.api("/api/v1/query?query=count({job=\"ca_and_token\",__name__=~\"sightline_.*\"})"),
    )
    .unwrap()
    .json()
    .unwrap();
    let n: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or("0")
        .parse()
        .unwrap();
    assert!(n > 10.0, "{v}");
    drop(target);
}
