//! The HTTP client a job scrapes with (and HTTP discovery asks with): TLS settings
//! (`ca_file`, `cert_file`/`key_file`, `insecure_skip_verify`), redirects, and the credentials
//! (`basic_auth`, `authorization`, read from their files on every request as Prometheus does).

use std::time::Duration;

use super::config::HttpClient;

#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
    cfg: HttpClient,
}

/// Why a body was refused for its size.
pub const BODY_SIZE_LIMIT: &str = "body size limit exceeded";

fn read_secret(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("unable to read {}: {e}", path.display()))
}

impl Client {
    pub fn new(cfg: &HttpClient) -> Result<Client, String> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("Sightline/", env!("CARGO_PKG_VERSION")))
            .redirect(if cfg.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            });
        let tls = &cfg.tls;
        if let Some(ca) = &tls.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("unable to read CA file {}: {e}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("unable to use specified CA cert {}: {e}", ca.display()))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            let mut pem = std::fs::read(cert)
                .map_err(|e| format!("unable to read {}: {e}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(key).map_err(|e| format!("unable to read {}: {e}", key.display()))?,
            );
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("unable to use specified client cert and key: {e}"))?;
            b = b.identity(id);
        }
        if tls.insecure_skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        if tls.server_name.is_some() {
            tracing::warn!(
                "tls_config.server_name is not applied by Sightline: the host of the address is used"
            );
        }
        let inner = b
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Client {
            inner,
            cfg: cfg.clone(),
        })
    }

    /// GET with the configured credentials; returns the content type and the body, at most
    /// `max_bytes` (0: no limit beyond `hard_cap`).
    pub async fn get(
        &self,
        url: &str,
        headers: &[(&str, String)],
        timeout: Duration,
        max_bytes: u64,
    ) -> Result<(String, Vec<u8>), String> {
        if let Some(why) = &self.cfg.unsupported {
            return Err(why.clone());
        }
        let mut req = self.inner.get(url).timeout(timeout);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(b) = &self.cfg.basic_auth {
            let password = match &b.password_file {
                Some(p) => read_secret(p)?,
                None => b.password.clone(),
            };
            req = req.basic_auth(&b.username, Some(password));
        }
        if let Some(a) = &self.cfg.authorization {
            let cred = match &a.credentials_file {
                Some(p) => read_secret(p)?,
                None => a.credentials.clone(),
            };
            req = req.header("Authorization", format!("{} {}", a.kind, cred));
        }
        let mut resp = req.send().await.map_err(|e| go_error(url, &e))?;
        if !resp.status().is_success() {
            return Err(format!(
                "server returned HTTP status {}",
                status_text(resp.status())
            ));
        }
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            if e.is_timeout() {
                "context deadline exceeded".to_string()
            } else {
                format!("reading the body: {}", error_chain(&e))
            }
        })? {
            if max_bytes > 0 && (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(BODY_SIZE_LIMIT.into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((ct, body))
    }
}

fn status_text(s: reqwest::StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

/// A request error in Go's net/http words where the cause is a common one (so a target's last
/// error reads as Prometheus's does), else the error chain.
fn go_error(url: &str, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("Get {url:?}: context deadline exceeded");
    }
    let addr = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_default();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            let what = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Some("connect: connection refused"),
                std::io::ErrorKind::ConnectionReset => Some("read: connection reset by peer"),
                std::io::ErrorKind::HostUnreachable => Some("connect: no route to host"),
                std::io::ErrorKind::NetworkUnreachable => Some("connect: network is unreachable"),
                _ => None,
            };
            if let Some(w) = what {
                return format!("Get {url:?}: dial tcp {addr}: {w}");
            }
        }
        cur = c.source();
    }
    format!("Get {url:?}: {}", error_chain(e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
