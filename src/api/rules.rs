//! The rule endpoints of the Prometheus API: `/api/v1/rules` (with `type`, `rule_name[]`,
//! `rule_group[]` and `file[]` filters) and `/api/v1/alerts` in Prometheus's JSON, and
//! `POST /-/reload`, which reads `prometheus.yml`, `alertmanager.yml` and the rule files again.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::edge::{ApiError, prometheus_success};
use crate::base::params::Params;
use crate::notify::rfc3339_nano;
use crate::rules::alert::Alert;
use crate::rules::{Manager, RuleKind, SharedGroup};

type ReloadState = (
    Arc<Manager>,
    Option<Arc<crate::alertmanager::Alertmanager>>,
    crate::scrape::ScrapeManager,
);

pub fn router(
    manager: Arc<Manager>,
    am: Option<Arc<crate::alertmanager::Alertmanager>>,
    targets: crate::scrape::ScrapeManager,
) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .with_state(manager.clone())
        .route(
            "/-/reload",
            post(reload).put(reload).with_state((manager, am, targets)),
        )
}

/// Go's zero `time.Time` for "never".
fn time_or_zero(ns: i64) -> String {
    if ns == 0 {
        "0001-01-01T00:00:00Z".into()
    } else {
        rfc3339_nano(ns)
    }
}

/// `strconv.FormatFloat(v, 'e', -1, 64)`, as the API writes alert values.
pub fn value_e(v: f64) -> String {
    crate::template::go_format_float(v, 'e', None)
}

/// A float64 as Go's encoding/json writes it: integral values without a fraction (`2`, not
/// `2.0`).
fn go_num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        Value::from(f as i64)
    } else {
        json!(f)
    }
}

fn pairs(v: &[(String, String)]) -> Value {
    Value::Object(
        v.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

pub fn alert_json(a: &Alert) -> Value {
    let labels: Map<String, Value> = a
        .labels
        .iter()
        .map(|l| (l.name.clone(), Value::String(l.value.clone())))
        .collect();
    let mut m = Map::new();
    m.insert("labels".into(), Value::Object(labels));
    m.insert("annotations".into(), pairs(&a.annotations));
    m.insert("state".into(), a.state.name().into());
    m.insert("activeAt".into(), rfc3339_nano(a.active_at).into());
    if a.keep_firing_since != 0 {
        m.insert(
            "keepFiringSince".into(),
            rfc3339_nano(a.keep_firing_since).into(),
        );
    }
    m.insert("value".into(), value_e(a.value).into());
    Value::Object(m)
}

async fn rules(State(m): State<Arc<Manager>>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    match rules_json(&m.groups(), &p) {
        Ok(v) => prometheus_success(v),
        Err(e) => e.prometheus(),
    }
}

/// The `data` of `/api/v1/rules` for `groups`, filtered by `p`'s parameters.
pub fn rules_json(groups: &[SharedGroup], p: &Params) -> Result<Value, ApiError> {
    let typ = p.get("type").unwrap_or("").to_ascii_lowercase();
    let want = match typ.as_str() {
        "" => None,
        "alert" => Some(RuleKind::Alert),
        "record" => Some(RuleKind::Record),
        t => {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"type\": not supported value {t:?}"
            )));
        }
    };
    let names: Vec<&str> = p.all("rule_name[]").collect();
    let groups_f: Vec<&str> = p.all("rule_group[]").collect();
    let files_f: Vec<&str> = p.all("file[]").collect();
    let filtered = !names.is_empty() || !groups_f.is_empty() || !files_f.is_empty();
    let mut out = Vec::new();
    for g in groups {
        let g = g.lock();
        if (!groups_f.is_empty() && !groups_f.contains(&g.name.as_str()))
            || (!files_f.is_empty() && !files_f.contains(&g.file.as_str()))
        {
            continue;
        }
        let mut rules = Vec::new();
        for r in &g.rules {
            if want.is_some_and(|k| k != r.spec.kind)
                || (!names.is_empty() && !names.contains(&r.spec.name.as_str()))
            {
                continue;
            }
            let mut o = Map::new();
            if r.spec.kind == RuleKind::Alert {
                o.insert("state".into(), r.alerts.state().name().into());
            }
            o.insert("name".into(), r.spec.name.clone().into());
            o.insert("query".into(), r.query.clone().into());
            if r.spec.kind == RuleKind::Alert {
                o.insert("duration".into(), go_num(r.spec.hold_ms as f64 / 1000.0));
                o.insert(
                    "keepFiringFor".into(),
                    go_num(r.spec.keep_firing_for_ms as f64 / 1000.0),
                );
                o.insert("labels".into(), pairs(&r.spec.labels));
                o.insert("annotations".into(), pairs(&r.spec.annotations));
                o.insert(
                    "alerts".into(),
                    Value::Array(r.alerts.shown().into_iter().map(alert_json).collect()),
                );
            } else if !r.spec.labels.is_empty() {
                o.insert("labels".into(), pairs(&r.spec.labels));
            }
            o.insert("health".into(), r.health.name().into());
            if let Some(e) = &r.last_error {
                o.insert("lastError".into(), e.clone().into());
            }
            o.insert("evaluationTime".into(), go_num(r.eval_seconds));
            o.insert(
                "lastEvaluation".into(),
                time_or_zero(r.last_eval_wall).into(),
            );
            o.insert(
                "type".into(),
                if r.spec.kind == RuleKind::Alert {
                    "alerting"
                } else {
                    "recording"
                }
                .into(),
            );
            rules.push(Value::Object(o));
        }
        if filtered && rules.is_empty() {
            continue;
        }
        out.push(json!({
            "name": g.name,
            "file": g.file,
            "rules": rules,
            "interval": go_num(g.interval_ns as f64 / 1e9),
            "limit": g.limit,
            "evaluationTime": go_num(g.eval_seconds),
            "lastEvaluation": time_or_zero(g.last_eval_wall),
        }));
    }
    Ok(json!({ "groups": out }))
}

async fn alerts(State(m): State<Arc<Manager>>) -> Response {
    prometheus_success(alerts_json(&m.groups()))
}

/// The `data` of `/api/v1/alerts`: every pending or firing alert.
pub fn alerts_json(groups: &[SharedGroup]) -> Value {
    let mut out = Vec::new();
    for g in groups {
        let g = g.lock();
        for r in &g.rules {
            for a in r.alerts.shown() {
                out.push(alert_json(a));
            }
        }
    }
    json!({ "alerts": out })
}

/// Reads the rule files and the built-in Alertmanager's configuration again; either refused
/// keeps what is in use and answers 500 with the reason.
async fn reload(State((m, am, targets)): State<ReloadState>) -> Response {
    if let Err(e) = targets.reload().await {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response();
    }
    if let Some(am) = am {
        let r = tokio::task::spawn_blocking(move || am.reload()).await;
        if let Ok(Err(e)) = r {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to reload config: {e}\n"),
            )
                .into_response();
        }
    }
    match m.reload().await {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_go_writes_them() {
        assert_eq!(value_e(1.0), "1e+00");
        assert_eq!(value_e(42.5), "4.25e+01");
        assert_eq!(value_e(0.001), "1e-03");
        assert_eq!(value_e(1e100), "1e+100");
        assert_eq!(value_e(f64::NAN), "NaN");
    }
}
