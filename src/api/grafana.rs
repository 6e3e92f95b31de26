//! The part of Grafana's HTTP API that manages dashboards, so the tools teams already point at
//! Grafana to push, back up and list dashboards (scripts against `/api/dashboards/db`,
//! Terraform's `grafana_dashboard`, backup tools) work against Sightline unchanged:
//!
//! - `POST /api/dashboards/db` and `POST /api/dashboards/import`: `{"dashboard": {...},
//!   "overwrite": bool}` (the import's `inputs` are not needed: every Prometheus data source is
//!   Sightline); answers `{"status": "success", "uid", "url", "slug", "id", "version"}`.
//! - `GET /api/dashboards/uid/{uid}`: `{"dashboard": {...}, "meta": {...}}`.
//! - `DELETE /api/dashboards/uid/{uid}`: uploaded dashboards only.
//! - `GET /api/search?query=&tag=&type=dash-db`: the dashboards, as Grafana lists them.
//!
//! Failures answer in Grafana's shape, `{"message", "status"}`: 400 for a file that is not a
//! dashboard, 404 unknown, 412 when the uid exists (without `overwrite`) or is provisioned, 413
//! past the size limit. Folders, permissions and versions are not kept.

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::base::params::Params;
use crate::dashboards::{DashboardError, DashboardStore, Origin, model};

#[derive(Clone)]
struct St {
    store: DashboardStore,
    base: String,
}

pub fn router(store: DashboardStore, base_path: &str) -> Router {
    Router::new()
        .route("/api/dashboards/db", post(save))
        .route("/api/dashboards/import", post(save))
        .route("/api/dashboards/uid/{uid}", get(fetch).delete(remove))
        .route("/api/search", get(search))
        .layer(DefaultBodyLimit::max(2 * model::MAX_BYTES))
        .with_state(St {
            store,
            base: base_path.to_string(),
        })
}

fn refuse(e: DashboardError) -> Response {
    let status = match &e {
        DashboardError::TooLarge(_) => "too-large",
        DashboardError::Exists(_) => "name-exists",
        DashboardError::Provisioned(..) => "provisioned",
        DashboardError::NotFound(_) => "not-found",
        DashboardError::Io(err) => {
            tracing::error!(error = %err, "dashboard storage failed");
            return (
                e.http_status(),
                Json(json!({"message": "dashboard storage failed; see the server log", "status": "error"})),
            )
                .into_response();
        }
        _ => "bad-request",
    };
    (
        e.http_status(),
        Json(json!({"message": e.to_string(), "status": status})),
    )
        .into_response()
}

fn slug(title: &str) -> String {
    let s: String = title
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect();
    s.split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Grafana's numeric id, which Sightline does not keep: a stable number from the uid.
fn id_of(uid: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(uid.as_bytes()) >> 12
}

async fn save(State(st): State<St>, body: axum::body::Bytes) -> Response {
    let store = st.store.clone();
    let res = tokio::task::spawn_blocking(move || store.import(&body, None))
        .await
        .unwrap_or_else(|e| Err(DashboardError::Io(std::io::Error::other(e.to_string()))));
    match res {
        Ok(uid) => {
            let title = st.store.get(&uid).map(|e| e.title).unwrap_or_default();
            let slug = slug(&title);
            Json(json!({
                "status": "success",
                "uid": uid,
                "id": id_of(&uid),
                "slug": slug,
                "url": format!("{}/ui/dashboards/{uid}", st.base),
                "version": 1,
            }))
            .into_response()
        }
        Err(e) => refuse(e),
    }
}

async fn fetch(State(st): State<St>, Path(uid): Path<String>) -> Response {
    let Some(e) = st.store.get(&uid) else {
        return refuse(DashboardError::NotFound(uid));
    };
    let mut d = (*e.json).clone();
    if let Some(o) = d.as_object_mut() {
        o.insert("uid".into(), json!(e.uid));
        o.entry("id").or_insert(json!(id_of(&e.uid)));
    }
    let provisioned = matches!(e.origin, Origin::Provisioned(_));
    Json(json!({
        "dashboard": d,
        "meta": {
            "type": "db",
            "slug": slug(&e.title),
            "url": format!("{}/ui/dashboards/{}", st.base, e.uid),
            "provisioned": provisioned,
            "provisionedExternalId": match &e.origin { Origin::Provisioned(p) => p.display().to_string(), Origin::Uploaded => String::new() },
            "canSave": !provisioned,
            "canEdit": !provisioned,
            "canDelete": !provisioned,
            "folderUid": "",
            "folderTitle": "General",
        },
    }))
    .into_response()
}

async fn remove(State(st): State<St>, Path(uid): Path<String>) -> Response {
    let title = st.store.get(&uid).map(|e| e.title);
    let store = st.store.clone();
    let u = uid.clone();
    match tokio::task::spawn_blocking(move || store.delete(&u))
        .await
        .unwrap_or_else(|e| Err(DashboardError::Io(std::io::Error::other(e.to_string()))))
    {
        Ok(()) => {
            let title = title.unwrap_or_default();
            Json(json!({"title": title, "message": format!("Dashboard {title} deleted"), "id": id_of(&uid)}))
                .into_response()
        }
        Err(e) => refuse(e),
    }
}

async fn search(State(st): State<St>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let query = p.get("query").unwrap_or("").to_lowercase();
    let tags: Vec<&str> = p.all("tag").collect();
    // Folders are not kept; a search for folders finds none.
    if p.get("type") == Some("dash-folder") {
        return Json(json!([])).into_response();
    }
    let uids: Vec<&str> = p.all("dashboardUIDs").collect();
    let limit = p
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(5000);
    let hits: Vec<Value> = st
        .store
        .list()
        .into_iter()
        .filter(|e| query.is_empty() || e.title.to_lowercase().contains(&query))
        .filter(|e| tags.iter().all(|t| e.tags.iter().any(|x| x == t)))
        .filter(|e| uids.is_empty() || uids.contains(&e.uid.as_str()))
        .take(limit)
        .map(|e| {
            let s = slug(&e.title);
            json!({
                "id": id_of(&e.uid),
                "uid": e.uid,
                "title": e.title,
                "uri": format!("db/{s}"),
                "url": format!("{}/ui/dashboards/{}", st.base, e.uid),
                "slug": s,
                "type": "dash-db",
                "tags": e.tags,
                "isStarred": false,
                "sortMeta": 0,
            })
        })
        .collect();
    Json(Value::Array(hits)).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_as_grafana_makes_them() {
        assert_eq!(super::slug("Node Exporter Full"), "node-exporter-full");
        assert_eq!(
            super::slug("NVIDIA DCGM Exporter Dashboard"),
            "nvidia-dcgm-exporter-dashboard"
        );
        assert_eq!(super::slug("  GPU / Nodes (prod) "), "gpu-nodes-prod");
    }
}
