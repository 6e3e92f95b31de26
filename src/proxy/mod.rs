//! The front door of the main listener and the sub-path reverse proxy (`[[proxy]]`).
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

use crate::base::html::escape;
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

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

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
                "/v1/traces" | "/v1/metrics" | "/v1/logs" => {}
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

    async fn forward(
        &self,
        route: &Route,
        path: String,
        peer: SocketAddr,
        req: Request,
        identity: Option<crate::auth::Identity>,
    ) -> Response {
        let cfg = &route.cfg;
        let (mut parts, body) = req.into_parts();
        let rest = if cfg.strip_prefix {
            let r = &path[route.full.len().min(path.len())..];
            if r.is_empty() { "/" } else { r }
        } else {
            path.as_str()
        };
        let pq = match parts.uri.query() {
            Some(q) => format!("{}{rest}?{q}", cfg.upstream_path),
            None => format!("{}{rest}", cfg.upstream_path),
        };
        let uri = match Uri::builder()
            .scheme(cfg.scheme.as_str())
            .authority(cfg.authority.as_str())
            .path_and_query(pq)
            .build()
        {
            Ok(u) => u,
            Err(_) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "request target cannot be forwarded\n",
                );
            }
        };
        let websocket = is_upgrade(&parts.headers);
        let client_upgrade = if websocket {
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
        } else {
            None
        };
        let upgrade_to = parts.headers.get(header::UPGRADE).cloned();
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let trusted = self.trusted(peer.ip());
        let prior_for: Vec<String> = if trusted {
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        let prior_proto = trusted
            .then(|| parts.headers.get("x-forwarded-proto").cloned())
            .flatten();
        let prior_host = trusted
            .then(|| parts.headers.get("x-forwarded-host").cloned())
            .flatten();
        let headers = &mut parts.headers;
        strip_hop_by_hop(headers);
        join_cookies(headers);
        if !trusted {
            headers.remove(header::FORWARDED);
        }
        for h in [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-forwarded-prefix",
        ] {
            headers.remove(h);
        }
        let mut xff = prior_for.join(", ");
        if !xff.is_empty() {
            xff.push_str(", ");
        }
        xff.push_str(&peer.ip().to_string());
        set(headers, "x-forwarded-for", &xff);
        match prior_proto {
            Some(p) => {
                headers.insert(HeaderName::from_static("x-forwarded-proto"), p);
            }
            None => set(headers, "x-forwarded-proto", self.inner.scheme),
        }
        if let Some(h) = prior_host.or_else(|| original_host.clone()) {
            headers.insert(HeaderName::from_static("x-forwarded-host"), h);
        }
        set(headers, "x-forwarded-prefix", &route.full);
        if let Some(auth) = &self.inner.auth {
            // Sightline's credentials stay with Sightline; the user's name goes in the trusted
            // header (never taken from the client).
            headers.remove(header::AUTHORIZATION);
            crate::auth::strip_own_cookies(headers);
            if let Some(h) = &auth.cfg.trusted_header {
                headers.remove(h.as_str());
                if let (Some(id), Ok(name)) = (&identity, HeaderName::from_bytes(h.as_bytes()))
                    && let Ok(v) = HeaderValue::from_str(&id.user)
                {
                    headers.insert(name, v);
                }
            }
        }
        let host = if cfg.preserve_host {
            original_host.unwrap_or_else(|| HeaderValue::from_static("localhost"))
        } else {
            HeaderValue::from_str(&cfg.authority)
                .unwrap_or_else(|_| HeaderValue::from_static("localhost"))
        };
        headers.insert(header::HOST, host);
        if websocket && let Some(u) = upgrade_to {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, u);
        }
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let upstream_req = Request::from_parts(parts, body);
        let sent = tokio::time::timeout(cfg.timeout, route.client.request(upstream_req)).await;
        let mut resp = match sent {
            Err(_) => {
                tracing::warn!(route = %cfg.path, upstream = %cfg.authority, "proxy: upstream did not answer in time");
                return gateway_page(StatusCode::GATEWAY_TIMEOUT, cfg, "did not answer in time");
            }
            Ok(Err(e)) => {
                let why = if e.is_connect() {
                    "refused the connection"
                } else {
                    "failed"
                };
                tracing::warn!(route = %cfg.path, upstream = %cfg.authority, error = %e, "proxy: upstream {why}");
                return gateway_page(StatusCode::BAD_GATEWAY, cfg, why);
            }
            Ok(Ok(r)) => r,
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            match client_upgrade {
                Some(client) => {
                    tokio::spawn(async move {
                        let (c, u) = tokio::join!(client, upstream_upgrade);
                        if let (Ok(c), Ok(u)) = (c, u) {
                            let _ = tokio::io::copy_bidirectional(
                                &mut TokioIo::new(c),
                                &mut TokioIo::new(u),
                            )
                            .await;
                        }
                    });
                }
                None => {
                    return gateway_page(
                        StatusCode::BAD_GATEWAY,
                        cfg,
                        "switched protocols unasked",
                    );
                }
            }
            let upgrade = resp.headers().get(header::UPGRADE).cloned();
            strip_hop_by_hop(resp.headers_mut());
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(u) = upgrade {
                resp.headers_mut().insert(header::UPGRADE, u);
            }
            return resp.map(Body::new);
        }
        strip_hop_by_hop(resp.headers_mut());
        resp.map(Body::new)
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes the hop-by-hop headers and every header `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

/// HTTP/2 clients may send each cookie in its own `cookie` field; an HTTP/1.1 upstream expects
/// one header, joined with "; " (RFC 9113 section 8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(header::COOKIE).iter().nth(1).is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, v);
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

/// The page a browser sees when an upstream fails: which route, and what happened.
fn gateway_page(status: StatusCode, cfg: &ProxyRoute, what: &str) -> Response {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\
         <h1>{title}</h1><p>The upstream of <b>{}</b> ({}) {what}.</p>\
         <p>Sightline is up; check that the service behind this route is running.</p></body></html>\n",
        escape(&cfg.name),
        escape(&cfg.path),
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.9".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("nope"), None);
    }

    #[test]
    fn connection_cannot_name_what_is_set_after() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Forwarded-For, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none() && h.get(header::TE).is_none());
        assert!(h.get("x-kept").is_some());
    }
}
