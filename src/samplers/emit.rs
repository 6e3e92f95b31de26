//! What the built-in samplers (host, GPU) produce each round, and how it becomes a store batch:
//! families with their type and help (served by `/api/v1/metadata`), `job` and `instance` on
//! every series, and a staleness marker for every series the previous round had and this one
//! does not, as Prometheus writes for a scrape target.

use std::collections::HashSet;

use crate::tsdb::{Batch, Labels, Metadata, STALE_NAN_BITS};

/// One sample: metric name, labels (without job and instance), value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// One round's samples, grouped by metric family.
#[derive(Default)]
pub struct Samples {
    families: Vec<(String, Metadata)>,
    samples: Vec<Sample>,
}

impl Samples {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        if !self.families.iter().any(|(n, _)| n == name) {
            self.families.push((
                name.to_string(),
                Metadata {
                    kind: kind.into(),
                    help: help.into(),
                    unit: String::new(),
                },
            ));
        }
    }

    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.family(name, "gauge", help);
        self.push(name, labels, v);
    }

    /// A counter; `name` carries its `_total` suffix, the family (metadata) does not.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.family(name.strip_suffix("_total").unwrap_or(name), "counter", help);
        self.push(name, labels, v);
    }

    fn push(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.samples.push((
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            v,
        ));
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Every sample as `(name, labels, value)`, for tests.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }
}

/// Turns rounds into batches for one `job`/`instance`, remembering the last round's series.
pub struct Emitter {
    job: String,
    instance: String,
    last: HashSet<Labels>,
    metadata_sent: bool,
}

impl Emitter {
    pub fn new(job: &str, instance: &str) -> Emitter {
        Emitter {
            job: job.into(),
            instance: instance.into(),
            last: HashSet::new(),
            metadata_sent: false,
        }
    }

    pub fn batch(&mut self, s: Samples, t: i64) -> Batch {
        let mut b = Batch::default();
        let mut current = HashSet::with_capacity(s.samples.len());
        for (name, labels, v) in s.samples {
            let l = Labels::from_pairs(labels.into_iter().chain([
                ("__name__".to_string(), name),
                ("job".to_string(), self.job.clone()),
                ("instance".to_string(), self.instance.clone()),
            ]));
            if current.insert(l.clone()) {
                b.push(l, t, v);
            }
        }
        let stale = f64::from_bits(STALE_NAN_BITS);
        for gone in self.last.difference(&current) {
            b.push(gone.clone(), t, stale);
        }
        self.last = current;
        // The store keeps metadata per family; once is enough unless it changes.
        if !self.metadata_sent {
            b.metadata = s.families;
            self.metadata_sent = true;
        }
        b
    }

    /// Staleness markers for everything last written, for when the sampler stops.
    pub fn finish(&mut self, t: i64) -> Batch {
        let mut b = Batch::default();
        let stale = f64::from_bits(STALE_NAN_BITS);
        for l in self.last.drain() {
            b.push(l, t, stale);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vanished_series_get_staleness_markers() {
        let mut e = Emitter::new("node", "h1");
        let mut s = Samples::default();
        s.gauge("a", "", &[("x", "1")], 1.0);
        s.gauge("a", "", &[("x", "2")], 2.0);
        let b = e.batch(s, 1000);
        assert_eq!(b.samples.len(), 2);
        assert_eq!(b.series[0].get("job"), Some("node"));
        assert_eq!(b.series[0].get("instance"), Some("h1"));
        assert_eq!(b.metadata.len(), 1);
        let mut s = Samples::default();
        s.gauge("a", "", &[("x", "1")], 3.0);
        let b = e.batch(s, 2000);
        assert_eq!(b.samples.len(), 2);
        let stale = b
            .samples
            .iter()
            .find(|x| x.2.to_bits() == STALE_NAN_BITS)
            .expect("a staleness marker");
        assert_eq!(b.series[stale.0 as usize].get("x"), Some("2"));
        assert!(b.metadata.is_empty());
    }
}
