//! Evaluation: a log query gathers the newest (or oldest) `limit` entries in `[start, end)` into
//! streams keyed by their labels after the pipeline; a metric query reads the entries its range
//! aggregations need once, builds their series, then evaluates the expression at every step
//! (Loki's windows are left-open: `t - range < ts <= t`), with vector aggregations and binary
//! operators matching as Prometheus's do.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use super::ast::*;
use super::pipeline::{self, ERR_SAMPLE, ERROR_LABEL, Row};
use super::{Entry, Labels, Limits, LogSource, QueryError};

/// Series a range aggregation may build before grouping (memory bound).
const MAX_INNER_SERIES: usize = 200_000;

/// A parsed query and its time frame.
#[derive(Debug, Clone)]
pub struct Query {
    pub expr: Expr,
    /// Range queries: the first and last step (metric) or `[start, end)` (log). Instant
    /// queries: both the evaluation time.
    pub start: i64,
    pub end: i64,
    /// Step of a range metric query, ns.
    pub step: i64,
    pub instant: bool,
    pub limit: usize,
    pub forward: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamOut {
    pub labels: Labels,
    /// `(ts ns, line)` in the query's direction.
    pub entries: Vec<(i64, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Streams(Vec<StreamOut>),
    Vector(i64, Vec<(Labels, f64)>),
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
    Scalar(i64, f64),
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub lines_scanned: u64,
    pub bytes_scanned: u64,
    pub entries_returned: u64,
    pub exec_ns: u64,
    pub warnings: Vec<String>,
}

struct Ctx<'a> {
    src: &'a dyn LogSource,
    limits: &'a Limits,
    deadline: Instant,
    stats: Stats,
}

impl Ctx<'_> {
    /// Scans `[start, end)` through `visit`; enforces the line and time limits.
    fn scan(
        &mut self,
        start: i64,
        end: i64,
        matchers: &[Matcher],
        visit: &mut dyn FnMut(&Labels, &Entry<'_>) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let mut failure: Option<QueryError> = None;
        let (limits, deadline) = (self.limits, self.deadline);
        let stats = &mut self.stats;
        self.src
            .scan(start, end, matchers, &mut |labels, e| {
                stats.lines_scanned += 1;
                stats.bytes_scanned += e.line.len() as u64;
                if stats.lines_scanned > limits.max_lines_scanned {
                    failure = Some(QueryError::Limit(format!(
                        "the query would read more than {} lines; narrow the stream selector or the time range",
                        limits.max_lines_scanned
                    )));
                    return false;
                }
                if stats.lines_scanned.is_multiple_of(4096) && Instant::now() > deadline {
                    failure = Some(QueryError::Timeout(format!(
                        "query timed out after {:?}; narrow the stream selector or the time range",
                        limits.timeout
                    )));
                    return false;
                }
                match visit(labels, e) {
                    Ok(()) => true,
                    Err(err) => {
                        failure = Some(err);
                        false
                    }
                }
            })
            .map_err(QueryError::Store)?;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Runs `q` against `src`.
pub fn run(q: &Query, src: &dyn LogSource, limits: &Limits) -> Result<(Answer, Stats), QueryError> {
    let started = Instant::now();
    let mut ctx = Ctx {
        src,
        limits,
        deadline: started + limits.timeout,
        stats: Stats::default(),
    };
    let answer = match &q.expr {
        Expr::Log(l) => {
            if q.instant {
                return Err(QueryError::Bad(
                    "log queries are not supported as an instant query type, please change your query to a range query type".into(),
                ));
            }
            if q.limit > limits.max_entries {
                return Err(QueryError::Limit(format!(
                    "max entries limit per query exceeded, limit > max_entries_limit_per_query ({} > {})",
                    q.limit, limits.max_entries
                )));
            }
            log_query(&mut ctx, l, q)?
        }
        Expr::Metric(m) => metric_query(&mut ctx, m, q)?,
    };
    ctx.stats.exec_ns = started.elapsed().as_nanos() as u64;
    ctx.stats.entries_returned = match &answer {
        Answer::Streams(s) => s.iter().map(|s| s.entries.len() as u64).sum(),
        _ => 0,
    };
    Ok((answer, ctx.stats))
}

fn log_query(ctx: &mut Ctx<'_>, l: &LogExpr, q: &Query) -> Result<Answer, QueryError> {
    let limit = q.limit.max(1);
    // Keyed by (ts, -seq) so ties keep scan order; the heap holds the `limit` best so far.
    let mut newest: BinaryHeap<Reverse<(i64, Reverse<u64>, usize)>> = BinaryHeap::new();
    let mut oldest: BinaryHeap<(i64, u64, usize)> = BinaryHeap::new();
    let mut slots: Vec<Option<(std::rc::Rc<Labels>, String)>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut label_ids: HashMap<Labels, std::rc::Rc<Labels>> = HashMap::new();
    let mut seq = 0u64;
    let forward = q.forward;
    ctx.scan(q.start, q.end, &l.matchers, &mut |labels, e| {
        let mut row = Row::new(e.ts, e.line, labels, e.metadata);
        if !pipeline::run(&l.stages, &mut row) {
            return Ok(());
        }
        seq += 1;
        let full = if forward {
            oldest.len() >= limit && oldest.peek().is_some_and(|t| t.0 <= e.ts)
        } else {
            newest.len() >= limit && newest.peek().is_some_and(|t| (t.0).0 >= e.ts)
        };
        if full {
            return Ok(());
        }
        let out_labels = row.labels();
        let rc = match label_ids.get(&out_labels) {
            Some(r) => r.clone(),
            None => {
                if label_ids.len() >= MAX_INNER_SERIES {
                    return Err(QueryError::Limit(format!(
                        "the query's pipeline makes more than {MAX_INNER_SERIES} distinct label sets"
                    )));
                }
                let r = std::rc::Rc::new(out_labels.clone());
                label_ids.insert(out_labels, r.clone());
                r
            }
        };
        let slot = match free.pop() {
            Some(i) => {
                slots[i] = Some((rc, row.line));
                i
            }
            None => {
                slots.push(Some((rc, row.line)));
                slots.len() - 1
            }
        };
        if forward {
            oldest.push((e.ts, seq, slot));
            if oldest.len() > limit
                && let Some((_, _, s)) = oldest.pop()
            {
                slots[s] = None;
                free.push(s);
            }
        } else {
            newest.push(Reverse((e.ts, Reverse(seq), slot)));
            if newest.len() > limit
                && let Some(Reverse((_, _, s))) = newest.pop()
            {
                slots[s] = None;
                free.push(s);
            }
        }
        Ok(())
    })?;
    let mut picked: Vec<(i64, u64, usize)> = if forward {
        oldest.into_vec()
    } else {
        newest
            .into_vec()
            .into_iter()
            .map(|Reverse((t, Reverse(s), i))| (t, s, i))
            .collect()
    };
    picked.sort_by_key(|&(t, s, _)| (t, s));
    if !forward {
        picked.reverse();
    }
    let mut streams: HashMap<std::rc::Rc<Labels>, Vec<(i64, String)>> = HashMap::new();
    let mut order: Vec<std::rc::Rc<Labels>> = Vec::new();
    for (t, _, i) in picked {
        if let Some((labels, line)) = slots[i].take() {
            let v = streams.entry(labels.clone()).or_insert_with(|| {
                order.push(labels.clone());
                Vec::new()
            });
            v.push((t, line));
        }
    }
    order.sort();
    Ok(Answer::Streams(
        order
            .into_iter()
            .map(|l| {
                let entries = streams.remove(&l).unwrap_or_default();
                StreamOut {
                    labels: (*l).clone(),
                    entries,
                }
            })
            .collect(),
    ))
}

/// Per-step values: a scalar, or one vector per step.
enum Val {
    Scalar(f64),
    Vectors(Vec<Vec<(Labels, f64)>>),
}

fn metric_query(ctx: &mut Ctx<'_>, m: &MetricExpr, q: &Query) -> Result<Answer, QueryError> {
    let steps: Vec<i64> = if q.instant || q.step <= 0 {
        vec![q.end]
    } else {
        let n = (q.end - q.start) / q.step + 1;
        if n > ctx.limits.max_points {
            return Err(QueryError::Limit(format!(
                "exceeded maximum resolution of {} points per timeseries. Try increasing the value of the step parameter",
                ctx.limits.max_points
            )));
        }
        (0..n).map(|i| q.start + i * q.step).collect()
    };
    let val = eval(ctx, m, &steps)?;
    let max_series = ctx.limits.max_series;
    match val {
        Val::Scalar(v) => {
            if q.instant {
                Ok(Answer::Scalar(steps[0], v))
            } else {
                Ok(Answer::Matrix(vec![(
                    Vec::new(),
                    steps.iter().map(|&t| (t, v)).collect(),
                )]))
            }
        }
        Val::Vectors(mut vs) => {
            if q.instant {
                let mut v = vs.pop().unwrap_or_default();
                if !matches!(
                    m,
                    MetricExpr::Agg {
                        op: AggOp::Sort | AggOp::SortDesc,
                        ..
                    }
                ) {
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                }
                if v.len() > max_series {
                    v.truncate(max_series);
                    ctx.stats.warnings.push(format!(
                        "maximum number of series ({max_series}) reached for a single query; returning partial results"
                    ));
                }
                return Ok(Answer::Vector(steps[0], v));
            }
            let mut series: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
            let mut limited = false;
            for (i, v) in vs.into_iter().enumerate() {
                for (l, x) in v {
                    let n = series.len();
                    match series.get_mut(&l) {
                        Some(p) => p.push((steps[i], x)),
                        None if n < max_series => {
                            series.insert(l, vec![(steps[i], x)]);
                        }
                        None => limited = true,
                    }
                }
            }
            if limited {
                ctx.stats.warnings.push(format!(
                    "maximum number of series ({max_series}) reached for a single query; returning partial results"
                ));
            }
            let mut out: Vec<(Labels, Vec<(i64, f64)>)> = series.into_iter().collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Answer::Matrix(out))
        }
    }
}

fn eval(ctx: &mut Ctx<'_>, m: &MetricExpr, steps: &[i64]) -> Result<Val, QueryError> {
    match m {
        MetricExpr::Literal(v) => Ok(Val::Scalar(*v)),
        MetricExpr::Vector(v) => Ok(Val::Vectors(
            steps.iter().map(|_| vec![(Vec::new(), *v)]).collect(),
        )),
        MetricExpr::Range {
            op,
            param,
            range,
            grouping,
        } => range_agg(ctx, *op, *param, range, grouping.as_ref(), steps).map(Val::Vectors),
        MetricExpr::Agg {
            op,
            param,
            grouping,
            inner,
        } => {
            let v = match eval(ctx, inner, steps)? {
                Val::Vectors(v) => v,
                Val::Scalar(_) => {
                    return Err(QueryError::Bad(format!(
                        "unexpected literal for {}: aggregations take a vector",
                        super::parser::agg_name(*op)
                    )));
                }
            };
            Ok(Val::Vectors(
                v.into_iter()
                    .map(|vec| aggregate(*op, *param, grouping.as_ref(), vec))
                    .collect(),
            ))
        }
        MetricExpr::LabelReplace {
            inner,
            dst,
            replacement,
            src,
            re,
        } => {
            let v = match eval(ctx, inner, steps)? {
                Val::Vectors(v) => v,
                Val::Scalar(_) => {
                    return Err(QueryError::Bad("label_replace takes a vector".into()));
                }
            };
            let mut out = Vec::with_capacity(v.len());
            for vec in v {
                let mut seen = std::collections::HashSet::new();
                let mut step = Vec::with_capacity(vec.len());
                for (mut l, x) in vec {
                    let sv = l
                        .iter()
                        .find(|(k, _)| k == src)
                        .map_or("", |(_, v)| v.as_str())
                        .to_string();
                    if let Some(c) = re.captures(&sv) {
                        let mut res = String::new();
                        c.expand(replacement, &mut res);
                        l.retain(|(k, _)| k != dst);
                        if !res.is_empty() {
                            l.push((dst.clone(), res));
                            l.sort();
                        }
                    }
                    if !seen.insert(l.clone()) {
                        return Err(QueryError::Bad(
                            "vector cannot contain metrics with the same labelset".into(),
                        ));
                    }
                    step.push((l, x));
                }
                out.push(step);
            }
            Ok(Val::Vectors(out))
        }
        MetricExpr::Binary {
            op,
            lhs,
            rhs,
            return_bool,
            matching,
        } => {
            let l = eval(ctx, lhs, steps)?;
            let r = eval(ctx, rhs, steps)?;
            binary(*op, l, r, *return_bool, matching)
        }
    }
}

fn pipeline_error(labels: &Labels, err: &str) -> QueryError {
    let text = crate::base::gofmt::label_set(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    QueryError::Bad(format!(
        "pipeline error: '{err}' for series: '{text}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{err}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )"
    ))
}

fn group_labels(labels: Labels, g: &Grouping) -> Labels {
    if g.without {
        labels
            .into_iter()
            .filter(|(k, _)| !g.labels.contains(k))
            .collect()
    } else {
        labels
            .into_iter()
            .filter(|(k, _)| g.labels.contains(k))
            .collect()
    }
}

fn range_agg(
    ctx: &mut Ctx<'_>,
    op: RangeOp,
    param: Option<f64>,
    r: &LogRange,
    grouping: Option<&Grouping>,
    steps: &[i64],
) -> Result<Vec<Vec<(Labels, f64)>>, QueryError> {
    let first = steps[0] - r.offset_ns - r.range_ns;
    let last = steps[steps.len() - 1] - r.offset_ns;
    // Loki: the unwrapped label leaves the series unless `by (...)` names what to keep.
    let grouping: Option<Grouping> = match (&r.unwrap, grouping) {
        (Some(u), None) => Some(Grouping {
            without: true,
            labels: vec![u.label.clone()],
        }),
        (Some(u), Some(g)) if g.without => {
            let mut g = g.clone();
            g.labels.push(u.label.clone());
            Some(g)
        }
        (_, g) => g.cloned(),
    };
    let mut series: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
    let mut any_seen = false;
    ctx.scan(first + 1, last.saturating_add(1), &r.log.matchers, &mut |labels, e| {
        let mut row = Row::new(e.ts, e.line, labels, e.metadata);
        if !pipeline::run(&r.log.stages, &mut row) {
            return Ok(());
        }
        let value = match &r.unwrap {
            Some(u) => {
                if row.get(&u.label).is_none_or(str::is_empty) {
                    return Ok(());
                }
                let v = match pipeline::unwrap_value(u, &row) {
                    Ok(v) => v,
                    Err(details) => {
                        if row.err.is_none() {
                            row.err = Some(ERR_SAMPLE.to_string());
                            row.err_details = Some(details);
                        }
                        0.0
                    }
                };
                for f in &u.filters {
                    if !pipeline::label_filter(f, &mut row) {
                        return Ok(());
                    }
                }
                v
            }
            None => match op {
                RangeOp::BytesOverTime | RangeOp::BytesRate => row.line.len() as f64,
                _ => 1.0,
            },
        };
        let mut labels = row.labels();
        if let Some(err) = row.err.as_deref() {
            return Err(pipeline_error(&labels, err));
        }
        labels.retain(|(k, _)| k != ERROR_LABEL);
        if let Some(g) = &grouping {
            labels = group_labels(labels, g);
        }
        any_seen = true;
        let n = series.len();
        match series.get_mut(&labels) {
            Some(p) => p.push((e.ts, value)),
            None => {
                if n >= MAX_INNER_SERIES {
                    return Err(QueryError::Limit(format!(
                        "the query reads more than {MAX_INNER_SERIES} series; aggregate with a narrower selector"
                    )));
                }
                series.insert(labels, vec![(e.ts, value)]);
            }
        }
        Ok(())
    })?;
    let _ = any_seen;
    let mut list: Vec<(Labels, Vec<(i64, f64)>)> = series.into_iter().collect();
    for (_, pts) in &mut list {
        pts.sort_by_key(|p| p.0);
    }
    let range_s = r.range_ns as f64 / 1e9;
    let mut out = Vec::with_capacity(steps.len());
    for &t in steps {
        let hi_t = t - r.offset_ns;
        let lo_t = hi_t - r.range_ns;
        let mut vec = Vec::new();
        let mut present = false;
        for (labels, pts) in &list {
            let lo = pts.partition_point(|p| p.0 <= lo_t);
            let hi = pts.partition_point(|p| p.0 <= hi_t);
            if lo >= hi {
                continue;
            }
            present = true;
            if op == RangeOp::AbsentOverTime {
                continue;
            }
            let w = &pts[lo..hi];
            let v = over_time(op, param, w, range_s, lo_t, hi_t);
            vec.push((labels.clone(), v));
        }
        if op == RangeOp::AbsentOverTime && !present {
            let mut l: Labels = r
                .log
                .matchers
                .iter()
                .filter(|m| m.op == MatchOp::Eq)
                .map(|m| (m.name.clone(), m.value.clone()))
                .collect();
            l.sort();
            l.dedup_by(|a, b| a.0 == b.0);
            vec.push((l, 1.0));
        }
        out.push(vec);
    }
    Ok(out)
}

fn over_time(
    op: RangeOp,
    param: Option<f64>,
    w: &[(i64, f64)],
    range_s: f64,
    lo_t: i64,
    hi_t: i64,
) -> f64 {
    let n = w.len() as f64;
    let sum = || w.iter().map(|p| p.1).sum::<f64>();
    let var = || {
        let mean = sum() / n;
        w.iter().map(|p| (p.1 - mean).powi(2)).sum::<f64>() / n
    };
    match op {
        RangeOp::CountOverTime => n,
        RangeOp::Rate if w.iter().all(|p| p.1 == 1.0) => n / range_s,
        RangeOp::Rate | RangeOp::BytesRate => sum() / range_s,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => sum(),
        RangeOp::AvgOverTime => sum() / n,
        RangeOp::MinOverTime => w
            .iter()
            .map(|p| p.1)
            .fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a }),
        RangeOp::MaxOverTime => w
            .iter()
            .map(|p| p.1)
            .fold(f64::NAN, |a, b| if a.is_nan() || b > a { b } else { a }),
        RangeOp::StdvarOverTime => var(),
        RangeOp::StddevOverTime => var().sqrt(),
        RangeOp::QuantileOverTime => {
            let mut vals: Vec<f64> = w.iter().map(|p| p.1).collect();
            quantile(param.unwrap_or(0.5), &mut vals)
        }
        RangeOp::FirstOverTime => w[0].1,
        RangeOp::LastOverTime => w[w.len() - 1].1,
        RangeOp::RateCounter => extrapolated_rate(w, lo_t, hi_t),
        RangeOp::AbsentOverTime => 1.0,
    }
}

/// Prometheus's quantile: linear interpolation between the closest ranks.
fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(|a, b| a.total_cmp(b));
    let rank = q * (vals.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(vals.len() - 1);
    let wgt = rank - rank.floor();
    vals[lo] * (1.0 - wgt) + vals[hi] * wgt
}

/// Loki's `extrapolatedRate` for `rate_counter` (pkg/logql/range_vector.go): fewer than two
/// samples give 0; the distance to the window's start is capped at half the average spacing
/// when it exceeds 1.1 spacings, then at the counter's extrapolated zero point.
fn extrapolated_rate(w: &[(i64, f64)], lo_t: i64, hi_t: i64) -> f64 {
    if w.len() < 2 {
        return 0.0;
    }
    let mut result = w[w.len() - 1].1 - w[0].1;
    let mut last = 0.0;
    for p in w {
        if p.1 < last {
            result += last;
        }
        last = p.1;
    }
    let sampled = (w[w.len() - 1].0 - w[0].0) as f64 / 1e9;
    let avg = sampled / (w.len() - 1) as f64;
    let mut to_start = (w[0].0 - lo_t) as f64 / 1e9;
    let mut to_end = (hi_t - w[w.len() - 1].0) as f64 / 1e9;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    let mut to_zero = to_start;
    if result > 0.0 && w[0].1 >= 0.0 {
        to_zero = sampled * (w[0].1 / result);
    }
    if to_zero < to_start {
        to_start = to_zero;
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let interval = sampled + to_start + to_end;
    result * (interval / sampled) / ((hi_t - lo_t) as f64 / 1e9)
}

fn aggregate(
    op: AggOp,
    param: Option<f64>,
    g: Option<&Grouping>,
    v: Vec<(Labels, f64)>,
) -> Vec<(Labels, f64)> {
    let key = |l: &Labels| -> Labels {
        match g {
            Some(g) => group_labels(l.clone(), g),
            None => Vec::new(),
        }
    };
    match op {
        AggOp::Sort | AggOp::SortDesc => {
            let mut v = v;
            v.sort_by(|a, b| {
                let o = a.1.total_cmp(&b.1);
                if op == AggOp::Sort { o } else { o.reverse() }
            });
            v
        }
        AggOp::Topk | AggOp::Bottomk => {
            let k = param.unwrap_or(1.0) as usize;
            let mut groups: HashMap<Labels, Vec<(Labels, f64)>> = HashMap::new();
            for (l, x) in v {
                groups.entry(key(&l)).or_default().push((l, x));
            }
            let mut out = Vec::new();
            for (_, mut members) in groups {
                members.sort_by(|a, b| {
                    // NaN sorts last either way, as in Prometheus.
                    let o = match (a.1.is_nan(), b.1.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => return std::cmp::Ordering::Greater,
                        (false, true) => return std::cmp::Ordering::Less,
                        _ => a.1.total_cmp(&b.1),
                    };
                    if op == AggOp::Topk { o.reverse() } else { o }
                });
                members.truncate(k);
                out.extend(members);
            }
            out
        }
        _ => {
            let mut groups: HashMap<Labels, Vec<f64>> = HashMap::new();
            let mut order = Vec::new();
            for (l, x) in v {
                let k = key(&l);
                groups
                    .entry(k.clone())
                    .or_insert_with(|| {
                        order.push(k);
                        Vec::new()
                    })
                    .push(x);
            }
            order
                .into_iter()
                .map(|k| {
                    let xs = &groups[&k];
                    let n = xs.len() as f64;
                    let sum: f64 = xs.iter().sum();
                    let v = match op {
                        AggOp::Sum => sum,
                        AggOp::Avg => sum / n,
                        AggOp::Count => n,
                        AggOp::Min => xs
                            .iter()
                            .copied()
                            .fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a }),
                        AggOp::Max => xs
                            .iter()
                            .copied()
                            .fold(f64::NAN, |a, b| if a.is_nan() || b > a { b } else { a }),
                        AggOp::Stdvar | AggOp::Stddev => {
                            let mean = sum / n;
                            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                            if op == AggOp::Stddev { var.sqrt() } else { var }
                        }
                        _ => f64::NAN,
                    };
                    (k, v)
                })
                .collect()
        }
    }
}

