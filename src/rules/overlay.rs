//! A read view of the store plus the samples a group's earlier rules produced in this round, so
//! a rule sees the output of the rules before it at the same timestamp (Prometheus commits each
//! rule's appender before the next rule runs) while the round is written to the store in one
//! batch.

use std::collections::BTreeMap;

use crate::tsdb::labels::matches_all;
use crate::tsdb::{Labels, Matcher, Queryable, Series, SeriesIter, TsdbError};

pub struct Overlay<'a> {
    base: &'a dyn Queryable,
    /// Per series, samples in time order.
    extra: BTreeMap<Labels, Vec<(i64, f64)>>,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn Queryable) -> Overlay<'a> {
        Overlay {
            base,
            extra: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, labels: &Labels, t: i64, v: f64) {
        let s = self.extra.entry(labels.clone()).or_default();
        match s.binary_search_by_key(&t, |x| x.0) {
            Ok(i) => s[i].1 = v,
            Err(i) => s.insert(i, (t, v)),
        }
    }

    fn extra_matching<'b>(
        &'b self,
        mint: i64,
        maxt: i64,
        ms: &'b [Matcher],
    ) -> impl Iterator<Item = (&'b Labels, &'b Vec<(i64, f64)>)> + 'b {
        self.extra.iter().filter(move |(l, s)| {
            matches_all(ms, l) && s.iter().any(|x| x.0 >= mint && x.0 <= maxt)
        })
    }
}

impl Queryable for Overlay<'_> {
    fn select(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<SeriesIter, TsdbError> {
        let base = self.base.select(mint, maxt, ms)?;
        if self.extra.is_empty() {
            return Ok(base);
        }
        let mut merged: BTreeMap<Labels, Vec<(i64, f64)>> =
            base.map(|s| (s.labels, s.samples)).collect();
        for (l, extra) in self.extra_matching(mint, maxt, ms) {
            let s = merged.entry(l.clone()).or_default();
            for &(t, v) in extra.iter().filter(|x| x.0 >= mint && x.0 <= maxt) {
                match s.binary_search_by_key(&t, |x| x.0) {
                    Ok(i) => s[i].1 = v,
                    Err(i) => s.insert(i, (t, v)),
                }
            }
        }
        let v: Vec<Series> = merged
            .into_iter()
            .map(|(labels, samples)| Series { labels, samples })
            .collect();
        Ok(Box::new(v.into_iter()))
    }

    fn label_names(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<Vec<String>, TsdbError> {
        let mut v = self.base.label_names(mint, maxt, ms)?;
        for (l, _) in self.extra_matching(mint, maxt, ms) {
            v.extend(l.iter().map(|x| x.name.clone()));
        }
        v.sort();
        v.dedup();
        Ok(v)
    }

    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        ms: &[Matcher],
    ) -> Result<Vec<String>, TsdbError> {
        let mut v = self.base.label_values(name, mint, maxt, ms)?;
        for (l, _) in self.extra_matching(mint, maxt, ms) {
            if let Some(x) = l.get(name) {
                v.push(x.to_string());
            }
        }
        v.sort();
        v.dedup();
        Ok(v)
    }
}
