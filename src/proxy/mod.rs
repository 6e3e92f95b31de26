//! The front door of the main listener and the sub-path reverse proxy (`[[proxy]]`). This file is
//! the front door (request-target checks, path normalisation, routing to a proxied route or to
//! Sightline's own router, the per-connection service); `upstream.rs` is the reverse proxy
//! (headers toward the upstream, streaming, upgrades, gateway pages).
//!
//! Every request passes [`Front`] first: `CONNECT` and absolute-form request targets are refused
//! (only configured upstreams are ever contacted), and the path is normalised once
//! ([`crate::base::urlpath::normalise`]). A path under a configured route (below `base_path`) goes to that
//! route's upstream (http or https, rustls with the system's roots plus the route's `ca_file`),
//! streamed both ways over HTTP/1.1, WebSocket upgrades included; everything
//! else goes to Sightline's own router with the normalised path. Toward the upstream, hop-by-hop
//! headers (RFC 9110 7.6.1, and whatever `Connection` names) are removed, and `X-Forwarded-For`,
//! `-Proto`, `-Host` and `-Prefix` are set by Sightline: incoming ones (and `Forwarded`) are
//! dropped unless the peer is in `trusted_proxies` (Caddy's rule), and since they are set after
//! the `Connection`-named headers are removed, a client cannot strip them. An upstream that
//! refuses the connection is a 502, one that does not answer in time a 504, each with a page that
//! says which route failed. Auth and the listeners' TLS live in their own modules.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

mod upstream;

use crate::base::urlpath;
pub use crate::config::{Cidr, ProxyRoute};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::ServiceExt;

struct Route {
    cfg: ProxyRoute,
    /// `base_path` + `path`.
    full: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
}

struct Inner {
    routes: Vec<Route>,
    trusted: Vec<Cidr>,
    router: Router,
    /// "https" once the listener serves TLS.
    scheme: &'static str,
    base: String,
    auth: Option<Arc<crate::auth::Auth>>,
}

/// The main listener's service: checks, normalises and routes every request.
#[derive(Clone)]
pub struct Front {
    inner: Arc<Inner>,
}