fn arith(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        _ => f64::NAN,
    }
}

fn compare(op: BinOp, a: f64, b: f64) -> bool {
    match op {
        BinOp::Eq => a == b,
        BinOp::Ne => a != b,
        BinOp::Gt => a > b,
        BinOp::Ge => a >= b,
        BinOp::Lt => a < b,
        BinOp::Le => a <= b,
        _ => false,
    }
}

fn binary(
    op: BinOp,
    l: Val,
    r: Val,
    return_bool: bool,
    m: &VectorMatching,
) -> Result<Val, QueryError> {
    match (l, r) {
        (Val::Scalar(a), Val::Scalar(b)) => Ok(Val::Scalar(if op.is_comparison() {
            f64::from(u8::from(compare(op, a, b)))
        } else {
            arith(op, a, b)
        })),
        (Val::Vectors(v), Val::Scalar(s)) => Ok(Val::Vectors(
            v.into_iter()
                .map(|vec| vector_scalar(op, vec, s, false, return_bool))
                .collect(),
        )),
        (Val::Scalar(s), Val::Vectors(v)) => Ok(Val::Vectors(
            v.into_iter()
                .map(|vec| vector_scalar(op, vec, s, true, return_bool))
                .collect(),
        )),
        (Val::Vectors(a), Val::Vectors(b)) => {
            let mut out = Vec::with_capacity(a.len());
            for (x, y) in a.into_iter().zip(b) {
                out.push(vector_vector(op, x, y, return_bool, m)?);
            }
            Ok(Val::Vectors(out))
        }
    }
}

