//! GPU use beside a trace (`GET /api/traces/{id}/gpu`), which the UI's GPU lane draws: the
//! utilisation, memory and power series of the GPUs on the hosts the trace's spans ran on
//! (resource `host.name` matched to the GPU sampler's `Hostname` label) across the trace's window,
//! each span's mean GPU utilisation over its own interval, and the XID errors and throttling
//! episodes that happened inside the window. Parameters: `pad` (ms around the trace, default
//! 30 s), `span` (one span's figures only), `spans=none` (no per-span figures).
//!
//! A sample holds from its timestamp until the next one (as a Prometheus instant selector reads
//! it, within the 5-minute lookback); a span's mean is the time-weighted mean of that step
//! function over `[start, end]`, or the value at `start` for a zero-length span.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::edge::ApiError;
use crate::base::params::Params;
use crate::traces::{TraceStore, model};
use crate::tsdb::{Labels, MatchOp, Matcher, Queryable, Tsdb};

/// How far before a window a sample still gives the value at its start (Prometheus's lookback).
const LOOKBACK_MS: i64 = 300_000;
/// Around the trace by default, so the lane shows what the GPUs did just before and after.
const DEFAULT_PAD_MS: i64 = 30_000;

#[derive(Clone)]
struct GpuApiState {
    store: TraceStore,
    db: Tsdb,
}

pub fn router(store: TraceStore, db: Tsdb) -> Router {
    Router::new()
        .route("/api/traces/{id}/gpu", get(trace_gpu))
        .with_state(GpuApiState { store, db })
}

/// The value of a step function at `t` (the last sample at or before it, within the lookback).
fn value_at(s: &[(i64, f64)], t: f64) -> Option<f64> {
    let i = s.partition_point(|(ts, _)| (*ts as f64) <= t);
    if i == 0 {
        return None;
    }
    let (ts, v) = s[i - 1];
    (t - ts as f64 <= LOOKBACK_MS as f64).then_some(v)
}

/// Time-weighted mean of the step function over `[a, b]` (ms); `None` where it has no value.
pub fn mean_over(s: &[(i64, f64)], a: f64, b: f64) -> Option<f64> {
    if b <= a {
        return value_at(s, a);
    }
    let mut pos = a;
    let mut cur = value_at(s, a);
    let (mut area, mut covered) = (0.0, 0.0);
    let first = s.partition_point(|(ts, _)| (*ts as f64) <= a);
    for &(ts, v) in &s[first..] {
        let ts = ts as f64;
        if ts >= b {
            break;
        }
        if let Some(c) = cur {
            area += c * (ts - pos);
            covered += ts - pos;
        }
        pos = ts;
        cur = Some(v);
    }
    if let Some(c) = cur {
        area += c * (b - pos);
        covered += b - pos;
    }
    (covered > 0.0).then(|| area / covered)
}

/// The identity of one GPU (or MIG instance) in the sampler's labels.
fn gpu_key(l: &Labels) -> (String, String, String, String) {
    (
        l.get("Hostname").unwrap_or_default().to_string(),
        l.get("gpu").unwrap_or_default().to_string(),
        l.get("UUID").unwrap_or_default().to_string(),
        l.get("GPU_I_ID").unwrap_or_default().to_string(),
    )
}

fn points(s: &[(i64, f64)], from: i64, to: i64) -> Vec<Value> {
    // The sample just before `from` too, so the lane starts with a value.
    let first = s.partition_point(|(t, _)| *t < from).saturating_sub(1);
    s[first..]
        .iter()
        .take_while(|(t, _)| *t <= to)
        .map(|(t, v)| json!([t, v]))
        .collect()
}

