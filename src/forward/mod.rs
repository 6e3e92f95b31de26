//! Forwarding upstream over OTLP (`[forward]`): per signal, what arrives is kept locally, sent
//! upstream, or both. A forwarded export is acknowledged to its sender only once it is in the
//! queue on disk (`queue.rs`), so it survives `kill -9`; one sender task per signal drains the
//! queue in batches to the upstream (`client.rs`), retrying with exponential backoff and jitter
//! while the upstream answers retryably, as long as the queue's byte bound allows.

pub mod client;
pub mod queue;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::base::Signal;
use crate::base::clock::now_ms;
pub use crate::config::{
    ForwardAuth as Auth, ForwardConfig, ForwardMode as Mode, ForwardProtocol as Protocol,
};
use crate::error::ErrorCode;
use crate::error::ExportError;
use crate::telemetry::{Exposition, Kind, MetricSource};

/// `sightline_forward_*`, per signal.
#[derive(Default)]
pub struct ForwardCounters {
    /// Items the upstream accepted.
    pub sent: [AtomicU64; 3],
    /// Items the upstream refused for good (a non-retryable answer or a partial success).
    pub failed: [AtomicU64; 3],
    /// Items in attempts that failed retryably (each attempt counts its items again).
    pub retried: [AtomicU64; 3],
    /// Items dropped from the queue for space (or found unreadable).
    pub dropped: [AtomicU64; 3],
    pub queue_bytes: [AtomicU64; 3],
    pub queue_items: [AtomicU64; 3],
    pub queue_repairs: AtomicU64,
    /// Unix milliseconds of the last delivered batch; 0 = never.
    pub last_success_ms: [AtomicU64; 3],
    /// Unix milliseconds and text of the last failed attempt.
    pub last_error: [Mutex<Option<(u64, String)>>; 3],
}

impl MetricSource for ForwardCounters {
    fn write_metrics(&self, out: &mut Exposition) {
        for (name, help, vals) in [
            (
                "sightline_forward_sent_total",
                "Items (spans, data points, log records) the upstream accepted",
                &self.sent,
            ),
            (
                "sightline_forward_failed_total",
                "Items the upstream refused for good (not retried)",
                &self.failed,
            ),
            (
                "sightline_forward_retried_total",
                "Items in attempts that failed retryably and were tried again",
                &self.retried,
            ),
            (
                "sightline_forward_dropped_total",
                "Items dropped from the forward queue because it was full",
                &self.dropped,
            ),
        ] {
            out.per_signal(name, Kind::Counter, help, vals);
        }
        out.per_signal(
            "sightline_forward_queue_bytes",
            Kind::Gauge,
            "Bytes of the forward queue's files on disk",
            &self.queue_bytes,
        );
        out.per_signal(
            "sightline_forward_queue_items",
            Kind::Gauge,
            "Items in the forward queue not yet delivered",
            &self.queue_items,
        );
        let name = "sightline_forward_last_success_timestamp_seconds";
        out.family(
            name,
            Kind::Gauge,
            "When the upstream last accepted a batch (0: never)",
        );
        for s in Signal::ALL {
            let v = self.last_success_ms[s.index()].load(Relaxed) as f64 / 1000.0;
            out.sample(name, &[("signal", s.name())], v);
        }
        out.single(
            "sightline_forward_queue_repairs_total",
            Kind::Counter,
            "Torn or corrupt forward-queue data cut on start or found unreadable",
            &self.queue_repairs,
        );
    }
}

impl ForwardCounters {
    fn error(&self, s: usize, why: &str) {
        *self.last_error[s].lock() = Some((now_ms() as u64, why.to_string()));
    }
}

