//! The Dashboards pages: the list of Grafana dashboards (uploaded and provisioned) with import,
//! export and delete, and one dashboard drawn: its variables as selectors, its time range and
//! refresh in the URL as Grafana keeps them (`var-gpu=0&from=now-6h&to=now&refresh=1m`), and its
//! panels as `div`s carrying the spec `crate::dashboards::render` made; `assets/dash.js` runs
//! the queries and draws them.

use super::*;
use crate::dashboards::{DashboardError, Origin, render, time, vars};

pub struct ListRow {
    pub uid: String,
    pub title: String,
    pub tags: String,
    pub source: String,
    pub deletable: bool,
}

#[derive(Template)]
#[template(path = "dashboards.html")]
pub struct ListView {
    pub page: Page,
    pub rows: Vec<ListRow>,
    pub errors: Vec<(String, String)>,
    pub imported: String,
    pub error: String,
}

fn store_or_404(st: &UiState) -> Result<&crate::dashboards::DashboardStore, Box<Response>> {
    st.dashboards.as_ref().ok_or_else(|| {
        Box::new((StatusCode::NOT_FOUND, "dashboards are not enabled\n").into_response())
    })
}

pub async fn list(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let store = match store_or_404(&st) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let rows = store
        .list()
        .into_iter()
        .map(|e| ListRow {
            source: match &e.origin {
                Origin::Uploaded => "uploaded".into(),
                Origin::Provisioned(p) => format!("provisioned: {}", p.display()),
            },
            deletable: e.origin == Origin::Uploaded,
            uid: e.uid,
            title: e.title,
            tags: e.tags.join(", "),
        })
        .collect();
    let errors = store
        .errors()
        .into_iter()
        .map(|(p, e)| (p.display().to_string(), e))
        .collect();
    render(ListView {
        page: Page::new(&st, &r, "Dashboards", "dashboards"),
        rows,
        errors,
        imported: p.get("imported").unwrap_or("").to_string(),
        error: p.get("error").unwrap_or("").chars().take(500).collect(),
    })
}

/// `POST /ui/dashboards/import`: a form with the JSON (`json`, pasted or read from a file by
/// the page) and `overwrite`, or a JSON body as Grafana's API takes it.
pub async fn import(
    State(st): State<UiState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let store = match store_or_404(&st) {
        Ok(s) => s.clone(),
        Err(r) => return *r,
    };
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    // A JSON body carries its own `overwrite` (Grafana's envelope); the form has a checkbox.
    let (json, overwrite) = if is_json {
        (body.to_vec(), None)
    } else {
        let mut json = Vec::new();
        let mut overwrite = false;
        for (k, v) in form_urlencoded::parse(&body) {
            match &*k {
                "json" => json = v.into_owned().into_bytes(),
                "overwrite" => overwrite = !v.is_empty(),
                _ => {}
            }
        }
        (json, Some(overwrite))
    };
    let res = tokio::task::spawn_blocking(move || store.import(&json, overwrite))
        .await
        .unwrap_or_else(|e| Err(DashboardError::Io(std::io::Error::other(e.to_string()))));
    if is_json {
        return match res {
            Ok(uid) => (
                StatusCode::OK,
                axum::Json(serde_json::json!({"status": "success", "uid": uid, "url": format!("{}/ui/dashboards/{uid}", st.base)})),
            )
                .into_response(),
            Err(e) => (
                e.http_status(),
                axum::Json(serde_json::json!({"status": "error", "message": e.to_string()})),
            )
                .into_response(),
        };
    }
    let q = match res {
        Ok(uid) => format!("imported={}", url(&uid)),
        Err(e) => format!("error={}", url(&e.to_string())),
    };
    axum::response::Redirect::to(&format!("{}/ui/dashboards?{q}", st.base)).into_response()
}

/// `POST /ui/dashboards/delete`: deletes the uploaded dashboard named in the form.
pub async fn delete(State(st): State<UiState>, body: axum::body::Bytes) -> Response {
    let store = match store_or_404(&st) {
        Ok(s) => s.clone(),
        Err(r) => return *r,
    };
    let uid = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "uid")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let res = tokio::task::spawn_blocking(move || store.delete(&uid))
        .await
        .unwrap_or_else(|e| Err(DashboardError::Io(std::io::Error::other(e.to_string()))));
    let q = match res {
        Ok(()) => String::new(),
        Err(e) => format!("?error={}", url(&e.to_string())),
    };
    axum::response::Redirect::to(&format!("{}/ui/dashboards{q}", st.base)).into_response()
}

/// `GET /ui/dashboards/{uid}/export`: the dashboard's JSON as stored.
pub async fn export(State(st): State<UiState>, Path(uid): Path<String>) -> Response {
    let store = match store_or_404(&st) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match store.get(&uid) {
        Some(e) => (
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "application/json".to_string(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}.json\"", e.uid),
                ),
            ],
            serde_json::to_string_pretty(&*e.json).unwrap_or_default(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no dashboard with uid {uid:?}\n"),
        )
            .into_response(),
    }
}

