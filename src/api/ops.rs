//! Operational endpoints: liveness, readiness and Prometheus metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::AppState;

/// The process is alive and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The instance can do its job: the store answers and, with Redis, changes
/// from other instances arrive. Load balancers route only to ready ones.
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let ready = tokio::time::timeout(Duration::from_secs(2), app.service.ready())
        .await
        .unwrap_or(false);
    if ready && !app.shutdown.is_triggered() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Prometheus text exposition.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    app.metrics.run_upkeep();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render(),
    )
}
