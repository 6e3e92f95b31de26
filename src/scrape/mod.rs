//! Scraping as Prometheus does it, configured by a real `prometheus.yml` (`[scrape]
//! prometheus_config`) or by the TOML short form (`[[scrape]]`), both turned into [`config::Job`]s.
//!
//! - [`config`]: `prometheus.yml`'s `global` and `scrape_configs`, Prometheus 2.42's defaults
//!   and checks (`sightline check config`).
//! - [`check`]: `sightline check config FILE`, as `promtool check config`.
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
pub mod relabel;
pub mod scrape_loop;
pub mod target;

use std::collections::BTreeMap;
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
    state: Mutex<PoolState>,
}

/// All scrape pools; cheap to clone.
#[derive(Clone, Default)]
pub struct ScrapeManager {
    pools: Arc<Mutex<Vec<Arc<Pool>>>>,
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
    /// Starts one pool per job; everything stops when `shutdown` fires.
    pub fn start(
        jobs: Vec<Job>,
        db: Tsdb,
        shutdown: CancellationToken,
    ) -> (ScrapeManager, Vec<tokio::task::JoinHandle<()>>) {
        let mgr = ScrapeManager::default();
        let mut tasks = Vec::new();
        for job in jobs {
            let client = match Client::new(&job.http) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(job = %job.name, error = %e, "cannot build the scrape client; the job is not scraped");
                    continue;
                }
            };
            for kind in &job.unsupported_sd {
                tracing::warn!(job = %job.name, discovery = %kind, "this service discovery is not built in Sightline; its targets are not discovered");
            }
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
                tasks.push(tokio::spawn(p.run(i, tx.clone(), shutdown.clone())));
            }
            drop(tx);
            let pool = Arc::new(Pool {
                job: Arc::new(job),
                state: Mutex::default(),
            });
            if let Ok(mut p) = mgr.pools.lock() {
                p.push(pool.clone());
            }
            tasks.push(tokio::spawn(run_pool(
                pool,
                rx,
                client,
                db.clone(),
                shutdown.clone(),
            )));
        }
        (mgr, tasks)
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

async fn run_pool(
    pool: Arc<Pool>,
    mut rx: mpsc::Receiver<discovery::Update>,
    client: Client,
    db: Tsdb,
    shutdown: CancellationToken,
) {
    let mut groups: BTreeMap<usize, Vec<TargetGroup>> = BTreeMap::new();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            u = rx.recv() => u,
        };
        let Some((i, g)) = first else {
            // Every provider is done (static only): nothing more will change.
            shutdown.cancelled().await;
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
        let token = shutdown.child_token();
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
