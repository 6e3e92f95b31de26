//! Samplers: metrics Sightline reads from the machine itself (scraping other processes is
//! `crate::scrape`). `host` reads the machine's kernel files
//! under node-exporter's names (`procfs` parses the `/proc` text files); `gpu` asks NVML under dcgm-exporter's names. `emit` turns a
//! round of samples into a store batch with staleness markers. Host and GPU samplers run on
//! their own threads, off the async runtime, and count the CPU time they use.

pub mod emit;
pub mod gpu;
pub mod host;
mod procfs;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::base::clock::now_ms;
use crate::telemetry::{Exposition, Kind, MetricSource};
use crate::tsdb::Tsdb;

/// CPU time and rounds per built-in sampler, for `/metrics` and the cost benchmark.
#[derive(Default)]
pub struct SamplerCounters {
    pub host_cpu_nanos: AtomicU64,
    pub host_rounds: AtomicU64,
    pub gpu_cpu_nanos: AtomicU64,
    pub gpu_rounds: AtomicU64,
    /// 1 while the GPU sampler runs (NVML loaded), 0 otherwise.
    pub gpu_up: AtomicU64,
}

impl MetricSource for SamplerCounters {
    fn write_metrics(&self, out: &mut Exposition) {
        let name = "sightline_sampler_cpu_seconds_total";
        out.family(
            name,
            Kind::Counter,
            "CPU time spent by the built-in samplers",
        );
        for (s, v) in [("host", &self.host_cpu_nanos), ("gpu", &self.gpu_cpu_nanos)] {
            out.sample(name, &[("sampler", s)], v.load(Relaxed) as f64 / 1e9);
        }
        let name = "sightline_sampler_rounds_total";
        out.family(
            name,
            Kind::Counter,
            "Sampling rounds done by the built-in samplers",
        );
        for (s, v) in [("host", &self.host_rounds), ("gpu", &self.gpu_rounds)] {
            out.sample(name, &[("sampler", s)], v);
        }
        out.single(
            "sightline_gpu_sampler_up",
            Kind::Gauge,
            "1 when NVML is loaded and the GPU sampler runs",
            &self.gpu_up,
        );
    }
}

/// CPU time of the calling thread.
pub fn thread_cpu_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until `deadline` or until `token` fires; false when it fired.
pub fn sleep_until(deadline: Instant, token: &CancellationToken) -> bool {
    loop {
        if token.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
    }
}

/// Runs `round` every `interval` (the first at once) until `token` fires, adding each round's
/// CPU time and count to the given counters. A round that overruns skips the missed ticks.
pub fn every(
    interval: Duration,
    token: &CancellationToken,
    cpu_nanos: &AtomicU64,
    rounds: &AtomicU64,
    mut round: impl FnMut(),
) {
    let mut next = Instant::now();
    while sleep_until(next, token) {
        next += interval;
        if next < Instant::now() {
            next = Instant::now() + interval;
        }
        let cpu0 = thread_cpu_nanos();
        round();
        cpu_nanos.fetch_add(thread_cpu_nanos().saturating_sub(cpu0), Relaxed);
        rounds.fetch_add(1, Relaxed);
    }
}

/// Starts the host and GPU samplers that the configuration turns on.
pub fn start(
    cfg: &crate::config::Config,
    db: Tsdb,
    store: Option<crate::traces::TraceStore>,
    processes: Option<Arc<crate::spanmetrics::ProcessMap>>,
    counters: Arc<SamplerCounters>,
    token: CancellationToken,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    if cfg.host.enabled {
        let (db, c, t, h) = (
            db.clone(),
            counters.clone(),
            token.clone(),
            cfg.host.clone(),
        );
        match std::thread::Builder::new()
            .name("host-sampler".into())
            .spawn(move || run_host(h, db, c, t))
        {
            Ok(j) => threads.push(j),
            Err(e) => tracing::error!(error = %e, "cannot start the host sampler"),
        }
    }
    if cfg.gpu.enabled {
        let (db, c, t, g) = (db, counters, token, cfg.gpu.clone());
        let proc_path = cfg.host.proc_path.clone();
        let log = store.and_then(|store| {
            tokio::runtime::Handle::try_current()
                .ok()
                .map(|rt| gpu::EventLog { store, rt })
        });
        match std::thread::Builder::new()
            .name("gpu-sampler".into())
            .spawn(move || gpu::run(g, db, c, t, proc_path, log, processes))
        {
            Ok(j) => threads.push(j),
            Err(e) => tracing::error!(error = %e, "cannot start the GPU sampler"),
        }
    }
    threads
}

fn run_host(
    cfg: crate::config::HostConfig,
    db: Tsdb,
    counters: Arc<SamplerCounters>,
    token: CancellationToken,
) {
    let mut emitter = emit::Emitter::new("node", &host::host_name());
    let mut state = host::HostState::default();
    let paths = host::HostPaths {
        proc: cfg.proc_path.clone(),
        sys: cfg.sys_path.clone(),
        rootfs: cfg.rootfs_path.clone(),
    };
    every(
        cfg.interval,
        &token,
        &counters.host_cpu_nanos,
        &counters.host_rounds,
        || {
            let samples = host::collect(&paths, &mut state);
            let batch = emitter.batch(samples, now_ms());
            if let Err(e) = db.append_blocking(batch) {
                tracing::warn!(error = %e, "host samples not stored");
            }
        },
    );
    let _ = db.append_blocking(emitter.finish(now_ms()));
}
