//! Alertmanager's API v2 over the built-in Alertmanager, so that `amtool`, Grafana's
//! Alertmanager data source and any Prometheus (`alerting: alertmanagers:`) work against
//! Sightline: alerts (post, list, groups), silences (list, post, get, expire), status and
//! receivers, under `/alertmanager/api/v2/` and at `/api/v2/`. Answers and error bodies as
//! Alertmanager 0.25 writes them: a JSON string for its own 400s, go-swagger's
//! `{"code", "message"}` for bodies that do not parse (400) or fail the schema (422).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::alertmanager::alert::{Alert, fingerprint_text};
use crate::alertmanager::matcher::{LabelSet, Matcher, anchored_regex, parse_matcher};
use crate::alertmanager::silence::{Silence, matcher_from_json, matches_filter};
use crate::alertmanager::{Alertmanager, SilenceError, validate_alert};
use crate::base::params::Params;

/// Largest `POST /api/v2/alerts` or silence body accepted (100,000 alerts of a few labels fit).
pub const MAX_BODY: usize = 64 << 20;

pub fn router(am: Arc<Alertmanager>) -> Router {
    let v2 = Router::new()
        .route("/status", get(status))
        .route("/receivers", get(receivers))
        .route("/alerts", get(list_alerts).post(post_alerts))
        .route("/alerts/groups", get(groups))
        .route("/silences", get(list_silences).post(post_silence))
        .route("/silence/{id}", get(get_silence).delete(delete_silence))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(am);
    Router::new()
        .nest("/alertmanager/api/v2", v2.clone())
        .nest("/api/v2", v2)
}

