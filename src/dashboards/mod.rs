//! Grafana dashboards without Grafana: dashboard JSON files as Grafana exports and stores them,
//! imported through the UI or provisioned from folders (`[dashboards] dirs`), and everything
//! needed to draw them against Sightline's own PromQL engine: template variables resolved over
//! the metrics store, Grafana's interpolation, intervals and relative times, and a per-panel
//! spec (`render`) that `assets/dash.js` draws. This module owns the dashboards and their
//! meaning; the page itself (`ui::pages::dashboards`) owns only presentation.
//!
//! - `model`: reading a file (size, shape, Grafana's envelope, the pre-5.0 row layout).
//! - `store`: uploaded dashboards on disk under `<data_dir>/dashboards/`, provisioned ones.
//! - `vars`: template variables (query, custom, constant, interval, textbox, datasource).
//! - `interpolate`: `$var`, `${var:format}`, `[[var]]` as Grafana replaces them.
//! - `time`: `now-6h`, `now/d`, `$__interval`, `$__rate_interval`.
//! - `render`: sections, repeats, legacy panels mapped onto current ones, queries.
//! - `text`: text panels' Markdown, sanitised.

pub mod interpolate;
pub mod model;
pub mod render;
pub mod store;
pub mod text;
pub mod time;
pub mod vars;

pub use store::{DashboardStore, Entry, Origin};

use std::path::PathBuf;

/// Why a dashboard was refused or could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("the dashboard is {0} bytes; the limit is {max} bytes", max = model::MAX_BYTES)]
    TooLarge(usize),
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("not a Grafana dashboard: {0}")]
    Shape(String),
    #[error("the dashboard has {0} panels; the limit is {max}", max = model::MAX_PANELS)]
    TooManyPanels(usize),
    #[error("a dashboard with uid {0:?} exists; choose overwrite to replace it")]
    Exists(String),
    #[error("dashboard {0:?} is provisioned from {p}; change or remove that file instead", p = .1.display())]
    Provisioned(String, PathBuf),
    #[error("no dashboard with uid {0:?}")]
    NotFound(String),
    #[error("dashboard storage: {0}")]
    Io(#[from] std::io::Error),
}

impl DashboardError {
    /// The one mapping to HTTP status codes, for the Dashboards page and Grafana's API alike:
    /// 413 past the size limit, 412 for a uid that exists (without overwrite) or is provisioned,
    /// 404 unknown, 500 for storage failures, 400 for everything wrong with the file.
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            DashboardError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            DashboardError::Exists(_) | DashboardError::Provisioned(..) => {
                StatusCode::PRECONDITION_FAILED
            }
            DashboardError::NotFound(_) => StatusCode::NOT_FOUND,
            DashboardError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
            DashboardError::Json(_)
            | DashboardError::Shape(_)
            | DashboardError::TooManyPanels(_) => StatusCode::BAD_REQUEST,
        }
    }
}
