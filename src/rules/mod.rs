//! Recording and alerting rules with Prometheus 2.42's semantics: rule files (`file.rs`), one
//! group's evaluation at one timestamp (`group.rs`), alert state (`alert.rs`), the round's view
//! of the store (`overlay.rs`), promtool's rule unit tests (`unittest.rs`), the shipped rules
//! (`builtin.rs`), and here the [`Manager`]: it loads the files, runs one task per group on
//! Prometheus's slots, writes each round's samples through the store's append path, hands
//! alerts to the notifier, reloads on request keeping the state of unchanged rules, and reports
//! its counters. The API and UI read its groups; it does not know HTTP.

pub mod alert;
pub mod builtin;
pub mod file;
pub mod group;
mod overlay;
pub mod unittest;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::{AlertingConfig, RulesConfig};
use crate::notify::{Notifier, NotifyAlert};
use crate::promql::QueryService;
use crate::telemetry::{Exposition, Kind, MetricSource};
pub use file::{GroupSpec, RuleKind, RuleSpec};
pub use group::{EvalCtx, Group, Health};

/// Loads every configured rule file and the built-in groups, minus disabled groups. Errors name
/// the file, the line and the reason.
pub fn load_specs(cfg: &RulesConfig) -> Result<Vec<GroupSpec>, String> {
    let files = file::expand_patterns(&cfg.base_dir, &cfg.files).map_err(|e| e.to_string())?;
    let mut groups = Vec::new();
    if cfg.builtin {
        groups.extend(builtin::groups());
    }
    for f in files {
        let rf = file::load_file(&f).map_err(|e| e.to_string())?;
        groups.extend(rf.groups);
    }
    groups.retain(|g| !cfg.disabled_groups.contains(&g.name));
    Ok(groups)
}

/// A rule group in the manager: its state behind a lock the API also takes.
pub type SharedGroup = Arc<Mutex<Group>>;

struct State {
    groups: Vec<SharedGroup>,
    /// Cancels the current generation's group tasks (a reload starts a new one).
    generation: CancellationToken,
}

/// Reload counters.
#[derive(Default)]
struct ReloadCounters {
    failures: AtomicU64,
    last_ok: AtomicU64,
    last_success_s: AtomicU64,
}

pub struct Manager {
    cfg: RulesConfig,
    external_labels: BTreeMap<String, String>,
    external_url: String,
    query: QueryService,
    notifier: Arc<Notifier>,
    state: Mutex<State>,
    reloads: ReloadCounters,
    shutdown: CancellationToken,
}

