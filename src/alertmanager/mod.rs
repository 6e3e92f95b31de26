//! The built-in Alertmanager: takes alerts (from Sightline's own rules and from any Prometheus
//! through API v2), routes them through `alertmanager.yml`'s tree into aggregation groups, and
//! notifies receivers with Alertmanager 0.25's semantics: `group_wait`, `group_interval`,
//! `repeat_interval`, `resolve_timeout`, inhibition, silences, time intervals, a notification
//! log that deduplicates, retries with backoff, one receiver's failure never blocking another.
//!
//! State that must outlive a crash (alerts, silences, the notification log) is written to
//! SQLite (`store.rs`) before it is acted on, so a restart neither repeats a notification inside
//! its `repeat_interval` nor forgets a silence or a firing alert.
//!
//! Owns: the alert store, aggregation groups, silences, the notification log, receivers.
//! Does not own: the HTTP API (`api::alertmanager`), rule evaluation (`rules`), sending to
//! external Alertmanagers (`notify`). Receivers: webhook, Slack, email, PagerDuty (Events API
//! v2, v1 with a service key) and Discord; messages are Go templates (`templates.rs`).

pub mod alert;
pub mod config;
pub mod matcher;
mod notifiers;
pub mod silence;
mod store;
pub mod templates;
pub mod timeinterval;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::telemetry::{Exposition, Kind, MetricSource};
use alert::{Alert, fingerprint, labels_text, notification_order};
use config::{Config, Route};
use matcher::{LabelSet, all_match, matchers_text};
use silence::Silence;
use store::{NflogEntry, Store};

/// Go's RFC 3339 with nanoseconds; the zero time as Go writes it for an unset time.
pub fn rfc3339(ns: i64) -> String {
    if ns == 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    crate::base::clock::go_time_text(ns, 'T', "Z")
}

fn now_ns() -> i64 {
    crate::base::clock::now_ns() as i64
}

const MS: i64 = 1_000_000;
/// How long silences are kept after they end (Alertmanager's `--data.retention`, 120h).
const SILENCE_RETENTION_NS: i64 = 120 * 3600 * 1_000_000_000;
/// Resolved alerts leave the store after this long (Alertmanager's `--alerts.gc-interval`).
const ALERT_GC_INTERVAL: Duration = Duration::from_secs(30 * 60);

/// One route of the tree, flattened in preorder.
struct RouteNode {
    route: Route,
    key: String,
    children: Vec<usize>,
}

/// What a configuration compiles to.
struct Runtime {
    cfg: Config,
    routes: Vec<RouteNode>,
    integrations: HashMap<String, Vec<Arc<notifiers::Notifier>>>,
}

impl Runtime {
    fn new(cfg: Config, external_url: &str) -> Result<Runtime, String> {
        let mut routes = Vec::new();
        flatten(&cfg.route, None, &mut routes);
        let templates = Arc::new(templates::Templates::load(&cfg.templates)?);
        let mut integrations = HashMap::new();
        for r in &cfg.receivers {
            let mut list = Vec::new();
            for i in &r.integrations {
                list.push(Arc::new(notifiers::Notifier::new(
                    &r.name,
                    i,
                    external_url,
                    templates.clone(),
                )?));
            }
            integrations.insert(r.name.clone(), list);
        }
        Ok(Runtime {
            cfg,
            routes,
            integrations,
        })
    }

    /// Alertmanager's `Route.Match`: the deepest matching routes, `continue` permitting more.
    fn match_routes(&self, ls: &LabelSet) -> Vec<usize> {
        let mut out = Vec::new();
        self.match_at(0, ls, &mut out);
        out
    }

    fn match_at(&self, i: usize, ls: &LabelSet, out: &mut Vec<usize>) -> bool {
        let n = &self.routes[i];
        if !all_match(&n.route.matchers, ls) {
            return false;
        }
        let before = out.len();
        for &c in &n.children {
            let matched = self.match_at(c, ls, out);
            if matched && !self.routes[c].route.cont {
                break;
            }
        }
        if out.len() == before {
            out.push(i);
        }
        true
    }

