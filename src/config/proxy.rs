//! `[[proxy]]` routes and `trusted_proxies`.

use std::net::IpAddr;
use std::time::Duration;

use super::check::*;
use super::{ConfigError, raw};

/// One validated `[[proxy]]` route.
#[derive(Debug, Clone)]
pub struct ProxyRoute {
    /// Shown in the UI's navigation.
    pub name: String,
    /// Normalised, no trailing slash, e.g. "/prometheus" (below `base_path`).
    pub path: String,
    /// `http` or `https`, `host:port`, and a path prefix on the upstream (no trailing slash; may
    /// be empty).
    pub scheme: String,
    /// For https: CA certificates trusted besides the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    pub authority: String,
    pub upstream_path: String,
    pub strip_prefix: bool,
    pub preserve_host: bool,
    pub connect_timeout: Duration,
    /// Until the upstream's response headers.
    pub timeout: Duration,
}

/// An address or a CIDR block of `trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.bits as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.bits as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

pub(super) fn proxy_routes(raw: &[raw::RawProxy]) -> Result<Vec<ProxyRoute>, ConfigError> {
    let mut out: Vec<ProxyRoute> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = |k: &str| format!("proxy[{i}].{k}");
        let path = crate::base::urlpath::normalise(r.path.trim(), true)
            .map_err(|e| invalid(&key("path"), &r.path, e.message()))?;
        let path = path.trim_end_matches('/').to_string();
        if path.is_empty() {
            return Err(invalid(
                &key("path"),
                &r.path,
                "expected a sub-path such as /prometheus, not /",
            ));
        }
        let ours = ["/ui", "/api", "/v1", "/metrics", "/healthz", "/readyz"];
        if ours
            .iter()
            .any(|o| crate::base::urlpath::under(&path, o) || crate::base::urlpath::under(o, &path))
        {
            return Err(invalid(
                &key("path"),
                &r.path,
                "expected a path that does not cover or sit under Sightline's own routes (/ui, /api, /v1, /metrics, /healthz, /readyz)",
            ));
        }
        if let Some(other) = out.iter().find(|o| {
            crate::base::urlpath::under(&path, &o.path)
                || crate::base::urlpath::under(&o.path, &path)
        }) {
            return Err(invalid(
                &key("path"),
                &r.path,
                &format!("expected a path apart from the route at {}", other.path),
            ));
        }
        let url = reqwest::Url::parse(r.upstream.trim()).map_err(|_| {
            invalid(
                &key("upstream"),
                &r.upstream,
                "expected a URL such as http://127.0.0.1:9090",
            )
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(invalid(
                &key("upstream"),
                &r.upstream,
                "expected an http:// or https:// URL",
            ));
        }
        let ca_file = r.ca_file.trim();
        if !ca_file.is_empty() && url.scheme() != "https" {
            return Err(invalid(
                &key("ca_file"),
                ca_file,
                "nothing: ca_file is for https upstreams",
            ));
        }
        let Some(host) = url.host_str() else {
            return Err(invalid(
                &key("upstream"),
                &r.upstream,
                "expected a URL with a host",
            ));
        };
        if url.query().is_some() || !url.username().is_empty() {
            return Err(invalid(
                &key("upstream"),
                &r.upstream,
                "expected scheme://host:port[/path] only",
            ));
        }
        let authority = match url.port() {
            Some(p) => format!(
                "{}:{p}",
                if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.to_string()
                }
            ),
            None => host.to_string(),
        };
        let upstream_path = url.path().trim_end_matches('/').to_string();
        out.push(ProxyRoute {
            name: if r.name.trim().is_empty() {
                path.trim_start_matches('/').to_string()
            } else {
                r.name.trim().to_string()
            },
            path,
            scheme: url.scheme().into(),
            ca_file: (!ca_file.is_empty()).then(|| ca_file.into()),
            authority,
            upstream_path,
            strip_prefix: r.strip_prefix,
            preserve_host: r.preserve_host,
            connect_timeout: nonzero_duration(&key("connect_timeout"), &r.connect_timeout)?,
            timeout: nonzero_duration(&key("timeout"), &r.timeout)?,
        });
    }
    Ok(out)
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
}
