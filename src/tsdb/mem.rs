//! An in-memory [`Queryable`]: a fixed list of series. The second implementation of the read
//! seam, for query-engine tests that need exact data without a store on disk.

use super::labels::{Matcher, matches_all};
use super::{Queryable, Series, SeriesIter, TsdbError};

#[derive(Debug, Default, Clone)]
pub struct MemQueryable {
    series: Vec<Series>,
}

impl MemQueryable {
    /// Series are sorted by label set; samples must be sorted by time.
    pub fn new(mut series: Vec<Series>) -> Self {
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        MemQueryable { series }
    }

    /// Adds samples (rule output in `sightline test rules`): a sample at a time the series
    /// already has is refused, as a store refuses duplicates.
    pub fn add(&mut self, labels: &super::Labels, t: i64, v: f64) {
        let i = match self.series.binary_search_by(|s| s.labels.cmp(labels)) {
            Ok(i) => i,
            Err(i) => {
                self.series.insert(
                    i,
                    Series {
                        labels: labels.clone(),
                        samples: Vec::new(),
                    },
                );
                i
            }
        };
        let s = &mut self.series[i].samples;
        if let Err(k) = s.binary_search_by_key(&t, |x| x.0) {
            s.insert(k, (t, v));
        }
    }

    fn matching(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> impl Iterator<Item = &Series> {
        self.series.iter().filter(move |s| {
            matches_all(ms, &s.labels) && s.samples.iter().any(|x| x.0 >= mint && x.0 <= maxt)
        })
    }
}

impl Queryable for MemQueryable {
    fn select(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<SeriesIter, TsdbError> {
        let v: Vec<Series> = self
            .matching(mint, maxt, ms)
            .map(|s| Series {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .copied()
                    .filter(|x| x.0 >= mint && x.0 <= maxt)
                    .collect(),
            })
            .collect();
        Ok(Box::new(v.into_iter()))
    }

    fn label_names(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<Vec<String>, TsdbError> {
        let mut v: Vec<String> = self
            .matching(mint, maxt, ms)
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()))
            .collect();
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
        let mut v: Vec<String> = self
            .matching(mint, maxt, ms)
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::Labels;

    #[test]
    fn selects_by_matchers_and_time() {
        let q = MemQueryable::new(vec![
            Series {
                labels: Labels::from_pairs([("__name__", "a"), ("x", "1")]),
                samples: vec![(10, 1.0), (20, 2.0)],
            },
            Series {
                labels: Labels::from_pairs([("__name__", "b")]),
                samples: vec![(30, 3.0)],
            },
        ]);
        let got: Vec<Series> = q
            .select(15, 40, &[Matcher::eq("__name__", "a")])
            .unwrap()
            .collect();
        assert_eq!(got[0].samples, vec![(20, 2.0)]);
        assert_eq!(q.label_names(0, 100, &[]).unwrap(), vec!["__name__", "x"]);
        assert_eq!(q.label_values("__name__", 25, 100, &[]).unwrap(), vec!["b"]);
    }
}
