//! Operational endpoints: liveness, readiness, Prometheus metrics and this
//! instance's own counts (`/api/stats`).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::AppState;
use crate::stats::StatsBody;

/// The process is alive and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Alive", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The instance can do its job: the store answers and, with Redis, changes
/// from other instances arrive. Load balancers route only to ready ones.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "Ready", content_type = "text/plain", body = String),
        (status = 503, description = "Not ready: store unreachable, changes not arriving, or shutting down",
            content_type = "text/plain", body = String),
    ))]
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    if is_ready(&app).await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Whether the instance is ready: the store answers within 2 s, changes
/// arrive, and it is not shutting down.
async fn is_ready(app: &AppState) -> bool {
    let ready = tokio::time::timeout(Duration::from_secs(2), app.service.ready())
        .await
        .unwrap_or(false);
    ready && !app.shutdown.is_triggered()
}

/// Prometheus text exposition. Readiness is measured at each scrape
/// (`tally_ready`), so an alert sees what a load balancer sees.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    crate::metrics::set_ready(is_ready(&app).await);
    app.metrics.run_upkeep();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render(),
    )
}

/// This instance's followers and deliveries per transport, and votes
///
/// Counted by the instance that answers (see `instance`), since it
/// started; behind a load balancer, each replica counts its own. The
/// transport lab (`/polls/{id}/lab`) shows it beside the browser's figures.
#[utoipa::path(get, path = "/api/stats", tag = "ops",
    responses((status = 200, description = "This instance's counts", body = StatsBody)))]
pub async fn stats(State(app): State<AppState>) -> Json<StatsBody> {
    Json(app.service.stats().snapshot(&app.instance))
}
