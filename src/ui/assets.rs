//! Static files from `assets/`, embedded in the binary at build time (rust-embed): the UI's
//! stylesheet and script, and vendored front-end libraries under `assets/vendor/`.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "assets/"]
struct Assets;

pub async fn serve(Path(path): Path<String>) -> Response {
    match Assets::get(&path) {
        Some(f) => (
            [
                (header::CONTENT_TYPE, f.metadata.mimetype().to_string()),
                // URLs carry the version (`?v=`), so a day of caching is safe.
                (header::CACHE_CONTROL, "public, max-age=86400".to_string()),
            ],
            f.data,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
