//! Binary operators: arithmetic and comparison between scalars and vectors, vector matching
//! (`on`, `ignoring`, `group_left`, `group_right`) and the set operators `and`, `or`, `unless`.

use super::*;

impl Ev<'_> {
    pub(super) fn binary(
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

    pub(super) fn vector_scalar(
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

    pub(super) fn set_op(
        &mut self,
        op: BinOp,
        a: Vec<Row>,
        b: Vec<Row>,
        m: &VectorMatching,
    ) -> Vec<Row> {
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

    pub(super) fn vector_vector(
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
                                one[oi].labels.go_string(),
                                one[prev].labels.go_string()
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

/// The matching signature of a series: its `on` labels, or all but the `ignoring` ones and
/// the name.
pub(super) fn signature(l: &Labels, m: &VectorMatching) -> u64 {
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

pub(super) fn match_labels(l: &Labels, m: &VectorMatching) -> Labels {
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

pub(super) fn result_labels(many: &Labels, one: &Labels, op: BinOp, m: &VectorMatching) -> Labels {
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
