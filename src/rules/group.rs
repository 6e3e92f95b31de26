//! One rule group's evaluation at one timestamp, as Prometheus 2.42's `Group.Eval`: rules in
//! order, each seeing the earlier rules' output at the same timestamp; recorded series named
//! and labelled by the rule; alert labels and annotations expanded as Go templates; stale
//! markers for series a rule no longer returns; the group's `limit`. The caller owns the clock
//! (the scheduler, a replay, or `sightline test rules`) and writes the returned batch.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use super::alert::{self, AlertState, Alerts, Candidate};
use super::file::{GroupSpec, RuleKind, RuleSpec};
use super::overlay::Overlay;
use crate::promql::{Engine, EvalError, Expr, QueryValue};
use crate::template::{self, Env, Limits, QueryFn, Sample, Template};
use crate::tsdb::{Batch, Labels, Queryable, STALE_NAN_BITS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Good,
    Bad,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Good => "ok",
            Health::Bad => "err",
        }
    }
}

/// What a group's evaluation needs besides its rules.
pub struct EvalCtx<'a> {
    pub engine: &'a Engine,
    pub store: &'a dyn Queryable,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    /// Per rule query.
    pub timeout: Option<Duration>,
    /// How often firing alerts are re-sent (ns).
    pub resend_delay: i64,
}

/// A rule and its state between evaluations.
#[derive(Debug, Clone)]
pub struct RuleState {
    pub spec: RuleSpec,
    /// The expression as Prometheus prints it (`query` in the API).
    pub query: String,
    label_templates: Vec<(String, Template)>,
    annotation_templates: Vec<(String, Template)>,
    pub health: Health,
    pub last_error: Option<String>,
    /// Wall clock at the start of the last evaluation (ns), 0 = never.
    pub last_eval_wall: i64,
    pub eval_seconds: f64,
    /// Series written last time (for stale markers).
    pub prev_series: HashSet<Labels>,
    pub alerts: Alerts,
}

impl RuleState {
    pub fn new(spec: RuleSpec, restored: bool) -> RuleState {
        let compile = |v: &[(String, String)]| -> Vec<(String, Template)> {
            v.iter()
                .map(|(k, text)| {
                    let name = format!("__alert_{}", spec.name);
                    // The file check parsed every template already; a failure here cannot
                    // happen, and would expand to the error text as Prometheus does.
                    let t =
                        Template::parse(&name, &template::alert_text(text)).unwrap_or_else(|e| {
                            Template::parse(&name, &format!("<error expanding template: {e}>"))
                                .expect("plain text parses")
                        });
                    (k.clone(), t)
                })
                .collect()
        };
        let (label_templates, annotation_templates) = if spec.kind == RuleKind::Alert {
            (compile(&spec.labels), compile(&spec.annotations))
        } else {
            (Vec::new(), Vec::new())
        };
        RuleState {
            query: spec.expr.to_string(),
            label_templates,
            annotation_templates,
            health: Health::Unknown,
            last_error: None,
            last_eval_wall: 0,
            eval_seconds: 0.0,
            prev_series: HashSet::new(),
            alerts: Alerts {
                active: Default::default(),
                restored,
            },
            spec,
        }
    }
}

/// A group and its rules' state.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub file: String,
    pub interval_ns: i64,
    pub limit: usize,
    pub rules: Vec<RuleState>,
    pub last_eval_wall: i64,
    pub eval_seconds: f64,
    /// The evaluation timestamp of the last round (ns), 0 = never.
    pub last_eval_ts: i64,
    pub evaluations: u64,
    pub failures: u64,
    pub missed: u64,
}

/// What one round produced: samples to write and alerts to send.
#[derive(Default)]
pub struct RoundOutput {
    pub batch: Batch,
    pub to_send: Vec<(String, alert::Alert)>,
    /// Rules that failed this round.
    pub failures: u64,
}

