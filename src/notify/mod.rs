//! Sending alerts to Alertmanagers as Prometheus 2.42's notifier does: external labels added,
//! a bounded queue (the oldest alerts dropped and counted when full), batches of 64 posted as
//! JSON to every Alertmanager's `/api/v2/alerts`, a batch counted as sent per Alertmanager that
//! took it and dropped when none did. Nothing is retried here: the rules re-send firing alerts
//! every resend delay, which is how an Alertmanager that was down catches up.
//!
//! This module knows alerts only as label sets, annotations and times; rules live above it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use anyhow::Context as _;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::AlertingConfig;
use crate::telemetry::{Exposition, Kind, MetricSource};

/// Most alerts in one POST (Prometheus's `maxBatchSize`).
pub const MAX_BATCH: usize = 64;

/// One alert as Alertmanager's API v2 takes it (times in ns since the epoch; 0 = unset).
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub generator_url: String,
}

/// Go's `time.Time` in JSON (RFC 3339 with nanoseconds, trailing zeros trimmed), UTC.
pub fn rfc3339_nano(ns: i64) -> String {
    crate::base::clock::go_time_text(ns, 'T', "Z")
}

impl NotifyAlert {
    fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("labels".into(), serde_json::json!(self.labels));
        m.insert("annotations".into(), serde_json::json!(self.annotations));
        if self.starts_at != 0 {
            m.insert("startsAt".into(), rfc3339_nano(self.starts_at).into());
        }
        if self.ends_at != 0 {
            m.insert("endsAt".into(), rfc3339_nano(self.ends_at).into());
        }
        m.insert("generatorURL".into(), self.generator_url.clone().into());
        serde_json::Value::Object(m)
    }
}

/// Where alerts go besides the external Alertmanagers: the built-in one. `put_alerts` may block
/// (it writes durably); the notifier calls it from a blocking thread.
pub trait AlertSink: Send + Sync {
    fn put_alerts(&self, alerts: &[NotifyAlert]);
}

/// The counters' name for the built-in Alertmanager.
pub const BUILT_IN: &str = "built-in";

/// Counters per Alertmanager and for the queue (`sightline_notifications_*`).
#[derive(Default)]
pub struct NotifyCounters {
    pub sent: Vec<(String, AtomicU64)>,
    pub errors: Vec<(String, AtomicU64)>,
    pub dropped: AtomicU64,
    pub queue_length: AtomicU64,
    pub queue_capacity: AtomicU64,
    pub latency_sum_us: Vec<(String, AtomicU64)>,
    pub latency_count: Vec<(String, AtomicU64)>,
}

impl MetricSource for Notifier {
    fn write_metrics(&self, out: &mut Exposition) {
        let c = &self.counters;
        out.family(
            "sightline_notifications_sent_total",
            Kind::Counter,
            "Alerts sent, per Alertmanager",
        );
        for (am, n) in &c.sent {
            out.sample(
                "sightline_notifications_sent_total",
                &[("alertmanager", am)],
                n,
            );
        }
        out.family(
            "sightline_notifications_errors_total",
            Kind::Counter,
            "Alerts in batches an Alertmanager did not take, per Alertmanager",
        );
        for (am, n) in &c.errors {
            out.sample(
                "sightline_notifications_errors_total",
                &[("alertmanager", am)],
                n,
            );
        }
        out.family(
            "sightline_notifications_latency_seconds",
            Kind::Gauge,
            "Mean time to send a batch, per Alertmanager, since the start",
        );
        for ((am, sum), (_, count)) in c.latency_sum_us.iter().zip(&c.latency_count) {
            let n = count.load(Relaxed);
            let mean = if n == 0 {
                0.0
            } else {
                sum.load(Relaxed) as f64 / 1e6 / n as f64
            };
            out.sample(
                "sightline_notifications_latency_seconds",
                &[("alertmanager", am)],
                mean,
            );
        }
        out.single(
            "sightline_notifications_dropped_total",
            Kind::Counter,
            "Alerts dropped: the queue was full, or no Alertmanager took them",
            &c.dropped,
        );
        out.single(
            "sightline_notifications_queue_length",
            Kind::Gauge,
            "Alerts waiting to be sent",
            &c.queue_length,
        );
        out.single(
            "sightline_notifications_queue_capacity",
            Kind::Gauge,
            "Alerts the queue holds at most",
            &c.queue_capacity,
        );
        out.single(
            "sightline_notifications_alertmanagers_discovered",
            Kind::Gauge,
            "Alertmanagers alerts are sent to",
            c.sent.len() as u64,
        );
    }
}

