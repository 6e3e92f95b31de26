//! Scraping as Prometheus does it, configured by a real `prometheus.yml` (`[scrape]
//! prometheus_config`) or by the TOML short form (`[[scrape]]`), both turned into [`config::Job`]s.
//!
//! - [`config`]: `prometheus.yml`'s `global` and `scrape_configs`, Prometheus 2.42's defaults
//!   and checks (`sightline check config`).
//! - [`check`]: `sightline check config FILE`, as `promtool check config`.
//! - [`yaml`]: the pieces the file's sections share (durations, target groups, HTTP client
//!   config); `other_sections` checks the sections Sightline does not run.
//! - [`relabel`]: relabeling rules and their application.
//! - [`discovery`]: where targets come from (static, file, HTTP), behind the [`discovery::Provider`]
//!   seam.
//! - [`target`]: a discovered target to a scrape target (`PopulateLabels`), the scrape URL.
//! - [`client`]: the HTTP client of a job (TLS, credentials).
//! - [`scrape_loop`]: one target's loop: fetch, parse ([`exposition`]), label, limit, store.
//! - this file: the manager: one pool per job that merges its providers' groups, starts and
//!   stops target loops as targets come and go, enforces `target_limit`, and keeps what
//!   `/api/v1/targets` shows.
//!
//! What this module does not do: store samples (it calls [`Tsdb::append`]) or answer HTTP (the
//! `api` module reads [`ScrapeManager::snapshot`]).

pub mod check;
pub mod client;
pub mod config;
pub mod discovery;
pub mod exposition;
mod other_sections;
pub mod relabel;
pub mod scrape_loop;
pub mod target;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::client::Client;
use self::config::{Job, TargetGroup};
use self::relabel::LabelMap;
use self::scrape_loop::{Health, LoopTarget};
use self::target::{Populated, TargetSpec};
use crate::tsdb::Tsdb;

/// One running target.
struct Running {
    spec: TargetSpec,
    url: String,
    health: Arc<Mutex<Health>>,
    forced: Arc<Mutex<Option<String>>>,
    token: CancellationToken,
}

#[derive(Default)]
struct PoolState {
    /// Keyed by the target's labels and URL, as Prometheus dedupes targets.
    active: BTreeMap<String, Running>,
    dropped: Vec<LabelMap>,
}

struct Pool {
    job: Arc<Job>,
    /// The job's whole configuration as text: a reload keeps a pool whose text is unchanged.
    fingerprint: String,
    state: Mutex<PoolState>,
    /// Stops the pool's discovery, its sync task and its target loops.
    token: CancellationToken,
    /// Set when the pool is replaced by a reload: its loops stop without staleness markers
    /// (the new pool's loops carry on the same series), as Prometheus's reload does.
    quiet: Arc<AtomicBool>,
}

/// What a reload needs: where jobs come from and what they write to.
struct Ctx {
    db: Tsdb,
    shutdown: CancellationToken,
    /// `[[scrape]]` short-form jobs (fixed for the process's life).
    short: Vec<Job>,
    /// `[scrape] prometheus_config`, read again on reload.
    prometheus_config: Option<PathBuf>,
}

/// All scrape pools; cheap to clone.
#[derive(Clone, Default)]
pub struct ScrapeManager {
    pools: Arc<Mutex<Vec<Arc<Pool>>>>,
    ctx: Arc<Mutex<Option<Ctx>>>,
    /// One reload at a time.
    reloading: Arc<tokio::sync::Mutex<()>>,
}

/// Reads `prometheus.yml` and logs, once each, the parts Sightline does not run.
pub fn load_prometheus_config(path: &std::path::Path) -> Result<Vec<Job>, String> {
    let prom = config::load_file(path)?;
    for section in &prom.ignored {
        tracing::info!(%section, "prometheus.yml: section ignored (Sightline runs only global and scrape_configs from it)");
    }
    if !prom.rule_files.is_empty() {
        tracing::info!("prometheus.yml: rule_files ignored; list rule files in [rules] files");
    }
    if !prom.global.external_labels.is_empty() {
        tracing::info!(
            "prometheus.yml: global.external_labels ignored; set them in [alerting] external_labels"
        );
    }
    Ok(prom.jobs)
}

/// The short-form jobs and the file's, refusing a job name defined twice.
fn all_jobs(short: &[Job], prom: Vec<Job>) -> Result<Vec<Job>, String> {
    let mut jobs = short.to_vec();
    for j in prom {
        if jobs.iter().any(|o| o.name == j.name) {
            return Err(format!(
                "scrape job {:?} is defined both in [[scrape]] and in prometheus.yml",
                j.name
            ));
        }
        jobs.push(j);
    }
    Ok(jobs)
}

/// One active target as `/api/v1/targets` shows it.
#[derive(Debug, Clone)]
pub struct ActiveView {
    pub pool: String,
    pub discovered: LabelMap,
    /// Without the `__` labels.
    pub labels: LabelMap,
    pub url: String,
    pub health: Health,
    pub interval: String,
    pub timeout: String,
}

