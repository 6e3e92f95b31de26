//! The Alerts page: firing and pending alerts (labels, annotations, since when, value) and every
//! rule group with its health, last evaluation and last error; each rule links to the metrics
//! explorer with its expression.

use super::*;
use crate::rules::alert::AlertState;
use crate::rules::group::Health;

/// One pending or firing alert.
pub struct AlertRow {
    pub name: String,
    pub state: &'static str,
    pub labels: String,
    pub annotations: Vec<(String, String)>,
    pub since: String,
    pub value: String,
}

/// One rule of a group.
pub struct RuleRow {
    pub kind: &'static str,
    pub name: String,
    pub query: String,
    pub explore: String,
    pub health: &'static str,
    pub state: &'static str,
    pub last_error: String,
    pub last_eval: String,
    pub alerts: usize,
}

pub struct GroupRow {
    pub name: String,
    pub file: String,
    pub interval: String,
    pub last_eval: String,
    pub duration: String,
    pub health: &'static str,
    pub rules: Vec<RuleRow>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
pub struct AlertsView {
    pub page: Page,
    pub firing: usize,
    pub pending: usize,
    pub alerts: Vec<AlertRow>,
    pub groups: Vec<GroupRow>,
}

fn ago(ns: i64) -> String {
    if ns == 0 {
        return "never".into();
    }
    let s = (crate::base::clock::now_ns() as i64 - ns).max(0) / 1_000_000_000;
    let t = iso_ms(ns / 1_000_000);
    if s < 120 {
        format!("{t} ({s} s ago)")
    } else if s < 7200 {
        format!("{t} ({} min ago)", s / 60)
    } else {
        format!("{t} ({} h ago)", s / 3600)
    }
}

pub async fn alerts(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let mut alerts = Vec::new();
    let mut groups = Vec::new();
    for g in st.rules.as_ref().map(|m| m.groups()).unwrap_or_default() {
        let g = g.lock();
        let mut rules = Vec::new();
        let mut bad = false;
        for rule in &g.rules {
            bad |= rule.health == Health::Bad;
            let shown = rule.alerts.shown();
            for a in &shown {
                alerts.push(AlertRow {
                    name: rule.spec.name.clone(),
                    state: a.state.name(),
                    labels: a
                        .labels
                        .iter()
                        .filter(|l| l.name != "alertname")
                        .map(|l| format!("{}={}", l.name, lit(&l.value)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    annotations: a.annotations.clone(),
                    since: ago(a.active_at),
                    value: crate::base::gofmt::float(a.value, crate::base::gofmt::FloatStyle::G),
                });
            }
            let q: String = form_urlencoded::byte_serialize(rule.query.as_bytes()).collect();
            rules.push(RuleRow {
                kind: if rule.spec.kind == crate::rules::RuleKind::Alert {
                    "alert"
                } else {
                    "record"
                },
                name: rule.spec.name.clone(),
                explore: format!("{}/ui/explore?q={q}", st.base),
                query: rule.query.clone(),
                health: rule.health.name(),
                state: if rule.spec.kind == crate::rules::RuleKind::Alert {
                    rule.alerts.state().name()
                } else {
                    ""
                },
                last_error: rule.last_error.clone().unwrap_or_default(),
                last_eval: ago(rule.last_eval_wall),
                alerts: shown.len(),
            });
        }
        groups.push(GroupRow {
            name: g.name.clone(),
            file: g.file.clone(),
            interval: crate::promql::ast::format_duration(g.interval_ns / 1_000_000),
            last_eval: ago(g.last_eval_wall),
            duration: format!("{:.1} ms", g.eval_seconds * 1000.0),
            health: if bad {
                "err"
            } else if g.evaluations == 0 {
                "unknown"
            } else {
                "ok"
            },
            rules,
        });
    }
    // Firing first, then pending; newest first within each.
    alerts.sort_by(|a, b| b.state.cmp(a.state).then(b.since.cmp(&a.since)));
    let firing = alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing.name())
        .count();
    render(AlertsView {
        page: Page::new(&st, &r, "Alerts", "alerts"),
        pending: alerts.len() - firing,
        firing,
        alerts,
        groups,
    })
}