struct Target {
    url: String,
    basic_auth: Option<(String, String)>,
}

/// The queue and the senders.
pub struct Notifier {
    queue: Mutex<VecDeque<NotifyAlert>>,
    capacity: usize,
    more: tokio::sync::Notify,
    external_labels: BTreeMap<String, String>,
    targets: Vec<Target>,
    bearer: Option<String>,
    client: reqwest::Client,
    counters: NotifyCounters,
    local: Option<Arc<dyn AlertSink>>,
}

impl Notifier {
    /// A notifier for `cfg`'s Alertmanagers and, when given, the built-in one.
    pub fn new(
        cfg: &AlertingConfig,
        local: Option<Arc<dyn AlertSink>>,
    ) -> anyhow::Result<Arc<Notifier>> {
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sightline/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("alerting.ca_file: cannot read {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .context("alerting.ca_file: not PEM certificates")?
            {
                b = b.add_root_certificate(cert);
            }
        }
        let bearer = match (&cfg.bearer_token, &cfg.bearer_token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(p)) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| {
                        format!("alerting.bearer_token_file: cannot read {}", p.display())
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        let targets: Vec<Target> = cfg
            .alertmanagers
            .iter()
            .map(|a| Target {
                url: a.url.clone(),
                basic_auth: a.basic_auth.clone(),
            })
            .collect();
        // Counter rows: one per Alertmanager, then the built-in one.
        let names: Vec<String> = targets
            .iter()
            .map(|t| t.url.clone())
            .chain(local.as_ref().map(|_| BUILT_IN.to_string()))
            .collect();
        let per = || -> Vec<(String, AtomicU64)> {
            names
                .iter()
                .map(|n| (n.clone(), AtomicU64::new(0)))
                .collect()
        };
        let counters = NotifyCounters {
            sent: per(),
            errors: per(),
            latency_sum_us: per(),
            latency_count: per(),
            queue_capacity: AtomicU64::new(cfg.queue_capacity as u64),
            ..Default::default()
        };
        Ok(Arc::new(Notifier {
            queue: Mutex::new(VecDeque::new()),
            capacity: cfg.queue_capacity.max(1),
            more: tokio::sync::Notify::new(),
            external_labels: cfg.external_labels.clone(),
            targets,
            bearer,
            client: b.build().context("cannot build the Alertmanager client")?,
            counters,
            local,
        }))
    }

    pub fn counters(&self) -> &NotifyCounters {
        &self.counters
    }

    pub fn has_targets(&self) -> bool {
        !self.targets.is_empty() || self.local.is_some()
    }

    /// Queues alerts: external labels added where the alert lacks them; past the capacity the
    /// oldest are dropped and counted.
    pub fn send(&self, alerts: Vec<NotifyAlert>) {
        if !self.has_targets() || alerts.is_empty() {
            return;
        }
        let mut alerts = alerts;
        for a in &mut alerts {
            for (k, v) in &self.external_labels {
                a.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let mut q = self.queue.lock();
        if alerts.len() > self.capacity {
            let extra = alerts.len() - self.capacity;
            alerts.drain(..extra);
            self.counters.dropped.fetch_add(extra as u64, Relaxed);
            tracing::warn!(dropped = extra, "alert queue full, dropping alerts");
        }
        let over = (q.len() + alerts.len()).saturating_sub(self.capacity);
        if over > 0 {
            q.drain(..over);
            self.counters.dropped.fetch_add(over as u64, Relaxed);
            tracing::warn!(
                dropped = over,
                "alert queue full, dropping the oldest alerts"
            );
        }
        q.extend(alerts);
        self.counters.queue_length.store(q.len() as u64, Relaxed);
        drop(q);
        self.more.notify_one();
    }

    fn next_batch(&self) -> Vec<NotifyAlert> {
        let mut q = self.queue.lock();
        let n = q.len().min(MAX_BATCH);
        let batch: Vec<NotifyAlert> = q.drain(..n).collect();
        self.counters.queue_length.store(q.len() as u64, Relaxed);
        batch
    }

    /// Sends queued batches until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.more.notified() => {}
            }
            loop {
                let batch = self.next_batch();
                if batch.is_empty() {
                    break;
                }
                if !self.send_all(&batch).await {
                    self.counters.dropped.fetch_add(batch.len() as u64, Relaxed);
                }
            }
        }
    }