pub struct VarRow {
    pub name: String,
    pub label: String,
    pub hide: u8,
    pub multi: bool,
    pub textbox: bool,
    pub text: String,
    pub options: Vec<(String, String, bool)>,
    pub note: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashView {
    pub page: Page,
    pub uid: String,
    pub from: String,
    pub to: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub refresh: String,
    pub refreshes: Vec<(String, bool)>,
    pub timezone: String,
    pub sync: bool,
    pub vars: Vec<VarRow>,
    pub sections: Vec<render::Section>,
    pub notes: Vec<String>,
    pub ranges: Vec<(String, String)>,
}

const DASH_REFRESHES: [&str; 8] = ["", "5s", "10s", "30s", "1m", "5m", "15m", "1h"];

pub async fn dashboard(
    State(st): State<UiState>,
    Path(uid): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let store = match store_or_404(&st) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Some(entry) = store.get(&uid) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no dashboard with uid {uid:?}\n"),
        )
            .into_response();
    };
    let d = entry.json.clone();
    let p = Params::parse(q.as_deref());
    let now = now_ms();
    let saved = |k: &str, dflt: &str| -> String {
        d.get("time")
            .and_then(|t| t.get(k))
            .and_then(serde_json::Value::as_str)
            .unwrap_or(dflt)
            .to_string()
    };
    let mut notes = Vec::new();
    let mut from = p
        .get("from")
        .map(str::to_string)
        .unwrap_or_else(|| saved("from", "now-6h"));
    let mut to = p
        .get("to")
        .map(str::to_string)
        .unwrap_or_else(|| saved("to", "now"));
    let (from_ms, to_ms) = match (time::parse(&from, now, false), time::parse(&to, now, true)) {
        (Some(a), Some(b)) if a < b => (a, b),
        _ => {
            notes.push(format!(
                "the time range {from:?} to {to:?} is not valid; showing the last 6 hours"
            ));
            from = "now-6h".into();
            to = "now".into();
            (now - 6 * 3_600_000, now)
        }
    };
    // `refresh=` (empty) in the URL turns the dashboard's own refresh off.
    let refresh = if p.has("refresh") {
        p.get("refresh").map(str::to_string)
    } else {
        d.get("refresh")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    }
    .filter(|r| time::parse_interval(r).is_some())
    .unwrap_or_default();
    // "browser", "utc", or an IANA zone name as Grafana allows ("Europe/Berlin").
    let timezone = match p
        .get("timezone")
        .or_else(|| d.get("timezone").and_then(serde_json::Value::as_str))
    {
        Some("utc") => "utc".to_string(),
        Some(z)
            if z.len() <= 64
                && z.contains('/')
                && z.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b)) =>
        {
            z.to_string()
        }
        _ => "browser".to_string(),
    };
    let list = d
        .get("templating")
        .and_then(|t| t.get("list"))
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let resolved = vars::resolve(&list, &p, &st.query, vars::Span { from_ms, to_ms }).await;
    let frame = render::Frame { from_ms, to_ms };
    let d2 = d.clone();
    let res2 = resolved.clone();
    let (sections, truncated) =
        tokio::task::spawn_blocking(move || render::sections(&d2, &res2, frame))
            .await
            .unwrap_or_default();
    notes.extend(truncated);
    let vars = resolved
        .views
        .iter()
        .map(|v| VarRow {
            name: v.name.clone(),
            label: v.label.clone(),
            hide: v.hide,
            multi: v.multi,
            textbox: v.kind == "textbox",
            text: v.text.clone(),
            options: v.options.clone(),
            note: match (&v.error, v.truncated) {
                (Some(e), _) => e.clone(),
                (None, Some(n)) => format!("first {} of {n} values", vars::MAX_OPTIONS),
                _ => String::new(),
            },
        })
        .collect();
    let sync = d
        .get("graphTooltip")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0)
        > 0;
    let r = Range::from(&Params::parse(None));
    let mut page = Page::new(&st, &r, entry.title.clone(), "dashboards");
    page.picker = false;
    let mut refreshes: Vec<(String, bool)> = DASH_REFRESHES
        .iter()
        .map(|k| (k.to_string(), *k == refresh))
        .collect();
    if !DASH_REFRESHES.contains(&refresh.as_str()) {
        refreshes.push((refresh.clone(), true));
    }
    let ranges = ["5m", "15m", "1h", "6h", "12h", "24h", "2d", "7d"]
        .iter()
        .map(|k| (format!("now-{k}"), format!("last {k}")))
        .collect();
    render(DashView {
        page,
        uid: entry.uid.clone(),
        from,
        to,
        from_ms,
        to_ms,
        refresh,
        refreshes,
        timezone,
        sync,
        vars,
        sections,
        notes,
        ranges,
    })
}