async fn trace_gpu(
    State(st): State<GpuApiState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(tid) = model::parse_trace_id(&id) else {
        return ApiError::bad_data(format!(
            "malformed trace id {id:?}: expected up to 32 hex digits"
        ))
        .jaeger();
    };
    let p = Params::parse(q.as_deref());
    let pad = match p.u64("pad") {
        Ok(v) => v.map_or(DEFAULT_PAD_MS, |v| v.min(3_600_000) as i64),
        Err(e) => return ApiError::BadData(e).jaeger(),
    };
    let spans = match st.store.trace(tid).await {
        Ok(s) if s.is_empty() => return ApiError::NotFound("trace not found".into()).jaeger(),
        Ok(s) => s,
        Err(e) => return ApiError::from(e).jaeger(),
    };
    // Each span: id, service, host, start and end in ms (fractional).
    let mut rows = Vec::with_capacity(spans.len());
    for s in &spans {
        let host = s.resource.as_ref().as_ref().and_then(|r| {
            r.attributes
                .iter()
                .find(|kv| kv.key == "host.name")
                .and_then(|kv| kv.value.as_ref())
                .map(model::any_to_text)
        });
        rows.push((
            hex::encode(&s.span.span_id),
            model::service_name(s.resource.as_ref().as_ref()),
            host,
            s.span.start_time_unix_nano as f64 / 1e6,
            s.span.end_time_unix_nano.max(s.span.start_time_unix_nano) as f64 / 1e6,
        ));
    }
    let start = rows.iter().map(|r| r.3).fold(f64::INFINITY, f64::min);
    let end = rows.iter().map(|r| r.4).fold(f64::NEG_INFINITY, f64::max);
    let (from, to) = (start.floor() as i64 - pad, end.ceil() as i64 + pad);
    let hosts: BTreeSet<String> = rows.iter().filter_map(|r| r.2.clone()).collect();
    let db = st.db.clone();
    let hosts2 = hosts.clone();
    let found = tokio::task::spawn_blocking(move || select_gpu(&db, &hosts2, from, to)).await;
    let (series, counters) = match found {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return e.jaeger(),
        Err(e) => return ApiError::from(e).jaeger(),
    };
    // Group the series by GPU.
    let mut gpus: ByGpu = BTreeMap::new();
    for s in series {
        let field = match s.labels.metric_name() {
            Some("DCGM_FI_DEV_GPU_UTIL") => "utilization",
            Some("DCGM_FI_DEV_FB_USED") => "memoryUsedMiB",
            Some("DCGM_FI_DEV_FB_FREE") => "memoryFreeMiB",
            Some("DCGM_FI_DEV_POWER_USAGE") => "powerWatts",
            _ => continue,
        };
        let e = gpus
            .entry(gpu_key(&s.labels))
            .or_insert_with(|| (s.labels.clone(), BTreeMap::new()));
        let samples: Vec<(i64, f64)> = s.samples.into_iter().filter(|(_, v)| !v.is_nan()).collect();
        e.1.insert(field, samples);
    }
    let gpu_json: Vec<Value> = gpus
        .iter()
        .map(|((host, gpu, uuid, mig), (l, fields))| {
            let series: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), Value::Array(points(v, from, to))))
                .collect();
            json!({
                "host": host, "gpu": gpu, "uuid": uuid, "migInstance": mig,
                "modelName": l.get("modelName").unwrap_or_default(),
                "series": series,
            })
        })
        .collect();
    // `span=ID` answers for that span only; `spans=none` leaves the per-span figures out (the
    // UI's lane for a 10,000-span trace does not need them all).
    let only = p.get("span").map(str::to_ascii_lowercase);
    let none = p.get("spans") == Some("none");
    let span_json: Vec<Value> = rows
        .iter()
        .filter(|(sid, ..)| !none && only.as_ref().is_none_or(|o| o == sid))
        .map(|(sid, service, host, a, b)| {
            let figures: Vec<Value> = gpus
                .iter()
                .filter(|((h, ..), _)| Some(h) == host.as_ref())
                .filter_map(|((_, gpu, uuid, mig), (_, f))| {
                    let util = f.get("utilization")?;
                    let mean = mean_over(util, *a, *b)?;
                    Some(json!({"gpu": gpu, "uuid": uuid, "migInstance": mig, "meanUtilization": mean}))
                })
                .collect();
            json!({"spanID": sid, "service": service, "host": host, "start": a, "end": b, "gpus": figures})
        })
        .collect();
    let mut events = Vec::new();
    for s in counters {
        let kind = match s.labels.metric_name() {
            Some("sightline_gpu_xid_errors_total") => "xid",
            Some("sightline_gpu_throttle_episodes_total") => "throttle",
            _ => continue,
        };
        let detail = s
            .labels
            .get(if kind == "xid" { "xid" } else { "reason" })
            .unwrap_or_default()
            .to_string();
        let mut prev: Option<f64> = None;
        for (t, v) in s.samples.iter().filter(|(_, v)| !v.is_nan()) {
            let inc = match prev {
                Some(p) if *v >= p => v - p,
                Some(_) => *v,
                None => *v,
            };
            prev = Some(*v);
            if *t >= from && *t <= to && inc > 0.0 {
                events.push(json!({
                    "time": t, "host": s.labels.get("Hostname").unwrap_or_default(),
                    "gpu": s.labels.get("gpu").unwrap_or_default(),
                    "uuid": s.labels.get("UUID").unwrap_or_default(),
                    "kind": kind, "detail": detail, "count": inc,
                }));
            }
        }
    }
    events.sort_by_key(|e| e["time"].as_i64());
    let missing: Vec<&String> = hosts
        .iter()
        .filter(|h| !gpus.keys().any(|(gh, ..)| gh == *h))
        .collect();
    axum::Json(json!({
        "traceID": hex::encode(tid),
        "start": start, "end": end, "from": from, "to": to,
        "hosts": hosts, "hostsWithoutGpuData": missing,
        "spansWithoutHost": rows.iter().filter(|r| r.2.is_none()).count(),
        "gpus": gpu_json, "spans": span_json, "events": events,
    }))
    .into_response()
}