    /// Counts one delivery of `n` alerts to target row `i`.
    fn record(&self, i: usize, started: Instant, n: usize, ok: bool) {
        let c = &self.counters;
        c.latency_sum_us[i]
            .1
            .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        c.latency_count[i].1.fetch_add(1, Relaxed);
        if ok {
            c.sent[i].1.fetch_add(n as u64, Relaxed);
        } else {
            c.errors[i].1.fetch_add(n as u64, Relaxed);
        }
    }

    /// Posts one batch to every Alertmanager at once; true if any took it.
    async fn send_all(&self, batch: &[NotifyAlert]) -> bool {
        let body = serde_json::Value::Array(batch.iter().map(NotifyAlert::to_json).collect());
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let sends = self.targets.iter().enumerate().map(|(i, t)| {
            let body = body.clone();
            async move {
                let started = Instant::now();
                let mut req = self
                    .client
                    .post(&t.url)
                    .header("content-type", "application/json")
                    .body(body);
                if let Some((u, p)) = &t.basic_auth {
                    req = req.basic_auth(u, Some(p));
                } else if let Some(b) = &self.bearer {
                    req = req.bearer_auth(b);
                }
                let ok = match req.send().await {
                    Ok(r) if r.status().is_success() => true,
                    Ok(r) => {
                        tracing::warn!(alertmanager = %t.url, status = %r.status(), "alertmanager refused alerts");
                        false
                    }
                    Err(e) => {
                        tracing::warn!(alertmanager = %t.url, error = %e, "cannot send alerts");
                        false
                    }
                };
                self.record(i, started, batch.len(), ok);
                ok
            }
        });
        let local = async {
            let Some(sink) = self.local.clone() else {
                return false;
            };
            let i = self.targets.len();
            let started = Instant::now();
            let owned = batch.to_vec();
            let ok = tokio::task::spawn_blocking(move || sink.put_alerts(&owned))
                .await
                .is_ok();
            self.record(i, started, batch.len(), ok);
            ok
        };
        let (results, local_ok) = tokio::join!(futures_util::future::join_all(sends), local);
        local_ok || results.into_iter().any(|x| x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_times() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(1_700_000_000_123_400_000),
            "2023-11-14T22:13:20.1234Z"
        );
    }

    #[test]
    fn queue_drops_oldest_when_full() {
        let mut cfg = crate::config::Config::for_data_dir(std::path::Path::new("/tmp")).alerting;
        cfg.queue_capacity = 3;
        cfg.alertmanagers = vec![crate::config::AlertmanagerTarget {
            url: "http://127.0.0.1:9/api/v2/alerts".into(),
            basic_auth: None,
        }];
        cfg.external_labels = BTreeMap::from([("cluster".into(), "eu1".into())]);
        let n = Notifier::new(&cfg, None).unwrap();
        let alert = |i: i64| NotifyAlert {
            labels: BTreeMap::from([("alertname".into(), format!("A{i}"))]),
            annotations: BTreeMap::new(),
            starts_at: i,
            ends_at: 0,
            generator_url: String::new(),
        };
        n.send((0..2).map(alert).collect());
        n.send((2..4).map(alert).collect());
        assert_eq!(n.counters().dropped.load(Relaxed), 1);
        let batch = n.next_batch();
        assert_eq!(
            batch.iter().map(|a| a.starts_at).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(batch[0].labels["cluster"], "eu1");
    }
}