impl Manager {
    /// Loads the rules (a bad file stops the start) and starts one task per group.
    pub fn start(
        cfg: RulesConfig,
        alerting: &AlertingConfig,
        external_url: String,
        query: QueryService,
        notifier: Arc<Notifier>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Manager>, String> {
        let specs = load_specs(&cfg)?;
        let m = Arc::new(Manager {
            external_labels: alerting.external_labels.clone(),
            external_url,
            query,
            notifier,
            state: Mutex::new(State {
                groups: Vec::new(),
                generation: shutdown.child_token(),
            }),
            reloads: ReloadCounters::default(),
            shutdown,
            cfg,
        });
        m.reloads.last_ok.store(1, Relaxed);
        m.reloads
            .last_success_s
            .store(crate::base::clock::now_ms() as u64 / 1000, Relaxed);
        let interval_ms = m.cfg.evaluation_interval.as_millis() as i64;
        let groups: Vec<SharedGroup> = specs
            .into_iter()
            .map(|s| Arc::new(Mutex::new(Group::new(s, interval_ms, false))))
            .collect();
        let n_rules: usize = groups.iter().map(|g| g.lock().rules.len()).sum();
        tracing::info!(groups = groups.len(), rules = n_rules, "rules loaded");
        let token = m.state.lock().generation.clone();
        for g in &groups {
            tokio::spawn(m.clone().run_group(g.clone(), true, token.clone()));
        }
        m.state.lock().groups = groups;
        Ok(m)
    }

    pub fn groups(&self) -> Vec<SharedGroup> {
        self.state.lock().groups.clone()
    }

    pub fn external_url(&self) -> &str {
        &self.external_url
    }

    /// Reads the rule files again. A bad file is refused, logged and counted, and the rules in
    /// use stay. Unchanged rules keep their state (alerts, `for` progress).
    pub async fn reload(self: &Arc<Self>) -> Result<(), String> {
        let cfg = self.cfg.clone();
        let loaded = tokio::task::spawn_blocking(move || load_specs(&cfg))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        let specs = match loaded {
            Ok(s) => s,
            Err(e) => {
                self.reloads.failures.fetch_add(1, Relaxed);
                self.reloads.last_ok.store(0, Relaxed);
                tracing::error!(error = %e, "rule reload refused; the rules in use stay");
                return Err(e);
            }
        };
        let stale = self.install(specs);
        self.write_stale(stale).await;
        self.reloads.last_ok.store(1, Relaxed);
        self.reloads
            .last_success_s
            .store(crate::base::clock::now_ms() as u64 / 1000, Relaxed);
        tracing::info!("rules reloaded");
        Ok(())
    }

    /// Replaces the running groups with `specs`, carrying over the state of groups that stay;
    /// returns stale markers for the series of groups that are gone.
    fn install(self: &Arc<Self>, specs: Vec<GroupSpec>) -> crate::tsdb::Batch {
        let interval_ms = self.cfg.evaluation_interval.as_millis() as i64;
        let mut st = self.state.lock();
        st.generation.cancel();
        let old: Vec<SharedGroup> = std::mem::take(&mut st.groups);
        let mut by_key: BTreeMap<(String, String), SharedGroup> = old
            .iter()
            .map(|g| {
                let gl = g.lock();
                ((gl.file.clone(), gl.name.clone()), g.clone())
            })
            .collect();
        let mut groups = Vec::new();
        for s in specs {
            let mut g = Group::new(s, interval_ms, true);
            if let Some(o) = by_key.remove(&(g.file.clone(), g.name.clone())) {
                g.copy_state(&o.lock());
            }
            groups.push(Arc::new(Mutex::new(g)));
        }
        // Groups that are gone: their series end with stale markers now.
        let now = crate::base::clock::now_ns() as i64;
        let mut stale = crate::tsdb::Batch::default();
        for g in by_key.values() {
            let b = g.lock().stale_all(now);
            for (i, t, v) in b.samples {
                stale.push(b.series[i as usize].clone(), t, v);
            }
        }
        st.generation = self.shutdown.child_token();
        let token = st.generation.clone();
        for g in &groups {
            tokio::spawn(self.clone().run_group(g.clone(), false, token.clone()));
        }
        st.groups = groups;
        stale
    }

    async fn write_stale(&self, stale: crate::tsdb::Batch) {
        if !stale.samples.is_empty()
            && let Err(e) = self.query.db().append(stale).await
        {
            tracing::warn!(error = %e, "cannot write stale markers of removed rule groups");
        }
    }

    /// One group's loop, on Prometheus's slots: the first evaluation at the next slot; after a
    /// start, `for` state is restored after the second; missed slots are counted and skipped.
    async fn run_group(self: Arc<Self>, g: SharedGroup, restore: bool, cancel: CancellationToken) {
        let (interval, first) = {
            let gl = g.lock();
            let now = crate::base::clock::now_ns() as i64;
            (gl.interval_ns, gl.eval_timestamp(now) + gl.interval_ns)
        };
        let mut ts = first;
        let mut round = 0u32;
        loop {
            let wait = ts - crate::base::clock::now_ns() as i64;
            if wait > 0 {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_nanos(wait as u64)) => {}
                }
            } else if cancel.is_cancelled() {
                return;
            }
            let now = crate::base::clock::now_ns() as i64;
            if round > 0 {
                let missed = (now - ts) / interval;
                if missed > 0 {
                    g.lock().missed += missed as u64;
                    ts += missed * interval;
                }
            }
            self.iterate(&g, ts).await;
            round += 1;
            if restore && round == 2 {
                let g2 = g.clone();
                let m = self.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let now = crate::base::clock::now_ns() as i64;
                    g2.lock().restore_for_state(
                        m.query.db(),
                        now,
                        m.cfg.for_outage_tolerance.as_nanos() as i64,
                        m.cfg.for_grace_period.as_nanos() as i64,
                    );
                })
                .await;
            }
            ts += interval;
        }
    }

    /// Evaluates `g` at `ts`, writes the samples, queues the alerts.
    pub async fn iterate(self: &Arc<Self>, g: &SharedGroup, ts: i64) {
        let slot = self.query.engine().acquire().await;
        let (g2, m) = (g.clone(), self.clone());
        let out = tokio::task::spawn_blocking(move || {
            let ctx = m.ctx();
            g2.lock().eval(ts, &ctx)
        })
        .await;
        drop(slot);
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "rule evaluation task failed");
                return;
            }
        };
        if !out.batch.samples.is_empty() {
            match self.query.db().append(out.batch).await {
                Ok(r) if r.rejected() > 0 => {
                    tracing::warn!(reason = %r.message(), "rule output partly refused")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot write rule output"),
            }
        }
        if !out.to_send.is_empty() {
            let alerts = out
                .to_send
                .into_iter()
                .map(|(expr, a)| self.to_notify(&expr, a))
                .collect();
            self.notifier.send(alerts);
        }
    }

    fn ctx(&self) -> EvalCtx<'_> {
        EvalCtx {
            engine: self.query.engine(),
            store: self.query.db(),
            external_labels: &self.external_labels,
            external_url: &self.external_url,
            timeout: Some(self.cfg.query_timeout),
            resend_delay: self.cfg.resend_delay.as_nanos() as i64,
        }
    }

    /// Prometheus's `sendAlerts`: starts at the firing time, ends at the resolve time or at
    /// `ValidUntil`; the generator URL opens the expression in the metrics explorer.
    fn to_notify(&self, expr: &str, a: alert::Alert) -> NotifyAlert {
        NotifyAlert {
            labels: a
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect(),
            annotations: a.annotations.into_iter().collect(),
            starts_at: a.fired_at,
            ends_at: if a.resolved_at != 0 {
                a.resolved_at
            } else {
                a.valid_until
            },
            generator_url: generator_url(&self.external_url, expr),
        }
    }
}