impl Front {
    pub fn new(
        router: Router,
        routes: &[ProxyRoute],
        base_path: &str,
        trusted: Vec<Cidr>,
        auth: Option<Arc<crate::auth::Auth>>,
        tls: bool,
    ) -> anyhow::Result<Front> {
        // The system's CA certificates, read once for all https routes.
        let system = routes
            .iter()
            .any(|r| r.scheme == "https")
            .then(crate::tls::system_roots);
        let routes = routes
            .iter()
            .map(|r| {
                let mut http = HttpConnector::new();
                http.set_connect_timeout(Some(r.connect_timeout));
                http.set_nodelay(true);
                http.enforce_http(false);
                // https upstreams: the system's roots plus the route's CA file; an http route
                // never uses its (empty) TLS configuration.
                let roots = match (&system, r.scheme.as_str()) {
                    (Some(system), "https") => system.clone(),
                    _ => tokio_rustls::rustls::RootCertStore::empty(),
                };
                let tls = crate::tls::client_config(roots, r.ca_file.as_deref())
                    .map_err(|e| anyhow::anyhow!("[[proxy]] {}: {e:#}", r.path))?;
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                Ok(Route {
                    full: format!("{base_path}{}", r.path),
                    cfg: r.clone(),
                    client: Client::builder(TokioExecutor::new())
                        .pool_idle_timeout(Duration::from_secs(90))
                        .build(connector),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Front {
            inner: Arc::new(Inner {
                routes,
                trusted,
                router,
                scheme: if tls { "https" } else { "http" },
                base: base_path.to_string(),
                auth,
            }),
        })
    }

    /// Serves one request from `peer`.
    pub async fn handle(&self, peer: SocketAddr, mut req: Request) -> Response {
        if req.method() == Method::CONNECT {
            return plain(
                StatusCode::BAD_REQUEST,
                "CONNECT is not supported: Sightline proxies only its configured routes\n",
            );
        }
        // HTTP/1.x absolute-form ("GET http://other/ HTTP/1.1"); HTTP/2 always carries a
        // scheme and authority in its pseudo-headers, which is not a request for another host.
        if req.version() < Version::HTTP_2
            && (req.uri().scheme().is_some() || req.uri().authority().is_some())
        {
            return plain(
                StatusCode::BAD_REQUEST,
                "absolute-form request targets are not accepted: Sightline is not a forward proxy\n",
            );
        }
        let raw = req.uri().path().to_string();
        let lenient = match urlpath::normalise(&raw, false) {
            Ok(p) => p,
            Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("{}\n", e.message())),
        };
        let mut identity = None;
        if let Some(auth) = &self.inner.auth {
            let rel = lenient
                .strip_prefix(self.inner.base.as_str())
                .filter(|r| r.starts_with('/'))
                .unwrap_or(&lenient);
            match rel {
                "/healthz" => {}
                "/ui/login" => return crate::auth::pages::login(auth, &self.inner.base, req).await,
                "/ui/logout" => {
                    return crate::auth::pages::logout(auth, &self.inner.base, req).await;
                }
                "/v1/traces"
                | "/v1/metrics"
                | "/v1/logs"
                | "/api/v1/write"
                | "/api/v1/otlp/v1/metrics"
                | "/loki/api/v1/push"
                | "/api/prom/push" => {}
                "/metrics" if !auth.cfg.protect_metrics => {}
                r if r.starts_with("/ui/assets/") => {}
                _ => match auth.identify(req.headers()) {
                    None => return crate::auth::pages::unauthenticated(&self.inner.base, &req),
                    Some(id) => {
                        if !crate::auth::csrf_ok(req.method(), req.headers(), &id) {
                            return plain(
                                StatusCode::FORBIDDEN,
                                "cross-site request refused: send the X-CSRF-Token of your session\n",
                            );
                        }
                        identity = Some(id);
                    }
                },
            }
        }
        if let Some(route) = self
            .inner
            .routes
            .iter()
            .find(|r| urlpath::under(&lenient, &r.full))
        {
            // Strict mode refuses what an upstream might decode again; the path it returns is
            // checked against the route once more before anything is sent.
            return match urlpath::normalise(&raw, true) {
                Ok(p) if urlpath::under(&p, &route.full) => {
                    self.forward(route, p, peer, req, identity).await
                }
                Ok(_) => plain(StatusCode::BAD_REQUEST, "request path leaves its route\n"),
                Err(e) => plain(StatusCode::BAD_REQUEST, &format!("{}\n", e.message())),
            };
        }
        if lenient != raw {
            let pq = match req.uri().query() {
                Some(q) => format!("{lenient}?{q}"),
                None => lenient,
            };
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = pq.parse().ok();
            if let Ok(u) = Uri::from_parts(parts) {
                *req.uri_mut() = u;
            }
        }
        let csrf = identity.map(|i| i.csrf).unwrap_or_default();
        let fut = self.inner.router.clone().oneshot(req);
        match crate::auth::REQUEST_CSRF.scope(csrf, fut).await {
            Ok(r) => r,
            Err(e) => match e {},
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.inner.trusted.iter().any(|c| c.contains(ip))
    }
}

fn plain(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg.to_string(),
    )
        .into_response()
}

/// `axum::serve`'s make-service: one [`Front`] per connection, knowing the peer address. `L` is
/// the TCP listener, or [`crate::tls::TlsListener`].
pub fn make_service<L>(
    front: Front,
) -> impl for<'a> tower::Service<
    axum::serve::IncomingStream<'a, L>,
    Error = std::convert::Infallible,
    Response = PerConnection,
    Future = std::future::Ready<Result<PerConnection, std::convert::Infallible>>,
> + Clone
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    tower::service_fn(move |incoming: axum::serve::IncomingStream<'_, L>| {
        let peer = *incoming.remote_addr();
        std::future::ready(Ok(PerConnection {
            front: front.clone(),
            peer,
        }))
    })
}

/// [`Front`] bound to one connection's peer.
#[derive(Clone)]
pub struct PerConnection {
    front: Front,
    peer: SocketAddr,
}

impl tower::Service<Request> for PerConnection {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let (front, peer) = (self.front.clone(), self.peer);
        Box::pin(async move { Ok(front.handle(peer, req).await) })
    }
}
