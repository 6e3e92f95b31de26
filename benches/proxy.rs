//! Reverse-proxy benchmark (not a test): `cargo bench --bench proxy -- [--seconds N]
//! [--connections N] [--tls]`.
//!
//! With `--tls` both proxies terminate TLS (the same self-signed certificate: Sightline's `[tls]`
//! on the main listener, Caddy's `tls cert key`); wrk keeps its connections open, so this
//! measures encrypted request handling more than handshakes.
//!
//! One upstream (a small axum server on its own thread in this process, answering 1 KiB) behind
//! two proxies on this machine: Sightline's `[[proxy]]` route (release binary) and Debian's Caddy
//! 2.6 (`reverse_proxy`), each driven by Debian's `wrk` with the same connections for the same
//! time, alternating Caddy, Sightline, Caddy, Sightline. Reports requests/s and p99 latency of
//! each, and Sightline's ratios to Caddy.

use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{Sightline, arg, free_port};

fn upstream() -> u16 {
    let port = free_port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let body = "x".repeat(1024);
            let app = axum::Router::new().fallback(move || {
                let b = body.clone();
                async move { b }
            });
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    port
}

fn wait_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

/// wrk's requests/s and p99 latency (ms).
fn wrk(url: &str, seconds: u64, connections: u64) -> (f64, f64) {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .expect("wrk must be installed (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| ms(v.trim()))
        .unwrap_or_else(|| panic!("no 99% in wrk output:\n{text}"));
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    if let Some(e) = errors {
        println!("  wrk: {}", e.trim());
    }
    (rps, p99)
}

fn ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

fn main() {
    let seconds = arg("--seconds", 15);
    let connections = arg("--connections", 64);
    let tls = std::env::args().any(|a| a == "--tls");
    let up = upstream();
    wait_port(up);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let self_signed =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(&cert, self_signed.cert.pem()).unwrap();
    std::fs::write(&key, self_signed.signing_key.serialize_pem()).unwrap();
    let mut env = vec![
        ("SIGHTLINE_SPANMETRICS_ENABLED", "false"),
        ("SIGHTLINE_TLS_LISTENERS", "http"),
    ];
    if tls {
        env.push(("SIGHTLINE_TLS_CERT_FILE", cert.to_str().unwrap()));
        env.push(("SIGHTLINE_TLS_KEY_FILE", key.to_str().unwrap()));
    }
    let cfg = dir.path().join("sightline.toml");
    std::fs::write(
        &cfg,
        format!("[[proxy]]\npath = \"/app\"\nupstream = \"http://127.0.0.1:{up}\"\n"),
    )
    .unwrap();
    env.push(("SIGHTLINE_CONFIG", cfg.to_str().unwrap()));
    let sl = Sightline::spawn(&dir.path().join("data"), &env);
    let caddy_tls = if tls {
        format!("\ttls {} {}\n", cert.display(), key.display())
    } else {
        String::new()
    };
    let caddy_port = free_port();
    let caddyfile = dir.path().join("Caddyfile");
    std::fs::write(
        &caddyfile,
        format!(
            "{{\n\tadmin off\n\tauto_https off\n}}\n:{caddy_port} {{\n{caddy_tls}\thandle /app* {{\n\t\treverse_proxy 127.0.0.1:{up}\n\t}}\n}}\n"
        ),
    )
    .unwrap();
    let mut caddy = Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&caddyfile)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("caddy must be installed (apt-get install caddy)");
    wait_port(caddy_port);
    let version = Command::new("caddy").arg("version").output().unwrap();
    println!(
        "# proxy: wrk -t2 -c{connections} -d{seconds}s, 1 KiB answers, {}; caddy {}",
        if tls { "TLS" } else { "plain HTTP" },
        String::from_utf8_lossy(&version.stdout).trim()
    );
    let scheme = if tls { "https" } else { "http" };
    let sl_url = format!("{scheme}://127.0.0.1:{}/app/hello", sl.http);
    let caddy_url = format!("{scheme}://127.0.0.1:{caddy_port}/app/hello");
    // Warm both (connection pools, page cache).
    wrk(&sl_url, 2, connections);
    wrk(&caddy_url, 2, connections);
    let (mut s, mut c) = (Vec::new(), Vec::new());
    for round in 0..2 {
        let cr = wrk(&caddy_url, seconds, connections);
        println!(
            "round {round} caddy:     {:.0} req/s, p99 {:.2} ms",
            cr.0, cr.1
        );
        let sr = wrk(&sl_url, seconds, connections);
        println!(
            "round {round} sightline: {:.0} req/s, p99 {:.2} ms",
            sr.0, sr.1
        );
        c.push(cr);
        s.push(sr);
    }
    let mean =
        |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let (s_rps, c_rps) = (mean(&s, |x| x.0), mean(&c, |x| x.0));
    let (s_p99, c_p99) = (mean(&s, |x| x.1), mean(&c, |x| x.1));
    println!("sightline_proxy_requests_per_second {s_rps:.0}");
    println!("caddy_requests_per_second {c_rps:.0}");
    println!("requests_per_second_ratio {:.3}", s_rps / c_rps);
    println!("sightline_p99_ms {s_p99:.2}");
    println!("caddy_p99_ms {c_p99:.2}");
    println!("p99_ratio {:.3}", s_p99 / c_p99);
    let _ = caddy.kill();
    let _ = caddy.wait();
    drop(sl);
}
