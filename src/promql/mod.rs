//! PromQL: lexer (`lexer.rs`), parser (`parser.rs`), syntax tree and printer (`ast.rs`), value
//! types and function table (`functions.rs`), evaluator (`eval/`: core, aggregation, binary
//! operators, function implementations, range functions), reading through
//! [`crate::tsdb::Queryable`]; and the [`QueryService`] every query of the APIs and the UI goes
//! through (`service.rs`).
//!
//! Semantics follow Prometheus 2.x (2.42 is the reference that runs in CI): the lookback
//! window and range-selector windows are closed on both ends (`[t - 5m, t]`); Prometheus 3.0
//! made them left-open. The engine owns the limits: timeout, samples touched, concurrency.

pub mod ast;
pub mod eval;
pub mod functions;
pub mod lexer;
pub mod parser;
mod service;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::tsdb::{Labels, Queryable, Series};

pub use crate::config::EngineConfig;
pub use ast::{Expr, ValueType};
pub use eval::EvalError;
pub use parser::{ParseError, parse, parse_duration, parse_selector};
pub use service::QueryService;

use eval::{Ev, Val, is_present};

/// Most points a range query may return per series, as in Prometheus.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// A query's answer, in the shapes of the Prometheus API.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Scalar(i64, f64),
    Str(i64, String),
    /// Instant vector at time `t`.
    Vector(i64, Vec<(Labels, f64)>),
    /// Series with points, sorted by label set for range queries.
    Matrix(Vec<Series>),
}

/// Evaluates parsed expressions with Prometheus semantics. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    cfg: EngineConfig,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_concurrency.max(1)));
        Engine { cfg, slots }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// A slot to run one query; queries beyond `max_concurrency` wait here.
    pub async fn acquire(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    fn ev<'a>(
        &self,
        q: &'a dyn Queryable,
        start: i64,
        end: i64,
        step: i64,
        timeout: Option<Duration>,
    ) -> Ev<'a> {
        let step = step.max(1);
        Ev {
            q,
            start,
            end,
            step,
            n: ((end - start) / step) as usize + 1,
            lookback: self.cfg.lookback,
            max_samples: self.cfg.max_samples,
            samples: 0,
            deadline: Instant::now() + timeout.unwrap_or(self.cfg.timeout).min(self.cfg.timeout),
        }
    }

    /// Evaluates `expr` at time `t` (ms).
    pub fn instant(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        t: i64,
        timeout: Option<Duration>,
    ) -> Result<QueryValue, EvalError> {
        let mut expr = expr.clone();
        expr.resolve_at(t, t);
        let mut ev = self.ev(q, t, t, 1, timeout);
        Ok(match ev.eval(&expr)? {
            Val::Scalar(s) => QueryValue::Scalar(t, s[0]),
            Val::Str(s) => QueryValue::Str(t, s),
            Val::Vector(rows) => QueryValue::Vector(
                t,
                rows.into_iter()
                    .filter(|r| is_present(r.vals[0]))
                    .map(|r| (r.labels, r.vals[0]))
                    .collect(),
            ),
            Val::Matrix(m) => QueryValue::Matrix(m),
        })
    }

    /// Evaluates `expr` at `start`, `start + step`, ... up to `end` (ms). The caller checks
    /// that the expression is a scalar or instant vector and that the step count is bounded.
    pub fn range(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
        timeout: Option<Duration>,
    ) -> Result<QueryValue, EvalError> {
        let mut expr = expr.clone();
        expr.resolve_at(start, end);
        let mut ev = self.ev(q, start, end, step, timeout);
        let step = ev.step;
        let to_series = |labels: Labels, vals: Vec<f64>| -> Option<Series> {
            let samples: Vec<(i64, f64)> = vals
                .into_iter()
                .enumerate()
                .filter(|(_, v)| is_present(*v))
                .map(|(k, v)| (start + k as i64 * step, v))
                .collect();
            (!samples.is_empty()).then_some(Series { labels, samples })
        };
        Ok(match ev.eval(&expr)? {
            Val::Scalar(s) => {
                QueryValue::Matrix(to_series(Labels::default(), s).into_iter().collect())
            }
            Val::Vector(rows) => {
                let mut m: Vec<Series> = rows
                    .into_iter()
                    .filter_map(|r| to_series(r.labels, r.vals))
                    .collect();
                m.sort_by(|a, b| a.labels.cmp(&b.labels));
                QueryValue::Matrix(m)
            }
            _ => {
                return Err(EvalError::Execution(format!(
                    "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                    expr.value_type().name()
                )));
            }
        })
    }
}
