//! The page handlers: each reads what it shows (trace store, PromQL over the metrics store, own
//! counters), formats it into plain strings, and renders its template. Charts are `div`s that name
//! a PromQL query; `assets/app.js` draws them from `/api/v1/query_range`.

pub mod alerts;
pub mod dashboards;
pub mod explore;
pub mod gpu;
pub mod host;
pub mod logs;
pub mod overview;
pub mod rates;
pub mod service;
pub mod service_map;
pub mod status;
pub mod targets;
pub mod trace;
pub mod traces;

pub(crate) use crate::base::clock::now_ms;
pub(crate) use crate::ui::format::bytes;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::state::UiState;
use crate::base::Signal;
use crate::base::params::Params;
use crate::promql::QueryValue;

use crate::traces::model;
use crate::tsdb::Labels;

/// Time ranges the picker offers, with their length in seconds.
pub(super) const RANGES: [(&str, i64); 9] = [
    ("5m", 300),
    ("15m", 900),
    ("1h", 3600),
    ("3h", 10_800),
    ("6h", 21_600),
    ("12h", 43_200),
    ("24h", 86_400),
    ("2d", 172_800),
    ("7d", 604_800),
];
pub(super) const REFRESHES: [&str; 5] = ["off", "5s", "10s", "30s", "1m"];

/// Bumped with the assets so browsers fetch new copies.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The selected time range: its length and end (now unless the URL fixes `end`, in ms).
pub struct Range {
    pub key: String,
    pub secs: i64,
    pub end_ms: i64,
    pub fixed_end: bool,
    pub refresh: String,
}

impl Range {
    pub fn from(p: &Params) -> Range {
        let (key, secs) = p
            .get("range")
            .and_then(|r| RANGES.iter().find(|(k, _)| *k == r))
            .copied()
            .unwrap_or(("1h", 3600));
        // An end between 1970 and 2100 (ms); anything else means "now".
        let end = p
            .get("end")
            .and_then(|e| e.parse::<i64>().ok())
            .filter(|e| (0..=4_102_444_800_000).contains(e));
        let refresh = p
            .get("refresh")
            .filter(|r| REFRESHES.contains(r))
            .unwrap_or("off");
        Range {
            key: key.into(),
            secs,
            end_ms: end.unwrap_or_else(now_ms),
            fixed_end: end.is_some(),
            refresh: refresh.into(),
        }
    }

    pub fn start_ms(&self) -> i64 {
        self.end_ms.saturating_sub(self.secs * 1000)
    }

    /// The range's part of a URL's query string.
    pub fn qs(&self) -> String {
        let mut q = format!("range={}", self.key);
        if self.fixed_end {
            q.push_str(&format!("&end={}", self.end_ms));
        }
        if self.refresh != "off" {
            q.push_str(&format!("&refresh={}", self.refresh));
        }
        q
    }
}

/// What the layout (`ui/base.html`) needs.
pub struct Page {
    pub base: String,
    pub title: String,
    pub active: &'static str,
    pub qs: String,
    pub range: String,
    pub ranges: Vec<(String, bool)>,
    pub refreshes: Vec<(String, bool)>,
    pub refresh: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub fixed_end: bool,
    pub v: &'static str,
    /// Proxied routes: (name, href).
    pub apps: Vec<(String, String)>,
    /// The signed-in session's CSRF token (for the sign-out form); empty without a session.
    pub csrf: String,
    /// Whether the header shows the range picker (dashboards have their own).
    pub picker: bool,
}

impl Page {
    fn new(st: &UiState, r: &Range, title: impl Into<String>, active: &'static str) -> Page {
        Page {
            base: st.base.clone(),
            title: title.into(),
            active,
            qs: r.qs(),
            range: r.key.clone(),
            ranges: RANGES
                .iter()
                .map(|(k, _)| (k.to_string(), *k == r.key))
                .collect(),
            refreshes: REFRESHES
                .iter()
                .map(|k| (k.to_string(), *k == r.refresh))
                .collect(),
            refresh: r.refresh.clone(),
            start_ms: r.start_ms(),
            end_ms: r.end_ms,
            fixed_end: r.fixed_end,
            v: ASSET_VERSION,
            apps: st.apps.clone(),
            csrf: crate::auth::current_csrf(),
            picker: true,
        }
    }
}

pub(super) fn render(t: impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the server log",
            )
                .into_response()
        }
    }
}

/// An instant PromQL query at `t` (ms); a failing query logs and shows nothing.
pub(super) async fn instant(st: &UiState, q: String, t: i64) -> Vec<(Labels, f64)> {
    let expr = match crate::promql::parse(&q) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(query = %q, error = %e, "UI query does not parse");
            return Vec::new();
        }
    };
    match st.query.instant(expr, t, None).await {
        Ok(QueryValue::Vector(_, v)) => v,
        Ok(QueryValue::Scalar(_, s)) => vec![(Labels::default(), s)],
        Ok(_) => Vec::new(),
        Err(e) => {
            tracing::warn!(query = %q, error = %e, "UI query failed");
            Vec::new()
        }
    }
}

/// Values by one label.
pub(super) async fn by_label(
    st: &UiState,
    q: String,
    t: i64,
    label: &str,
) -> BTreeMap<String, f64> {
    instant(st, q, t)
        .await
        .into_iter()
        .map(|(l, v)| (l.get(label).unwrap_or_default().to_string(), v))
        .collect()
}

pub(super) fn num(v: Option<f64>, digits: usize, unit: &str) -> String {
    match v {
        // Small non-zero rates keep three significant digits instead of showing as 0.00.
        Some(v) if v.is_finite() && v != 0.0 && v.abs() < 0.1 && digits > 0 => {
            let d = (2 - v.abs().log10().floor() as i64).clamp(0, 12) as usize;
            format!("{v:.d$}{unit}")
        }
        Some(v) if v.is_finite() => format!("{v:.digits$}{unit}"),
        _ => "–".into(),
    }
}

pub(super) fn seconds(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            if v < 1.0 {
                format!("{:.1} ms", v * 1000.0)
            } else {
                format!("{v:.2} s")
            }
        }
        _ => "–".into(),
    }
}

pub(super) fn duration_us(us: u64) -> String {
    seconds(Some(us as f64 / 1e6))
}

/// A PromQL string literal for a label value.
pub(super) fn lit(s: &str) -> String {
    crate::base::gofmt::quote(s, crate::base::gofmt::QuoteStyle::Go)
}

pub(super) fn url(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A chart the page script draws: PromQL queries (`$rate` becomes a window of a few steps) with
/// their legends ("" = the series' labels), and an optional query whose non-zero points are drawn
/// as event markers.
pub struct Chart {
    pub id: String,
    pub title: String,
    pub unit: String,
    pub series: String,
    pub markers: String,
}

pub fn chart(id: &str, title: &str, unit: &str, series: &[(&str, String)]) -> Chart {
    Chart {
        id: id.into(),
        title: title.into(),
        unit: unit.into(),
        series: serde_json::to_string(series).unwrap_or_else(|_| "[]".into()),
        markers: String::new(),
    }
}

pub fn iso_ms(ms: i64) -> String {
    let (y, mo, d, sod) = crate::base::clock::civil(ms.div_euclid(1000));
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}
