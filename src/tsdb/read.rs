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
        // Parts in time order (blocks by start, then the head), sorted stably by labels so a
        // series' parts stay in time order; parts of one series are then joined. Only parts
        // that overlap in time make the merge sort.
        let mut blocks = self.overlapping_blocks(mint, maxt);
        blocks.sort_by_key(|b| b.meta.min_t);
        let mut parts = Vec::new();
        for b in blocks {
            parts.extend(b.read(&b.matching(ms), mint, maxt)?);
        }
        {
            let h = self.inner.head.read();
            parts.extend(h.read(&h.matching(ms), mint, maxt));
        }
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<Series> = Vec::with_capacity(parts.len());
        let mut unordered = false;
        for (labels, samples) in parts {
            match out.last_mut() {
                Some(last) if last.labels == labels => {
                    if let (Some(l), Some(f)) = (last.samples.last(), samples.first())
                        && f.0 <= l.0
                    {
                        unordered = true;
                    }
                    last.samples.extend(samples);
                }
                _ => {
                    if unordered && let Some(last) = out.last_mut() {
                        head::sort_dedup(&mut last.samples);
                    }
                    unordered = false;
                    out.push(Series { labels, samples });
                }
            }
        }
        if unordered && let Some(last) = out.last_mut() {
            head::sort_dedup(&mut last.samples);
        }
        Ok(Box::new(out.into_iter()))
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