#[derive(Debug, Clone)]
pub struct DroppedView {
    pub pool: String,
    pub discovered: LabelMap,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub active: Vec<ActiveView>,
    pub dropped: Vec<DroppedView>,
}

impl ScrapeManager {
    /// Loads `prometheus_config` (if any) and starts one pool per job, the short-form ones
    /// first; everything stops when `shutdown` fires.
    pub async fn start(
        short: Vec<Job>,
        prometheus_config: Option<PathBuf>,
        db: Tsdb,
        shutdown: CancellationToken,
    ) -> Result<ScrapeManager, String> {
        let prom = match prometheus_config.clone() {
            Some(p) => tokio::task::spawn_blocking(move || load_prometheus_config(&p))
                .await
                .map_err(|e| e.to_string())??,
            None => Vec::new(),
        };
        let jobs = all_jobs(&short, prom)?;
        let mgr = ScrapeManager::default();
        *mgr.ctx.lock().map_err(|e| e.to_string())? = Some(Ctx {
            db,
            shutdown,
            short,
            prometheus_config,
        });
        mgr.apply(jobs);
        Ok(mgr)
    }

    /// Reads `prometheus.yml` again (SIGHUP, `POST /-/reload`): pools whose job is unchanged
    /// keep running; changed ones restart; removed ones stop (their series marked stale); new
    /// ones start. A bad file is refused and everything in use stays.
    pub async fn reload(&self) -> Result<(), String> {
        let _one = self.reloading.lock().await;
        let (short, path) = match self.ctx.lock().map_err(|e| e.to_string())?.as_ref() {
            Some(c) => (c.short.clone(), c.prometheus_config.clone()),
            None => return Ok(()),
        };
        let Some(path) = path else {
            return Ok(());
        };
        let prom = tokio::task::spawn_blocking(move || load_prometheus_config(&path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| {
                tracing::error!(error = %e, "prometheus.yml reload refused; the scrape jobs in use stay");
                e
            })?;
        let jobs = all_jobs(&short, prom)?;
        self.apply(jobs);
        tracing::info!("prometheus.yml reloaded");
        Ok(())
    }

    /// Makes the running pools those of `jobs`.
    fn apply(&self, jobs: Vec<Job>) {
        let Ok(ctx) = self.ctx.lock() else { return };
        let Some(ctx) = ctx.as_ref() else { return };
        let Ok(mut pools) = self.pools.lock() else {
            return;
        };
        let wanted: Vec<(String, Job)> = jobs.into_iter().map(|j| (format!("{j:?}"), j)).collect();
        pools.retain(|p| {
            let still = wanted
                .iter()
                .find(|(_, j)| j.name == p.job.name)
                .map(|(f, _)| f);
            match still {
                Some(f) if *f == p.fingerprint => true,
                Some(_) => {
                    p.quiet.store(true, Ordering::Relaxed);
                    p.token.cancel();
                    false
                }
                None => {
                    p.token.cancel();
                    false
                }
            }
        });
        for (fingerprint, job) in wanted {
            if pools.iter().any(|p| p.job.name == job.name) {
                continue;
            }
            if let Some(pool) = start_pool(job, fingerprint, &ctx.db, &ctx.shutdown) {
                pools.push(pool);
            }
        }
    }

    /// Active and dropped targets of every pool, pools in name order.
    pub fn snapshot(&self) -> Snapshot {
        let mut pools: Vec<Arc<Pool>> = self.pools.lock().map(|p| p.clone()).unwrap_or_default();
        pools.sort_by(|a, b| a.job.name.cmp(&b.job.name));
        let mut out = Snapshot::default();
        for p in pools {
            let Ok(st) = p.state.lock() else { continue };
            for r in st.active.values() {
                let get = |k: &str| r.spec.labels.get(k).cloned().unwrap_or_default();
                out.active.push(ActiveView {
                    pool: p.job.name.clone(),
                    discovered: r.spec.discovered.clone(),
                    labels: r
                        .spec
                        .labels
                        .iter()
                        .filter(|(k, _)| !k.starts_with("__"))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    url: r.url.clone(),
                    health: r.health.lock().map(|h| h.clone()).unwrap_or_default(),
                    interval: get("__scrape_interval__"),
                    timeout: get("__scrape_timeout__"),
                });
            }
            for d in &st.dropped {
                out.dropped.push(DroppedView {
                    pool: p.job.name.clone(),
                    discovered: d.clone(),
                });
            }
        }
        out
    }
}

/// Starts one job's discovery providers and its pool task.
fn start_pool(
    job: Job,
    fingerprint: String,
    db: &Tsdb,
    shutdown: &CancellationToken,
) -> Option<Arc<Pool>> {
    let client = match Client::new(&job.http) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(job = %job.name, error = %e, "cannot build the scrape client; the job is not scraped");
            return None;
        }
    };
    for kind in &job.unsupported_sd {
        tracing::warn!(job = %job.name, discovery = %kind, "this service discovery is not built in Sightline; its targets are not discovered");
    }
    let token = shutdown.child_token();
    let (tx, rx) = mpsc::channel(16);
    let mut providers: Vec<Box<dyn discovery::Provider>> = Vec::new();
    providers.push(Box::new(discovery::Static(job.static_configs.clone())));
    for f in &job.file_sd {
        providers.push(Box::new(discovery::File(f.clone())));
    }
    for h in &job.http_sd {
        match Client::new(&h.http) {
            Ok(c) => providers.push(Box::new(discovery::Http {
                cfg: h.clone(),
                client: c,
            })),
            Err(e) => {
                tracing::error!(job = %job.name, url = %h.url, error = %e, "cannot build the http discovery client")
            }
        }
    }
    for (i, p) in providers.into_iter().enumerate() {
        tokio::spawn(p.run(i, tx.clone(), token.clone()));
    }
    drop(tx);
    let pool = Arc::new(Pool {
        job: Arc::new(job),
        fingerprint,
        state: Mutex::default(),
        token,
        quiet: Arc::new(AtomicBool::new(false)),
    });
    tokio::spawn(run_pool(
        pool.clone(),
        rx,
        client,
        db.clone(),
        shutdown.clone(),
    ));
    Some(pool)
}

