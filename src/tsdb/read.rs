//! Reads: the [`Queryable`] seam (`select`, label names, label values) merging blocks and the
//! head, and exemplars.

use super::*;

impl Tsdb {
    /// The latest exemplar of each matching series with one in `[mint, maxt]`.
    pub fn exemplars(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Vec<(Labels, Exemplar)> {
        let h = self.inner.head.read();
        h.matching(ms)
            .into_iter()
            .filter_map(|id| {
                let e = h.exemplar(id)?;
                (e.t >= mint && e.t <= maxt).then(|| (h.labels_of(id).unwrap_or_default(), e))
            })
            .collect()
    }

    pub(super) fn overlapping_blocks(&self, mint: i64, maxt: i64) -> Vec<Arc<Block>> {
        self.inner
            .blocks
            .read()
            .iter()
            .filter(|b| b.overlaps(mint, maxt))
            .cloned()
            .collect()
    }

    pub(super) fn matching_labels(
        &self,
        mint: i64,
        maxt: i64,
        ms: &[Matcher],
    ) -> Result<Vec<Labels>, TsdbError> {
        let mut out = Vec::new();
        for b in self.overlapping_blocks(mint, maxt) {
            out.extend(b.series_labels(&b.matching(ms), mint, maxt)?);
        }
        let h = self.inner.head.read();
        out.extend(h.series_labels(&h.matching(ms), mint, maxt));
        Ok(out)
    }
}

impl Queryable for Tsdb {
    fn select(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<SeriesIter, TsdbError> {
        let mut map: BTreeMap<Labels, (Vec<(i64, f64)>, bool)> = BTreeMap::new();
        // Parts append in time order when blocks do not overlap; only out-of-order parts make
        // the merge sort.
        let mut add = |l: Labels, s: Vec<(i64, f64)>| {
            let e = map.entry(l).or_default();
            if e.0.is_empty() {
                e.0 = s;
            } else if let (Some(last), Some(first)) = (e.0.last(), s.first()) {
                if first.0 <= last.0 {
                    e.1 = true;
                }
                e.0.extend(s);
            }
        };
        let mut blocks = self.overlapping_blocks(mint, maxt);
        blocks.sort_by_key(|b| b.meta.min_t);
        for b in blocks {
            for (l, s) in b.read(&b.matching(ms), mint, maxt)? {
                add(l, s);
            }
        }
        let from_head = {
            let h = self.inner.head.read();
            h.read(&h.matching(ms), mint, maxt)
        };
        for (l, s) in from_head {
            add(l, s);
        }
        Ok(Box::new(map.into_iter().map(
            |(labels, (mut samples, unordered))| {
                if unordered {
                    head::sort_dedup(&mut samples);
                }
                Series { labels, samples }
            },
        )))
    }

    fn label_names(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<Vec<String>, TsdbError> {
        let mut set = std::collections::BTreeSet::new();
        for l in self.matching_labels(mint, maxt, ms)? {
            for lab in l.iter() {
                if !set.contains(&lab.name) {
                    set.insert(lab.name.clone());
                }
            }
        }
        Ok(set.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        ms: &[Matcher],
    ) -> Result<Vec<String>, TsdbError> {
        let mut set = std::collections::BTreeSet::new();
        for l in self.matching_labels(mint, maxt, ms)? {
            if let Some(v) = l.get(name)
                && !set.contains(v)
            {
                set.insert(v.to_string());
            }
        }
        Ok(set.into_iter().collect())
    }
}
