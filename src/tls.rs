//! TLS on the listeners (rustls with ring). One certificate and key, read from PEM files at start
//! and again on SIGHUP: a reload that fails (missing file, bad PEM, a key that does not match the
//! certificate) keeps the certificate in use and says why, so a half-written renewal never takes
//! the listeners down. New handshakes get the new certificate; open connections keep theirs.
//!
//! [`TlsListener`] does the handshakes off the accept path (each in its own task, bounded in time
//! and in number) and hands finished connections to `axum::serve` (it is an
//! [`axum::serve::Listener`]) or, as a stream, to tonic's server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use sha2::Digest as _;
use tokio::net::{TcpListener, TcpStream};

pub use crate::config::TlsConfig;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::server::TlsStream;

/// Certificate files are small; anything bigger is not a certificate chain.
const MAX_PEM_BYTES: u64 = 1 << 20;
/// A client gets this long to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once per listener; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 1024;

/// The certificate in use, swapped whole on reload. Also rustls's certificate resolver.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Reads the certificate and key; an error names the file and what is wrong with it.
    pub fn load(cfg: &TlsConfig) -> anyhow::Result<Arc<CertStore>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = read(&cfg.cert_file, &cfg.key_file, &provider)?;
        Ok(Arc::new(CertStore {
            cert_file: cfg.cert_file.clone(),
            key_file: cfg.key_file.clone(),
            provider,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again; on success new handshakes use the new certificate, on failure the
    /// one in use stays. Returns the new certificate's SHA-256 fingerprint.
    pub fn reload(&self) -> anyhow::Result<String> {
        let key = read(&self.cert_file, &self.key_file, &self.provider)?;
        let fp = fingerprint(&key);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(fp)
    }

    /// SHA-256 of the certificate in use (hex), as `openssl x509 -fingerprint -sha256` shows it
    /// without the colons.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A server configuration offering `alpn` (e.g. `h2`, `http/1.1`) with this certificate.
    pub fn server_config(
        self: &Arc<Self>,
        alpn: &[&[u8]],
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut c = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(c))
    }
}

impl rustls::server::ResolvesServerCert for CertStore {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn fingerprint(key: &CertifiedKey) -> String {
    let leaf = key.cert.first().map(|c| c.as_ref()).unwrap_or_default();
    sha2::Sha256::digest(leaf)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_limited(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot open the TLS {what} file {}", path.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read the TLS {what} file {}", path.display()))?;
    anyhow::ensure!(
        buf.len() as u64 <= MAX_PEM_BYTES,
        "the TLS {what} file {} is larger than 1 MiB: not a PEM {what}",
        path.display()
    );
    Ok(buf)
}

/// The CERTIFICATE blocks of a PEM file (at least one).
fn read_certs(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read_limited(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "the TLS {what} file {} is not valid PEM: {e}",
                path.display()
            )
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the TLS {what} file {} holds no CERTIFICATE block",
        path.display()
    );
    Ok(certs)
}

fn read(
    cert_file: &Path,
    key_file: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let chain = read_certs(cert_file, "certificate")?;
    let pem = read_limited(key_file, "key")?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        anyhow::anyhow!(
            "the TLS key file {} holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            key_file.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        anyhow::anyhow!(
            "the TLS key in {} does not fit the certificate in {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })
}

/// The system's CA certificates (read once by the caller, then cloned per configuration).
pub fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "a system CA certificate could not be read");
    }
    let (_, unusable) = roots.add_parsable_certificates(native.certs);
    if unusable > 0 {
        tracing::debug!(unusable, "system CA certificates rustls cannot use");
    }
    roots
}

/// A client configuration trusting `roots` and, when given, the CA certificates in `ca_file`
/// (for the proxy's https upstreams; empty roots for connectors that only speak plain HTTP).
pub fn client_config(
    mut roots: rustls::RootCertStore,
    ca_file: Option<&Path>,
) -> anyhow::Result<rustls::ClientConfig> {
    if let Some(f) = ca_file {
        for c in read_certs(f, "CA")? {
            roots.add(c).with_context(|| {
                format!("a certificate in the CA file {} is not usable", f.display())
            })?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// Waits for SIGHUP and reloads `store` each time, until `shutdown` fires.
pub fn reload_on_sighup(
    store: Arc<CertStore>,
    reloads: Arc<Reloads>,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP (certificate reloads)")?;
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = hup.recv() => if r.is_none() { return },
                }
                let s = store.clone();
                match tokio::task::spawn_blocking(move || s.reload()).await {
                    Ok(Ok(fp)) => {
                        reloads
                            .ok
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(sha256 = %fp, "SIGHUP: TLS certificate reloaded");
                    }
                    Ok(Err(e)) => {
                        reloads
                            .failed
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::error!(error = %format!("{e:#}"), sha256 = %store.fingerprint(), "SIGHUP: TLS certificate NOT reloaded; still serving the previous one");
                    }
                    Err(e) => tracing::error!(error = %e, "TLS reload task failed"),
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = (store, reloads, shutdown);
        Ok(tokio::spawn(async {}))
    }
}

/// Reload outcomes, for `/metrics`.
#[derive(Debug, Default)]
pub struct Reloads {
    pub ok: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

impl crate::telemetry::MetricSource for Reloads {
    fn write_metrics(&self, out: &mut crate::telemetry::Exposition) {
        use std::sync::atomic::Ordering::Relaxed;
        let name = "sightline_tls_certificate_reloads_total";
        out.family(
            name,
            crate::telemetry::Kind::Counter,
            "TLS certificate reloads on SIGHUP, by result (a failed one keeps the previous certificate)",
        );
        out.sample(name, &[("result", "ok")], self.ok.load(Relaxed));
        out.sample(name, &[("result", "failed")], self.failed.load(Relaxed));
    }
}

/// A bound listener, plain or TLS.
pub enum Bound {
    Plain(TcpListener),
    Tls(TlsListener),
}

impl Bound {
    /// `listener` as is, or wrapped in TLS with `alpn` offered when `certs` is given.
    pub fn new(
        listener: TcpListener,
        certs: Option<&Arc<CertStore>>,
        alpn: &[&[u8]],
    ) -> anyhow::Result<Bound> {
        Ok(match certs {
            None => Bound::Plain(listener),
            Some(c) => Bound::Tls(TlsListener::new(listener, c.server_config(alpn)?)?),
        })
    }
}

/// A TCP listener whose connections come out with their TLS handshake done.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    _acceptor: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TlsListener {
    pub fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (sock, peer) = tokio::select! {
                    _ = tx.closed() => return,
                    r = listener.accept() => match r {
                        Ok(c) => c,
                        Err(e) => {
                            // Out of file descriptors and the like: wait instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    },
                };
                let _ = sock.set_nodelay(true);
                let (tx, acceptor) = (tx.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            rx,
            local,
            _acceptor: AbortOnDrop(task),
        })
    }

    /// The connections as a stream, for tonic's `serve_with_incoming_shutdown`.
    pub fn into_stream(
        self,
    ) -> impl tokio_stream::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static
    {
        tokio_stream::StreamExt::map(
            tokio_stream::wrappers::ReceiverStream::new(self.rx),
            // The closure owns the acceptor guard: the accept task lives as long as the stream.
            move |(s, _)| {
                let _keep = &self._acceptor;
                Ok(s)
            },
        )
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The acceptor is gone (its task ended): no more connections, ever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