fn json_answer(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// A refused request's answer, boxed to keep `Result`s small.
pub type Refusal = Box<Response>;

/// Alertmanager's own 400: the message as a JSON string.
fn bad(msg: &str) -> Refusal {
    Box::new(json_answer(
        StatusCode::BAD_REQUEST,
        &Value::String(msg.to_string()),
    ))
}

/// go-swagger's error body.
fn swagger(code: StatusCode, num: u16, msg: &str) -> Refusal {
    Box::new(json_answer(code, &json!({"code": num, "message": msg})))
}

/// API times: RFC 3339 with milliseconds, as go-openapi's `strfmt.DateTime` writes them.
fn api_time(ns: i64) -> String {
    let ms = ns.div_euclid(1_000_000);
    let (y, mo, d, sod) = crate::base::clock::civil(ms.div_euclid(1000));
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

fn now_ns() -> i64 {
    crate::base::clock::now_ns() as i64
}

async fn status(State(am): State<Arc<Alertmanager>>) -> Response {
    json_answer(
        StatusCode::OK,
        &json!({
            "cluster": {"peers": [], "status": "disabled"},
            "config": {"original": am.config_text()},
            "uptime": api_time(am.started_ns()),
            "versionInfo": {
                "branch": "",
                "buildDate": "",
                "buildUser": "sightline",
                "goVersion": "",
                "revision": "",
                "version": env!("CARGO_PKG_VERSION"),
            },
        }),
    )
}

async fn receivers(State(am): State<Arc<Alertmanager>>) -> Response {
    let list: Vec<Value> = am
        .receiver_names()
        .into_iter()
        .map(|n| json!({"name": n}))
        .collect();
    json_answer(StatusCode::OK, &Value::Array(list))
}

/// The `filter`, `receiver`, `active`, `silenced`, `inhibited` parameters.
struct Filter {
    matchers: Vec<Matcher>,
    receiver: Option<regex::Regex>,
    active: bool,
    silenced: bool,
    inhibited: bool,
}

fn bool_param(p: &Params, k: &str) -> Result<bool, Refusal> {
    match p.get(k) {
        None => Ok(true),
        Some(v) => match v {
            "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(true),
            "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(false),
            _ => Err(swagger(
                StatusCode::BAD_REQUEST,
                400,
                &format!("{k} in query must be of type bool: {v:?}"),
            )),
        },
    }
}

fn filter(q: Option<String>) -> Result<Filter, Refusal> {
    let p = Params::parse(q.as_deref());
    let mut matchers = Vec::new();
    for f in p.all("filter") {
        matchers.push(parse_matcher(f).map_err(|e| bad(&e))?);
    }
    let receiver = match p.get("receiver") {
        None => None,
        Some(r) => Some(
            anchored_regex(r).map_err(|e| bad(&format!("failed to parse receiver param: {e}")))?,
        ),
    };
    Ok(Filter {
        matchers,
        receiver,
        active: bool_param(&p, "active")?,
        silenced: bool_param(&p, "silenced")?,
        inhibited: bool_param(&p, "inhibited")?,
    })
}

/// Alertmanager's filter on labels: an empty-valued matcher also accepts a missing label.
fn labels_pass(ms: &[Matcher], ls: &LabelSet) -> bool {
    use crate::alertmanager::matcher::MatchType::*;
    ms.iter().all(|m| {
        let v = ls.get(&m.name);
        match m.kind {
            NotRegexp | NotEqual if m.value.is_empty() && v.is_some() => true,
            Equal | Regexp if m.value.is_empty() && v.is_none() => true,
            _ => m.matches(v.map(String::as_str).unwrap_or("")),
        }
    })
}

/// The alert's API form, or None when the filter drops it.
fn alert_json(
    am: &Alertmanager,
    a: &Alert,
    f: &Filter,
    receivers: Vec<String>,
    now: i64,
) -> Option<Value> {
    if a.ends_at != 0 && a.ends_at < now {
        return None;
    }
    let (state, silenced_by, inhibited_by) = am.status(&a.labels, now);
    if !f.active && state == "active" {
        return None;
    }
    if !f.silenced && !silenced_by.is_empty() {
        return None;
    }
    if !f.inhibited && !inhibited_by.is_empty() {
        return None;
    }
    if !labels_pass(&f.matchers, &a.labels) {
        return None;
    }
    let mut v = json!({
        "annotations": a.annotations,
        "endsAt": api_time(a.ends_at),
        "fingerprint": fingerprint_text(a.fingerprint()),
        "receivers": receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "startsAt": api_time(a.starts_at),
        "status": {"inhibitedBy": inhibited_by, "silencedBy": silenced_by, "state": state},
        "updatedAt": api_time(a.updated_at),
        "labels": a.labels,
    });
    if !a.generator_url.is_empty() {
        v["generatorURL"] = a.generator_url.clone().into();
    }
    Some(v)
}

async fn list_alerts(State(am): State<Arc<Alertmanager>>, RawQuery(q): RawQuery) -> Response {
    let f = match filter(q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    // Written alert by alert into one buffer: the answer for 100,000 alerts costs its text, not
    // a JSON tree of it.
    let out = tokio::task::spawn_blocking(move || {
        let now = now_ns();
        let mut alerts = am.alerts();
        alerts.sort_by_key(|a| a.fingerprint());
        let mut buf = String::from("[");
        for a in &alerts {
            let receivers = am.receivers_for(&a.labels);
            if let Some(re) = &f.receiver
                && !receivers.iter().any(|r| re.is_match(r))
            {
                continue;
            }
            if let Some(v) = alert_json(&am, a, &f, receivers, now) {
                if buf.len() > 1 {
                    buf.push(',');
                }
                buf.push_str(&v.to_string());
            }
        }
        buf.push(']');
        buf
    })
    .await;
    match out {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(_) => json_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Value::String("internal error".into()),
        ),
    }
}

async fn groups(State(am): State<Arc<Alertmanager>>, RawQuery(q): RawQuery) -> Response {
    let f = match filter(q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let out = tokio::task::spawn_blocking(move || {
        let now = now_ns();
        let groups = am.groups();
        let mut receivers: std::collections::HashMap<u64, Vec<String>> = Default::default();
        let mut kept = Vec::new();
        for (labels, receiver, alerts) in groups {
            if f.receiver
                .as_ref()
                .is_some_and(|re| !re.is_match(&receiver))
            {
                continue;
            }
            let passing: Vec<Alert> = alerts
                .into_iter()
                .filter(|a| alert_json(&am, a, &f, Vec::new(), now).is_some())
                .collect();
            if passing.is_empty() {
                continue;
            }
            for a in &passing {
                receivers
                    .entry(a.fingerprint())
                    .or_default()
                    .push(receiver.clone());
            }
            kept.push((labels, receiver, passing));
        }
        for r in receivers.values_mut() {
            r.sort();
        }
        let out: Vec<Value> = kept
            .into_iter()
            .map(|(labels, receiver, alerts)| {
                let alerts: Vec<Value> = alerts
                    .iter()
                    .filter_map(|a| {
                        let rs = receivers.get(&a.fingerprint()).cloned().unwrap_or_default();
                        alert_json(&am, a, &f, rs, now)
                    })
                    .collect();
                json!({"alerts": alerts, "labels": labels, "receiver": {"name": receiver}})
            })
            .collect();
        Value::Array(out)
    })
    .await;
    match out {
        Ok(v) => json_answer(StatusCode::OK, &v),
        Err(_) => json_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Value::String("internal error".into()),
        ),
    }
}

/// One alert as `POST /api/v2/alerts` takes it; unknown fields are ignored, as
/// Alertmanager ignores them. Parsed straight into these (no JSON tree), so a large batch costs
/// little more than the alerts themselves.
#[derive(serde::Deserialize)]
struct Postable {
    labels: Option<LabelSet>,
    annotations: Option<LabelSet>,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
}

fn parse_time_field(v: &Option<String>, field: &str, i: usize) -> Result<i64, Refusal> {
    match v.as_deref() {
        None | Some("") => Ok(0),
        Some(s) => crate::base::clock::parse_rfc3339_ns(s).ok_or_else(|| {
            swagger(
                StatusCode::BAD_REQUEST,
                400,
                &format!("parsing alerts body from \"\" failed, because parsing time {s:?} as RFC 3339 failed (alert {i}, {field})"),
            )
        }),
    }
}

/// Parses a `POST /api/v2/alerts` body; the refusal is the answer Alertmanager would give.
pub fn parse_alerts(body: &[u8], resolve_timeout_ns: i64, now: i64) -> Result<Vec<Alert>, Refusal> {
    let fail = |e: String| {
        swagger(
            StatusCode::BAD_REQUEST,
            400,
            &format!("parsing alerts body from \"\" failed, because {e}"),
        )
    };
    // Type errors inside an array element are reported as such, not as "not an array".
    let items = match serde_json::from_slice::<Vec<Option<Postable>>>(body) {
        Ok(items) => items,
        Err(e) => {
            let object = body.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{');
            return Err(
                if object && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                    fail(
                        "json: cannot unmarshal object into Go value of type models.PostableAlerts"
                            .into(),
                    )
                } else {
                    fail(e.to_string())
                },
            );
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Some(item) = item else {
            return Err(fail(format!("alert {i} is null")));
        };
        let Some(labels) = item.labels else {
            return Err(swagger(
                StatusCode::UNPROCESSABLE_ENTITY,
                602,
                &format!("{i}.labels in body is required"),
            ));
        };
        let generator_url = item.generator_url.unwrap_or_default();
        if !generator_url.is_empty()
            && reqwest::Url::parse(&generator_url).is_err()
            && !generator_url.starts_with('/')
        {
            return Err(swagger(
                StatusCode::UNPROCESSABLE_ENTITY,
                601,
                &format!("{i}.generatorURL in body must be of type uri: {generator_url:?}"),
            ));
        }
        let mut a = Alert {
            labels,
            annotations: item.annotations.unwrap_or_default(),
            starts_at: parse_time_field(&item.starts_at, "startsAt", i)?,
            ends_at: parse_time_field(&item.ends_at, "endsAt", i)?,
            generator_url,
            updated_at: now,
            timeout: false,
        };
        a.fill_times(now, resolve_timeout_ns);
        out.push(a);
    }
    Ok(out)
}

async fn post_alerts(State(am): State<Arc<Alertmanager>>, body: Bytes) -> Response {
    let now = now_ns();
    let resolve = am.resolve_timeout_ns();
    let alerts = match parse_alerts(&body, resolve, now) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let mut valid = Vec::with_capacity(alerts.len());
    let mut errors = Vec::new();
    for mut a in alerts {
        use std::sync::atomic::Ordering::Relaxed;
        if a.ends_at > now {
            am.counters.alerts_received_firing.fetch_add(1, Relaxed);
        } else {
            am.counters.alerts_received_resolved.fetch_add(1, Relaxed);
        }
        a.labels.retain(|_, v| !v.is_empty());
        match validate_alert(&a) {
            Ok(()) => valid.push(a),
            Err(e) => {
                am.counters.alerts_invalid.fetch_add(1, Relaxed);
                errors.push(e);
            }
        }
    }
    let am2 = am.clone();
    match tokio::task::spawn_blocking(move || am2.put(valid)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "failed to create alerts");
            return json_answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                &Value::String("cannot store the alerts".into()),
            );
        }
        Err(_) => {
            return json_answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                &Value::String("internal error".into()),
            );
        }
    }
    if !errors.is_empty() {
        return *bad(&errors.join("; "));
    }
    StatusCode::OK.into_response()
}

