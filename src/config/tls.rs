//! `[tls]`: the certificate and key, and which listeners serve TLS.

use std::path::PathBuf;

use super::check::*;
use super::{ConfigError, raw};

/// `[tls]`, validated.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Which listeners serve TLS.
    pub http: bool,
    pub otlp_grpc: bool,
    pub otlp_http: bool,
}

pub(super) fn tls_config(r: &raw::RawTls) -> Result<Option<TlsConfig>, ConfigError> {
    let (cert, key) = (r.cert_file.trim(), r.key_file.trim());
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => return Ok(None),
        (false, false) => {}
        (true, false) => {
            return Err(invalid(
                "tls.cert_file",
                "",
                "a PEM certificate file (tls.key_file is set, so TLS needs both)",
            ));
        }
        (false, true) => {
            return Err(invalid(
                "tls.key_file",
                "",
                "a PEM private key file (tls.cert_file is set, so TLS needs both)",
            ));
        }
    }
    let mut c = TlsConfig {
        cert_file: cert.into(),
        key_file: key.into(),
        http: false,
        otlp_grpc: false,
        otlp_http: false,
    };
    for l in r
        .listeners
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        match l {
            "all" => (c.http, c.otlp_grpc, c.otlp_http) = (true, true, true),
            "http" => c.http = true,
            "otlp_grpc" => c.otlp_grpc = true,
            "otlp_http" => c.otlp_http = true,
            _ => {
                return Err(invalid(
                    "tls.listeners",
                    l,
                    "\"all\" or listener names separated by commas: http, otlp_grpc, otlp_http",
                ));
            }
        }
    }
    if !(c.http || c.otlp_grpc || c.otlp_http) {
        return Err(invalid(
            "tls.listeners",
            &r.listeners,
            "at least one listener (\"all\", http, otlp_grpc, otlp_http) when cert_file is set",
        ));
    }
    Ok(Some(c))
}
