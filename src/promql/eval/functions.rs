//! The function implementations over instant vectors and scalars, by name (`abs`, `clamp`,
//! `label_replace`, `histogram_quantile`, the date functions ...); calls whose argument is a
//! range vector go on to `range.rs`. Which functions exist and their argument types are the
//! table in `promql/functions.rs`, which the parser checks calls against.

use super::*;

impl Ev<'_> {
    pub(super) fn call(&mut self, name: &str, args: &[Expr]) -> R<Val> {
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
                let s = |i: usize| string_arg(&args[i]);
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
                let (dst, sep) = (string_arg(&args[1]), string_arg(&args[2]));
                let srcs: Vec<String> = args[3..].iter().map(string_arg).collect();
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
            // Only `max < min` empties the result; a NaN bound gives NaN for every series.
            "clamp" => |v, p| {
                (p[1].partial_cmp(&p[0]) != Some(std::cmp::Ordering::Less))
                    .then(|| go_max(p[0], go_min(p[1], v)))
            },
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
}

/// A string argument as Prometheus reads it (`stringFromArg`): parentheses around the literal
/// are unwrapped, so `label_replace(m, ("dst"), ...)` means the same as without them. The parser
/// has checked the type, so anything else cannot occur; it reads as empty.
fn string_arg(e: &Expr) -> String {
    let mut e = e;
    while let Expr::Paren(inner) = e {
        e = inner;
    }
    match e {
        Expr::Str(s) => s.clone(),
        _ => String::new(),
    }
}

pub(super) fn histogram_quantile(q: &[f64], rows: Vec<Row>, n: usize) -> R<Vec<Row>> {
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
pub(super) fn parse_go_float(s: &str) -> Option<f64> {
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

pub(super) fn bucket_quantile(q: f64, b: &mut Vec<(f64, f64)>) -> f64 {
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

/// Civil date parts from Unix seconds (UTC).
pub(super) fn date_fn(name: &str) -> fn(i64) -> f64 {
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
            let (y, m, _, _) = crate::base::clock::civil(s);
            dim(y, m) as f64
        },
        "day_of_month" => |s| crate::base::clock::civil(s).2 as f64,
        "day_of_week" => |s| (s.div_euclid(86_400) + 4).rem_euclid(7) as f64,
        "day_of_year" => |s| {
            let (y, m, d, _) = crate::base::clock::civil(s);
            ((1..m).map(|mm| dim(y, mm)).sum::<u32>() + d) as f64
        },
        "hour" => |s| (crate::base::clock::civil(s).3 / 3600) as f64,
        "minute" => |s| ((crate::base::clock::civil(s).3 % 3600) / 60) as f64,
        "month" => |s| crate::base::clock::civil(s).1 as f64,
        _ => |s| crate::base::clock::civil(s).0 as f64,
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
}