/// Alertmanager's silence order: active by end, pending by start, expired by end (latest
/// first).
fn sort_silences(list: &mut [Silence], now: i64) {
    list.sort_by(|a, b| {
        let (sa, sb) = (a.state(now), b.state(now));
        if sa != sb {
            return sa.cmp(&sb);
        }
        use crate::alertmanager::silence::State::*;
        match sa {
            Active => a.ends_at.cmp(&b.ends_at),
            Pending => a.starts_at.cmp(&b.starts_at),
            Expired => b.ends_at.cmp(&a.ends_at),
        }
    });
}

fn silence_json(s: &Silence, now: i64) -> Value {
    let mut v = s.to_json(now);
    for k in ["updatedAt", "endsAt", "startsAt"] {
        let ns = match k {
            "updatedAt" => s.updated_at,
            "endsAt" => s.ends_at,
            _ => s.starts_at,
        };
        v[k] = api_time(ns).into();
    }
    v
}

async fn list_silences(State(am): State<Arc<Alertmanager>>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let mut ms = Vec::new();
    for f in p.all("filter") {
        match parse_matcher(f) {
            Ok(m) => ms.push(m),
            Err(e) => return *bad(&e),
        }
    }
    let now = now_ns();
    let mut list: Vec<Silence> = am
        .silences()
        .into_iter()
        .filter(|s| matches_filter(s, &ms))
        .collect();
    sort_silences(&mut list, now);
    json_answer(
        StatusCode::OK,
        &Value::Array(list.iter().map(|s| silence_json(s, now)).collect()),
    )
}

