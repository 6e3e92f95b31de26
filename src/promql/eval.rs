//! The evaluator, with Prometheus 2.x semantics. It evaluates every step of a range query at
//! once: an instant vector is a list of rows, each a label set with one value slot per step
//! (`ABSENT` where the series has no value at that step). Selectors and range functions run
//! series by series with two moving pointers over the samples; aggregations and binary
//! operators work row by row, computing labels and group keys once per series, not per step.

// Step-indexed loops walk several parallel per-step arrays at once; indices read better here.
#![allow(clippy::needless_range_loop)]

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

    fn aggregate(
        &mut self,
        op: AggOp,
        param: Option<&Expr>,
        inner: &Expr,
        grouping: &[String],
        without: bool,
    ) -> R<Val> {
        let n = self.n;
        let (pnum, pstr) = match (op, param) {
            (AggOp::CountValues, Some(p)) => match self.eval(p)? {
                Val::Str(s) => (None, Some(s)),
                _ => return exec("expected a string parameter"),
            },
            (_, Some(p)) => (Some(self.eval_scalar(p)?), None),
            _ => (None, None),
        };
        let rows = self.eval_vector(inner)?;
        let group_of = |l: &Labels| -> Labels {
            if without {
                Labels::from_sorted(
                    l.iter()
                        .filter(|x| x.name != "__name__" && !grouping.contains(&x.name))
                        .cloned()
                        .collect(),
                )
            } else {
                Labels::from_sorted(
                    l.iter()
                        .filter(|x| grouping.contains(&x.name))
                        .cloned()
                        .collect(),
                )
            }
        };
        if op == AggOp::CountValues {
            let label = pstr.unwrap_or_default();
            if !crate::tsdb::labels::valid_label_name(&label) {
                return exec(format!("invalid label name {label:?}"));
            }
            let mut out: Vec<Row> = Vec::new();
            let mut index: HashMap<Labels, usize> = HashMap::new();
            for k in 0..n {
                for r in &rows {
                    let v = r.vals[k];
                    if !is_present(v) {
                        continue;
                    }
                    let mut pairs: Vec<Label> = r
                        .labels
                        .iter()
                        .filter(|x| x.name != label)
                        .cloned()
                        .collect();
                    pairs.push(Label {
                        name: label.clone(),
                        value: format_value_f(v),
                    });
                    let full = Labels::from_pairs(pairs.into_iter().map(|l| (l.name, l.value)));
                    let key = if without {
                        group_of(&full)
                    } else {
                        Labels::from_sorted(
                            full.iter()
                                .filter(|x| grouping.contains(&x.name) || x.name == label)
                                .cloned()
                                .collect(),
                        )
                    };
                    let i = *index.entry(key.clone()).or_insert_with(|| {
                        out.push(Row {
                            labels: key,
                            vals: vec![absent(); n],
                        });
                        out.len() - 1
                    });
                    let slot = &mut out[i].vals[k];
                    *slot = if is_present(*slot) { *slot + 1.0 } else { 1.0 };
                }
            }
            return Ok(Val::Vector(out));
        }

        // Group index per input row, groups in order of first appearance.
        let mut groups: Vec<Labels> = Vec::new();
        let mut gindex: HashMap<Labels, usize> = HashMap::new();
        let row_group: Vec<usize> = rows
            .iter()
            .map(|r| {
                let g = group_of(&r.labels);
                *gindex.entry(g.clone()).or_insert_with(|| {
                    groups.push(g);
                    groups.len() - 1
                })
            })
            .collect();
        let ng = groups.len();
        self.account(ng * n)?;

        match op {
            AggOp::Topk | AggOp::Bottomk => {
                let ks = pnum.unwrap_or_default();
                let mut out_of: HashMap<usize, usize> = HashMap::new();
                let mut out: Vec<Row> = Vec::new();
                let mut cands: Vec<Vec<(usize, f64)>> = vec![Vec::new(); ng];
                for k in 0..n {
                    let kf = ks[k];
                    if !(kf.is_finite() || kf.is_nan()) || kf.abs() >= 9.2e18 {
                        return exec(format!(
                            "Scalar value {} overflows int64",
                            super::ast::format_number(kf)
                        ));
                    }
                    let kk = if kf.is_nan() { i64::MIN } else { kf as i64 };
                    if kk < 1 {
                        continue;
                    }
                    cands.iter_mut().for_each(Vec::clear);
                    for (ri, r) in rows.iter().enumerate() {
                        if is_present(r.vals[k]) {
                            cands[row_group[ri]].push((ri, r.vals[k]));
                        }
                    }
                    let cmp = if op == AggOp::Topk {
                        |a: &(usize, f64), b: &(usize, f64)| cmp_desc_nan_last(a.1, b.1)
                    } else {
                        |a: &(usize, f64), b: &(usize, f64)| cmp_asc_nan_last(a.1, b.1)
                    };
                    let kk = kk.min(rows.len() as i64) as usize;
                    for c in &mut cands {
                        // Partition out the k best in linear time, then order just those.
                        if c.len() > kk {
                            c.select_nth_unstable_by(kk - 1, cmp);
                            c.truncate(kk);
                        }
                        c.sort_by(cmp);
                        for &(ri, v) in c.iter() {
                            let oi = *out_of.entry(ri).or_insert_with(|| {
                                out.push(Row {
                                    labels: rows[ri].labels.clone(),
                                    vals: vec![absent(); n],
                                });
                                out.len() - 1
                            });
                            out[oi].vals[k] = v;
                        }
                    }
                }
                return Ok(Val::Vector(out));
            }
            AggOp::Quantile => {
                let qs = pnum.unwrap_or_default();
                let mut out: Vec<Row> = groups
                    .into_iter()
                    .map(|labels| Row {
                        labels,
                        vals: vec![absent(); n],
                    })
                    .collect();
                let mut cands: Vec<Vec<f64>> = vec![Vec::new(); ng];
                for k in 0..n {
                    cands.iter_mut().for_each(Vec::clear);
                    for (ri, r) in rows.iter().enumerate() {
                        if is_present(r.vals[k]) {
                            cands[row_group[ri]].push(r.vals[k]);
                        }
                    }
                    for (g, c) in cands.iter_mut().enumerate() {
                        if !c.is_empty() {
                            out[g].vals[k] = quantile(qs[k], c);
                        }
                    }
                }
                return Ok(Val::Vector(out));
            }
            _ => {}
        }

        let mut value = vec![0.0f64; ng * n];
        let mut mean = vec![0.0f64; ng * n];
        let mut count = vec![0u32; ng * n];
        for (ri, r) in rows.iter().enumerate() {
            let base = row_group[ri] * n;
            for k in 0..n {
                let v = r.vals[k];
                if !is_present(v) {
                    continue;
                }
                let i = base + k;
                let c = &mut count[i];
                if *c == 0 {
                    *c = 1;
                    value[i] = match op {
                        AggOp::Stddev | AggOp::Stdvar => 0.0,
                        AggOp::Group => 1.0,
                        _ => v,
                    };
                    mean[i] = v;
                    continue;
                }
                *c += 1;
                let cf = *c as f64;
                match op {
                    AggOp::Sum => value[i] += v,
                    AggOp::Avg => {
                        let m = mean[i];
                        if m.is_infinite() {
                            if v.is_infinite() && (m > 0.0) == (v > 0.0) {
                                continue;
                            }
                            if !v.is_infinite() && !v.is_nan() {
                                continue;
                            }
                        }
                        mean[i] += v / cf - m / cf;
                    }
                    AggOp::Max if value[i] < v || value[i].is_nan() => value[i] = v,
                    AggOp::Min if value[i] > v || value[i].is_nan() => value[i] = v,
                    AggOp::Stddev | AggOp::Stdvar => {
                        let delta = v - mean[i];
                        mean[i] += delta / cf;
                        value[i] += delta * (v - mean[i]);
                    }
                    _ => {}
                }
            }
        }
        let out = groups
            .into_iter()
            .enumerate()
            .map(|(g, labels)| {
                let vals = (0..n)
                    .map(|k| {
                        let i = g * n + k;
                        let c = count[i];
                        if c == 0 {
                            return absent();
                        }
                        match op {
                            AggOp::Avg => mean[i],
                            AggOp::Count => c as f64,
                            AggOp::Stdvar => value[i] / c as f64,
                            AggOp::Stddev => (value[i] / c as f64).sqrt(),
                            _ => value[i],
                        }
                    })
                    .collect();
                Row { labels, vals }
            })
            .collect();
        Ok(Val::Vector(out))
    }

    fn binary(
        &mut self,
        op: BinOp,
        lhs: &Expr,
        rhs: &Expr,
        return_bool: bool,
        matching: Option<&VectorMatching>,
    ) -> R<Val> {
        let l = self.eval(lhs)?;
        let r = self.eval(rhs)?;
        let n = self.n;
        match (l, r) {
            (Val::Scalar(a), Val::Scalar(b)) => Ok(Val::Scalar(
                (0..n)
                    .map(|k| {
                        let (v, keep) = elem_binop(op, a[k], b[k]);
                        if op.is_comparison() {
                            if keep { 1.0 } else { 0.0 }
                        } else {
                            v
                        }
                    })
                    .collect(),
            )),
            (Val::Vector(rows), Val::Scalar(s)) => Ok(Val::Vector(self.vector_scalar(
                op,
                rows,
                &s,
                false,
                return_bool,
            )?)),
            (Val::Scalar(s), Val::Vector(rows)) => Ok(Val::Vector(self.vector_scalar(
                op,
                rows,
                &s,
                true,
                return_bool,
            )?)),
            (Val::Vector(a), Val::Vector(b)) => {
                let m = matching.cloned().unwrap_or(VectorMatching {
                    card: Card::OneToOne,
                    on: false,
                    labels: vec![],
                    include: vec![],
                });
                let rows = match op {
                    BinOp::And | BinOp::Or | BinOp::Unless => self.set_op(op, a, b, &m),
                    _ => self.vector_vector(op, a, b, &m, return_bool)?,
                };
                Ok(Val::Vector(merge_rows(rows, n)?))
            }
            _ => exec("invalid operand types for binary operation"),
        }
    }

    fn vector_scalar(
        &mut self,
        op: BinOp,
        mut rows: Vec<Row>,
        s: &[f64],
        swap: bool,
        return_bool: bool,
    ) -> R<Vec<Row>> {
        for r in &mut rows {
            for k in 0..self.n {
                let x = r.vals[k];
                if !is_present(x) {
                    continue;
                }
                let (lv, rv) = if swap { (s[k], x) } else { (x, s[k]) };
                let (mut v, mut keep) = elem_binop(op, lv, rv);
                // The vector's value is the result of a filtering comparison, whichever side.
                if op.is_comparison() && swap {
                    v = rv;
                }
                if return_bool {
                    v = if keep { 1.0 } else { 0.0 };
                    keep = true;
                }
                r.vals[k] = if keep { v } else { absent() };
            }
            if op.drops_name() || return_bool {
                r.labels = drop_name(&r.labels);
            }
        }
        rows.retain(|r| r.vals.iter().any(|v| is_present(*v)));
        merge_rows(rows, self.n)
    }

    fn set_op(&mut self, op: BinOp, a: Vec<Row>, b: Vec<Row>, m: &VectorMatching) -> Vec<Row> {
        let n = self.n;
        let sa: Vec<u64> = a.iter().map(|r| signature(&r.labels, m)).collect();
        let sb: Vec<u64> = b.iter().map(|r| signature(&r.labels, m)).collect();
        let present_sigs = |rows: &[Row], sigs: &[u64], k: usize| -> rustc_hash::FxHashSet<u64> {
            rows.iter()
                .zip(sigs)
                .filter(|(r, _)| is_present(r.vals[k]))
                .map(|(_, s)| *s)
                .collect()
        };
        match op {
            BinOp::And | BinOp::Unless => {
                let mut a = a;
                for k in 0..n {
                    let rs = present_sigs(&b, &sb, k);
                    for (r, s) in a.iter_mut().zip(&sa) {
                        if is_present(r.vals[k]) && (rs.contains(s) != (op == BinOp::And)) {
                            r.vals[k] = absent();
                        }
                    }
                }
                a.retain(|r| r.vals.iter().any(|v| is_present(*v)));
                a
            }
            _ => {
                let mut b = b;
                for k in 0..n {
                    let ls = present_sigs(&a, &sa, k);
                    for (r, s) in b.iter_mut().zip(&sb) {
                        if ls.contains(s) {
                            r.vals[k] = absent();
                        }
                    }
                }
                let mut out = a;
                out.extend(
                    b.into_iter()
                        .filter(|r| r.vals.iter().any(|v| is_present(*v))),
                );
                out
            }
        }
    }

    fn vector_vector(
        &mut self,
        op: BinOp,
        lhs: Vec<Row>,
        rhs: Vec<Row>,
        m: &VectorMatching,
        return_bool: bool,
    ) -> R<Vec<Row>> {
        let n = self.n;
        // `many` is the side with many series per match group, `one` the other.
        let swapped = m.card == Card::OneToMany;
        let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
        let one_sigs: Vec<u64> = one.iter().map(|r| signature(&r.labels, m)).collect();
        let mut by_sig: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, s) in one_sigs.iter().enumerate() {
            by_sig.entry(*s).or_default().push(i);
        }
        let many_sigs: Vec<u64> = many.iter().map(|r| signature(&r.labels, m)).collect();
        let mut out: Vec<Row> = Vec::new();
        let mut out_index: HashMap<(usize, usize), usize> = HashMap::new();
        // For one-to-one: which many-side row already matched a signature at each step.
        let mut matched: HashMap<u64, Vec<u32>> = HashMap::new();
        // For many-to-one: result label sets already produced per signature at each step.
        let mut produced: HashMap<(u64, usize), Vec<u32>> = HashMap::new();
        for (mi, mrow) in many.iter().enumerate() {
            let sig = many_sigs[mi];
            let Some(cands) = by_sig.get(&sig) else {
                continue;
            };
            for k in 0..n {
                let mv = mrow.vals[k];
                if !is_present(mv) {
                    continue;
                }
                let mut found: Option<usize> = None;
                for &oi in cands {
                    if is_present(one[oi].vals[k]) {
                        if let Some(prev) = found {
                            let side = if swapped { "left" } else { "right" };
                            return exec(format!(
                                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                                match_labels(&one[oi].labels, m),
                                one[oi].labels,
                                one[prev].labels
                            ));
                        }
                        found = Some(oi);
                    }
                }
                let Some(oi) = found else { continue };
                let ov = one[oi].vals[k];
                let (vl, vr) = if swapped { (ov, mv) } else { (mv, ov) };
                let (mut v, keep) = elem_binop(op, vl, vr);
                if return_bool {
                    v = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                }
                let key = (mi, oi);
                let idx = match out_index.get(&key) {
                    Some(i) => *i,
                    None => {
                        let mut labels = result_labels(&mrow.labels, &one[oi].labels, op, m);
                        if return_bool {
                            labels = drop_name(&labels);
                        }
                        out.push(Row {
                            labels,
                            vals: vec![absent(); n],
                        });
                        out_index.insert(key, out.len() - 1);
                        out.len() - 1
                    }
                };
                if m.card == Card::OneToOne {
                    let steps = matched.entry(sig).or_insert_with(|| vec![u32::MAX; n]);
                    if steps[k] != u32::MAX && steps[k] != mi as u32 {
                        return exec(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                        );
                    }
                    steps[k] = mi as u32;
                } else {
                    let h = out[idx].labels.hash64();
                    let steps = produced
                        .entry((sig, h as usize))
                        .or_insert_with(|| vec![u32::MAX; n]);
                    if steps[k] != u32::MAX && steps[k] != mi as u32 {
                        return exec(
                            "multiple matches for labels: grouping labels must ensure unique matches",
                        );
                    }
                    steps[k] = mi as u32;
                }
                out[idx].vals[k] = v;
            }
        }
        self.account(out.len() * n)?;
        Ok(out)
    }

    fn call(&mut self, name: &str, args: &[Expr]) -> R<Val> {
        let n = self.n;
        // Functions over a range vector.
        if let Some(mi) = args
            .iter()
            .position(|a| a.value_type() == ValueType::Matrix)
        {
            let scalars: Vec<Option<Vec<f64>>> = args
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    if i != mi && a.value_type() == ValueType::Scalar {
                        self.eval_scalar(a).map(Some)
                    } else {
                        Ok(None)
                    }
                })
                .collect::<R<_>>()?;
            return self.range_call(name, &args[mi], &scalars);
        }
        match name {
            "time" => {
                return Ok(Val::Scalar(
                    (0..n).map(|k| self.ts(k) as f64 / 1000.0).collect(),
                ));
            }
            "pi" => return Ok(Val::Scalar(vec![std::f64::consts::PI; n])),
            "vector" => {
                let s = self.eval_scalar(&args[0])?;
                return Ok(Val::Vector(vec![Row {
                    labels: Labels::default(),
                    vals: s,
                }]));
            }
            "scalar" => {
                let rows = self.eval_vector(&args[0])?;
                let vals = (0..n)
                    .map(|k| {
                        let mut it = rows.iter().filter(|r| is_present(r.vals[k]));
                        match (it.next(), it.next()) {
                            (Some(r), None) => r.vals[k],
                            _ => f64::NAN,
                        }
                    })
                    .collect();
                return Ok(Val::Scalar(vals));
            }
            "absent" => {
                let rows = self.eval_vector(&args[0])?;
                let vals: Vec<f64> = (0..n)
                    .map(|k| {
                        if rows.iter().any(|r| is_present(r.vals[k])) {
                            absent()
                        } else {
                            1.0
                        }
                    })
                    .collect();
                if vals.iter().all(|v| !is_present(*v)) {
                    return Ok(Val::Vector(vec![]));
                }
                return Ok(Val::Vector(vec![Row {
                    labels: absent_labels(&args[0]),
                    vals,
                }]));
            }
            "timestamp" => {
                let mut inner = &args[0];
                while let Expr::Paren(e) = inner {
                    inner = e;
                }
                let mut rows = if let Expr::Selector(vs) = inner {
                    self.eval_selector(vs, true)?
                } else {
                    let mut rows = self.eval_vector(inner)?;
                    for r in &mut rows {
                        for k in 0..n {
                            if is_present(r.vals[k]) {
                                r.vals[k] = self.ts(k) as f64 / 1000.0;
                            }
                        }
                    }
                    rows
                };
                for r in &mut rows {
                    r.labels = drop_name(&r.labels);
                }
                return Ok(Val::Vector(merge_rows(rows, n)?));
            }
            "histogram_quantile" => {
                let q = self.eval_scalar(&args[0])?;
                let rows = self.eval_vector(&args[1])?;
                return Ok(Val::Vector(histogram_quantile(&q, rows, n)?));
            }
            "label_replace" => {
                let rows = self.eval_vector(&args[0])?;
                let s = |i: usize| match &args[i] {
                    Expr::Str(s) => s.clone(),
                    _ => String::new(),
                };
                let (dst, repl, src, re) = (s(1), s(2), s(3), s(4));
                let re = regex::RegexBuilder::new(&format!("^(?s:{re})$"))
                    .size_limit(1 << 22)
                    .build()
                    .map_err(|_| {
                        EvalError::Execution(format!(
                            "invalid regular expression in label_replace(): {re}"
                        ))
                    })?;
                if !crate::tsdb::labels::valid_label_name(&dst) {
                    return exec(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    ));
                }
                let mut rows = rows;
                for r in &mut rows {
                    let sv = r.labels.get(&src).unwrap_or("").to_string();
                    if let Some(caps) = re.captures(&sv) {
                        let mut res = String::new();
                        caps.expand(&repl, &mut res);
                        r.labels = set_label(&r.labels, &dst, &res);
                    }
                }
                return Ok(Val::Vector(merge_rows(rows, n)?));
            }
            "label_join" => {
                let rows = self.eval_vector(&args[0])?;
                let s = |e: &Expr| match e {
                    Expr::Str(s) => s.clone(),
                    _ => String::new(),
                };
                let (dst, sep) = (s(&args[1]), s(&args[2]));
                let srcs: Vec<String> = args[3..].iter().map(s).collect();
                for src in &srcs {
                    if !crate::tsdb::labels::valid_label_name(src) {
                        return exec(format!("invalid source label name in label_join(): {src}"));
                    }
                }
                if !crate::tsdb::labels::valid_label_name(&dst) {
                    return exec(format!(
                        "invalid destination label name in label_join(): {dst}"
                    ));
                }
                let mut rows = rows;
                for r in &mut rows {
                    let joined = srcs
                        .iter()
                        .map(|x| r.labels.get(x).unwrap_or(""))
                        .collect::<Vec<_>>()
                        .join(&sep);
                    r.labels = set_label(&r.labels, &dst, &joined);
                }
                return Ok(Val::Vector(merge_rows(rows, n)?));
            }
            "sort" | "sort_desc" => {
                let mut rows = self.eval_vector(&args[0])?;
                if n == 1 {
                    if name == "sort" {
                        rows.sort_by(|a, b| cmp_asc_nan_last(a.vals[0], b.vals[0]));
                    } else {
                        rows.sort_by(|a, b| cmp_desc_nan_last(a.vals[0], b.vals[0]));
                    }
                }
                return Ok(Val::Vector(rows));
            }
            "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour"
            | "minute" | "month" | "year" => {
                let f = date_fn(name);
                let rows = if args.is_empty() {
                    vec![Row {
                        labels: Labels::default(),
                        vals: (0..n).map(|k| f(self.ts(k).div_euclid(1000))).collect(),
                    }]
                } else {
                    let mut rows = self.eval_vector(&args[0])?;
                    for r in &mut rows {
                        r.labels = drop_name(&r.labels);
                        for v in r.vals.iter_mut().filter(|v| is_present(**v)) {
                            *v = if v.is_finite() {
                                f(v.trunc() as i64)
                            } else {
                                f64::NAN
                            };
                        }
                    }
                    merge_rows(rows, n)?
                };
                return Ok(Val::Vector(rows));
            }
            _ => {}
        }
        // Element-wise functions on one instant vector, with scalar parameters.
        let mut rows = self.eval_vector(&args[0])?;
        let params: Vec<Vec<f64>> = args[1..]
            .iter()
            .map(|a| self.eval_scalar(a))
            .collect::<R<_>>()?;
        let f: fn(f64, &[f64]) -> Option<f64> = match name {
            "abs" => |v, _| Some(v.abs()),
            "ceil" => |v, _| Some(v.ceil()),
            "floor" => |v, _| Some(v.floor()),
            "exp" => |v, _| Some(v.exp()),
            "sqrt" => |v, _| Some(v.sqrt()),
            "ln" => |v, _| Some(v.ln()),
            "log2" => |v, _| Some(v.log2()),
            "log10" => |v, _| Some(v.log10()),
            "sin" => |v, _| Some(v.sin()),
            "cos" => |v, _| Some(v.cos()),
            "tan" => |v, _| Some(v.tan()),
            "asin" => |v, _| Some(v.asin()),
            "acos" => |v, _| Some(v.acos()),
            "atan" => |v, _| Some(v.atan()),
            "sinh" => |v, _| Some(v.sinh()),
            "cosh" => |v, _| Some(v.cosh()),
            "tanh" => |v, _| Some(v.tanh()),
            "asinh" => |v, _| Some(v.asinh()),
            "acosh" => |v, _| Some(v.acosh()),
            "atanh" => |v, _| Some(v.atanh()),
            "deg" => |v, _| Some(v * 180.0 / std::f64::consts::PI),
            "rad" => |v, _| Some(v * std::f64::consts::PI / 180.0),
            "sgn" => |v, _| {
                Some(if v < 0.0 {
                    -1.0
                } else if v > 0.0 {
                    1.0
                } else {
                    v
                })
            },
            "round" => |v, p| {
                let to = p.first().copied().unwrap_or(1.0);
                let inv = 1.0 / to;
                Some((v * inv + 0.5).floor() / inv)
            },
            "clamp" => |v, p| (p[1] >= p[0]).then(|| go_max(p[0], go_min(p[1], v))),
            "clamp_max" => |v, p| Some(go_min(p[0], v)),
            "clamp_min" => |v, p| Some(go_max(p[0], v)),
            _ => return exec(format!("function {name:?} is not implemented")),
        };
        let mut pk = vec![0.0; params.len()];
        for r in &mut rows {
            r.labels = drop_name(&r.labels);
            for k in 0..n {
                if !is_present(r.vals[k]) {
                    continue;
                }
                for (i, p) in params.iter().enumerate() {
                    pk[i] = p[k];
                }
                r.vals[k] = f(r.vals[k], &pk).unwrap_or_else(absent);
            }
        }
        rows.retain(|r| r.vals.iter().any(|v| is_present(*v)));
        Ok(Val::Vector(merge_rows(rows, n)?))
    }

    /// A function over a range vector (`rate`, `*_over_time`, ...), evaluated series by series
    /// with a window that slides with the steps.
    fn range_call(&mut self, name: &str, arg: &Expr, scalars: &[Option<Vec<f64>>]) -> R<Val> {
        let n = self.n;
        let (series, range, offset, at) = self.windows_source(arg)?;
        self.check_deadline("expression evaluation")?;
        let refs = self.refs(at, offset);
        let scalar = |i: usize| scalars.get(i).cloned().flatten().unwrap_or_default();
        if name == "absent_over_time" {
            let mut vals = vec![1.0; n];
            for (_, s) in &series {
                let (mut lo, mut hi) = (0, 0);
                for (k, &r) in refs.iter().enumerate() {
                    while hi < s.len() && s[hi].0 <= r {
                        hi += 1;
                    }
                    while lo < hi && s[lo].0 < r - range {
                        lo += 1;
                    }
                    if hi > lo {
                        vals[k] = absent();
                    }
                }
            }
            if vals.iter().all(|v| !is_present(*v)) {
                return Ok(Val::Vector(vec![]));
            }
            return Ok(Val::Vector(vec![Row {
                labels: absent_labels(arg),
                vals,
            }]));
        }
        let (p0, p1) = match name {
            "quantile_over_time" => (scalar(0), vec![]),
            "predict_linear" => (scalar(1), vec![]),
            "holt_winters" => (scalar(1), scalar(2)),
            _ => (vec![], vec![]),
        };
        if name == "holt_winters" {
            for k in 0..n {
                if p0[k] <= 0.0 || p0[k] >= 1.0 {
                    return exec(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {:.6}",
                        p0[k]
                    ));
                }
                if p1[k] <= 0.0 || p1[k] >= 1.0 {
                    return exec(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {:.6}",
                        p1[k]
                    ));
                }
            }
        }
        let Some(f) = RangeFn::from_name(name) else {
            return exec(format!("function {name:?} is not implemented"));
        };
        let keep_name = f == RangeFn::Last;
        let mut rows = Vec::new();
        let mut scratch: Vec<f64> = Vec::new();
        for (si, (labels, s)) in series.into_iter().enumerate() {
            if si % 64 == 0 {
                self.check_deadline("expression evaluation")?;
            }
            // Counter resets before each index, for O(1) "any reset in window" checks.
            let resets: Vec<u32> = if matches!(f, RangeFn::Rate | RangeFn::Increase) {
                let mut acc = 0u32;
                let mut v = Vec::with_capacity(s.len());
                for i in 0..s.len() {
                    if i > 0 && s[i].1 < s[i - 1].1 {
                        acc += 1;
                    }
                    v.push(acc);
                }
                v
            } else {
                Vec::new()
            };
            self.account(n)?;
            let mut vals = vec![absent(); n];
            let mut any = false;
            let (mut lo, mut hi) = (0usize, 0usize);
            for (k, &r) in refs.iter().enumerate() {
                while hi < s.len() && s[hi].0 <= r {
                    hi += 1;
                }
                let mint = r - range;
                while lo < hi && s[lo].0 < mint {
                    lo += 1;
                }
                if lo > hi {
                    lo = hi;
                }
                let w = &s[lo..hi];
                if w.is_empty() {
                    continue;
                }
                let ts = self.ts(k);
                let v = match f {
                    RangeFn::Rate | RangeFn::Increase | RangeFn::Delta => {
                        let counter = f != RangeFn::Delta;
                        let has_reset = counter && resets[hi - 1] != resets[lo];
                        extrapolated_rate(w, mint, r, range, counter, f == RangeFn::Rate, has_reset)
                    }
                    RangeFn::Irate | RangeFn::Idelta => instant_value(w, f == RangeFn::Irate),
                    RangeFn::Deriv => (w.len() >= 2).then(|| linear_regression(w, w[0].0).0),
                    RangeFn::PredictLinear => (w.len() >= 2).then(|| {
                        let (slope, icpt) = linear_regression(w, ts);
                        slope * p0[k] + icpt
                    }),
                    RangeFn::HoltWinters => holt_winters(w, p0[k], p1[k]),
                    RangeFn::Resets => {
                        Some(w.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64)
                    }
                    RangeFn::Changes => Some(
                        w.windows(2)
                            .filter(|p| p[1].1 != p[0].1 && !(p[1].1.is_nan() && p[0].1.is_nan()))
                            .count() as f64,
                    ),
                    RangeFn::Avg => Some(avg_over_time(w)),
                    RangeFn::Sum => Some(kahan_sum(w.iter().map(|x| x.1))),
                    RangeFn::Count => Some(w.len() as f64),
                    RangeFn::Last => Some(w[w.len() - 1].1),
                    RangeFn::Present => Some(1.0),
                    RangeFn::Max => Some(
                        w.iter()
                            .fold(w[0].1, |m, x| if x.1 > m || m.is_nan() { x.1 } else { m }),
                    ),
                    RangeFn::Min => Some(
                        w.iter()
                            .fold(w[0].1, |m, x| if x.1 < m || m.is_nan() { x.1 } else { m }),
                    ),
                    RangeFn::Stddev => Some(stdvar_over_time(w).sqrt()),
                    RangeFn::Stdvar => Some(stdvar_over_time(w)),
                    RangeFn::Quantile => {
                        scratch.clear();
                        scratch.extend(w.iter().map(|x| x.1));
                        Some(quantile(p0[k], &mut scratch))
                    }
                };
                if let Some(v) = v {
                    vals[k] = v;
                    any = true;
                }
            }
            if any {
                rows.push(Row {
                    labels: if keep_name {
                        labels
                    } else {
                        drop_name(&labels)
                    },
                    vals,
                });
            }
        }
        // Prometheus rejects a range-function result whose series collide once the name is gone.
        let mut seen = rustc_hash::FxHashSet::default();
        for r in &rows {
            if !seen.insert(&r.labels) {
                return exec("vector cannot contain metrics with the same labelset");
            }
        }
        Ok(Val::Vector(rows))
    }
}

