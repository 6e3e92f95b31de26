//! Aggregation operators (`sum`, `avg`, `count`, `min`, `max`, `group`, `stddev`, `stdvar`,
//! `topk`, `bottomk`, `quantile`, `count_values`) over the rows of an instant vector, with
//! `by`/`without` grouping computed once per series.

use super::*;

impl Ev<'_> {
    pub(super) fn aggregate(
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
                        value: crate::base::gofmt::float(v, crate::base::gofmt::FloatStyle::F),
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
                            crate::base::gofmt::float(kf, crate::base::gofmt::FloatStyle::G)
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
}
