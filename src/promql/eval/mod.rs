//! The evaluator, with Prometheus 2.x semantics. It evaluates every step of a range query at
//! once: an instant vector is a list of rows, each a label set with one value slot per step
//! (`ABSENT` where the series has no value at that step). Selectors and range functions run
//! series by series with two moving pointers over the samples; aggregations and binary
//! operators work row by row, computing labels and group keys once per series, not per step.
//!
//! This file owns the evaluator's core: values, errors, limits (deadline, samples), selectors
//! and the recursion over the AST. Aggregations (`aggregate.rs`), binary operators
//! (`binary.rs`), function implementations (`functions.rs`) and range functions (`range.rs`)
//! add their methods to `Ev` from their own files.

// Step-indexed loops walk several parallel per-step arrays at once; indices read better here.
#![allow(clippy::needless_range_loop)]

mod aggregate;
mod binary;
mod functions;
mod range;

use std::collections::HashMap;
use std::time::Instant;

use crate::tsdb::{Label, Labels, Queryable, Series, TsdbError, is_stale};

use super::ast::{AggOp, At, BinOp, Card, Expr, ValueType, VectorMatching, VectorSelector};

/// Marks "no value at this step". A signalling-NaN payload that arithmetic never produces
/// (any operation on it would set the quiet bit) and that loading canonicalises away.
const ABSENT_BITS: u64 = 0x7ff4_0000_dead_0001;

#[inline]
pub(crate) fn absent() -> f64 {
    f64::from_bits(ABSENT_BITS)
}

#[inline]
pub(crate) fn is_present(v: f64) -> bool {
    v.to_bits() != ABSENT_BITS
}

/// Default subquery step when none is written (Prometheus's global evaluation interval).
pub const DEFAULT_SUBQUERY_STEP: i64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    #[error("{0}")]
    Execution(String),
    #[error(transparent)]
    Storage(#[from] TsdbError),
    /// The evaluation task itself failed (a bug): logged, never shown to clients.
    #[error("query task failed: {0}")]
    Internal(String),
}

fn exec<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::Execution(msg.into()))
}

/// One series over the evaluation steps.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub labels: Labels,
    pub vals: Vec<f64>,
}

#[derive(Debug)]
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Vector(Vec<Row>),
    /// Raw samples; only a top-level instant query of a range selector or subquery yields one.
    Matrix(Vec<Series>),
    Str(String),
}

pub(crate) struct Ev<'a> {
    pub q: &'a dyn Queryable,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub n: usize,
    pub lookback: i64,
    pub max_samples: usize,
    pub samples: usize,
    pub deadline: Instant,
}

type R<T> = Result<T, EvalError>;