impl Group {
    pub fn new(spec: GroupSpec, default_interval_ms: i64, restored: bool) -> Group {
        Group {
            name: spec.name,
            file: spec.file,
            interval_ns: spec.interval_ms.unwrap_or(default_interval_ms).max(1) * 1_000_000,
            limit: spec.limit,
            rules: spec
                .rules
                .into_iter()
                .map(|r| RuleState::new(r, restored))
                .collect(),
            last_eval_wall: 0,
            eval_seconds: 0.0,
            last_eval_ts: 0,
            evaluations: 0,
            failures: 0,
            missed: 0,
        }
    }

    /// Prometheus's per-group offset within the interval: xxHash64 of the label set
    /// `{file=..., name=...}`.
    pub fn offset_ns(&self) -> i64 {
        let mut b = Vec::with_capacity(self.file.len() + self.name.len() + 12);
        for (k, v) in [("file", &self.file), ("name", &self.name)] {
            b.extend_from_slice(k.as_bytes());
            b.push(0xff);
            b.extend_from_slice(v.as_bytes());
            b.push(0xff);
        }
        (xxhash_rust::xxh64::xxh64(&b, 0) % self.interval_ns as u64) as i64
    }

    /// The slot at or before `now` (ns): Prometheus's `EvalTimestamp`.
    pub fn eval_timestamp(&self, now: i64) -> i64 {
        let offset = self.offset_ns();
        let adj = now - offset;
        adj - adj.rem_euclid(self.interval_ns) + offset
    }

    /// Takes over the state of the same rules in `old` (a reload): alerts, previous series and
    /// health, matched by kind, name and labels as Prometheus matches them.
    pub fn copy_state(&mut self, old: &Group) {
        let mut by_id: BTreeMap<String, Vec<&RuleState>> = BTreeMap::new();
        for r in &old.rules {
            by_id.entry(r.spec.identity()).or_default().push(r);
        }
        for r in &mut self.rules {
            let Some(list) = by_id.get_mut(&r.spec.identity()) else {
                continue;
            };
            if list.is_empty() {
                continue;
            }
            let o = list.remove(0);
            r.prev_series = o.prev_series.clone();
            r.alerts = o.alerts.clone();
            r.health = o.health;
            r.last_error = o.last_error.clone();
            r.last_eval_wall = o.last_eval_wall;
            r.eval_seconds = o.eval_seconds;
        }
        self.last_eval_ts = old.last_eval_ts;
        self.last_eval_wall = old.last_eval_wall;
        self.eval_seconds = old.eval_seconds;
        self.evaluations = old.evaluations;
        self.failures = old.failures;
        self.missed = old.missed;
    }

    /// Stale markers at `ts` for everything the group wrote last (a group removed by a reload).
    pub fn stale_all(&self, ts: i64) -> Batch {
        let mut b = Batch::default();
        let t = ts.div_euclid(1_000_000);
        for r in &self.rules {
            for l in &r.prev_series {
                b.push(l.clone(), t, f64::from_bits(STALE_NAN_BITS));
            }
        }
        b
    }

