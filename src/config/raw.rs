//! Raw configuration: exactly what the TOML file, the environment and the flags can say, with a
//! default for every key and unknown keys refused. Validation into [`super::Config`] happens in
//! `super::validate`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub data_dir: String,
    pub base_path: String,
    pub listen: RawListen,
    pub ingest: RawIngest,
    pub traces: RawTraces,
    pub log: RawLog,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawListen {
    pub http: String,
    pub otlp_grpc: String,
    pub otlp_http: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawIngest {
    /// Largest gRPC message accepted (decoded), a size like "4MiB" or a byte count.
    pub max_grpc_message_size: SizeOrString,
    /// Largest OTLP/HTTP body accepted after decompression.
    pub max_http_body_size: SizeOrString,
    /// Accepted-but-not-yet-stored data past which OTLP answers 429/UNAVAILABLE.
    pub memory_budget: SizeOrString,
    /// Attributes kept per span, log record, event or link; the rest are dropped and counted.
    pub max_attributes: u64,
    /// Longest string or bytes attribute value kept; longer values are truncated.
    pub max_attribute_value_length: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawTraces {
    /// Spans and logs older than this are deleted ("7d", "12h").
    pub retention: String,
    /// Oldest data goes first once the database passes this size.
    pub max_size: SizeOrString,
    /// How often the search index is committed (at most this far behind the store).
    pub index_commit_interval: String,
    /// How often retention looks for data to delete.
    pub retention_check_interval: String,
    /// Attribute values longer than this are stored but not indexed for search.
    pub max_indexed_value_length: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// tracing filter, e.g. "info" or "sightline=debug,info".
    pub level: String,
    /// "text" or "json".
    pub format: String,
}

/// A size given either as a byte count or as a string with a unit ("20MiB", "10GB").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SizeOrString {
    Bytes(u64),
    Text(String),
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            data_dir: "./sightline-data".into(),
            base_path: String::new(),
            listen: RawListen::default(),
            ingest: RawIngest::default(),
            traces: RawTraces::default(),
            log: RawLog::default(),
        }
    }
}

impl Default for RawListen {
    fn default() -> Self {
        Self {
            http: "0.0.0.0:8080".into(),
            otlp_grpc: "0.0.0.0:4317".into(),
            otlp_http: "0.0.0.0:4318".into(),
        }
    }
}

impl Default for RawIngest {
    fn default() -> Self {
        Self {
            max_grpc_message_size: SizeOrString::Text("4MiB".into()),
            max_http_body_size: SizeOrString::Text("20MiB".into()),
            memory_budget: SizeOrString::Text("256MiB".into()),
            max_attributes: 128,
            max_attribute_value_length: 16384,
        }
    }
}

impl Default for RawTraces {
    fn default() -> Self {
        Self {
            retention: "7d".into(),
            max_size: SizeOrString::Text("10GiB".into()),
            index_commit_interval: "1s".into(),
            retention_check_interval: "30s".into(),
            max_indexed_value_length: 256,
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}