    fn group_labels(&self, route: usize, ls: &LabelSet) -> LabelSet {
        let r = &self.routes[route].route;
        ls.iter()
            .filter(|(k, _)| r.group_by_all || r.group_by.iter().any(|g| g == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn flatten(r: &Route, parent: Option<&str>, out: &mut Vec<RouteNode>) -> usize {
    let key = match parent {
        Some(p) => format!("{p}/{}", matchers_text(&r.matchers)),
        None => matchers_text(&r.matchers),
    };
    let idx = out.len();
    let mut node_route = r.clone();
    node_route.routes = Vec::new();
    out.push(RouteNode {
        route: node_route,
        key: key.clone(),
        children: Vec::new(),
    });
    for c in &r.routes {
        let ci = flatten(c, Some(&key), out);
        out[idx].children.push(ci);
    }
    idx
}

/// An aggregation group.
struct Group {
    route: usize,
    labels: LabelSet,
    key: String,
    alerts: HashMap<u64, Arc<Alert>>,
    next_flush: i64,
    has_flushed: bool,
    in_flight: bool,
}

#[derive(Default, Clone)]
struct Mark {
    silenced_by: Vec<String>,
    inhibited_by: Vec<String>,
}

#[derive(Default)]
struct State {
    /// Shared with the groups and inhibition caches: one copy of each alert.
    alerts: HashMap<u64, Arc<Alert>>,
    groups: HashMap<(usize, u64), Group>,
    silences: BTreeMap<String, Silence>,
    nflog: HashMap<(String, String), NflogEntry>,
    marks: HashMap<u64, Mark>,
    /// Per inhibit rule: the alerts matching its source matchers.
    inhibit_sources: Vec<HashMap<u64, Arc<Alert>>>,
}

/// Per integration kind: notifications, failed notifications, requests, failed requests.
pub type NotificationCounts = BTreeMap<&'static str, (u64, u64, u64, u64)>;

/// Counters exported as `sightline_alertmanager_*` (Alertmanager's `alertmanager_*` names).
#[derive(Default)]
pub struct Counters {
    pub alerts_received_firing: AtomicU64,
    pub alerts_received_resolved: AtomicU64,
    pub alerts_invalid: AtomicU64,
    pub notifications: Mutex<NotificationCounts>,
    pub config_reloads_failed: AtomicU64,
    pub config_last_reload_success: AtomicU64,
}

/// The last delivery of each integration, for the UI.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub at: i64,
    pub error: Option<String>,
}

pub struct Alertmanager {
    state: Mutex<State>,
    store: Mutex<Store>,
    put_lock: Mutex<()>,
    runtime: RwLock<Arc<Runtime>>,
    config_path: PathBuf,
    wake: tokio::sync::Notify,
    pub counters: Counters,
    external_url: String,
    started_ns: i64,
    deliveries: Mutex<BTreeMap<String, Delivery>>,
}

/// Why an alert was refused (`POST /api/v2/alerts` answers these, joined by "; ").
pub fn validate_alert(a: &Alert) -> Result<(), String> {
    if a.starts_at == 0 {
        return Err("start time missing".into());
    }
    if a.ends_at != 0 && a.ends_at < a.starts_at {
        return Err("start time must be before end time".into());
    }
    for k in a.labels.keys() {
        if !alert::valid_label_name(k) {
            return Err(format!("invalid label set: invalid name {k:?}"));
        }
    }
    if a.labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    for k in a.annotations.keys() {
        if !alert::valid_label_name(k) {
            return Err(format!("invalid annotations: invalid name {k:?}"));
        }
    }
    Ok(())
}

/// Alertmanager's alert hash in the notification log: xxHash64 over sorted `name\xffvalue\xff`.
fn hash_alert(ls: &LabelSet) -> u64 {
    let mut b = Vec::with_capacity(256);
    for (k, v) in ls {
        b.extend_from_slice(k.as_bytes());
        b.push(0xff);
        b.extend_from_slice(v.as_bytes());
        b.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&b, 0)
}

/// One flush's work, taken from a group under the lock.
struct Flush {
    group: (usize, u64),
    key: String,
    labels: LabelSet,
    receiver: String,
    repeat_ns: i64,
    timeout: Duration,
    mute: Vec<String>,
    active: Vec<String>,
    now: i64,
    alerts: Vec<Alert>,
}

impl Alertmanager {
    /// Opens the state under `dir` and loads `config_path`.
    pub fn open(
        dir: &Path,
        config_path: &Path,
        external_url: &str,
    ) -> anyhow::Result<Arc<Alertmanager>> {
        std::fs::create_dir_all(dir)?;
        let cfg = config::load_file(config_path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
        let rt = Runtime::new(cfg, external_url)
            .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
        let store = Store::open(&dir.join("state.db"))?;
        let now = now_ns();
        let mut st = State {
            inhibit_sources: vec![HashMap::new(); rt.cfg.inhibit_rules.len()],
            ..Default::default()
        };
        for s in store.load_silences()? {
            st.silences.insert(s.id.clone(), s);
        }
        for (g, r, e) in store.load_nflog()? {
            if e.expires_at > now {
                st.nflog.insert((g, r), e);
            }
        }
        let alerts = store.load_alerts()?;
        let am = Arc::new(Alertmanager {
            state: Mutex::new(st),
            store: Mutex::new(store),
            put_lock: Mutex::new(()),
            runtime: RwLock::new(Arc::new(rt)),
            config_path: config_path.to_path_buf(),
            wake: tokio::sync::Notify::new(),
            counters: Counters::default(),
            external_url: external_url.to_string(),
            started_ns: now,
            deliveries: Mutex::new(BTreeMap::new()),
        });
        am.counters.config_last_reload_success.store(1, Relaxed);
        {
            let rt = am.runtime.read().clone();
            let mut st = am.state.lock();
            for a in alerts {
                am.apply(&rt, &mut st, a, now);
            }
        }
        tracing::info!(config = %config_path.display(), "built-in alertmanager started");
        Ok(am)
    }

    pub fn external_url(&self) -> &str {
        &self.external_url
    }

    pub fn started_ns(&self) -> i64 {
        self.started_ns
    }

    pub fn resolve_timeout_ns(&self) -> i64 {
        self.runtime.read().cfg.global.resolve_timeout * MS
    }

    pub fn config_text(&self) -> String {
        self.runtime.read().cfg.original.clone()
    }

    pub fn receiver_names(&self) -> Vec<String> {
        self.runtime
            .read()
            .cfg
            .receivers
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    pub fn deliveries(&self) -> BTreeMap<String, Delivery> {
        self.deliveries.lock().clone()
    }

    /// Reloads the configuration: a bad file is refused, logged and counted; the one in use
    /// stays. Aggregation groups are rebuilt from the alerts (the notification log keeps
    /// what was already sent from being sent again), as Alertmanager does.
    pub fn reload(&self) -> Result<(), String> {
        let res = config::load_file(&self.config_path)
            .and_then(|cfg| Runtime::new(cfg, &self.external_url));
        match res {
            Err(e) => {
                self.counters.config_reloads_failed.fetch_add(1, Relaxed);
                self.counters.config_last_reload_success.store(0, Relaxed);
                tracing::error!(error = %e, "alertmanager configuration reload failed; keeping the one in use");
                Err(e)
            }
            Ok(rt) => {
                let rt = Arc::new(rt);
                *self.runtime.write() = rt.clone();
                let now = now_ns();
                let mut st = self.state.lock();
                st.groups.clear();
                st.inhibit_sources = vec![HashMap::new(); rt.cfg.inhibit_rules.len()];
                let alerts: Vec<Arc<Alert>> = st.alerts.values().cloned().collect();
                for a in alerts {
                    self.route_into_groups(&rt, &mut st, &a, now);
                    Self::index_inhibit(&rt, &mut st, &a);
                }
                drop(st);
                self.counters.config_last_reload_success.store(1, Relaxed);
                self.wake.notify_one();
                tracing::info!(config = %self.config_path.display(), "alertmanager configuration reloaded");
                Ok(())
            }
        }
    }

    fn index_inhibit(rt: &Runtime, st: &mut State, a: &Arc<Alert>) {
        let fp = a.fingerprint();
        for (i, r) in rt.cfg.inhibit_rules.iter().enumerate() {
            if all_match(&r.source, &a.labels) {
                st.inhibit_sources[i].insert(fp, a.clone());
            }
        }
    }

    fn route_into_groups(&self, rt: &Runtime, st: &mut State, a: &Arc<Alert>, now: i64) {
        for route in rt.match_routes(&a.labels) {
            let gl = rt.group_labels(route, &a.labels);
            let gfp = fingerprint(&gl);
            let r = &rt.routes[route].route;
            let g = st.groups.entry((route, gfp)).or_insert_with(|| Group {
                route,
                key: format!("{}:{}", rt.routes[route].key, labels_text(&gl)),
                labels: gl,
                alerts: HashMap::new(),
                next_flush: now + r.group_wait * MS,
                has_flushed: false,
                in_flight: false,
            });
            g.alerts.insert(a.fingerprint(), a.clone());
            if !g.has_flushed && a.starts_at + r.group_wait * MS < now {
                g.next_flush = g.next_flush.min(now);
            }
        }
    }

    /// Stores one (already merged) alert in memory and routes it.
    fn apply(&self, rt: &Runtime, st: &mut State, a: Alert, now: i64) {
        let a = Arc::new(a);
        Self::index_inhibit(rt, st, &a);
        self.route_into_groups(rt, st, &a, now);
        st.alerts.insert(a.fingerprint(), a);
    }

    /// Takes alerts: merged with the stored ones as Alertmanager merges them, written durably,
    /// then routed. Blocking (SQLite): call from a blocking thread.
    pub fn put(&self, alerts: Vec<Alert>) -> anyhow::Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let _serial = self.put_lock.lock();
        let now = now_ns();
        let merged: Vec<Alert> = {
            let st = self.state.lock();
            let mut batch: HashMap<u64, Alert> = HashMap::new();
            let mut order = Vec::new();
            for a in alerts {
                let fp = a.fingerprint();
                let old = batch.get(&fp).or_else(|| st.alerts.get(&fp).map(|v| &**v));
                let a = match old {
                    Some(old)
                        if (a.ends_at > old.starts_at && a.ends_at < old.ends_at)
                            || (a.starts_at > old.starts_at && a.starts_at < old.ends_at) =>
                    {
                        old.merge(&a, now)
                    }
                    _ => a,
                };
                if batch.insert(fp, a).is_none() {
                    order.push(fp);
                }
            }
            order
                .into_iter()
                .filter_map(|fp| batch.remove(&fp))
                .collect()
        };
        self.store.lock().put_alerts(&merged)?;
        let rt = self.runtime.read().clone();
        let mut st = self.state.lock();
        for a in merged {
            self.apply(&rt, &mut st, a, now);
        }
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// Every alert in the store (the API filters them).
    pub fn alerts(&self) -> Vec<Arc<Alert>> {
        self.state.lock().alerts.values().cloned().collect()
    }

    /// Receivers an alert routes to.
    pub fn receivers_for(&self, ls: &LabelSet) -> Vec<String> {
        let rt = self.runtime.read().clone();
        rt.match_routes(ls)
            .into_iter()
            .map(|r| rt.routes[r].route.receiver.clone())
            .collect()
    }

    /// Refreshes and returns an alert's status: (state, silenced_by, inhibited_by).
    pub fn status(&self, ls: &LabelSet, now: i64) -> (&'static str, Vec<String>, Vec<String>) {
        let rt = self.runtime.read().clone();
        let mut st = self.state.lock();
        let inhibited = Self::inhibited_by(&rt, &st, ls, now);
        let silenced = Self::silenced_by(&st, ls, now);
        let m = Mark {
            silenced_by: silenced.clone(),
            inhibited_by: inhibited.clone().into_iter().collect(),
        };
        st.marks.insert(fingerprint(ls), m.clone());
        let state = if m.silenced_by.is_empty() && m.inhibited_by.is_empty() {
            "active"
        } else {
            "suppressed"
        };
        (state, m.silenced_by, m.inhibited_by)
    }

    fn silenced_by(st: &State, ls: &LabelSet, now: i64) -> Vec<String> {
        st.silences
            .values()
            .filter(|s| s.state(now) == silence::State::Active && s.matches(ls))
            .map(|s| s.id.clone())
            .collect()
    }

    fn inhibited_by(rt: &Runtime, st: &State, ls: &LabelSet, now: i64) -> Option<String> {
        for (i, r) in rt.cfg.inhibit_rules.iter().enumerate() {
            if !all_match(&r.target, ls) {
                continue;
            }
            let exclude_two_sided = all_match(&r.source, ls);
            for src in st
                .inhibit_sources
                .get(i)
                .into_iter()
                .flat_map(|m| m.values())
            {
                if src.resolved_at(now) {
                    continue;
                }
                if r.equal.iter().any(|n| src.labels.get(n) != ls.get(n)) {
                    continue;
                }
                if exclude_two_sided && all_match(&r.target, &src.labels) {
                    continue;
                }
                return Some(alert::fingerprint_text(src.fingerprint()));
            }
        }
        None
    }

    /// Aggregation groups for the API: (labels, receiver, alerts), sorted as Alertmanager
    /// sorts them.
    pub fn groups(&self) -> Vec<(LabelSet, String, Vec<Alert>)> {
        let rt = self.runtime.read().clone();
        let st = self.state.lock();
        let mut out: Vec<(LabelSet, String, Vec<Alert>)> = st
            .groups
            .values()
            .map(|g| {
                let mut a: Vec<Alert> = g.alerts.values().map(|a| (**a).clone()).collect();
                a.sort_by(notification_order);
                (
                    g.labels.clone(),
                    rt.routes[g.route].route.receiver.clone(),
                    a,
                )
            })
            .collect();
        out.sort_by(|a, b| {
            if a.0 == b.0 {
                a.1.cmp(&b.1)
            } else {
                alert::label_set_before(&a.0, &b.0)
            }
        });
        out
    }

    // ------------------------------------------------------------ silences

    pub fn silences(&self) -> Vec<Silence> {
        self.state.lock().silences.values().cloned().collect()
    }

    pub fn silence(&self, id: &str) -> Option<Silence> {
        self.state.lock().silences.get(id).cloned()
    }

    /// Alertmanager's `Silences.Set`: a new silence, an update in place, or (where the change
    /// would rewrite history) the old one expired and a new one created. Blocking.
    pub fn set_silence(&self, mut s: Silence) -> Result<String, SilenceError> {
        let now = now_ns();
        let prev = if s.id.is_empty() {
            None
        } else {
            Some(self.silence(&s.id).ok_or(SilenceError::NotFound)?)
        };
        if let Some(prev) = &prev {
            if silence::can_update(prev, &s, now) {
                s.updated_at = now;
                s.validate()
                    .map_err(|e| SilenceError::Invalid(format!("silence invalid: {e}")))?;
                self.save_silence(s.clone())?;
                return Ok(s.id);
            }
            if prev.state(now) != silence::State::Expired {
                self.expire_silence(&prev.id)?;
            }
        }
        s.id = silence::new_id();
        if s.starts_at < now {
            s.starts_at = now;
        }
        s.updated_at = now;
        s.validate()
            .map_err(|e| SilenceError::Invalid(format!("silence invalid: {e}")))?;
        self.save_silence(s.clone())?;
        Ok(s.id)
    }

    fn save_silence(&self, s: Silence) -> Result<(), SilenceError> {
        self.store
            .lock()
            .put_silence(&s)
            .map_err(|e| SilenceError::Store(e.to_string()))?;
        self.state.lock().silences.insert(s.id.clone(), s);
        self.wake.notify_one();
        Ok(())
    }

    /// Expires a silence now (idempotent for an expired one). Blocking.
    pub fn expire_silence(&self, id: &str) -> Result<(), SilenceError> {
        let now = now_ns();
        let mut s = self.silence(id).ok_or(SilenceError::NotFound)?;
        match s.state(now) {
            silence::State::Expired => return Ok(()),
            silence::State::Active => s.ends_at = now,
            silence::State::Pending => {
                s.starts_at = now;
                s.ends_at = now;
            }
        }
        s.updated_at = now;
        self.save_silence(s)
    }

    // ------------------------------------------------------------ dispatch

    /// The dispatcher: flushes due groups, cleans empty ones, collects garbage. Runs until
    /// `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last_cleanup = now_ns();
        let mut last_gc = now_ns();
        loop {
            let now = now_ns();
            let (jobs, next) = self.take_due(now);
            for job in jobs {
                let am = self.clone();
                tokio::spawn(async move { am.flush(job).await });
            }
            if now - last_cleanup >= 30_000 * MS {
                last_cleanup = now;
                self.state
                    .lock()
                    .groups
                    .retain(|_, g| g.in_flight || !g.alerts.is_empty());
            }
            if now - last_gc >= ALERT_GC_INTERVAL.as_nanos() as i64 {
                last_gc = now;
                let am = self.clone();
                let _ = tokio::task::spawn_blocking(move || am.gc(now_ns())).await;
            }
            let wait = match next {
                Some(t) => Duration::from_nanos((t - now_ns()).clamp(0, 30_000 * MS) as u64),
                None => Duration::from_secs(30),
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Resolved alerts leave the store; old silences and log entries go. Blocking.
    fn gc(&self, now: i64) {
        let mut gone = Vec::new();
        {
            let mut st = self.state.lock();
            st.alerts.retain(|fp, a| {
                let keep = !a.resolved_at(now);
                if !keep {
                    gone.push(*fp);
                }
                keep
            });
            for fp in &gone {
                st.marks.remove(fp);
            }
            for m in st.inhibit_sources.iter_mut() {
                m.retain(|_, a| !a.resolved_at(now));
            }
            st.silences
                .retain(|_, s| s.ends_at + SILENCE_RETENTION_NS > now);
            st.nflog.retain(|_, e| e.expires_at > now);
        }
        let mut store = self.store.lock();
        if let Err(e) = store
            .delete_alerts(&gone)
            .and_then(|_| store.gc(now, SILENCE_RETENTION_NS))
        {
            tracing::warn!(error = %e, "alertmanager state garbage collection failed");
        }
    }

    fn take_due(&self, now: i64) -> (Vec<Flush>, Option<i64>) {
        let rt = self.runtime.read().clone();
        let mut st = self.state.lock();
        let mut jobs = Vec::new();
        let mut next: Option<i64> = None;
        for (id, g) in st.groups.iter_mut() {
            if g.in_flight {
                continue;
            }
            if g.next_flush > now {
                next = Some(next.map_or(g.next_flush, |n: i64| n.min(g.next_flush)));
                continue;
            }
            let Some(node) = rt.routes.get(g.route) else {
                continue;
            };
            let r = &node.route;
            g.next_flush = now + r.group_interval * MS;
            g.has_flushed = true;
            next = Some(next.map_or(g.next_flush, |n: i64| n.min(g.next_flush)));
            if g.alerts.is_empty() {
                continue;
            }
            let mut alerts: Vec<Alert> = g
                .alerts
                .values()
                .map(|a| {
                    let mut a = (**a).clone();
                    if !a.resolved_at(now) {
                        a.ends_at = 0;
                    }
                    a
                })
                .collect();
            alerts.sort_by(notification_order);
            g.in_flight = true;
            jobs.push(Flush {
                group: *id,
                key: g.key.clone(),
                labels: g.labels.clone(),
                receiver: r.receiver.clone(),
                repeat_ns: r.repeat_interval * MS,
                timeout: Duration::from_millis(r.group_interval.max(1) as u64),
                mute: r.mute_time_intervals.clone(),
                active: r.active_time_intervals.clone(),
                now,
                alerts,
            });
        }
        (jobs, next)
    }

    async fn flush(self: Arc<Self>, job: Flush) {
        let ok = match tokio::time::timeout(job.timeout, self.notify(&job)).await {
            Ok(ok) => ok,
            Err(_) => {
                tracing::warn!(group = %job.key, "notify for alerts timed out");
                false
            }
        };
        let mut st = self.state.lock();
        if let Some(g) = st.groups.get_mut(&job.group) {
            g.in_flight = false;
            if ok {
                for a in &job.alerts {
                    if !a.resolved_at(job.now) {
                        continue;
                    }
                    let fp = a.fingerprint();
                    if g.alerts
                        .get(&fp)
                        .is_some_and(|cur| cur.updated_at == a.updated_at)
                    {
                        g.alerts.remove(&fp);
                    }
                }
            }
        }
        drop(st);
        self.wake.notify_one();
    }

    /// The notification pipeline for one flush; true when every integration succeeded (or had
    /// nothing to do).
    async fn notify(&self, job: &Flush) -> bool {
        let rt = self.runtime.read().clone();
        let now = job.now;
        // Inhibition, then active and mute time intervals, then silences.
        let alerts: Vec<Alert> = {
            let mut st = self.state.lock();
            let mut kept = Vec::new();
            for a in &job.alerts {
                let by = Self::inhibited_by(&rt, &st, &a.labels, now);
                let fp = a.fingerprint();
                st.marks.entry(fp).or_default().inhibited_by = by.iter().cloned().collect();
                if by.is_none() {
                    kept.push(a.clone());
                }
            }
            kept
        };
        if alerts.is_empty() {
            return true;
        }
        if !job.active.is_empty()
            && !timeinterval::in_intervals(now, &rt.cfg.time_intervals, &job.active)
        {
            return true;
        }
        if timeinterval::in_intervals(now, &rt.cfg.time_intervals, &job.mute) {
            return true;
        }
        let alerts: Vec<Alert> = {
            let mut st = self.state.lock();
            let mut kept = Vec::new();
            for a in alerts {
                let by = Self::silenced_by(&st, &a.labels, now);
                let muted = !by.is_empty();
                st.marks.entry(a.fingerprint()).or_default().silenced_by = by;
                if !muted {
                    kept.push(a);
                }
            }
            kept
        };
        if alerts.is_empty() {
            return true;
        }
        let Some(integrations) = rt.integrations.get(&job.receiver) else {
            return false;
        };
        let mut firing = Vec::new();
        let mut resolved = Vec::new();
        for a in &alerts {
            let h = hash_alert(&a.labels);
            if a.resolved_at(now) {
                resolved.push(h);
            } else {
                firing.push(h);
            }
        }
        let sends = integrations.iter().map(|n| {
            let alerts = &alerts;
            let (firing, resolved) = (&firing, &resolved);
            async move {
                let rkey = format!("{}/{}/{}", job.receiver, n.kind(), n.index());
                let entry = self
                    .state
                    .lock()
                    .nflog
                    .get(&(job.key.clone(), rkey.clone()))
                    .cloned();
                if !needs_update(entry.as_ref(), firing, resolved, n.send_resolved(), job.repeat_ns, now_ns()) {
                    return true;
                }
                if !firing.is_empty() || n.send_resolved() {
                    let sent: Vec<Alert> = if n.send_resolved() {
                        alerts.clone()
                    } else {
                        alerts.iter().filter(|a| !a.resolved_at(now)).cloned().collect()
                    };
                    let data = notifiers::Data {
                        receiver: &job.receiver,
                        group_key: &job.key,
                        group_labels: &job.labels,
                        alerts: &sent,
                        all_alerts: alerts,
                        now,
                    };
                    let res = n.notify_with_retries(&data, &self.counters).await;
                    self.deliveries.lock().insert(
                        rkey.clone(),
                        Delivery {
                            at: now_ns(),
                            error: res.as_ref().err().cloned(),
                        },
                    );
                    if let Err(e) = res {
                        tracing::error!(receiver = %job.receiver, integration = n.kind(), group = %job.key, error = %e, "notify failed");
                        return false;
                    }
                }
                let e = NflogEntry {
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                    timestamp: now_ns(),
                    expires_at: now_ns() + 2 * job.repeat_ns,
                };
                let written = self.store.lock().put_nflog(&job.key, &rkey, &e);
                if let Err(err) = written {
                    tracing::error!(error = %err, "cannot write the notification log");
                    return false;
                }
                self.state.lock().nflog.insert((job.key.clone(), rkey), e);
                true
            }
        });
        futures_util::future::join_all(sends)
            .await
            .into_iter()
            .all(|ok| ok)
    }
}

/// Alertmanager's `DedupStage.needsUpdate`.
fn needs_update(
    entry: Option<&NflogEntry>,
    firing: &[u64],
    resolved: &[u64],
    send_resolved: bool,
    repeat_ns: i64,
    now: i64,
) -> bool {
    let Some(e) = entry else {
        return !firing.is_empty();
    };
    if !firing.iter().all(|h| e.firing.contains(h)) {
        return true;
    }
    if firing.is_empty() {
        return !e.firing.is_empty();
    }
    if send_resolved && !resolved.iter().all(|h| e.resolved.contains(h)) {
        return true;
    }
    e.timestamp < now - repeat_ns
}

#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("silence not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("cannot store the silence: {0}")]
    Store(String),
}

impl crate::notify::AlertSink for Alertmanager {
    fn put_alerts(&self, alerts: &[crate::notify::NotifyAlert]) {
        let now = now_ns();
        let resolve = self.runtime.read().cfg.global.resolve_timeout * MS;
        let list: Vec<Alert> = alerts
            .iter()
            .map(|n| {
                let mut a = Alert {
                    labels: n
                        .labels
                        .iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    annotations: n.annotations.clone().into_iter().collect(),
                    starts_at: n.starts_at,
                    ends_at: n.ends_at,
                    generator_url: n.generator_url.clone(),
                    updated_at: now,
                    timeout: false,
                };
                a.fill_times(now, resolve);
                a
            })
            .filter(|a| validate_alert(a).is_ok())
            .collect();
        if let Err(e) = self.put(list) {
            tracing::error!(error = %e, "built-in alertmanager cannot store alerts");
        }
    }
}

impl MetricSource for Alertmanager {
    fn write_metrics(&self, out: &mut Exposition) {
        let c = &self.counters;
        out.family(
            "sightline_alertmanager_alerts_received_total",
            Kind::Counter,
            "Alerts received by the built-in Alertmanager",
        );
        out.sample(
            "sightline_alertmanager_alerts_received_total",
            &[("status", "firing")],
            &c.alerts_received_firing,
        );
        out.sample(
            "sightline_alertmanager_alerts_received_total",
            &[("status", "resolved")],
            &c.alerts_received_resolved,
        );
        out.family(
            "sightline_alertmanager_alerts_invalid_total",
            Kind::Counter,
            "Alerts refused by the built-in Alertmanager's validation",
        );
        out.sample(
            "sightline_alertmanager_alerts_invalid_total",
            &[],
            &c.alerts_invalid,
        );
        let (n_alerts, n_groups, n_sil) = {
            let st = self.state.lock();
            let now = now_ns();
            (
                st.alerts.values().filter(|a| !a.resolved_at(now)).count(),
                st.groups.len(),
                st.silences
                    .values()
                    .filter(|s| s.state(now) == silence::State::Active)
                    .count(),
            )
        };
        out.family(
            "sightline_alertmanager_alerts",
            Kind::Gauge,
            "Alerts held, not resolved",
        );
        out.sample("sightline_alertmanager_alerts", &[], n_alerts as u64);
        out.family(
            "sightline_alertmanager_dispatcher_aggregation_groups",
            Kind::Gauge,
            "Aggregation groups",
        );
        out.sample(
            "sightline_alertmanager_dispatcher_aggregation_groups",
            &[],
            n_groups as u64,
        );
        out.family(
            "sightline_alertmanager_silences",
            Kind::Gauge,
            "Active silences",
        );
        out.sample(
            "sightline_alertmanager_silences",
            &[("state", "active")],
            n_sil as u64,
        );
        let n = c.notifications.lock().clone();
        for (name, help, idx) in [
            (
                "sightline_alertmanager_notifications_total",
                "Notifications attempted",
                0,
            ),
            (
                "sightline_alertmanager_notifications_failed_total",
                "Notifications that failed after their retries",
                1,
            ),
            (
                "sightline_alertmanager_notification_requests_total",
                "Notification requests made",
                2,
            ),
            (
                "sightline_alertmanager_notification_requests_failed_total",
                "Notification requests that failed",
                3,
            ),
        ] {
            out.family(name, Kind::Counter, help);
            for (integration, v) in &n {
                let x = [v.0, v.1, v.2, v.3][idx];
                out.sample(name, &[("integration", integration)], x);
            }
        }
        out.family(
            "sightline_alertmanager_config_last_reload_successful",
            Kind::Gauge,
            "Whether the last configuration reload succeeded",
        );
        out.sample(
            "sightline_alertmanager_config_last_reload_successful",
            &[],
            &c.config_last_reload_success,
        );
        out.family(
            "sightline_alertmanager_config_reloads_failed_total",
            Kind::Counter,
            "Configuration reloads refused",
        );
        out.sample(
            "sightline_alertmanager_config_reloads_failed_total",
            &[],
            &c.config_reloads_failed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_follows_alertmanager() {
        let e = NflogEntry {
            firing: vec![1, 2],
            resolved: vec![],
            timestamp: 1_000,
            expires_at: 0,
        };
        // Same firing set inside the repeat interval: nothing to send.
        assert!(!needs_update(Some(&e), &[1, 2], &[], true, 10_000, 5_000));
        // A new firing alert: send.
        assert!(needs_update(Some(&e), &[1, 2, 3], &[], true, 10_000, 5_000));
        // One resolved: send only when resolved notifications are wanted.
        assert!(needs_update(Some(&e), &[1], &[2], true, 10_000, 5_000));
        assert!(!needs_update(Some(&e), &[1], &[2], false, 10_000, 5_000));
        // All resolved: send (the last firing ones went away).
        assert!(needs_update(Some(&e), &[], &[1, 2], false, 10_000, 5_000));
        // Repeat interval passed.
        assert!(needs_update(Some(&e), &[1, 2], &[], true, 1_000, 5_000));
        assert!(!needs_update(None, &[], &[1], true, 1_000, 5_000));
    }

    #[test]
    fn routes_match_with_continue_and_defaults() {
        let cfg = config::load(
            r#"
route:
  receiver: root
  routes:
    - matchers: [team="a"]
      receiver: a
      continue: true
    - matchers: [severity="page"]
      receiver: pager
    - matchers: [team="a"]
      receiver: never
receivers: [{name: root}, {name: a}, {name: pager}, {name: never}]
"#,
            Path::new(""),
        )
        .unwrap();
        let rt = Runtime::new(cfg, "http://x").unwrap();
        let ls = |p: &[(&str, &str)]| -> LabelSet {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let names = |v: Vec<usize>| -> Vec<String> {
            v.into_iter()
                .map(|i| rt.routes[i].route.receiver.clone())
                .collect()
        };
        assert_eq!(
            names(rt.match_routes(&ls(&[("team", "a"), ("severity", "page")]))),
            ["a", "pager"]
        );
        assert_eq!(
            names(rt.match_routes(&ls(&[("team", "a")]))),
            ["a", "never"]
        );
        assert_eq!(names(rt.match_routes(&ls(&[("x", "y")]))), ["root"]);
        assert_eq!(rt.routes[1].key, r#"{}/{team="a"}"#);
    }
}
