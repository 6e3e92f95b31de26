//! The web UI at `/ui/`: server-rendered pages (askama templates in `ui/`), static files embedded
//! from `assets/` (rust-embed; uPlot under `assets/vendor/`), and a little plain JavaScript
//! (`assets/app.js`) for charts, the trace waterfall and the time-range picker.
//!
//! Everything shown comes from whoever can send OTLP, so it is untrusted: templates escape all
//! output (askama's default), the scripts only ever set `textContent` and attributes, and every
//! response carries a Content-Security-Policy without `unsafe-inline` (no inline script or style
//! anywhere). Every link, form and asset URL carries `base_path`; every view's state is in its
//! URL. This module owns presentation only: the data comes from the trace store, the metrics
//! store through PromQL, and the counters of [`crate::telemetry`].

mod assets;
mod format;
mod map;
mod pages;
mod state;
mod trace_data;

pub use pages::Range;
pub use state::{Counters, UiState};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy every UI response carries: only Sightline itself, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `/ui/...`: the pages, the data the trace view loads, and the embedded assets, with the
/// security headers on everything (the main listener gzips what clients accept gzipped).
pub fn router(state: UiState) -> Router {
    Router::new()
        .route("/ui/", get(pages::overview::overview))
        .route("/ui/traces", get(pages::traces::traces))
        .route("/ui/trace/{id}", get(pages::trace::trace))
        .route("/ui/map", get(pages::service_map::service_map))
        .route("/ui/service/{name}", get(pages::service::service))
        .route("/ui/gpu", get(pages::gpu::gpu))
        .route("/ui/host", get(pages::host::host))
        .route("/ui/explore", get(pages::explore::explore))
        .route("/ui/logs", get(pages::logs::logs))
        .route("/ui/status", get(pages::status::status))
        .route("/ui/alerts", get(pages::alerts::alerts))
        .route("/ui/targets", get(pages::targets::targets))
        .route("/ui/dashboards", get(pages::dashboards::list))
        .route(
            "/ui/dashboards/import",
            axum::routing::post(pages::dashboards::import).layer(
                axum::extract::DefaultBodyLimit::max(4 * crate::dashboards::model::MAX_BYTES),
            ),
        )
        .route(
            "/ui/dashboards/delete",
            axum::routing::post(pages::dashboards::delete),
        )
        .route("/ui/dashboards/{uid}", get(pages::dashboards::dashboard))
        .route(
            "/ui/dashboards/{uid}/export",
            get(pages::dashboards::export),
        )
        .route(
            "/ui/alerts/silences",
            axum::routing::post(pages::alerts::create_silence),
        )
        .route(
            "/ui/alerts/silences/expire",
            axum::routing::post(pages::alerts::expire_silence),
        )
        .route("/ui/data/trace/{id}", get(trace_data::compact))
        .route("/ui/data/trace/{id}/span/{span}", get(trace_data::span))
        .route("/ui/assets/{*path}", get(assets::serve))
        .with_state(state)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}
