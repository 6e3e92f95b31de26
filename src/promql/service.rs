//! The one query path the Prometheus API, the Jaeger Monitor API and the UI share: a parsed
//! expression is admitted by the engine's concurrency limit, evaluated on the blocking pool (never
//! on the async runtime), and answered as a [`QueryValue`] or an [`EvalError`]. Parsing stays with
//! the callers because each reports parse errors in its own words.

use std::time::Duration;

use super::{Engine, EvalError, Expr, QueryValue};
use crate::tsdb::Tsdb;

/// The metrics store and the engine, cheap to clone.
#[derive(Clone)]
pub struct QueryService {
    db: Tsdb,
    engine: Engine,
}

impl QueryService {
    pub fn new(db: Tsdb, engine: Engine) -> QueryService {
        QueryService { db, engine }
    }

    pub fn db(&self) -> &Tsdb {
        &self.db
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// `expr` at time `t` (ms).
    pub async fn instant(
        &self,
        expr: Expr,
        t: i64,
        timeout: Option<Duration>,
    ) -> Result<QueryValue, EvalError> {
        self.run(move |db, engine| engine.instant(db, &expr, t, timeout))
            .await
    }

    /// `expr` from `start` to `end` every `step` (ms); the caller has bounded the step count.
    pub async fn range(
        &self,
        expr: Expr,
        start: i64,
        end: i64,
        step: i64,
        timeout: Option<Duration>,
    ) -> Result<QueryValue, EvalError> {
        self.run(move |db, engine| engine.range(db, &expr, start, end, step, timeout))
            .await
    }

    async fn run<F>(&self, f: F) -> Result<QueryValue, EvalError>
    where
        F: FnOnce(&Tsdb, &Engine) -> Result<QueryValue, EvalError> + Send + 'static,
    {
        let _slot = self.engine.acquire().await;
        let (db, engine) = (self.db.clone(), self.engine.clone());
        tokio::task::spawn_blocking(move || f(&db, &engine))
            .await
            .unwrap_or_else(|e| Err(EvalError::Internal(e.to_string())))
    }
}
