//! One auth layer (`[auth]`, off by default) in front of everything the main listener serves
//! (UI, both query APIs, `/metrics` unless `protect_metrics = false`, proxied routes), with
//! `/healthz`, the login page and the UI's static files left open; and OTLP ingest keys on every
//! OTLP door, separate from users, so that telemetry senders cannot read data.
//!
//! Who may read: users (`name:hash`, argon2 PHC strings or bcrypt hashes) through a browser
//! session (login form -> `HttpOnly`, `SameSite=Lax` cookie, `Secure` under TLS) or HTTP basic
//! auth, and API tokens (`Authorization: Bearer`). Successful password checks are remembered for
//! five minutes by a SHA-256 of the credentials, so a Grafana data source sending basic auth on
//! every request costs one argon2 verification, not one per request. State-changing requests that
//! are authenticated by the session cookie alone must carry the session's CSRF token (forms) or
//! come from the same origin (`Origin`/`Referer`); the login form uses a double-submit cookie.
//! Sessions live in memory: a restart logs everyone out. Who may write telemetry: OTLP ingest
//! keys (`Authorization: Bearer` or `x-api-key`).

pub mod pages;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Method, header};
use parking_lot::Mutex;
use sha2::Digest;

pub use crate::config::AuthConfig;

pub const SESSION_COOKIE: &str = "sightline_session";
pub const CSRF_COOKIE: &str = "sightline_csrf";

struct Session {
    user: String,
    csrf: String,
    expires: Instant,
}

/// Who a request is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub user: String,
    /// Authenticated by the session cookie (so CSRF rules apply), not by a header.
    pub by_cookie: bool,
    /// The session's CSRF token, for forms rendered for this request.
    pub csrf: String,
}

pub struct Auth {
    pub cfg: AuthConfig,
    sessions: Mutex<HashMap<String, Session>>,
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    pub secure_cookies: bool,
    /// Cookie path: `base_path` + "/".
    pub cookie_path: String,
}

/// Compares without an early exit on the first differing byte.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the system's random source");
    hex::encode(b)
}

/// Whether `password` matches `hash` (argon2 PHC string or bcrypt).
pub fn verify_password(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        use argon2::PasswordVerifier;
        match argon2::PasswordHash::new(hash) {
            Ok(h) => argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok(),
            Err(_) => false,
        }
    } else if hash.starts_with("$2") {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else {
        false
    }
}