async fn run_pool(
    pool: Arc<Pool>,
    mut rx: mpsc::Receiver<discovery::Update>,
    client: Client,
    db: Tsdb,
    shutdown: CancellationToken,
) {
    let mut groups: BTreeMap<usize, Vec<TargetGroup>> = BTreeMap::new();
    let token = pool.token.clone();
    loop {
        let first = tokio::select! {
            _ = token.cancelled() => return,
            u = rx.recv() => u,
        };
        let Some((i, g)) = first else {
            // Every provider is done (static only): nothing more will change.
            token.cancelled().await;
            return;
        };
        groups.insert(i, g);
        // Take whatever else arrived at the same time before syncing.
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Ok((i, g)) = rx.try_recv() {
            groups.insert(i, g);
        }
        sync(&pool, &groups, &client, &db, &shutdown);
    }
}

/// Brings the pool's running targets in line with the groups its providers last sent.
fn sync(
    pool: &Arc<Pool>,
    groups: &BTreeMap<usize, Vec<TargetGroup>>,
    client: &Client,
    db: &Tsdb,
    shutdown: &CancellationToken,
) {
    let job = &pool.job;
    let mut active: BTreeMap<String, (TargetSpec, String)> = BTreeMap::new();
    let mut dropped = Vec::new();
    for p in target::from_groups(groups.values().flatten(), job) {
        match p {
            Populated::Active(spec) => {
                let url = spec.url(job);
                let key = format!("{:?}{url}", spec.labels);
                active.entry(key).or_insert((spec, url));
            }
            Populated::Dropped(d) => dropped.push(d),
            Populated::Failed(e) => {
                tracing::error!(job = %job.name, error = %e, "creating target failed")
            }
        }
    }
    let limit_err = (job.target_limit > 0 && active.len() as u64 > job.target_limit).then(|| {
        format!(
            "target_limit exceeded (number of targets: {}, limit: {})",
            active.len(),
            job.target_limit
        )
    });
    let Ok(mut st) = pool.state.lock() else {
        return;
    };
    let gone: Vec<String> = st
        .active
        .keys()
        .filter(|k| !active.contains_key(*k))
        .cloned()
        .collect();
    for k in gone {
        if let Some(r) = st.active.remove(&k) {
            r.token.cancel();
        }
    }
    for (k, (spec, url)) in active {
        if st.active.contains_key(&k) {
            continue;
        }
        let health = Arc::new(Mutex::new(Health {
            health: "unknown",
            ..Default::default()
        }));
        let forced = Arc::new(Mutex::new(None));
        let token = pool.token.child_token();
        let lt = LoopTarget {
            job: job.clone(),
            labels: spec.public_labels(),
            url: url.clone(),
            interval: Duration::from_millis(spec.interval_ms().max(1) as u64),
            timeout: Duration::from_millis(spec.timeout_ms().max(1) as u64),
            health: health.clone(),
            forced_error: forced.clone(),
        };
        tokio::spawn(scrape_loop::run(
            lt,
            client.clone(),
            db.clone(),
            token.clone(),
            shutdown.clone(),
            pool.quiet.clone(),
        ));
        st.active.insert(
            k,
            Running {
                spec,
                url,
                health,
                forced,
                token,
            },
        );
    }
    for r in st.active.values() {
        if let Ok(mut f) = r.forced.lock() {
            *f = limit_err.clone();
        }
    }
    st.dropped = dropped;
}
