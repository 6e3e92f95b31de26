//! The Prometheus HTTP API endpoints that read the store through the [`Queryable`] seam without
//! PromQL: `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`,
//! `/api/v1/metadata`, plus `/api/v1/export`,
//! raw samples as JSON lines (VictoriaMetrics's export shape) for backups and tests. Answers use
//! Prometheus's envelope `{status, data}` / `{status, errorType, error}`. The endpoints that
//! evaluate PromQL live in `query.rs`.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::edge::{ApiError, prometheus_success};
use super::prom_params::{Selection, labels_json};
use crate::base::params::Params;
use crate::tsdb::{Matcher, Queryable, Tsdb, is_stale};

pub fn router(db: Tsdb) -> Router {
    Router::new()
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/export", get(export).post(export))
        .with_state(db)
}

/// Runs `f` on the blocking pool; its error, or the task's failure, becomes Prometheus's error
/// envelope.
async fn blocking(f: impl FnOnce() -> Result<Response, ApiError> + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(e.into()),
    }
    .unwrap_or_else(ApiError::prometheus)
}

async fn series(
    State(db): State<Tsdb>,
    Selection { start, end, sets }: Selection<true>,
) -> Response {
    blocking(move || {
        let mut seen = std::collections::BTreeSet::new();
        for ms in &sets {
            seen.extend(db.select(start, end, ms)?.map(|s| s.labels));
        }
        Ok(prometheus_success(Value::Array(
            seen.iter().map(labels_json).collect(),
        )))
    })
    .await
}

/// The union of `f` over every `match[]` set (or over all series when there is none).
fn union_over(
    sets: Vec<Vec<Matcher>>,
    f: impl Fn(&[Matcher]) -> Result<Vec<String>, crate::tsdb::TsdbError>,
) -> Result<Response, ApiError> {
    let sets = if sets.is_empty() {
        vec![Vec::new()]
    } else {
        sets
    };
    let mut all = std::collections::BTreeSet::new();
    for ms in &sets {
        all.extend(f(ms)?);
    }
    Ok(prometheus_success(json!(all)))
}

async fn labels(
    State(db): State<Tsdb>,
    Selection { start, end, sets }: Selection<false>,
) -> Response {
    blocking(move || union_over(sets, |ms| db.label_names(start, end, ms))).await
}

async fn label_values(
    State(db): State<Tsdb>,
    Path(name): Path<String>,
    Selection { start, end, sets }: Selection<false>,
) -> Response {
    if !crate::tsdb::labels::valid_label_name(&name) {
        return ApiError::BadData(format!("invalid label name: {name:?}")).prometheus();
    }
    blocking(move || union_over(sets, |ms| db.label_values(&name, start, end, ms))).await
}

async fn metadata(State(db): State<Tsdb>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let only = p.get("metric").map(str::to_string);
    let limit = p
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let md = db.metadata();
    let mut out = serde_json::Map::new();
    for (name, m) in md {
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        out.insert(name, json!([m]));
    }
    prometheus_success(Value::Object(out))
}

/// JSON lines: `{"metric":{...},"values":[...],"timestamps":[...]}`; values that JSON cannot
/// carry are strings: `"NaN"`, `"+Inf"`, `"-Inf"`, and `"stale"` for staleness markers.
async fn export(
    State(db): State<Tsdb>,
    Selection { start, end, sets }: Selection<true>,
) -> Response {
    blocking(move || {
        let mut out = String::new();
        let mut done = std::collections::BTreeSet::new();
        for ms in &sets {
            let it = db.select(start, end, ms)?;
            for s in it {
                if !done.insert(s.labels.clone()) {
                    continue;
                }
                let values: Vec<Value> = s
                    .samples
                    .iter()
                    .map(|(_, v)| {
                        if is_stale(*v) {
                            json!("stale")
                        } else if v.is_finite() {
                            json!(v)
                        } else {
                            json!(crate::base::gofmt::float(
                                *v,
                                crate::base::gofmt::FloatStyle::Label
                            ))
                        }
                    })
                    .collect();
                let ts: Vec<i64> = s.samples.iter().map(|x| x.0).collect();
                out.push_str(
                    &json!({"metric": labels_json(&s.labels), "values": values, "timestamps": ts})
                        .to_string(),
                );
                out.push('\n');
            }
        }
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/stream+json")],
            out,
        )
            .into_response())
    })
    .await
}