/// An argon2id PHC string for `password` (the `hash-password` subcommand).
pub fn hash_password(password: &str) -> String {
    use argon2::PasswordHasher;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the system's random source");
    let salt = argon2::password_hash::SaltString::encode_b64(&salt).expect("16 bytes encode");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The Cookie header without Sightline's own cookies (what a proxied upstream may see).
pub fn strip_own_cookies(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| {
            let name = kv.split('=').next().unwrap_or("");
            !kv.is_empty() && name != SESSION_COOKIE && name != CSRF_COOKIE
        })
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

impl Auth {
    pub fn new(cfg: AuthConfig, base_path: &str, secure_cookies: bool) -> Auth {
        Auth {
            cfg,
            sessions: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            secure_cookies,
            cookie_path: format!("{base_path}/"),
        }
    }

    fn check_password(&self, user: &str, password: &str) -> bool {
        let Some((_, hash)) = self.cfg.users.iter().find(|(u, _)| u == user) else {
            // The same work as a real check, so timing does not tell which names exist.
            let _ = verify_password(
                password,
                "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpQ",
            );
            return false;
        };
        let key: [u8; 32] = sha2::Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        let now = Instant::now();
        {
            let mut v = self.verified.lock();
            if v.get(&key).is_some_and(|t| *t > now) {
                return true;
            }
            if v.len() > 10_000 {
                v.retain(|_, t| *t > now);
            }
        }
        if verify_password(password, hash) {
            self.verified
                .lock()
                .insert(key, now + Duration::from_secs(300));
            true
        } else {
            false
        }
    }

    /// A reader: a session cookie, basic auth of a user, or an API token.
    pub fn identify(&self, headers: &HeaderMap) -> Option<Identity> {
        if let Some(t) = bearer(headers) {
            return self
                .cfg
                .tokens
                .iter()
                .any(|k| same(k.as_bytes(), t.as_bytes()))
                .then(|| Identity {
                    user: "token".into(),
                    by_cookie: false,
                    csrf: String::new(),
                });
        }
        if let Some((u, p)) = basic(headers) {
            return self.check_password(&u, &p).then_some(Identity {
                user: u,
                by_cookie: false,
                csrf: String::new(),
            });
        }
        let id = cookie(headers, SESSION_COOKIE)?;
        let mut sessions = self.sessions.lock();
        let now = Instant::now();
        match sessions.get(id) {
            Some(s) if s.expires > now => Some(Identity {
                user: s.user.clone(),
                by_cookie: true,
                csrf: s.csrf.clone(),
            }),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    /// Whether a telemetry sender presented an ingest key (or none is required).
    pub fn ingest_allowed(&self, headers: &HeaderMap) -> bool {
        if !self.cfg.enabled || !self.cfg.require_ingest_key {
            return true;
        }
        let given = bearer(headers).or_else(|| headers.get("x-api-key")?.to_str().ok());
        given.is_some_and(|g| {
            self.cfg
                .ingest_keys
                .iter()
                .any(|k| same(k.as_bytes(), g.trim().as_bytes()))
        })
    }

    /// Starts a session for a correct user and password: (session id, CSRF token).
    pub fn login(&self, user: &str, password: &str) -> Option<(String, String)> {
        if !self.check_password(user, password) {
            return None;
        }
        let (id, csrf) = (random_token(), random_token());
        let mut s = self.sessions.lock();
        let now = Instant::now();
        if s.len() > 10_000 {
            s.retain(|_, v| v.expires > now);
        }
        s.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                csrf: csrf.clone(),
                expires: now + self.cfg.session_ttl,
            },
        );
        Some((id, csrf))
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.sessions.lock().remove(id);
        }
    }

    /// `Set-Cookie` for a cookie scoped to Sightline's base path.
    pub fn set_cookie(
        &self,
        name: &str,
        value: &str,
        max_age: Option<u64>,
        same_site: &str,
    ) -> String {
        let mut c = format!(
            "{name}={value}; Path={}; HttpOnly; SameSite={same_site}",
            self.cookie_path
        );
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        if self.secure_cookies {
            c.push_str("; Secure");
        }
        c
    }
}

/// Whether a cookie-authenticated request may change state: safe methods always; others with
/// the session's CSRF token in `X-CSRF-Token`, or from the same origin.
pub fn csrf_ok(method: &Method, headers: &HeaderMap, id: &Identity) -> bool {
    if !id.by_cookie || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(t) = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()) {
        return same(t.as_bytes(), id.csrf.as_bytes());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match origin {
        Some(o) => {
            let rest = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
                .unwrap_or("");
            let o_host = rest.split('/').next().unwrap_or("");
            !host.is_empty() && o_host == host
        }
        None => false,
    }
}

tokio::task_local! {
    /// The CSRF token of the signed-in session serving the current request (for forms).
    pub static REQUEST_CSRF: String;
}

/// The current request's session CSRF token, or empty when it has none.
pub fn current_csrf() -> String {
    REQUEST_CSRF.try_with(|t| t.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_cookies() {
        let h = hash_password("s3cret");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cre", &h));
        let b = bcrypt::hash("pw", 4).unwrap();
        assert!(verify_password("pw", &b));
        assert!(!verify_password("px", &b));
        assert!(!verify_password("pw", "plain"));
        let mut hm = HeaderMap::new();
        hm.insert(
            header::COOKIE,
            HeaderValue::from_static(
                "a=1; sightline_session=abc; grafana_session=g; sightline_csrf=x",
            ),
        );
        assert_eq!(cookie(&hm, SESSION_COOKIE), Some("abc"));
        strip_own_cookies(&mut hm);
        assert_eq!(hm[header::COOKIE], "a=1; grafana_session=g");
    }
}