impl Ev<'_> {
    #[inline]
    fn ts(&self, k: usize) -> i64 {
        self.start + k as i64 * self.step
    }

    fn check_deadline(&self, what: &'static str) -> R<()> {
        if Instant::now() > self.deadline {
            return Err(EvalError::Timeout(what));
        }
        Ok(())
    }

    fn account(&mut self, n: usize) -> R<()> {
        self.samples += n;
        if self.samples > self.max_samples {
            return Err(EvalError::TooManySamples);
        }
        Ok(())
    }

    /// Reference times of each step for a selector with `@` and `offset`.
    fn refs(&self, at: Option<At>, offset: i64) -> Vec<i64> {
        (0..self.n)
            .map(|k| match at {
                Some(At::Time(t)) => t - offset,
                _ => self.ts(k) - offset,
            })
            .collect()
    }

    pub fn eval(&mut self, e: &Expr) -> R<Val> {
        self.check_deadline("expression evaluation")?;
        Ok(match e {
            Expr::Number(v) => Val::Scalar(vec![*v; self.n]),
            Expr::Str(s) => Val::Str(s.clone()),
            Expr::Paren(e) => self.eval(e)?,
            Expr::Unary { neg, expr } => {
                let v = self.eval(expr)?;
                if !neg {
                    return Ok(v);
                }
                match v {
                    Val::Scalar(mut s) => {
                        s.iter_mut().for_each(|x| *x = -*x);
                        Val::Scalar(s)
                    }
                    Val::Vector(mut rows) => {
                        for r in &mut rows {
                            r.labels = drop_name(&r.labels);
                            for x in r.vals.iter_mut().filter(|x| is_present(**x)) {
                                *x = -*x;
                            }
                        }
                        Val::Vector(merge_rows(rows, self.n)?)
                    }
                    _ => return exec("unary minus on a non-numeric value"),
                }
            }
            Expr::Selector(vs) => Val::Vector(self.eval_selector(vs, false)?),
            Expr::Matrix { .. } | Expr::Subquery { .. } => {
                let (series, range, _, _) = self.windows_source(e)?;
                // Only an instant query asks for a range vector's samples.
                let refs = match e {
                    Expr::Matrix { vs, .. } => self.refs(vs.at, vs.offset),
                    Expr::Subquery { at, offset, .. } => self.refs(*at, *offset),
                    _ => unreachable!("matched above"),
                };
                let r = refs[0];
                let out: Vec<Series> = series
                    .into_iter()
                    .filter_map(|(labels, s)| {
                        let w: Vec<(i64, f64)> = s
                            .into_iter()
                            .filter(|x| x.0 >= r - range && x.0 <= r)
                            .collect();
                        (!w.is_empty()).then_some(Series { labels, samples: w })
                    })
                    .collect();
                Val::Matrix(out)
            }
            Expr::Aggregate {
                op,
                param,
                expr,
                grouping,
                without,
            } => self.aggregate(*op, param.as_deref(), expr, grouping, *without)?,
            Expr::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
            } => self.binary(*op, lhs, rhs, *return_bool, matching.as_ref())?,
            Expr::Call { func, args } => self.call(func.name, args)?,
        })
    }

    fn eval_scalar(&mut self, e: &Expr) -> R<Vec<f64>> {
        match self.eval(e)? {
            Val::Scalar(s) => Ok(s),
            _ => exec("expected a scalar"),
        }
    }

    fn eval_vector(&mut self, e: &Expr) -> R<Vec<Row>> {
        match self.eval(e)? {
            Val::Vector(v) => Ok(v),
            _ => exec("expected an instant vector"),
        }
    }

    fn load(&mut self, vs: &VectorSelector, mint: i64, maxt: i64) -> R<Vec<Series>> {
        let it = self.q.select(mint, maxt, &vs.matchers)?;
        let mut out = Vec::new();
        for (i, mut s) in it.enumerate() {
            if i % 256 == 0 {
                self.check_deadline("query preparation")?;
            }
            self.account(s.samples.len())?;
            for x in &mut s.samples {
                // Keep staleness markers (instant selectors need them); make every other NaN
                // the canonical one so no stored value can look like `ABSENT`.
                if x.1.is_nan() && !is_stale(x.1) {
                    x.1 = f64::NAN;
                }
            }
            out.push(s);
        }
        Ok(out)
    }

    /// An instant vector selector at every step: the newest sample within the lookback window
    /// (closed on both ends, as in Prometheus 2.x), unless it is a staleness marker.
    fn eval_selector(&mut self, vs: &VectorSelector, want_ts: bool) -> R<Vec<Row>> {
        let refs = self.refs(vs.at, vs.offset);
        let (lo, hi) = (refs[0], refs[refs.len() - 1]);
        let series = self.load(vs, lo - self.lookback, hi)?;
        let mut rows = Vec::with_capacity(series.len());
        for s in series {
            self.account(self.n)?;
            let mut vals = vec![absent(); self.n];
            let mut j = 0;
            let mut any = false;
            for (k, &r) in refs.iter().enumerate() {
                while j < s.samples.len() && s.samples[j].0 <= r {
                    j += 1;
                }
                if j > 0 {
                    let (t, v) = s.samples[j - 1];
                    if t >= r - self.lookback && !is_stale(v) {
                        vals[k] = if want_ts { t as f64 / 1000.0 } else { v };
                        any = true;
                    }
                }
            }
            if any {
                rows.push(Row {
                    labels: s.labels,
                    vals,
                });
            }
        }
        Ok(rows)
    }

    /// The samples a range-vector argument offers, per series, over all steps, with its range,
    /// offset and `@`.
    #[allow(clippy::type_complexity)]
    fn windows_source(
        &mut self,
        e: &Expr,
    ) -> R<(Vec<(Labels, Vec<(i64, f64)>)>, i64, i64, Option<At>)> {
        match e {
            Expr::Paren(inner) => self.windows_source(inner),
            Expr::Matrix { vs, range } => {
                let refs = self.refs(vs.at, vs.offset);
                let series = self.load(vs, refs[0] - range, refs[refs.len() - 1])?;
                let out = series
                    .into_iter()
                    .map(|s| {
                        let v: Vec<(i64, f64)> =
                            s.samples.into_iter().filter(|x| !is_stale(x.1)).collect();
                        (s.labels, v)
                    })
                    .collect();
                Ok((out, *range, vs.offset, vs.at))
            }
            Expr::Subquery {
                expr,
                range,
                step,
                offset,
                at,
            } => {
                let step = if *step == 0 {
                    DEFAULT_SUBQUERY_STEP
                } else {
                    *step
                };
                let (os, oe) = match at {
                    Some(At::Time(t)) => (*t, *t),
                    _ => (self.start, self.end),
                };
                let end = oe - offset;
                let first = os - offset - range;
                let mut start = step * (first / step);
                if start < first {
                    start += step;
                }
                let saved = (self.start, self.end, self.step, self.n);
                self.start = start;
                self.end = end;
                self.step = step;
                self.n = if end < start {
                    0
                } else {
                    ((end - start) / step) as usize + 1
                };
                // Every inner series needs a slot per step: refuse before allocating any.
                if self.n > self.max_samples.saturating_sub(self.samples) {
                    (self.start, self.end, self.step, self.n) = saved;
                    return Err(EvalError::TooManySamples);
                }
                let res = if self.n == 0 {
                    Ok(Vec::new())
                } else {
                    self.eval_vector(expr)
                };
                let (n, s0, st) = (self.n, self.start, self.step);
                (self.start, self.end, self.step, self.n) = saved;
                let rows = res?;
                let out = rows
                    .into_iter()
                    .map(|r| {
                        let v: Vec<(i64, f64)> = (0..n)
                            .filter(|&k| is_present(r.vals[k]))
                            .map(|k| (s0 + k as i64 * st, r.vals[k]))
                            .collect();
                        (r.labels, v)
                    })
                    .filter(|(_, v)| !v.is_empty())
                    .collect();
                Ok((out, *range, *offset, *at))
            }
            _ => exec("expected a range vector"),
        }
    }
}