fn vector_scalar(
    op: BinOp,
    v: Vec<(Labels, f64)>,
    s: f64,
    swap: bool,
    return_bool: bool,
) -> Vec<(Labels, f64)> {
    v.into_iter()
        .filter_map(|(l, x)| {
            let (a, b) = if swap { (s, x) } else { (x, s) };
            if op.is_comparison() {
                let ok = compare(op, a, b);
                if return_bool {
                    Some((l, f64::from(u8::from(ok))))
                } else {
                    ok.then_some((l, x))
                }
            } else {
                Some((l, arith(op, a, b)))
            }
        })
        .collect()
}

fn signature(l: &Labels, m: &VectorMatching) -> Labels {
    if m.on {
        l.iter()
            .filter(|(k, _)| m.labels.contains(k))
            .cloned()
            .collect()
    } else {
        l.iter()
            .filter(|(k, _)| !m.labels.contains(k))
            .cloned()
            .collect()
    }
}

fn vector_vector(
    op: BinOp,
    lhs: Vec<(Labels, f64)>,
    rhs: Vec<(Labels, f64)>,
    return_bool: bool,
    m: &VectorMatching,
) -> Result<Vec<(Labels, f64)>, QueryError> {
    match op {
        BinOp::And => {
            let sigs: std::collections::HashSet<Labels> =
                rhs.iter().map(|(l, _)| signature(l, m)).collect();
            return Ok(lhs
                .into_iter()
                .filter(|(l, _)| sigs.contains(&signature(l, m)))
                .collect());
        }
        BinOp::Unless => {
            let sigs: std::collections::HashSet<Labels> =
                rhs.iter().map(|(l, _)| signature(l, m)).collect();
            return Ok(lhs
                .into_iter()
                .filter(|(l, _)| !sigs.contains(&signature(l, m)))
                .collect());
        }
        BinOp::Or => {
            let sigs: std::collections::HashSet<Labels> =
                lhs.iter().map(|(l, _)| signature(l, m)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|(l, _)| !sigs.contains(&signature(l, m))),
            );
            return Ok(out);
        }
        _ => {}
    }
    // group_right swaps the roles: the "one" side is the left.
    let (many, one, swapped) = match &m.group {
        Some((true, _)) => (rhs, lhs, true),
        _ => (lhs, rhs, false),
    };
    let mut one_by_sig: HashMap<Labels, (Labels, f64)> = HashMap::new();
    for (l, x) in one {
        let sig = signature(&l, m);
        if one_by_sig.insert(sig, (l, x)).is_some() {
            let side = if m.group.is_some() {
                "one"
            } else if swapped {
                "left"
            } else {
                "right"
            };
            return Err(QueryError::Bad(format!(
                "found duplicate series for the match group on the {side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
    }
    let mut out = Vec::new();
    let mut seen: std::collections::HashSet<Labels> = std::collections::HashSet::new();
    for (l, x) in many {
        let sig = signature(&l, m);
        let Some((ol, oy)) = one_by_sig.get(&sig) else {
            continue;
        };
        let (a, b) = if swapped { (*oy, x) } else { (x, *oy) };
        let value = if op.is_comparison() {
            let ok = compare(op, a, b);
            if return_bool {
                f64::from(u8::from(ok))
            } else if ok {
                a
            } else {
                continue;
            }
        } else {
            arith(op, a, b)
        };
        let mut labels = match &m.group {
            None => signature(&l, m),
            Some(_) => l.clone(),
        };
        if let Some((_, include)) = &m.group {
            for name in include {
                labels.retain(|(k, _)| k != name);
                if let Some((_, v)) = ol.iter().find(|(k, _)| k == name) {
                    labels.push((name.clone(), v.clone()));
                }
            }
            labels.sort();
        }
        if m.group.is_none() && !seen.insert(labels.clone()) {
            return Err(QueryError::Bad(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
            ));
        }
        out.push((labels, value));
    }
    Ok(out)
}

/// One stored entry of a [`VecSource`]: time, line, structured metadata.
pub type MemEntry = (i64, String, Labels);

/// A source over entries held in memory, for tests and the conformance corpus.
pub struct VecSource {
    pub streams: Vec<(Labels, Vec<MemEntry>)>,
}

impl LogSource for VecSource {
    fn scan(
        &self,
        start_ns: i64,
        end_ns: i64,
        matchers: &[Matcher],
        visit: &mut dyn FnMut(&Labels, &Entry<'_>) -> bool,
    ) -> Result<(), String> {
        for (labels, entries) in &self.streams {
            let get = |n: &str| {
                labels
                    .iter()
                    .find(|(k, _)| k == n)
                    .map_or("", |(_, v)| v.as_str())
            };
            if !matchers.iter().all(|m| m.matches(get(&m.name))) {
                continue;
            }
            for (ts, line, meta) in entries {
                if *ts < start_ns || *ts >= end_ns {
                    continue;
                }
                let e = Entry {
                    ts: *ts,
                    line,
                    metadata: meta,
                };
                if !visit(labels, &e) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(streams: usize, per: usize) -> VecSource {
        VecSource {
            streams: (0..streams)
                .map(|s| {
                    (
                        vec![("app".to_string(), format!("a{s}"))],
                        (0..per)
                            .map(|i| (i as i64 * 1_000_000, format!("line {i} of {s}"), vec![]))
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    fn query(q: &str, instant: bool) -> Query {
        Query {
            expr: super::super::parse(q).unwrap(),
            start: if instant { 10_000_000_000 } else { 0 },
            end: 10_000_000_000,
            step: 1_000_000_000,
            instant,
            limit: 100,
            forward: true,
        }
    }

    #[test]
    fn a_query_reading_too_many_lines_is_refused() {
        let src = source(10, 100);
        let limits = Limits {
            max_lines_scanned: 500,
            ..Limits::default()
        };
        let err = run(&query(r#"{app=~"a.*"} |= "nothing""#, false), &src, &limits).unwrap_err();
        assert!(matches!(err, QueryError::Limit(_)), "{err}");
        assert!(err.to_string().contains("more than 500 lines"), "{err}");
        // Under the limit it answers.
        let (a, stats) = run(&query(r#"{app="a1"} |= "nothing""#, false), &src, &limits).unwrap();
        assert_eq!(a, Answer::Streams(vec![]));
        assert_eq!(stats.lines_scanned, 100);
    }

    #[test]
    fn too_many_series_give_a_partial_answer_with_a_warning() {
        let src = source(20, 3);
        let limits = Limits {
            max_series: 5,
            ..Limits::default()
        };
        let (a, stats) = run(
            &query("count_over_time({app=~\"a.*\"}[1m])", true),
            &src,
            &limits,
        )
        .unwrap();
        let Answer::Vector(_, v) = a else {
            panic!("{a:?}")
        };
        assert_eq!(v.len(), 5);
        assert!(
            stats.warnings[0].contains("maximum number of series (5)"),
            "{:?}",
            stats.warnings
        );
    }

    #[test]
    fn a_query_past_its_time_is_stopped() {
        let src = source(4, 5000);
        let limits = Limits {
            timeout: std::time::Duration::ZERO,
            ..Limits::default()
        };
        let err = run(&query(r#"{app=~"a.*"} |~ "x+y""#, false), &src, &limits).unwrap_err();
        assert!(matches!(err, QueryError::Timeout(_)), "{err}");
    }

    #[test]
    fn hostile_regexes_are_bounded() {
        // Nested repetition: linear time in the regex crate, answered at once.
        let src = source(1, 1000);
        let q = query(r#"{app="a0"} |~ "(a*)*(b+)+$""#, false);
        assert_eq!(
            run(&q, &src, &Limits::default()).unwrap().0,
            Answer::Streams(vec![])
        );
        // A pattern whose program would be huge is refused when parsed.
        let err = super::super::parse(r#"{app=~"(a{1000}){1000}"}"#).unwrap_err();
        assert!(err.to_string().contains("error parsing regexp"), "{err}");
    }
}