fn cmp_desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).expect("not NaN"),
    }
}

fn cmp_asc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).expect("not NaN"),
    }
}

/// The functions over a range vector, resolved once per call rather than per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    HoltWinters,
    Resets,
    Changes,
    Avg,
    Sum,
    Count,
    Last,
    Present,
    Max,
    Min,
    Stddev,
    Stdvar,
    Quantile,
}

impl RangeFn {
    fn from_name(name: &str) -> Option<RangeFn> {
        Some(match name {
            "rate" => RangeFn::Rate,
            "increase" => RangeFn::Increase,
            "delta" => RangeFn::Delta,
            "irate" => RangeFn::Irate,
            "idelta" => RangeFn::Idelta,
            "deriv" => RangeFn::Deriv,
            "predict_linear" => RangeFn::PredictLinear,
            "holt_winters" => RangeFn::HoltWinters,
            "resets" => RangeFn::Resets,
            "changes" => RangeFn::Changes,
            "avg_over_time" => RangeFn::Avg,
            "sum_over_time" => RangeFn::Sum,
            "count_over_time" => RangeFn::Count,
            "last_over_time" => RangeFn::Last,
            "present_over_time" => RangeFn::Present,
            "max_over_time" => RangeFn::Max,
            "min_over_time" => RangeFn::Min,
            "stddev_over_time" => RangeFn::Stddev,
            "stdvar_over_time" => RangeFn::Stdvar,
            "quantile_over_time" => RangeFn::Quantile,
            _ => return None,
        })
    }
}