pub(super) fn cmp_desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).expect("not NaN"),
    }
}

pub(super) fn cmp_asc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).expect("not NaN"),
    }
}

/// Go's `math.Min`: NaN wins, and -0 is smaller than +0.
pub(super) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

pub(super) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

pub(crate) fn drop_name(l: &Labels) -> Labels {
    if l.get("__name__").is_none() {
        return l.clone();
    }
    Labels::from_sorted(l.iter().filter(|x| x.name != "__name__").cloned().collect())
}

pub(super) fn set_label(l: &Labels, name: &str, value: &str) -> Labels {
    let mut v: Vec<Label> = l.iter().filter(|x| x.name != name).cloned().collect();
    if !value.is_empty() {
        v.push(Label {
            name: name.to_string(),
            value: value.to_string(),
        });
        v.sort();
    }
    Labels::from_sorted(v)
}

/// Merges rows with equal label sets (after a name was dropped or labels rewritten); two
/// values at the same step is Prometheus's duplicate-labelset error.
pub(crate) fn merge_rows(rows: Vec<Row>, n: usize) -> R<Vec<Row>> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    for r in rows {
        match index.get(&r.labels) {
            Some(&i) => {
                let o = &mut out[i];
                for k in 0..n {
                    if is_present(r.vals[k]) {
                        if is_present(o.vals[k]) {
                            return exec("vector cannot contain metrics with the same labelset");
                        }
                        o.vals[k] = r.vals[k];
                    }
                }
            }
            None => {
                index.insert(r.labels.clone(), out.len());
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Prometheus's `quantile`: linear interpolation between closest ranks; NaNs sort first.
pub(crate) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).expect("not NaN"),
    });
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    vals[lower as usize] * (1.0 - weight) + vals[upper as usize] * weight
}

/// Labels `absent()` and `absent_over_time()` give their result: the argument selector's
/// equality matchers, unless a name is matched more than once.
pub(super) fn absent_labels(e: &Expr) -> Labels {
    let mut e = e;
    while let Expr::Paren(x) = e {
        e = x;
    }
    let ms = match e {
        Expr::Selector(vs) | Expr::Matrix { vs, .. } => &vs.matchers,
        _ => return Labels::default(),
    };
    let mut set: Vec<(String, String)> = Vec::new();
    let mut empty: Vec<String> = Vec::new();
    for m in ms {
        if m.name == "__name__" {
            continue;
        }
        if m.op == crate::tsdb::MatchOp::Equal && !set.iter().any(|(n, _)| n == &m.name) {
            set.push((m.name.clone(), m.value.clone()));
        } else {
            empty.push(m.name.clone());
        }
    }
    set.retain(|(n, _)| !empty.contains(n));
    Labels::from_pairs(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_marker_survives_nothing() {
        let a = absent();
        assert!(!is_present(a));
        assert!(is_present(a + 1.0));
        assert!(is_present(f64::NAN));
    }
}
