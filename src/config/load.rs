//! Where configuration comes from and in which order: defaults < file < `SIGHTLINE_*`
//! environment variables < flags. Reads the config file; unknown keys are an error that names
//! them.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError, RawConfig, validate};

/// Values given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<String>,
    pub base_path: Option<String>,
    pub http: Option<String>,
    pub otlp_grpc: Option<String>,
    pub otlp_http: Option<String>,
}
/// Loads the configuration: defaults, then `file` (if any), then `SIGHTLINE_*` variables from
/// `env`, then `flags`. Returns the config and warnings worth logging once logging is up.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &Overrides,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut tree = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            // Typed first, for errors that point at the line and name the section.
            toml::from_str::<RawConfig>(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string().trim().to_string(),
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string().trim().to_string(),
                })?
        }
        None => toml::Table::new(),
    };
    let warnings = apply_env(&mut tree, env)?;
    apply_flags(&mut tree, flags);
    let raw: RawConfig = toml::Value::Table(tree)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: file
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("<environment>")),
            message: e.message().to_string(),
        })?;
    let mut cfg = validate(&raw)?;
    // Rule files are relative to the config file, as Prometheus's are to prometheus.yml.
    if let Some(dir) = file.and_then(Path::parent) {
        cfg.rules.base_dir = dir.to_path_buf();
        if let Some(f) = &mut cfg.notify.config_file
            && f.is_relative()
        {
            *f = dir.join(&*f);
        }
        for d in &mut cfg.dashboard_dirs {
            if d.is_relative() {
                *d = dir.join(&*d);
            }
        }
        if let Some(f) = &mut cfg.scrape_prometheus_config
            && f.is_relative()
        {
            *f = dir.join(&*f);
        }
    }
    Ok((cfg, warnings))
}
/// `(section, key)` for every known key, section empty for top-level keys, with its default value.
pub(super) fn known_keys() -> Vec<(String, String, toml::Value)> {
    let defaults = toml::Value::try_from(RawConfig::default()).expect("defaults serialize");
    let mut out = Vec::new();
    if let toml::Value::Table(top) = defaults {
        for (k, v) in top {
            match v {
                toml::Value::Table(section) => {
                    for (k2, v2) in section {
                        out.push((k.clone(), k2, v2));
                    }
                }
                // Arrays of tables (`[[scrape]]`) are set in the file only.
                toml::Value::Array(_) => {}
                other => out.push((String::new(), k, other)),
            }
        }
    }
    out
}
fn env_name(section: &str, key: &str) -> String {
    if section.is_empty() {
        format!("SIGHTLINE_{}", key.to_ascii_uppercase())
    } else {
        format!(
            "SIGHTLINE_{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        )
    }
}
fn apply_env(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let keys = known_keys();
    let mut warnings = Vec::new();
    let env: Vec<(String, String)> = env.into_iter().collect();
    // The seed stack's variables for forwarding (an OTLP/HTTP endpoint with basic auth); the
    // SIGHTLINE_FORWARD_* variables, applied after, win.
    for (var, value) in &env {
        let key = match var.as_str() {
            "OTEL_COLLECTOR_OTLP_HTTP_ENDPOINT" => "endpoint",
            "OTEL_COLLECTOR_OTLP_USERNAME" => "username",
            "OTEL_COLLECTOR_OTLP_PASSWORD" => "password",
            _ => continue,
        };
        if value.trim().is_empty() {
            continue;
        }
        set_key(
            tree,
            "forward",
            key,
            toml::Value::String(value.trim().to_string()),
        );
        if key == "endpoint" {
            set_key(
                tree,
                "forward",
                "protocol",
                toml::Value::String("http/protobuf".into()),
            );
        }
    }
    for (var, value) in env {
        if !var.starts_with("SIGHTLINE_") || var == "SIGHTLINE_CONFIG" {
            continue;
        }
        let Some((section, key, default)) = keys.iter().find(|(s, k, _)| env_name(s, k) == var)
        else {
            warnings.push(format!("ignoring {var}: no config key has that name"));
            continue;
        };
        let typed = match default {
            toml::Value::Integer(_) => {
                toml::Value::Integer(value.trim().parse().map_err(|_| ConfigError::Env {
                    var: var.clone(),
                    message: format!("expected a whole number, got {value:?}"),
                })?)
            }
            toml::Value::Boolean(_) => {
                toml::Value::Boolean(value.trim().parse().map_err(|_| ConfigError::Env {
                    var: var.clone(),
                    message: format!("expected true or false, got {value:?}"),
                })?)
            }
            // Lists of secrets and hashes (argon2 hashes hold commas): separated by whitespace.
            toml::Value::Array(_) if section == "auth" => toml::Value::Array(
                value
                    .split_whitespace()
                    .map(|x| toml::Value::String(x.to_string()))
                    .collect(),
            ),
            // Lists of files, URLs and names: comma-separated.
            toml::Value::Array(_) if section == "rules" || section == "alerting" => {
                toml::Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(|x| toml::Value::String(x.to_string()))
                        .collect(),
                )
            }
            // Label sets: `name=value,name=value`.
            toml::Value::Table(_) => {
                let mut t = toml::Table::new();
                for pair in value.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                    let (k, v) = pair.split_once('=').ok_or_else(|| ConfigError::Env {
                        var: var.clone(),
                        message: format!(
                            "expected name=value pairs separated by commas, got {value:?}"
                        ),
                    })?;
                    t.insert(
                        k.trim().to_string(),
                        toml::Value::String(v.trim().to_string()),
                    );
                }
                toml::Value::Table(t)
            }
            // Lists of numbers (bucket bounds): comma-separated.
            toml::Value::Array(_) => toml::Value::Array(
                value
                    .split(',')
                    .map(|x| {
                        x.trim()
                            .parse::<f64>()
                            .map(toml::Value::Float)
                            .map_err(|_| ConfigError::Env {
                                var: var.clone(),
                                message: format!(
                                    "expected numbers separated by commas, got {value:?}"
                                ),
                            })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => toml::Value::String(value),
        };
        set_key(tree, section, key, typed);
    }
    Ok(warnings)
}
fn set_key(tree: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    if section.is_empty() {
        tree.insert(key.to_string(), value);
        return;
    }
    let entry = tree
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = entry {
        t.insert(key.to_string(), value);
    }
}
fn apply_flags(tree: &mut toml::Table, flags: &Overrides) {
    let pairs = [
        ("", "data_dir", &flags.data_dir),
        ("", "base_path", &flags.base_path),
        ("listen", "http", &flags.http),
        ("listen", "otlp_grpc", &flags.otlp_grpc),
        ("listen", "otlp_http", &flags.otlp_http),
    ];
    for (section, key, value) in pairs {
        if let Some(v) = value {
            set_key(tree, section, key, toml::Value::String(v.clone()));
        }
    }
}