    /// Evaluates every rule at `ts` (ns).
    pub fn eval(&mut self, ts: i64, ctx: &EvalCtx<'_>) -> RoundOutput {
        let wall_start = crate::base::clock::now_ns() as i64;
        let started = Instant::now();
        let ts_ms = ts.div_euclid(1_000_000);
        let mut overlay = Overlay::new(ctx.store);
        let mut out = RoundOutput::default();
        let interval = self.interval_ns;
        for rule in &mut self.rules {
            let rule_wall = crate::base::clock::now_ns() as i64;
            let rule_started = Instant::now();
            let result = match rule.spec.kind {
                RuleKind::Record => record(rule, &overlay, ts_ms, self.limit, ctx),
                RuleKind::Alert => alerting(rule, &overlay, ts, self.limit, ctx),
            };
            match result {
                Err(e) => {
                    rule.health = Health::Bad;
                    rule.last_error = Some(e);
                    out.failures += 1;
                }
                Ok(samples) => {
                    rule.health = Health::Good;
                    rule.last_error = None;
                    if rule.spec.kind == RuleKind::Alert {
                        for a in rule.alerts.due(ts, ctx.resend_delay, interval) {
                            out.to_send.push((rule.query.clone(), a));
                        }
                    }
                    let mut returned = HashSet::with_capacity(samples.len());
                    for (l, v) in samples {
                        overlay.add(&l, ts_ms, v);
                        out.batch.push(l.clone(), ts_ms, v);
                        returned.insert(l);
                    }
                    let stale = f64::from_bits(STALE_NAN_BITS);
                    let mut gone: Vec<&Labels> = rule
                        .prev_series
                        .iter()
                        .filter(|l| !returned.contains(*l))
                        .collect();
                    gone.sort();
                    for l in gone {
                        overlay.add(l, ts_ms, stale);
                        out.batch.push(l.clone(), ts_ms, stale);
                    }
                    rule.prev_series = returned;
                }
            }
            rule.last_eval_wall = rule_wall;
            rule.eval_seconds = rule_started.elapsed().as_secs_f64();
        }
        self.last_eval_ts = ts;
        self.last_eval_wall = wall_start;
        self.eval_seconds = started.elapsed().as_secs_f64();
        self.evaluations += 1;
        self.failures += out.failures;
        out
    }

    /// Restores `for` state from `ALERTS_FOR_STATE` after a start (Prometheus's
    /// `RestoreForState`), at wall time `now` (ns).
    pub fn restore_for_state(
        &mut self,
        store: &dyn Queryable,
        now: i64,
        outage_tolerance_ns: i64,
        grace_ns: i64,
    ) {
        let maxt = now.div_euclid(1_000_000);
        let mint = (now - outage_tolerance_ns).div_euclid(1_000_000);
        for rule in &mut self.rules {
            if rule.spec.kind != RuleKind::Alert {
                continue;
            }
            let hold_ns = rule.spec.hold_ms * 1_000_000;
            if hold_ns < grace_ns {
                rule.alerts.restored = true;
                continue;
            }
            let keys: Vec<Labels> = rule.alerts.active.keys().cloned().collect();
            for k in keys {
                let want = alert::series_labels(
                    &rule.spec.labels,
                    &k,
                    "ALERTS_FOR_STATE",
                    &rule.spec.name,
                    None,
                );
                let matchers: Vec<_> = want
                    .iter()
                    .map(|l| crate::tsdb::Matcher::eq(l.name.clone(), l.value.clone()))
                    .collect();
                let Ok(it) = store.select(mint, maxt, &matchers) else {
                    continue;
                };
                let Some(series) = it.into_iter().find(|s| s.labels == want) else {
                    continue;
                };
                let Some(&last) = series.samples.last() else {
                    continue;
                };
                if let Some(at) = alert::restored_active_at(last, now, hold_ns, grace_ns)
                    && let Some(a) = rule.alerts.active.get_mut(&k)
                {
                    a.active_at = at;
                }
            }
            rule.alerts.restored = true;
        }
    }
}

