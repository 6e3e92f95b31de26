//! `/federate?match[]=...`: the latest sample (within the 5-minute lookback, stale markers
//! skipped) of every series the selectors pick, in Prometheus's text format, as Prometheus 2.42
//! serves it: families by metric name, each `untyped`, labels in order, the external labels
//! (and an empty `instance`) appended where the series lacks them, millisecond timestamps. A
//! central Prometheus scrapes it with `honor_labels: true`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::edge::ApiError;
use super::prom_params::Selection;
use crate::tsdb::{Queryable, Tsdb, is_stale};

/// Prometheus's default lookback delta.
const LOOKBACK_MS: i64 = 5 * 60_000;

/// A series as federation sorts it: metric name, then its other labels.
type SeriesKey = (String, Vec<(String, String)>);

#[derive(Clone)]
struct Fed {
    db: Tsdb,
    external: BTreeMap<String, String>,
}

pub fn router(db: Tsdb, external_labels: BTreeMap<String, String>) -> Router {
    Router::new()
        .route("/federate", get(federate))
        .with_state(Fed {
            db,
            external: external_labels,
        })
}

/// Label value escaping of the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value as the text format writes it.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        crate::base::gofmt::float(v, crate::base::gofmt::FloatStyle::G)
    }
}

async fn federate(State(f): State<Fed>, sel: Selection<false>) -> Response {
    let sets = sel.sets;
    let out = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let maxt = crate::base::clock::now_ms();
        let mint = maxt - LOOKBACK_MS;
        // (name, labels without the name, t, v), by name then label set.
        let mut latest: BTreeMap<SeriesKey, (i64, f64)> = BTreeMap::new();
        for ms in &sets {
            for s in f.db.select(mint, maxt, ms).map_err(ApiError::from)? {
                let Some(&(t, v)) = s.samples.iter().rev().find(|(t, _)| *t <= maxt) else {
                    continue;
                };
                if is_stale(v) {
                    continue;
                }
                let mut name = None;
                let mut rest = Vec::new();
                for l in s.labels.iter() {
                    if l.name == "__name__" {
                        name = Some(l.value.clone());
                    } else if !l.value.is_empty() {
                        rest.push((l.name.clone(), l.value.clone()));
                    }
                }
                let Some(name) = name else { continue };
                latest.insert((name, rest), (t, v));
            }
        }
        let mut ext = f.external.clone();
        ext.entry("instance".into()).or_default();
        let mut out = String::new();
        let mut last = String::new();
        for ((name, labels), (t, v)) in &latest {
            if *name != last {
                out.push_str(&format!("# TYPE {name} untyped\n"));
                last = name.clone();
            }
            let mut parts: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            for (k, v) in &ext {
                if !labels.iter().any(|(n, _)| n == k) {
                    parts.push(format!("{k}=\"{}\"", escape(v)));
                }
            }
            out.push_str(&format!(
                "{name}{{{}}} {} {t}\n",
                parts.join(","),
                value(*v)
            ));
        }
        Ok(out)
    })
    .await;
    match out {
        Ok(Ok(body)) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Ok(Err(e)) => e.prometheus(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_escapes_as_the_text_format_writes_them() {
        assert_eq!(value(1.0), "1");
        assert_eq!(value(0.000001), "1e-06");
        assert_eq!(value(f64::INFINITY), "+Inf");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
