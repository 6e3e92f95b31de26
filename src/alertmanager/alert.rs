//! The alert as the built-in Alertmanager keeps it: labels, annotations, start and end times
//! (ns since the epoch; 0 = unset), when it was last updated, and whether its end was set by the
//! resolve timeout. Fingerprints, merging and the order notifications list alerts in follow
//! Alertmanager 0.25.

use super::matcher::LabelSet;

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: i64,
    pub ends_at: i64,
    pub generator_url: String,
    pub updated_at: i64,
    /// `ends_at` came from `resolve_timeout`, not from the sender.
    pub timeout: bool,
}

const FNV_OFFSET: u64 = 14695981039346656037;
const FNV_PRIME: u64 = 1099511628211;

fn fnv_add(mut h: u64, b: &[u8]) -> u64 {
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Prometheus's label set fingerprint (FNV-1a over sorted names and values, 0xff between).
pub fn fingerprint(ls: &LabelSet) -> u64 {
    let mut h = FNV_OFFSET;
    for (k, v) in ls {
        h = fnv_add(h, k.as_bytes());
        h = fnv_add(h, &[0xff]);
        h = fnv_add(h, v.as_bytes());
        h = fnv_add(h, &[0xff]);
    }
    h
}

pub fn fingerprint_text(fp: u64) -> String {
    format!("{fp:016x}")
}

/// Go's `model.LabelSet.String()`: `{a="b", c="d"}`.
pub fn labels_text(ls: &LabelSet) -> String {
    crate::base::gofmt::label_set(ls.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

impl Alert {
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }

    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Alertmanager's defaults for a received alert: no start is its end (or now), no end is
    /// now plus the resolve timeout, marked as such.
    pub fn fill_times(&mut self, now: i64, resolve_timeout_ns: i64) {
        if self.starts_at == 0 {
            self.starts_at = if self.ends_at == 0 { now } else { self.ends_at };
        }
        if self.ends_at == 0 {
            self.timeout = true;
            self.ends_at = now + resolve_timeout_ns;
        }
    }

    /// Resolved at `now`: an end time that is not after now.
    pub fn resolved_at(&self, now: i64) -> bool {
        self.ends_at != 0 && self.ends_at <= now
    }

    /// `firing` or `resolved` at `now`.
    pub fn status(&self, now: i64) -> &'static str {
        if self.resolved_at(now) {
            "resolved"
        } else {
            "firing"
        }
    }

    /// Alertmanager's `Merge`: the newer alert wins, keeping the earliest start and, where the
    /// older one ends later for a reason other than its timeout, its end.
    pub fn merge(&self, o: &Alert, now: i64) -> Alert {
        if o.updated_at < self.updated_at {
            return o.merge(self, now);
        }
        let mut res = o.clone();
        if self.starts_at < o.starts_at {
            res.starts_at = self.starts_at;
        }
        if o.resolved_at(now) {
            if self.resolved_at(now) && self.ends_at > o.ends_at {
                res.ends_at = self.ends_at;
            }
        } else if self.ends_at > o.ends_at && !self.timeout {
            res.ends_at = self.ends_at;
        }
        res
    }
}

/// Alertmanager's order for alerts in a notification: by `job`, then `instance` (alerts
/// carrying the label first), then by label set.
pub fn notification_order(a: &Alert, b: &Alert) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    for key in ["job", "instance"] {
        match (a.labels.get(key), b.labels.get(key)) {
            (None, None) => continue,
            (None, Some(_)) => return Greater,
            (Some(_), None) => return Less,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    label_set_before(&a.labels, &b.labels)
}

/// Prometheus's `LabelSet.Before`: pairwise by name then value, shorter first.
pub fn label_set_before(a: &LabelSet, b: &LabelSet) -> std::cmp::Ordering {
    for ((ka, va), (kb, vb)) in a.iter().zip(b.iter()) {
        let c = ka.cmp(kb).then_with(|| va.cmp(vb));
        if c != std::cmp::Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

/// Go's `utf8.ValidString` always holds for Rust strings; names must be label names.
pub fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprints_match_prometheus() {
        // Values from prometheus/common model's signature tests.
        assert_eq!(fingerprint(&LabelSet::new()), 14695981039346656037);
        assert_eq!(
            fingerprint(&ls(&[
                ("name", "garland, briggs"),
                ("fear", "love is not enough")
            ])),
            5799056148416392346
        );
        assert_eq!(
            labels_text(&ls(&[("b", "x\"y"), ("a", "1")])),
            r#"{a="1", b="x\"y"}"#
        );
    }

    #[test]
    fn merge_keeps_earliest_start_and_sender_end() {
        let old = Alert {
            labels: ls(&[("a", "1")]),
            annotations: LabelSet::new(),
            starts_at: 100,
            ends_at: 1_000,
            generator_url: String::new(),
            updated_at: 10,
            timeout: false,
        };
        let mut new = old.clone();
        new.starts_at = 200;
        new.ends_at = 500;
        new.updated_at = 20;
        let m = old.merge(&new, 50);
        assert_eq!((m.starts_at, m.ends_at), (100, 1_000));
        let mut timed = old.clone();
        timed.timeout = true;
        assert_eq!(timed.merge(&new, 50).ends_at, 500);
    }
}