/// The forwarding side of ingest: enqueue durably, and the background senders.
pub struct Forwarder {
    pub config: ForwardConfig,
    tx: Mutex<Option<std::sync::mpsc::Sender<queue::Append>>>,
    pub counters: Arc<ForwardCounters>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    senders: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Forwarder {
    /// Opens the queue under `data_dir/forward-queue` (repairing it), starts the writer thread
    /// and one sender per forwarded signal. Call from a Tokio runtime.
    pub fn start(
        config: ForwardConfig,
        data_dir: &Path,
        counters: Arc<ForwardCounters>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Forwarder>> {
        use anyhow::Context;
        let upstream = Arc::new(client::Upstream::new(&config)?);
        let root = data_dir.join("forward-queue");
        let total = Arc::new(AtomicU64::new(0));
        let open = |s: usize| {
            queue::Queue::open(
                root.join(Signal::ALL[s].name()),
                s,
                total.clone(),
                counters.clone(),
            )
            .with_context(|| format!("cannot open the forward queue in {}", root.display()))
        };
        let (q0, n0) = open(0)?;
        let (q1, n1) = open(1)?;
        let (q2, n2) = open(2)?;
        let queues = Arc::new([q0, q1, q2]);
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = queue::Writer::new(queues.clone(), [n0, n1, n2], config.queue_max_bytes);
        let writer = std::thread::Builder::new()
            .name("forward-queue".into())
            .spawn(move || writer.run(rx))
            .context("cannot start the forward queue thread")?;
        let mut senders = Vec::new();
        for s in 0..3 {
            let pending = queues[s].pending_items();
            if !config.modes[s].forwards() {
                if pending > 0 {
                    tracing::warn!(
                        signal = Signal::ALL[s].name(),
                        items = pending,
                        "forward queue holds items of a signal no longer forwarded; kept until it is again"
                    );
                }
                continue;
            }
            if pending > 0 {
                tracing::info!(
                    signal = Signal::ALL[s].name(),
                    items = pending,
                    "forward queue: resuming delivery"
                );
            }
            senders.push(tokio::spawn(send_loop(
                queues.clone(),
                s,
                upstream.clone(),
                config.clone(),
                counters.clone(),
                shutdown.clone(),
            )));
        }
        tracing::info!(
            endpoint = %config.endpoint,
            traces = config.modes[0].name(),
            metrics = config.modes[1].name(),
            logs = config.modes[2].name(),
            "forwarding upstream"
        );
        Ok(Arc::new(Forwarder {
            config,
            tx: Mutex::new(Some(tx)),
            counters,
            writer: Mutex::new(Some(writer)),
            senders: Mutex::new(senders),
        }))
    }

    pub fn mode(&self, signal: Signal) -> Mode {
        self.config.modes[signal as usize]
    }

    /// Appends one export (validated, encoded) to the signal's queue; returns once it is on
    /// disk.
    pub async fn enqueue(
        &self,
        signal: Signal,
        payload: Vec<u8>,
        items: u64,
    ) -> Result<(), ExportError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let sent = self.tx.lock().as_ref().map(|tx| {
            tx.send(queue::Append {
                signal: signal as usize,
                payload,
                items: items.min(u32::MAX as u64) as u32,
                done,
            })
        });
        let unavailable =
            |why: &str| ExportError::new(ErrorCode::Unavailable, format!("forward queue: {why}"));
        match sent {
            Some(Ok(())) => {}
            _ => return Err(unavailable("shutting down")),
        }
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(unavailable("writer stopped")),
        }
    }

    /// Status page: per signal, its mode, queue and last outcomes.
    pub fn status(&self) -> Vec<SignalStatus> {
        (0..3)
            .map(|s| SignalStatus {
                signal: Signal::ALL[s].name(),
                mode: self.config.modes[s].name(),
                queue_bytes: self.counters.queue_bytes[s].load(Relaxed),
                queue_items: self.counters.queue_items[s].load(Relaxed),
                sent: self.counters.sent[s].load(Relaxed),
                failed: self.counters.failed[s].load(Relaxed),
                retried: self.counters.retried[s].load(Relaxed),
                dropped: self.counters.dropped[s].load(Relaxed),
                last_success_ms: self.counters.last_success_ms[s].load(Relaxed),
                last_error: self.counters.last_error[s].lock().clone(),
            })
            .collect()
    }