/// Go's `math.Min`: NaN wins, and -0 is smaller than +0.
fn go_min(a: f64, b: f64) -> f64 {
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

fn go_max(a: f64, b: f64) -> f64 {
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

/// Value and "keep" of `lhs op rhs` for one pair of samples.
pub(crate) fn elem_binop(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Mod => (l % r, true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (l, true),
    }
}

pub(crate) fn drop_name(l: &Labels) -> Labels {
    if l.get("__name__").is_none() {
        return l.clone();
    }
    Labels::from_sorted(l.iter().filter(|x| x.name != "__name__").cloned().collect())
}

fn set_label(l: &Labels, name: &str, value: &str) -> Labels {
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

/// The matching signature of a series: its `on` labels, or all but the `ignoring` ones and
/// the name.
fn signature(l: &Labels, m: &VectorMatching) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    if m.on {
        for name in &m.labels {
            name.hash(&mut h);
            l.get(name).unwrap_or("").hash(&mut h);
        }
    } else {
        for x in l.iter() {
            if x.name != "__name__" && !m.labels.contains(&x.name) {
                x.name.hash(&mut h);
                x.value.hash(&mut h);
            }
        }
    }
    h.finish()
}

fn match_labels(l: &Labels, m: &VectorMatching) -> Labels {
    Labels::from_sorted(
        l.iter()
            .filter(|x| {
                if m.on {
                    m.labels.contains(&x.name)
                } else {
                    x.name != "__name__" && !m.labels.contains(&x.name)
                }
            })
            .cloned()
            .collect(),
    )
}

fn result_labels(many: &Labels, one: &Labels, op: BinOp, m: &VectorMatching) -> Labels {
    let mut v: Vec<Label> = many
        .iter()
        .filter(|x| {
            if op.drops_name() && x.name == "__name__" {
                return false;
            }
            if m.card == Card::OneToOne {
                if m.on {
                    return m.labels.contains(&x.name);
                }
                return !m.labels.contains(&x.name);
            }
            true
        })
        .cloned()
        .collect();
    for name in &m.include {
        v.retain(|x| &x.name != name);
        if let Some(val) = one.get(name) {
            v.push(Label {
                name: name.clone(),
                value: val.to_string(),
            });
        }
    }
    v.sort();
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

/// Labels `absent()` and `absent_over_time()` give their result: the argument selector's
/// equality matchers, unless a name is matched more than once.
fn absent_labels(e: &Expr) -> Labels {
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

fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

fn kahan_sum(it: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for v in it {
        (s, c) = kahan_inc(v, s, c);
    }
    if s.is_infinite() { s } else { s + c }
}

fn avg_over_time(w: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64);
    for &(_, v) in w {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

fn stdvar_over_time(w: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in w {
        count += 1.0;
        let delta = v - (mean + cm);
        (mean, cm) = kahan_inc(delta / count, mean, cm);
        (aux, ca) = kahan_inc(delta * (v - (mean + cm)), aux, ca);
    }
    (aux + ca) / count
}

fn extrapolated_rate(
    w: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range: i64,
    counter: bool,
    rate: bool,
    has_reset: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.1 - first.1;
    if counter && has_reset {
        let mut prev = first.1;
        for &(_, v) in &w[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = (first.0 - range_start) as f64 / 1000.0;
    let to_end = (range_end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg = sampled / (w.len() - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg / 2.0
    };
    let mut factor = interval / sampled;
    if rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

fn instant_value(w: &[(i64, f64)], rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (prev, last) = (w[w.len() - 2], w[w.len() - 1]);
    let mut v = if rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    let dt = last.0 - prev.0;
    if dt == 0 {
        return None;
    }
    if rate {
        v /= dt as f64 / 1000.0;
    }
    Some(v)
}

fn linear_regression(w: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let init = w[0].1;
    let mut const_y = true;
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0f64, 0.0, 0.0, 0.0);
    for (i, &(t, v)) in w.iter().enumerate() {
        if const_y && i > 0 && v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn holt_winters(w: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0f64, w[0].1);
    let mut b = w[1].1 - w[0].1;
    for (i, &(_, v)) in w.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
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

fn histogram_quantile(q: &[f64], rows: Vec<Row>, n: usize) -> R<Vec<Row>> {
    // Group by every label but `le` (the name included, as Prometheus does).
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (ri, r) in rows.iter().enumerate() {
        let Some(le) = r.labels.get("le").and_then(parse_go_float) else {
            continue;
        };
        let key = Labels::from_sorted(
            r.labels
                .iter()
                .filter(|x| x.name != "le")
                .cloned()
                .collect(),
        );
        let gi = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[gi].1.push((le, ri));
    }
    let mut out = Vec::with_capacity(groups.len());
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for (key, members) in groups {
        let mut vals = vec![absent(); n];
        for k in 0..n {
            buckets.clear();
            for &(le, ri) in &members {
                let v = rows[ri].vals[k];
                if is_present(v) {
                    buckets.push((le, v));
                }
            }
            if !buckets.is_empty() {
                vals[k] = bucket_quantile(q[k], &mut buckets);
            }
        }
        if vals.iter().any(|v| is_present(*v)) {
            out.push(Row {
                labels: drop_name(&key),
                vals,
            });
        }
    }
    merge_rows(out, n)
}

/// Go's `strconv.ParseFloat` for `le` values: decimals, exponents, `+Inf`, `Inf`, `NaN`.
fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if s.starts_with("0x") || s.starts_with("0X") {
        return u64::from_str_radix(&s[2..], 16).ok().map(|v| v as f64);
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn bucket_quantile(q: f64, b: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if b[b.len() - 1].0 != f64::INFINITY {
        return f64::NAN;
    }
    // Coalesce equal bounds.
    let mut w = 0;
    for i in 1..b.len() {
        if b[i].0 == b[w].0 {
            b[w].1 += b[i].1;
        } else {
            w += 1;
            b[w] = b[i];
        }
    }
    b.truncate(w + 1);
    // Force monotonic counts.
    let mut max = b[0].1;
    for x in b.iter_mut().skip(1) {
        if x.1 > max {
            max = x.1;
        } else if x.1 < max {
            x.1 = max;
        }
    }
    if b.len() < 2 {
        return f64::NAN;
    }
    let obs = b[b.len() - 1].1;
    if obs == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * obs;
    let idx = b[..b.len() - 1].partition_point(|x| x.1 < rank);
    if idx == b.len() - 1 {
        return b[b.len() - 2].0;
    }
    if idx == 0 && b[0].0 <= 0.0 {
        return b[0].0;
    }
    let end = b[idx].0;
    let mut count = b[idx].1;
    let mut start = 0.0;
    if idx > 0 {
        start = b[idx - 1].0;
        count -= b[idx - 1].1;
        rank -= b[idx - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub fn format_value_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Civil date (year, month, day) and second of the day from Unix seconds (UTC).
pub(crate) fn civil(secs: i64) -> (i64, u32, u32, i64) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d, sod)
}

/// Civil date parts from Unix seconds (UTC).
fn date_fn(name: &str) -> fn(i64) -> f64 {
    fn leap(y: i64) -> bool {
        (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    }
    fn dim(y: i64, m: u32) -> u32 {
        match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }
    match name {
        "days_in_month" => |s| {
            let (y, m, _, _) = civil(s);
            dim(y, m) as f64
        },
        "day_of_month" => |s| civil(s).2 as f64,
        "day_of_week" => |s| (s.div_euclid(86_400) + 4).rem_euclid(7) as f64,
        "day_of_year" => |s| {
            let (y, m, d, _) = civil(s);
            ((1..m).map(|mm| dim(y, mm)).sum::<u32>() + d) as f64
        },
        "hour" => |s| (civil(s).3 / 3600) as f64,
        "minute" => |s| ((civil(s).3 % 3600) / 60) as f64,
        "month" => |s| civil(s).1 as f64,
        _ => |s| civil(s).0 as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_go() {
        // 2024-02-29T13:45:00Z is a Thursday, day 60 of a leap year.
        let t = 1_709_214_300;
        assert_eq!(date_fn("year")(t), 2024.0);
        assert_eq!(date_fn("month")(t), 2.0);
        assert_eq!(date_fn("day_of_month")(t), 29.0);
        assert_eq!(date_fn("days_in_month")(t), 29.0);
        assert_eq!(date_fn("day_of_week")(t), 4.0);
        assert_eq!(date_fn("day_of_year")(t), 60.0);
        assert_eq!(date_fn("hour")(t), 13.0);
        assert_eq!(date_fn("minute")(t), 45.0);
    }

    #[test]
    fn absent_marker_survives_nothing() {
        let a = absent();
        assert!(!is_present(a));
        assert!(is_present(a + 1.0));
        assert!(is_present(f64::NAN));
    }
}