/// The instant query a rule runs: a vector, or a scalar as one unlabelled sample.
fn query(
    ctx: &EvalCtx<'_>,
    q: &dyn Queryable,
    expr: &Expr,
    ts_ms: i64,
) -> Result<Vec<(Labels, f64)>, String> {
    match ctx.engine.instant(q, expr, ts_ms, ctx.timeout) {
        Ok(QueryValue::Vector(_, rows)) => Ok(rows),
        Ok(QueryValue::Scalar(_, v)) => Ok(vec![(Labels::default(), v)]),
        Ok(_) => Err("rule result is not a vector or scalar".into()),
        Err(EvalError::Internal(e)) => {
            tracing::error!(error = %e, "rule query failed");
            Err("internal error".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn record(
    rule: &RuleState,
    q: &dyn Queryable,
    ts_ms: i64,
    limit: usize,
    ctx: &EvalCtx<'_>,
) -> Result<Vec<(Labels, f64)>, String> {
    let rows = query(ctx, q, &rule.spec.expr, ts_ms)?;
    let mut seen = HashSet::with_capacity(rows.len());
    let mut out = Vec::with_capacity(rows.len());
    for (l, v) in rows {
        let mut m: BTreeMap<String, String> = l
            .into_vec()
            .into_iter()
            .map(|x| (x.name, x.value))
            .collect();
        m.insert("__name__".into(), rule.spec.name.clone());
        for (k, v) in &rule.spec.labels {
            m.insert(k.clone(), v.clone());
        }
        let l = Labels::from_pairs(m);
        if !seen.insert(l.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        out.push((l, v));
    }
    if limit > 0 && out.len() > limit {
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            out.len()
        ));
    }
    Ok(out)
}

/// Template `query` at the rule's evaluation time, over the round's view of the store.
struct RuleQuery<'a, 'c> {
    ctx: &'a EvalCtx<'c>,
    store: &'a dyn Queryable,
    ts_ms: i64,
}

impl QueryFn for RuleQuery<'_, '_> {
    fn query(&self, text: &str) -> Result<Vec<Sample>, String> {
        let expr = crate::promql::parse(text).map_err(|e| e.to_string())?;
        let rows = query(self.ctx, self.store, &expr, self.ts_ms)?;
        Ok(rows
            .into_iter()
            .map(|(l, v)| Sample {
                labels: l
                    .iter()
                    .map(|x| (x.name.clone(), x.value.clone()))
                    .collect(),
                value: v,
            })
            .collect())
    }
}

fn alerting(
    rule: &mut RuleState,
    q: &dyn Queryable,
    ts: i64,
    limit: usize,
    ctx: &EvalCtx<'_>,
) -> Result<Vec<(Labels, f64)>, String> {
    let ts_ms = ts.div_euclid(1_000_000);
    let rows = query(ctx, q, &rule.spec.expr, ts_ms)?;
    let rq = RuleQuery {
        ctx,
        store: q,
        ts_ms,
    };
    let env = Env {
        query: &rq,
        external_url: ctx.external_url,
        path_prefix: "",
        limits: Limits::default(),
        defs: None,
        escape_html: false,
        line: None,
    };
    let mut found = Vec::with_capacity(rows.len());
    let mut seen = HashSet::with_capacity(rows.len());
    for (l, v) in rows {
        let map: BTreeMap<String, String> = l
            .iter()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        let data = template::alert_data(&map, ctx.external_labels, ctx.external_url, v);
        let expand = |t: &Template| match t.execute(&data, &env) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(alert = %rule.spec.name, error = %e, "expanding alert template failed");
                format!(
                    "<error expanding template: error executing template __alert_{}: {e}>",
                    rule.spec.name
                )
            }
        };
        let mut m = map.clone();
        m.remove("__name__");
        for (k, t) in &rule.label_templates {
            m.insert(k.clone(), expand(t));
        }
        m.insert("alertname".into(), rule.spec.name.clone());
        let annotations: Vec<(String, String)> = rule
            .annotation_templates
            .iter()
            .map(|(k, t)| (k.clone(), expand(t)))
            .collect();
        let labels = Labels::from_pairs(m);
        if !seen.insert(labels.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            );
        }
        found.push(Candidate {
            labels,
            annotations,
            value: v,
        });
    }
    let keys = rule.alerts.step(
        found,
        ts,
        rule.spec.hold_ms * 1_000_000,
        rule.spec.keep_firing_for_ms * 1_000_000,
        limit,
    )?;
    let mut out = Vec::new();
    if rule.alerts.restored {
        for k in keys {
            let a = &rule.alerts.active[&k];
            out.push((
                alert::series_labels(
                    &rule.spec.labels,
                    &a.labels,
                    "ALERTS",
                    &rule.spec.name,
                    Some(a.state),
                ),
                1.0,
            ));
            out.push((
                alert::series_labels(
                    &rule.spec.labels,
                    &a.labels,
                    "ALERTS_FOR_STATE",
                    &rule.spec.name,
                    None,
                ),
                a.active_at.div_euclid(1_000_000_000) as f64,
            ));
        }
    }
    Ok(out)
}

