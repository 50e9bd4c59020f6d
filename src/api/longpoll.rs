//! Long polling: `GET /api/polls/{id}/changes?since=V&timeout=S` answers as
//! soon as the poll's version passes `V`, or 204 when `S` seconds pass.
//!
//! A waiting request is a hub follower like any stream, so it costs one
//! watch receiver and wakes on the same change that pushes to WebSockets.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::errors::QueryParams;
use super::{AppState, PollPath};
use crate::error::Error;
use crate::hub::PollEvent;
use crate::service::Transport;

/// The longest wait a client may ask for.
pub const MAX_TIMEOUT_SECS: u64 = 60;

#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    since: Option<String>,
    timeout: Option<String>,
}

fn non_negative(name: &str, value: Option<&str>) -> Result<Option<u64>, Error> {
    value
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| Error::BadRequest(format!("{name} must be a non-negative integer")))
        })
        .transpose()
}

fn results_response(json: &str) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json.to_owned(),
    )
        .into_response()
}

#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn changes(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    QueryParams(q): QueryParams<ChangesQuery>,
) -> Result<Response, Error> {
    let since = non_negative("since", q.since.as_deref())?;
    let timeout = non_negative("timeout", q.timeout.as_deref())?
        .map(|s| Duration::from_secs(s.min(MAX_TIMEOUT_SECS)))
        .unwrap_or(app.config.longpoll_timeout);
    let Some(since) = since else {
        let results = app.service.get(&id).await?;
        return Ok(axum::Json(results).into_response());
    };
    let mut following = app.service.follow(&id, Transport::LongPoll).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut event = following.follower.latest();
    loop {
        match &event {
            Some(PollEvent::Deleted) => return Err(Error::PollNotFound),
            Some(PollEvent::Results(s)) if s.version() > since => {
                following.delivered();
                return Ok(results_response(s.json()));
            }
            _ => {}
        }
        tokio::select! {
            next = following.follower.next() => match next {
                Some(next) => event = Some(next),
                None => return Err(Error::ShuttingDown),
            },
            _ = tokio::time::sleep_until(deadline) => return Ok(StatusCode::NO_CONTENT.into_response()),
            _ = app.shutdown.triggered() => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}