    /// Stops the senders (what is queued stays for the next start) and, once no export can
    /// enqueue any more, the writer.
    pub async fn close(&self) {
        let senders = std::mem::take(&mut *self.senders.lock());
        for s in senders {
            let _ = s.await;
        }
        self.tx.lock().take();
        let writer = self.writer.lock().take();
        if let Some(w) = writer {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
    }
}

#[derive(Debug, Clone)]
pub struct SignalStatus {
    pub signal: &'static str,
    pub mode: &'static str,
    pub queue_bytes: u64,
    pub queue_items: u64,
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
    pub dropped: u64,
    pub last_success_ms: u64,
    pub last_error: Option<(u64, String)>,
}

/// Exponential backoff (x1.5 per attempt up to `max`) with +-50 % jitter, as the Collector's
/// exporterhelper; at least `after` when the upstream named a delay (capped at 10 minutes).
pub fn backoff(
    attempt: u32,
    initial: Duration,
    max: Duration,
    after: Option<Duration>,
) -> Duration {
    let base = initial.as_secs_f64() * 1.5f64.powi(attempt.min(60) as i32);
    let base = base.min(max.as_secs_f64());
    let jittered = base * (0.5 + fastrand::f64());
    let d = Duration::from_secs_f64(jittered.min(max.as_secs_f64() * 1.5));
    match after {
        Some(a) => d.max(a.min(Duration::from_secs(600))),
        None => d,
    }
}

async fn send_loop(
    queues: Arc<[queue::Queue; 3]>,
    s: usize,
    upstream: Arc<client::Upstream>,
    cfg: ForwardConfig,
    counters: Arc<ForwardCounters>,
    shutdown: CancellationToken,
) {
    let name = Signal::ALL[s].name();
    let peek = |q: Arc<[queue::Queue; 3]>, max: usize| async move {
        tokio::task::spawn_blocking(move || q[s].peek(max))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    };
    loop {
        let mut batch = match peek(queues.clone(), cfg.max_batch_bytes).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                tokio::select! {
                    _ = queues[s].ready.notified() => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
            Err(e) => {
                tracing::error!(signal = name, error = %e, "forward queue: cannot read");
                counters.error(s, &format!("queue: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        };
        // A small batch waits a moment for more (fewer, larger requests under load).
        if batch.body.len() < cfg.max_batch_bytes / 2 && !cfg.batch_timeout.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(cfg.batch_timeout) => {}
                _ = shutdown.cancelled() => return,
            }
            if let Ok(Some(b)) = peek(queues.clone(), cfg.max_batch_bytes).await {
                batch = b;
            }
        }
        let mut attempt = 0u32;
        loop {
            let outcome = tokio::select! {
                o = upstream.send(s, batch.body.clone()) => o,
                _ = shutdown.cancelled() => return,
            };
            match outcome {
                client::Outcome::Delivered { rejected, message } => {
                    let rejected = rejected.min(batch.items);
                    counters.sent[s].fetch_add(batch.items - rejected, Relaxed);
                    counters.last_success_ms[s].store(now_ms() as u64, Relaxed);
                    if rejected > 0 {
                        counters.failed[s].fetch_add(rejected, Relaxed);
                        let why = format!("partial success: {rejected} rejected: {message}");
                        tracing::warn!(signal = name, rejected, message = %message, "upstream rejected part of a batch (not retried)");
                        counters.error(s, &why);
                    }
                    break;
                }
                client::Outcome::Fail { why } => {
                    counters.failed[s].fetch_add(batch.items, Relaxed);
                    tracing::warn!(signal = name, items = batch.items, error = %why, "upstream refused a batch for good (not retried)");
                    counters.error(s, &why);
                    break;
                }
                client::Outcome::Retry { why, after } => {
                    counters.retried[s].fetch_add(batch.items, Relaxed);
                    let wait = backoff(attempt, cfg.retry_initial, cfg.retry_max, after);
                    // Loud on the first failure and every tenth after; the status page and
                    // metrics carry the rest.
                    if attempt.is_multiple_of(10) {
                        tracing::warn!(signal = name, items = batch.items, attempt, error = %why, retry_in = ?wait, "forwarding failed; will retry");
                    } else {
                        tracing::debug!(signal = name, items = batch.items, attempt, error = %why, retry_in = ?wait, "forwarding failed; will retry");
                    }
                    attempt = attempt.saturating_add(1);
                    counters.error(s, &why);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    // What arrived meanwhile joins the retry (same start, up to the size limit),
                    // so an outage ends in a few large requests rather than many small ones.
                    if let Ok(Some(b)) = peek(queues.clone(), cfg.max_batch_bytes).await {
                        batch = b;
                    }
                }
            }
        }
        let q = queues.clone();
        let _ = tokio::task::spawn_blocking(move || q[s].ack(&batch)).await;
    }
}

/// Items in an encoded-to-be export: spans, data points (a histogram point is one), log records.
pub fn count_metric_points(
    req: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
) -> u64 {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(x)) => x.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(x)) => x.data_points.len(),
            None => 0,
        } as u64)
        .sum()
}
