//! One alerting rule's alerts and their state machine, as Prometheus 2.42's `AlertingRule`:
//! inactive -> pending -> firing, `for`, `keep_firing_for`, resolved alerts kept 15 minutes to
//! be sent as resolved, the `ALERTS` / `ALERTS_FOR_STATE` samples, what to send and when, and
//! the restore of `for` state after a restart.

use std::collections::{BTreeMap, HashMap};

use crate::tsdb::Labels;

/// How long a resolved alert is kept (and re-sent as resolved).
pub const RESOLVED_RETENTION_NS: i64 = 15 * 60 * 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule: a label set the expression returned (times in ns, 0 = never).
#[derive(Debug, Clone)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: i64,
    pub resolved_at: i64,
    pub last_sent_at: i64,
    pub valid_until: i64,
    pub keep_firing_since: i64,
}

impl Alert {
    /// Prometheus's `needsSending`: firing or resolved, and new or due for a resend.
    pub fn needs_sending(&self, ts: i64, resend_delay: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if self.resolved_at > self.last_sent_at {
            return true;
        }
        self.last_sent_at + resend_delay < ts
    }
}

/// The alerts of one rule, by label set.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    pub active: HashMap<Labels, Alert>,
    /// False until `for` state has been restored after a start; no `ALERTS` series until then.
    pub restored: bool,
}

/// One element of the expression's result, after templates.
pub struct Candidate {
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub value: f64,
}

impl Alerts {
    /// Applies one evaluation's result at `ts` (ns); returns the label sets active or pending
    /// (for `ALERTS`), or the limit error (which drops every alert, as Prometheus does).
    pub fn step(
        &mut self,
        found: Vec<Candidate>,
        ts: i64,
        hold_ns: i64,
        keep_firing_for_ns: i64,
        limit: usize,
    ) -> Result<Vec<Labels>, String> {
        let mut result: HashMap<Labels, ()> = HashMap::with_capacity(found.len());
        for c in found {
            result.insert(c.labels.clone(), ());
            match self.active.get_mut(&c.labels) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = c.value;
                    a.annotations = c.annotations;
                }
                _ => {
                    self.active.insert(
                        c.labels.clone(),
                        Alert {
                            labels: c.labels,
                            annotations: c.annotations,
                            state: AlertState::Pending,
                            value: c.value,
                            active_at: ts,
                            fired_at: 0,
                            resolved_at: 0,
                            last_sent_at: 0,
                            valid_until: 0,
                            keep_firing_since: 0,
                        },
                    );
                }
            }
        }
        let mut out = Vec::new();
        let mut remove = Vec::new();
        for (key, a) in self.active.iter_mut() {
            if !result.contains_key(key) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_firing_for_ns > 0 {
                    if a.keep_firing_since == 0 {
                        a.keep_firing_since = ts;
                    }
                    if ts - a.keep_firing_since < keep_firing_for_ns {
                        keep_firing = true;
                    }
                }
                if a.state == AlertState::Pending
                    || (a.resolved_at != 0 && ts - a.resolved_at > RESOLVED_RETENTION_NS)
                {
                    remove.push(key.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = ts;
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = 0;
            }
            if a.state == AlertState::Pending && ts - a.active_at >= hold_ns {
                a.state = AlertState::Firing;
                a.fired_at = ts;
            }
            out.push(key.clone());
        }
        for k in remove {
            self.active.remove(&k);
        }
        if limit > 0 && out.len() > limit {
            let n = out.len();
            self.active.clear();
            return Err(format!("exceeded limit of {limit} with {n} alerts"));
        }
        Ok(out)
    }

    /// The rule's state: the most advanced of its alerts.
    pub fn state(&self) -> AlertState {
        self.active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    /// Alerts that are pending or firing, in a stable order.
    pub fn shown(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self
            .active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// Marks what is due for sending at `ts` and returns copies of it (Prometheus's
    /// `sendAlerts`: `ValidUntil` four resend periods ahead).
    pub fn due(&mut self, ts: i64, resend_delay: i64, interval: i64) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut keys: Vec<&Labels> = self.active.keys().collect();
        keys.sort();
        let keys: Vec<Labels> = keys.into_iter().cloned().collect();
        for k in keys {
            let a = self.active.get_mut(&k).expect("key from the map");
            if a.needs_sending(ts, resend_delay) {
                a.last_sent_at = ts;
                a.valid_until = ts + 4 * resend_delay.max(interval);
                out.push(a.clone());
            }
        }
        out
    }
}

/// Labels of an `ALERTS` / `ALERTS_FOR_STATE` series: the rule's own (unexpanded) labels, then
/// the alert's, then the name, `alertname` and (for `ALERTS`) `alertstate`, as Prometheus
/// builds them.
pub fn series_labels(
    rule_labels: &[(String, String)],
    alert: &Labels,
    metric: &str,
    alertname: &str,
    state: Option<AlertState>,
) -> Labels {
    let mut m: BTreeMap<String, String> = rule_labels.iter().cloned().collect();
    for l in alert.iter() {
        m.insert(l.name.clone(), l.value.clone());
    }
    m.insert("__name__".into(), metric.into());
    m.insert("alertname".into(), alertname.into());
    if let Some(s) = state {
        m.insert("alertstate".into(), s.name().into());
    }
    Labels::from_pairs(m)
}

