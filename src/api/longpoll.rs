//! Long polling: `GET /api/polls/{id}/changes?since=V&timeout=S` answers as
//! soon as the poll's version passes `V`, or 204 when `S` seconds pass.
//!
//! A waiting request is a hub follower like any stream, so it costs one
//! watch receiver and wakes on the same change that pushes to WebSockets.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use super::caller::Caller;
use super::errors::QueryParams;
use super::polls::viewer_of;
use super::schema::{self, ErrorBody};
use super::{AppState, PollPath};
use crate::error::Error;
use crate::hub::PollEvent;
use crate::poll::Results;
use crate::service::Transport;

/// The longest wait a client may ask for.
pub const MAX_TIMEOUT_SECS: u64 = 60;

/// Query of a long poll; both checked by hand so a bad value is a 400.
#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    since: Option<String>,
    timeout: Option<String>,
}

pub(crate) fn non_negative(name: &str, value: Option<&str>) -> Result<Option<u64>, Error> {
    value
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| Error::BadRequest(format!("{name} must be a non-negative integer")))
        })
        .transpose()
}

/// The snapshot's shared JSON body: no copy of the results per answer.
fn results_response(json: Bytes) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json,
    )
        .into_response()
}

/// Wait for a change (long polling)
///
/// Answers as soon as the version passes `since` (at once if it already
/// has; at once when `since` is absent), or 204 when `timeout` passes.
#[utoipa::path(get, path = "/api/polls/{id}/changes", tag = "follow",
    params(schema::PollIdParam,
        ("since" = Option<schema::NonNegativeInteger>, Query, description = "The last version seen"),
        ("timeout" = Option<schema::NonNegativeInteger>, Query,
            description = "Seconds to wait (default 25); any value above 60 counts as 60")),
    responses(
        (status = 200, description = "Results newer than `since`", body = Results),
        (status = 204, description = "No change within the timeout (or the instance is shutting down)"),
        (status = 400, description = "`bad_request`: since or timeout is not a non-negative integer",
            body = ErrorBody),
        (status = 404, description = "`poll_not_found` (also when deleted while waiting)", body = ErrorBody),
        (status = 503, description = "`too_many_connections`, `store_unavailable` or `shutting_down`",
            body = ErrorBody, headers(("Retry-After" = u32))),
    ))]
#[tracing::instrument(level = "debug", skip_all, fields(poll = %id))]
pub async fn changes(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    caller: Caller,
    QueryParams(q): QueryParams<ChangesQuery>,
) -> Result<Response, Error> {
    let since = non_negative("since", q.since.as_deref())?;
    let timeout = non_negative("timeout", q.timeout.as_deref())?
        .map(|s| Duration::from_secs(s.min(MAX_TIMEOUT_SECS)))
        .unwrap_or(app.config.longpoll_timeout);
    let Some(since) = since else {
        let results = app.service.get(&id).await?;
        let viewer = viewer_of(&app, &results, &caller).await?;
        app.service.stats().answered_at_once(Transport::LongPoll);
        return Ok(axum::Json(viewer.view(results)).into_response());
    };
    let mut following = app.service.follow(&id, Transport::LongPoll).await?;
    let viewer = app
        .service
        .follower_viewer(&following, caller.token(), caller.voter.as_ref())
        .await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut event = following.follower.latest();
    loop {
        match &event {
            Some(PollEvent::Deleted) => return Err(Error::PollNotFound),
            Some(PollEvent::Results(s)) if s.version() > since => {
                following.delivered();
                return Ok(results_response(s.for_viewer(&viewer).json_body()));
            }
            _ => {}
        }
        tokio::select! {
            next = following.next() => match next {
                Some(next) => event = Some(next),
                None => return Err(Error::ShuttingDown),
            },
            _ = tokio::time::sleep_until(deadline) => return Ok(StatusCode::NO_CONTENT.into_response()),
            _ = app.shutdown.triggered() => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}