/// Per GPU (host, index, UUID, MIG instance): its labels and its series by field.
type ByGpu =
    BTreeMap<(String, String, String, String), (Labels, BTreeMap<&'static str, Vec<(i64, f64)>>)>;

type Found = (Vec<crate::tsdb::Series>, Vec<crate::tsdb::Series>);

fn select_gpu(db: &Tsdb, hosts: &BTreeSet<String>, from: i64, to: i64) -> Result<Found, ApiError> {
    if hosts.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let re: Vec<String> = hosts.iter().map(|h| regex::escape(h)).collect();
    let host_m = Matcher::new(MatchOp::Regex, "Hostname", re.join("|"))
        .map_err(|e| ApiError::BadData(e.to_string()))?;
    let pick = |names: &str| -> Result<Vec<crate::tsdb::Series>, ApiError> {
        let ms = [
            Matcher::new(MatchOp::Regex, "__name__", names)
                .map_err(|e| ApiError::BadData(e.to_string()))?,
            Matcher::new(MatchOp::Equal, "job", "dcgm")
                .map_err(|e| ApiError::BadData(e.to_string()))?,
            host_m.clone(),
        ];
        Ok(db.select(from - LOOKBACK_MS, to, &ms)?.collect())
    };
    Ok((
        pick(
            "DCGM_FI_DEV_GPU_UTIL|DCGM_FI_DEV_FB_USED|DCGM_FI_DEV_FB_FREE|DCGM_FI_DEV_POWER_USAGE",
        )?,
        pick("sightline_gpu_xid_errors_total|sightline_gpu_throttle_episodes_total")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_weighted_mean_of_a_step_function() {
        let s = [(1000, 20.0), (2000, 80.0), (4000, 50.0)];
        // [1500, 3000]: 20 for 500 ms, 80 for 1000 ms
        assert_eq!(
            mean_over(&s, 1500.0, 3000.0),
            Some((20.0 * 500.0 + 80.0 * 1000.0) / 1500.0)
        );
        // inside one step
        assert_eq!(mean_over(&s, 2100.0, 2900.0), Some(80.0));
        // zero length: the value at the instant
        assert_eq!(mean_over(&s, 4000.0, 4000.0), Some(50.0));
        // before the first sample only the covered part counts
        assert_eq!(mean_over(&s, 0.0, 2000.0), Some(20.0));
        assert_eq!(mean_over(&s, 0.0, 900.0), None);
        // past the lookback nothing
        assert_eq!(mean_over(&s, 400_000.0, 400_100.0), None);
    }
}