/// Prometheus's `RestoreForState` arithmetic for one alert: `last` is the last
/// `ALERTS_FOR_STATE` sample (ms, value = activeAt in Unix seconds) before the restart at `ts`
/// (ns). Returns the restored `activeAt` (ns), or None to leave the alert as it is.
pub fn restored_active_at(last: (i64, f64), ts: i64, hold_ns: i64, grace_ns: i64) -> Option<i64> {
    let (t_ms, v) = last;
    if crate::tsdb::is_stale(v) {
        return None;
    }
    const S: i64 = 1_000_000_000;
    let down_at = (t_ms / 1000) * S;
    let restored = (v as i64) * S;
    let spent = down_at - restored;
    let remaining = hold_ns - spent;
    if remaining <= 0 {
        // It was firing when the process went down; the next evaluation fires it again.
        Some(restored)
    } else if remaining < grace_ns {
        Some(ts + grace_ns - hold_ns)
    } else {
        Some(restored + (ts - down_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(inst: &str, v: f64) -> Candidate {
        Candidate {
            labels: Labels::from_pairs([("alertname", "A"), ("instance", inst)]),
            annotations: Vec::new(),
            value: v,
        }
    }

    const M: i64 = 60 * 1_000_000_000;

    #[test]
    fn pending_firing_resolved_and_kept() {
        let mut a = Alerts::default();
        // for: 2m, keep_firing_for: 0
        assert_eq!(
            a.step(vec![cand("x", 1.0)], 0, 2 * M, 0, 0).unwrap().len(),
            1
        );
        assert_eq!(a.state(), AlertState::Pending);
        a.step(vec![cand("x", 1.0)], M, 2 * M, 0, 0).unwrap();
        assert_eq!(a.state(), AlertState::Pending);
        a.step(vec![cand("x", 2.0)], 2 * M, 2 * M, 0, 0).unwrap();
        assert_eq!(a.state(), AlertState::Firing);
        let sent = a.due(2 * M, M, M);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].valid_until, 2 * M + 4 * M);
        assert!(
            a.due(2 * M + M / 2, M, M).is_empty(),
            "resent only after the delay"
        );
        // Gone: resolved, kept for 15 minutes, sent as resolved once, then every resend delay.
        assert!(a.step(vec![], 3 * M, 2 * M, 0, 0).unwrap().is_empty());
        assert_eq!(a.state(), AlertState::Inactive);
        assert_eq!(a.due(3 * M, M, M).len(), 1);
        assert!(a.shown().is_empty());
        a.step(vec![], 19 * M, 2 * M, 0, 0).unwrap();
        assert!(a.active.is_empty(), "dropped 15 minutes after resolving");
    }

    #[test]
    fn keep_firing_for_and_limit() {
        let mut a = Alerts::default();
        a.step(vec![cand("x", 1.0)], 0, 0, 3 * M, 0).unwrap();
        assert_eq!(a.state(), AlertState::Firing);
        // Gone, but kept firing for 3 minutes.
        assert_eq!(a.step(vec![], M, 0, 3 * M, 0).unwrap().len(), 1);
        assert_eq!(a.state(), AlertState::Firing);
        assert_eq!(a.step(vec![], 3 * M, 0, 3 * M, 0).unwrap().len(), 1);
        assert!(a.step(vec![], 4 * M, 0, 3 * M, 0).unwrap().is_empty());
        assert_eq!(a.state(), AlertState::Inactive);
        let e = a
            .step(vec![cand("x", 1.0), cand("y", 1.0)], 5 * M, 0, 0, 1)
            .unwrap_err();
        assert_eq!(e, "exceeded limit of 1 with 2 alerts");
        assert!(a.active.is_empty());
    }

    #[test]
    fn restore_follows_prometheus_arithmetic() {
        let s = 1_000_000_000i64;
        // for 10m, pending since t=1000 s, down at 1480 s (8 min in), back at 1500 s, grace 10m:
        // 2 minutes remain, less than the grace period -> fires 10 minutes after the restart.
        let r = restored_active_at((1_480_000, 1000.0), 1500 * s, 600 * s, 600 * s).unwrap();
        assert_eq!(r, 1500 * s);
        // With a 1 minute grace period the pending time carries over, shifted by the downtime.
        let r = restored_active_at((1_480_000, 1000.0), 1500 * s, 600 * s, 60 * s).unwrap();
        assert_eq!(r, 1020 * s);
        // Already firing when it went down: keeps its activeAt.
        let r = restored_active_at((1_700_000, 1000.0), 1800 * s, 600 * s, 60 * s).unwrap();
        assert_eq!(r, 1000 * s);
        let stale = f64::from_bits(crate::tsdb::STALE_NAN_BITS);
        assert_eq!(
            restored_active_at((1_480_000, stale), 1500 * s, 600 * s, 60 * s),
            None
        );
    }
}
