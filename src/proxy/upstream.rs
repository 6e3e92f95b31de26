//! The reverse proxy: a request on a configured route sent to its upstream. Hop-by-hop headers
//! (and whatever `Connection` names) are removed before `X-Forwarded-*` are set, bodies and
//! WebSocket upgrades stream both ways, and a failing upstream is a 502 or 504 page naming the
//! route.

use super::*;
use crate::base::html::escape;

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
    pub(super) async fn forward(
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

pub(super) fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
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
pub(super) fn join_cookies(headers: &mut HeaderMap) {
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

/// The page a browser sees when an upstream fails: which route, and what happened.
pub(super) fn gateway_page(status: StatusCode, cfg: &ProxyRoute, what: &str) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

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