fn valid_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

async fn get_silence(State(am): State<Arc<Alertmanager>>, Path(id): Path<String>) -> Response {
    if !valid_uuid(&id) {
        return *swagger(
            StatusCode::UNPROCESSABLE_ENTITY,
            601,
            &format!("silenceID in path must be of type uuid: {id:?}"),
        );
    }
    match am.silence(&id) {
        Some(s) => json_answer(StatusCode::OK, &silence_json(&s, now_ns())),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_silence(State(am): State<Arc<Alertmanager>>, Path(id): Path<String>) -> Response {
    if !valid_uuid(&id) {
        return *swagger(
            StatusCode::UNPROCESSABLE_ENTITY,
            601,
            &format!("silenceID in path must be of type uuid: {id:?}"),
        );
    }
    match tokio::task::spawn_blocking(move || am.expire_silence(&id)).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => json_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Value::String(e.to_string()),
        ),
        Err(_) => json_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Value::String("internal error".into()),
        ),
    }
}

async fn post_silence(State(am): State<Arc<Alertmanager>>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return *swagger(
                StatusCode::BAD_REQUEST,
                400,
                &format!("parsing silence body from \"\" failed, because {e}"),
            );
        }
    };
    for k in ["matchers", "startsAt", "endsAt", "createdBy", "comment"] {
        if v.get(k).is_none_or(Value::is_null) {
            return *swagger(
                StatusCode::UNPROCESSABLE_ENTITY,
                602,
                &format!("{k} in body is required"),
            );
        }
    }
    let Some(list) = v["matchers"].as_array() else {
        return *swagger(
            StatusCode::BAD_REQUEST,
            400,
            "parsing silence body from \"\" failed, because matchers is not an array",
        );
    };
    if list.is_empty() {
        return *swagger(
            StatusCode::UNPROCESSABLE_ENTITY,
            612,
            "matchers in body should have at least 1 items",
        );
    }
    let mut matchers = Vec::new();
    for m in list {
        match matcher_from_json(m) {
            Ok(m) => matchers.push(m),
            Err(e) => {
                return *bad(&format!(
                    "failed to convert API silence to internal silence: {e}"
                ));
            }
        }
    }
    let time = |k: &str| -> Result<i64, Refusal> {
        v[k].as_str()
            .and_then(crate::base::clock::parse_rfc3339_ns)
            .ok_or_else(|| {
                swagger(
                    StatusCode::BAD_REQUEST,
                    400,
                    &format!(
                        "parsing silence body from \"\" failed, because {k} is not an RFC 3339 time"
                    ),
                )
            })
    };
    let (starts_at, ends_at) = match (time("startsAt"), time("endsAt")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    if starts_at >= ends_at {
        return *bad("Failed to create silence: start time must be before end time");
    }
    if ends_at < now_ns() {
        return *bad("Failed to create silence: end time can't be in the past");
    }
    let s = Silence {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        matchers,
        starts_at,
        ends_at,
        updated_at: 0,
        created_by: v["createdBy"].as_str().unwrap_or("").to_string(),
        comment: v["comment"].as_str().unwrap_or("").to_string(),
    };
    match tokio::task::spawn_blocking(move || am.set_silence(s)).await {
        Ok(Ok(id)) => json_answer(StatusCode::OK, &json!({"silenceID": id})),
        Ok(Err(SilenceError::NotFound)) => json_answer(
            StatusCode::NOT_FOUND,
            &Value::String("silence not found".into()),
        ),
        Ok(Err(e)) => *bad(&e.to_string()),
        Err(_) => json_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Value::String("internal error".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alertmanager::alert::fingerprint;

    #[test]
    fn times_and_fingerprints_as_alertmanager_writes_them() {
        assert_eq!(
            api_time(1_796_522_877_235_123_456),
            "2026-12-06T02:07:57.235Z"
        );
        // Alertmanager 0.25 gave this fingerprint for {alertname="a"}.
        let ls: LabelSet = [("alertname".to_string(), "a".to_string())].into();
        assert_eq!(fingerprint_text(fingerprint(&ls)), "d258efc389808447");
        assert!(valid_uuid("ffc6bceb-dcb3-49cf-8095-34ef3d31f8c1"));
        assert!(!valid_uuid("bad"));
    }

    #[test]
    fn malformed_alerts_get_alertmanagers_answers() {
        let now = 1_000_000_000_000;
        let code = |b: &str| match parse_alerts(b.as_bytes(), 0, now) {
            Ok(_) => 200,
            Err(r) => r.status().as_u16(),
        };
        assert_eq!(code(r#"[{"labels":{"a":"x"}}]"#), 200);
        assert_eq!(code(r#"[{"annotations":{}}]"#), 422);
        assert_eq!(code(r#"{not json"#), 400);
        assert_eq!(code(r#"{"labels":{"a":"x"}}"#), 400);
        assert_eq!(code(r#"[{"labels":{"a":5}}]"#), 400);
        assert_eq!(code(r#"[{"labels":{"a":"x"},"startsAt":"garbage"}]"#), 400);
        assert_eq!(
            code(r#"[{"labels":{"a":"x"},"generatorURL":"not a url"}]"#),
            422
        );
        let a = parse_alerts(br#"[{"labels":{"a":"x"}}]"#, 5, now).unwrap();
        assert_eq!(
            (a[0].starts_at, a[0].ends_at, a[0].timeout),
            (now, now + 5, true)
        );
    }
}
