//! The HTTP API: one module per way of following a poll, plus the poll
//! resource itself and the operational endpoints.

pub mod caller;
pub mod errors;
pub mod event_ws;
pub mod events;
pub mod hidden;
pub mod join_limit;
pub mod longpoll;
pub mod oembed;
pub mod openapi;
pub mod ops;
pub mod origin;
pub mod polls;
pub mod qa;
pub mod ratelimit;
pub mod schema;
pub mod security;
pub mod sse;
pub mod voter;
pub mod ws;

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::Config;
use crate::error::Error;
use crate::poll::PollId;
use crate::service::Service;
use crate::shutdown::Shutdown;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub service: Service,
    pub config: Config,
    pub instance: String,
    pub shutdown: Shutdown,
    pub metrics: PrometheusHandle,
    pub vote_limiter: ratelimit::VoteLimiter,
    /// `TALLY_CREATE_RATE`: new polls per client and minute.
    pub create_limiter: ratelimit::ClientRateLimit,
    /// `TALLY_JOIN_RATE`: failed join-code look-ups per client and minute.
    pub join_limiter: join_limit::JoinLimiter,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The response header naming the replica that answered.
pub static X_TALLY_INSTANCE: HeaderName = HeaderName::from_static("x-tally-instance");

/// Checks a poll id from a path before anything touches the store; an id
/// that cannot exist is simply not found.
pub fn poll_id(raw: &str) -> Result<PollId, Error> {
    PollId::parse(raw).map_err(|_| Error::PollNotFound)
}

/// The `{id}` of an API path, checked. Any id that cannot exist — including
/// percent-encoded bytes that are not UTF-8, which axum's `Path` would
/// reject with a plain-text 400 — is simply not found.
pub struct PollPath(pub PollId);

impl<S: Send + Sync> FromRequestParts<S> for PollPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::PollNotFound)?;
        poll_id(&raw).map(PollPath)
    }
}

/// The JSON API routes, under `/api`, plus `/healthz`, `/readyz`, `/metrics`;
/// `GET /api/openapi.json` describes them all.
pub fn routes() -> Router<AppState> {
    let api = Router::new()
        .route("/api/polls", get(polls::list).post(polls::create))
        .route("/api/polls/{id}", get(polls::show).delete(polls::delete))
        .route("/api/polls/{id}/votes", post(polls::vote))
        .route("/api/polls/{id}/close", post(polls::close))
        .route("/api/polls/{id}/reopen", post(polls::reopen))
        .route(
            "/api/polls/{id}/hidden",
            post(hidden::hide).delete(hidden::unhide),
        )
        .route("/api/polls/{id}/results.csv", get(polls::results_csv_file))
        .route("/api/polls/{id}/changes", get(longpoll::changes))
        .route("/api/polls/{id}/events", get(sse::events))
        .route("/api/polls/{id}/ws", get(ws::upgrade))
        .route(
            "/api/events",
            post(events::create).layer(DefaultBodyLimit::max(events::MAX_DECK_BYTES)),
        )
        .route("/api/events/{id}", get(events::show).delete(events::delete))
        .route("/api/events/{id}/move", post(events::move_event))
        .route("/api/events/{id}/results", post(events::results))
        .route("/api/events/{id}/voting", post(events::voting))
        .route(
            "/api/events/{id}/questions",
            post(events::append).layer(DefaultBodyLimit::max(events::MAX_DECK_BYTES)),
        )
        .route(
            "/api/events/{id}/questions/{qid}",
            axum::routing::put(events::edit).delete(events::delete_question),
        )
        .route("/api/events/{id}/order", axum::routing::put(events::order))
        .route("/api/events/{id}/results.csv", get(events::results_csv))
        .route("/api/events/{id}/changes", get(events::changes))
        .route("/api/events/{id}/events", get(events::events))
        .route("/api/events/{id}/ws", get(event_ws::upgrade))
        .route("/api/join/{code}", get(events::join))
        .route("/api/events/{id}/qa", get(qa::page).post(qa::post))
        .route(
            "/api/events/{id}/qa/{qid}/upvote",
            post(qa::upvote).delete(qa::take_back),
        )
        .route("/api/events/{id}/qa/{qid}/{action}", post(qa::moderate))
        .route("/api/stats", get(ops::stats))
        .route("/api/openapi.json", get(openapi::document))
        // One `layer` call: each wraps every route again, and so boxes one
        // more future per request.
        .layer(
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                ))
                .layer(DefaultBodyLimit::max(errors::MAX_BODY_BYTES)),
        );
    Router::new()
        .merge(api)
        .route("/oembed", get(oembed::oembed))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
}
