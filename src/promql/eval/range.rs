//! The functions over a range vector (`rate`, `increase`, `*_over_time`, `deriv`,
//! `predict_linear`, `holt_winters`, `changes`, `resets` ...), each resolved once per call and
//! run series by series over moving windows.

use super::*;

impl Ev<'_> {
    /// A function over a range vector (`rate`, `*_over_time`, ...), evaluated series by series
    /// with a window that slides with the steps.
    pub(super) fn range_call(
        &mut self,
        name: &str,
        arg: &Expr,
        scalars: &[Option<Vec<f64>>],
    ) -> R<Val> {
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

/// The functions over a range vector, resolved once per call rather than per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RangeFn {
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

pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

pub(super) fn kahan_sum(it: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for v in it {
        (s, c) = kahan_inc(v, s, c);
    }
    if s.is_infinite() { s } else { s + c }
}

pub(super) fn avg_over_time(w: &[(i64, f64)]) -> f64 {
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

pub(super) fn stdvar_over_time(w: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in w {
        count += 1.0;
        let delta = v - (mean + cm);
        (mean, cm) = kahan_inc(delta / count, mean, cm);
        (aux, ca) = kahan_inc(delta * (v - (mean + cm)), aux, ca);
    }
    (aux + ca) / count
}

pub(super) fn extrapolated_rate(
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

pub(super) fn instant_value(w: &[(i64, f64)], rate: bool) -> Option<f64> {
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

pub(super) fn linear_regression(w: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
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

pub(super) fn holt_winters(w: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
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