/// Where an alert's expression can be looked at: the metrics explorer's table view.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!("{external_url}/ui/explore?q={q}&view=table")
}

/// Label values in the exposition format.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One group's figures for `/metrics`: name, evaluations, failures, missed, iterations, last
/// duration, last evaluation (ns), interval (s), rules.
type Row = (String, u64, u64, u64, u64, f64, i64, f64, usize);

impl MetricSource for Manager {
    fn write_metrics(&self, out: &mut Exposition) {
        let groups = self.groups();
        let mut rows: Vec<Row> = Vec::new();
        for g in &groups {
            let g = g.lock();
            let evals = g.evaluations * g.rules.len() as u64;
            rows.push((
                esc(&format!("{};{}", g.file, g.name)),
                evals,
                g.failures,
                g.missed,
                g.evaluations,
                g.eval_seconds,
                g.last_eval_ts,
                g.interval_ns as f64 / 1e9,
                g.rules.len(),
            ));
        }
        type Col = fn(&Row) -> f64;
        let cols: [(&str, Kind, &str, Col); 7] = [
            (
                "sightline_rule_evaluations_total",
                Kind::Counter,
                "Rule evaluations",
                |r| r.1 as f64,
            ),
            (
                "sightline_rule_evaluation_failures_total",
                Kind::Counter,
                "Rule evaluations that failed",
                |r| r.2 as f64,
            ),
            (
                "sightline_rule_group_iterations_missed_total",
                Kind::Counter,
                "Group evaluations skipped because the previous one ran late",
                |r| r.3 as f64,
            ),
            (
                "sightline_rule_group_iterations_total",
                Kind::Counter,
                "Group evaluations run",
                |r| r.4 as f64,
            ),
            (
                "sightline_rule_group_last_duration_seconds",
                Kind::Gauge,
                "How long the group's last evaluation took",
                |r| r.5,
            ),
            (
                "sightline_rule_group_last_evaluation_timestamp_seconds",
                Kind::Gauge,
                "The group's last evaluation time (Unix seconds)",
                |r| r.6 as f64 / 1e9,
            ),
            (
                "sightline_rule_group_interval_seconds",
                Kind::Gauge,
                "The group's evaluation interval",
                |r| r.7,
            ),
        ];
        for (name, kind, help, col) in cols {
            out.family(name, kind, help);
            for r in &rows {
                out.sample(name, &[("rule_group", &r.0)], col(r));
            }
        }
        out.family(
            "sightline_rule_group_rules",
            Kind::Gauge,
            "Rules in the group",
        );
        for r in &rows {
            out.sample(
                "sightline_rule_group_rules",
                &[("rule_group", &r.0)],
                r.8 as u64,
            );
        }
        out.single(
            "sightline_rule_config_last_reload_successful",
            Kind::Gauge,
            "Whether the last rule reload succeeded (1) or was refused (0)",
            &self.reloads.last_ok,
        );
        out.single(
            "sightline_rule_config_last_reload_success_timestamp_seconds",
            Kind::Gauge,
            "When the rules were last loaded successfully (Unix seconds)",
            &self.reloads.last_success_s,
        );
        out.single(
            "sightline_rule_config_reload_failures_total",
            Kind::Counter,
            "Rule reloads refused because a file was bad",
            &self.reloads.failures,
        );
    }
}
