//! LogQL, Loki's query language, over Sightline's log store: the parser (`parser.rs`, syntax
//! tree in `ast.rs`), the log pipeline run per entry (`pipeline.rs`), and the evaluator
//! (`eval.rs`: log queries as streams, metric queries as vectors and matrices, with Loki's
//! range semantics: a window `[t - range, t]` holds entries with `t - range < ts <= t`).
//!
//! Owns the language and its limits (entries per query, series, lines scanned, time). Does not
//! own storage: it reads through the narrow [`LogSource`] seam, which the log store implements
//! (`traces::logscan`) and tests implement over a vector. Does not own HTTP shapes (that is
//! `api::loki`).

pub mod ast;
pub mod detected;
pub mod eval;
pub mod parser;
pub mod pattern;
pub mod pipeline;

use std::time::Duration;

pub use ast::{Expr, Matcher};
pub use eval::{Answer, Query, Stats};
pub use parser::{ParseError, parse, parse_selector};

/// A label set, sorted by name.
pub type Labels = Vec<(String, String)>;

/// One stored entry as a query sees it.
pub struct Entry<'a> {
    pub ts: i64,
    pub line: &'a str,
    /// Structured metadata (OTLP log attributes, Loki's structured metadata, trace ids).
    pub metadata: &'a [(String, String)],
}

/// The read seam: entries in `[start_ns, end_ns)` of the streams that `matchers` select.
/// `visit` returns false to stop the scan early.
pub trait LogSource {
    fn scan(
        &self,
        start_ns: i64,
        end_ns: i64,
        matchers: &[Matcher],
        visit: &mut dyn FnMut(&Labels, &Entry<'_>) -> bool,
    ) -> Result<(), String>;
}

/// A regular expression from a query or template, size-bounded.
pub fn compile_regex(re: &str) -> Result<regex::Regex, String> {
    ast::compile(re)
}

/// Limits one query runs under; the defaults are Loki's where Loki has one.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Loki's `max_entries_limit_per_query`.
    pub max_entries: usize,
    /// Loki's `max_query_series`.
    pub max_series: usize,
    /// Entries read from the store (after the stream selector) before the query is refused.
    pub max_lines_scanned: u64,
    /// Loki's `query_timeout`.
    pub timeout: Duration,
    /// Points per series of a range query (Loki's and Prometheus's 11,000).
    pub max_points: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 5000,
            max_series: 500,
            max_lines_scanned: 50_000_000,
            timeout: Duration::from_secs(60),
            max_points: 11_000,
        }
    }
}

/// A query that could not run: a bad query (400) or a limit reached (400 in Loki too).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Bad(String),
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Store(String),
}