/// The rule's state for the API: the most advanced of its alerts.
pub fn rule_state(r: &RuleState) -> AlertState {
    r.alerts.state()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::rules::file;
    use crate::tsdb::mem::MemQueryable;
    use crate::tsdb::{Series, is_stale};

    fn group(yaml: &str) -> Group {
        let f = file::parse("t.yml", yaml).unwrap();
        Group::new(f.groups.into_iter().next().unwrap(), 1000, true)
    }

    fn eval(g: &mut Group, store: &MemQueryable, engine: &Engine, t_ms: i64) -> RoundOutput {
        let ext = BTreeMap::new();
        g.eval(
            t_ms * 1_000_000,
            &EvalCtx {
                engine,
                store,
                external_labels: &ext,
                external_url: "",
                timeout: None,
                resend_delay: 60_000_000_000,
            },
        )
    }

    fn many(n: usize) -> MemQueryable {
        MemQueryable::new(
            (0..n)
                .map(|i| Series {
                    labels: Labels::from_pairs([
                        ("__name__", "m".to_string()),
                        ("i", i.to_string()),
                    ]),
                    samples: vec![(0, i as f64)],
                })
                .collect(),
        )
    }

    #[test]
    fn huge_results_hit_the_limits_and_are_reported() {
        let store = many(200_000);
        let engine = Engine::new(EngineConfig::default());
        let mut g = group(
            "groups:\n- name: g\n  limit: 1000\n  rules:\n  - record: r\n    expr: m\n  - alert: A\n    expr: m > -1\n  - record: ok\n    expr: count(m)\n",
        );
        let out = eval(&mut g, &store, &engine, 1000);
        assert_eq!(out.failures, 2);
        assert_eq!(g.rules[0].health, Health::Bad);
        assert_eq!(
            g.rules[0].last_error.as_deref(),
            Some("exceeded limit of 1000 with 200000 series")
        );
        assert_eq!(
            g.rules[1].last_error.as_deref(),
            Some("exceeded limit of 1000 with 200000 alerts")
        );
        assert!(g.rules[1].alerts.active.is_empty());
        // The rule after them still runs; nothing of the failed rules is written.
        assert_eq!(g.rules[2].health, Health::Good);
        assert_eq!(out.batch.samples.len(), 1);
        // The engine's own sample limit ends a query that would load too much.
        let small = Engine::new(EngineConfig {
            max_samples: 10_000,
            ..EngineConfig::default()
        });
        let mut g = group("groups:\n- name: g\n  rules:\n  - record: r\n    expr: sum(m)\n");
        eval(&mut g, &store, &small, 1000);
        assert_eq!(g.rules[0].health, Health::Bad);
        assert!(
            g.rules[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("too many samples"),
            "{:?}",
            g.rules[0].last_error
        );
    }

    #[test]
    fn later_rules_see_earlier_output_and_gone_series_get_stale_markers() {
        let engine = Engine::new(EngineConfig::default());
        let mut g = group(
            "groups:\n- name: g\n  rules:\n  - record: big\n    expr: m > 1\n  - record: big_count\n    expr: count(big)\n",
        );
        let store = many(3);
        let out = eval(&mut g, &store, &engine, 1000);
        let count = out
            .batch
            .samples
            .iter()
            .find(|(i, _, _)| out.batch.series[*i as usize].metric_name() == Some("big_count"))
            .unwrap();
        assert_eq!(count.2, 1.0, "count(big) saw big at the same timestamp");
        // m{i="2"} gone: big{i="2"} gets a stale marker at the next round.
        let store = many(2);
        let out = eval(&mut g, &store, &engine, 2000);
        let stale: Vec<&Labels> = out
            .batch
            .samples
            .iter()
            .filter(|s| is_stale(s.2))
            .map(|s| &out.batch.series[s.0 as usize])
            .collect();
        assert_eq!(stale.len(), 2, "big{{i=2}} and big_count: {stale:?}");
    }
}
