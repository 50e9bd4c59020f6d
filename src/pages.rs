//! HTML pages (being built).

use axum::Router;

use crate::api::AppState;

/// The page routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
