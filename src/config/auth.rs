//! `[auth]`: users, API tokens, sessions and OTLP ingest keys. Secrets are never printed.

use std::time::Duration;

use super::check::*;
use super::{ConfigError, raw};

/// Validated `[auth]`.
#[derive(Clone, Default)]
pub struct AuthConfig {
    pub enabled: bool,
    /// (name, password hash).
    pub users: Vec<(String, String)>,
    pub tokens: Vec<String>,
    pub ingest_keys: Vec<String>,
    pub require_ingest_key: bool,
    pub protect_metrics: bool,
    pub session_ttl: Duration,
    /// Sent to proxied routes with the signed-in user's name (Grafana's `auth.proxy` style).
    pub trusted_header: Option<String>,
}

/// Secrets are never printed.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("enabled", &self.enabled)
            .field(
                "users",
                &self.users.iter().map(|u| &u.0).collect::<Vec<_>>(),
            )
            .field("tokens", &self.tokens.len())
            .field("ingest_keys", &self.ingest_keys.len())
            .field("protect_metrics", &self.protect_metrics)
            .finish_non_exhaustive()
    }
}

pub(super) fn auth_config(r: &raw::RawAuth) -> Result<AuthConfig, ConfigError> {
    let mut users = Vec::new();
    for u in &r.users {
        let Some((name, hash)) = u.split_once(':') else {
            return Err(invalid(
                "auth.users",
                "(not shown)",
                "expected name:hash entries",
            ));
        };
        if name.is_empty() || !(hash.starts_with("$argon2") || hash.starts_with("$2")) {
            return Err(invalid(
                "auth.users",
                name,
                "expected name:hash with an argon2 ($argon2id$...) or bcrypt ($2b$...) hash; make one with `sightline hash-password`",
            ));
        }
        users.push((name.to_string(), hash.to_string()));
    }
    if r.enabled && users.is_empty() && r.tokens.is_empty() {
        return Err(invalid(
            "auth.enabled",
            "true",
            "expected at least one of auth.users or auth.tokens",
        ));
    }
    if r.enabled && r.require_ingest_key && r.ingest_keys.is_empty() {
        return Err(invalid(
            "auth.ingest_keys",
            "(empty)",
            "expected at least one OTLP ingest key while auth is on (or auth.require_ingest_key = false to leave ingest open)",
        ));
    }
    let trusted = r.trusted_header.trim();
    if !trusted.is_empty() && axum::http::HeaderName::from_bytes(trusted.as_bytes()).is_err() {
        return Err(invalid(
            "auth.trusted_header",
            trusted,
            "expected a header name",
        ));
    }
    Ok(AuthConfig {
        enabled: r.enabled,
        users,
        tokens: r.tokens.iter().filter(|t| !t.is_empty()).cloned().collect(),
        ingest_keys: r
            .ingest_keys
            .iter()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect(),
        require_ingest_key: r.require_ingest_key,
        protect_metrics: r.protect_metrics,
        session_ttl: nonzero_duration("auth.session_ttl", &r.session_ttl)?,
        trusted_header: (!trusted.is_empty()).then(|| trusted.to_ascii_lowercase()),
    })
}
