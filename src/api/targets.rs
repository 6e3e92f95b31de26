//! `/api/v1/targets` in Prometheus 2.42's shape: `activeTargets` (discovered labels, final
//! labels, pool, scrape URL, health, last error, last scrape, its duration, interval and
//! timeout) and `droppedTargets` (discovered labels), filtered by `state` (`active`,
//! `dropped`, `any`) and `scrapePool`; pools in name order.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::edge::prometheus_success;
use crate::base::clock::go_time_text;
use crate::base::params::Params;
use crate::scrape::ScrapeManager;
use crate::scrape::relabel::LabelMap;

pub fn router(targets: ScrapeManager) -> Router {
    Router::new()
        .route("/api/v1/targets", get(handler))
        .with_state(targets)
}

fn labels(l: &LabelMap) -> Value {
    Value::Object(
        l.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

async fn handler(State(m): State<ScrapeManager>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let state = p.get("state").unwrap_or("").to_ascii_lowercase();
    let pool = p.get("scrapePool").unwrap_or("").to_string();
    let show_active = matches!(state.as_str(), "" | "any" | "active");
    let show_dropped = matches!(state.as_str(), "" | "any" | "dropped");
    let snap = m.snapshot();
    let keep = |p: &str| pool.is_empty() || p == pool;
    let active: Vec<Value> = if show_active {
        snap.active
            .iter()
            .filter(|t| keep(&t.pool))
            .map(|t| {
                let last = if t.health.last_scrape_ms == 0 {
                    "0001-01-01T00:00:00Z".to_string()
                } else {
                    go_time_text(t.health.last_scrape_ms * 1_000_000, 'T', "Z")
                };
                json!({
                    "discoveredLabels": labels(&t.discovered),
                    "labels": labels(&t.labels),
                    "scrapePool": t.pool,
                    "scrapeUrl": t.url,
                    "globalUrl": t.url,
                    "lastError": t.health.last_error,
                    "lastScrape": last,
                    "lastScrapeDuration": t.health.last_duration_s,
                    "health": if t.health.health.is_empty() { "unknown" } else { t.health.health },
                    "scrapeInterval": t.interval,
                    "scrapeTimeout": t.timeout,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let dropped: Vec<Value> = if show_dropped {
        snap.dropped
            .iter()
            .filter(|t| keep(&t.pool))
            .map(|t| json!({"discoveredLabels": labels(&t.discovered)}))
            .collect()
    } else {
        Vec::new()
    };
    prometheus_success(json!({"activeTargets": active, "droppedTargets": dropped}))
}
