//! Server-Sent Events: `GET /api/polls/{id}/events`.
//!
//! The stream opens with `retry: 2000`, then sends `event: results` with
//! `id: <version>` at once (or, with `Last-Event-ID`, once the version
//! passes it) and on every change; `event: deleted` ends it, and so does
//! shutdown, so the browser reconnects to another instance.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use tokio_util::sync::CancellationToken;

use super::openapi::{self, ErrorBody};
use super::{AppState, PollPath};
use crate::error::Error;
use crate::hub::PollEvent;
use crate::service::{Following, Transport};

/// How long a browser waits before reconnecting.
const RETRY: Duration = Duration::from_millis(2000);

struct StreamState {
    following: Following,
    last_sent: Option<u64>,
    shutdown: CancellationToken,
    started: bool,
    done: bool,
}

fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Follow a poll (Server-Sent Events)
///
/// `retry: 2000` first, then `event: results` with `id: <version>` and the
/// results as data, at once (or, with `Last-Event-ID`, once the version
/// passes it) and on every change; `event: deleted` ends the stream. A
/// keep-alive comment every 15 s.
#[utoipa::path(get, path = "/api/polls/{id}/events", tag = "follow",
    params(openapi::PollIdParam,
        ("Last-Event-ID" = Option<String>, Header,
            description = "The last version seen; ignored unless an integer")),
    responses(
        (status = 200, description = "An endless event stream; the schema is one event's",
            content_type = "text/event-stream", body = openapi::SseEvent),
        (status = 404, description = "`poll_not_found`", body = ErrorBody),
        (status = 503, description = "`too_many_connections` or `store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn events(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Error> {
    let following = app.service.follow(&id, Transport::Sse).await?;
    let state = StreamState {
        following,
        last_sent: last_event_id(&headers),
        shutdown: app.shutdown.token(),
        started: false,
        done: false,
    };
    let keep_alive = KeepAlive::new().interval(app.config.sse_keepalive);
    Ok(Sse::new(event_stream(state)).keep_alive(keep_alive))
}

fn event_stream(state: StreamState) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if !st.started {
            st.started = true;
            return Some((Ok(Event::default().retry(RETRY)), st));
        }
        let mut event = st.following.follower.latest();
        loop {
            match event {
                Some(PollEvent::Deleted) => {
                    st.done = true;
                    let data = format!("{{\"id\":\"{}\"}}", st.following.follower.poll_id());
                    return Some((Ok(Event::default().event("deleted").data(data)), st));
                }
                Some(PollEvent::Results(s))
                    if st.last_sent.is_none_or(|last| s.version() > last) =>
                {
                    st.last_sent = Some(s.version());
                    st.following.delivered();
                    let ev = Event::default()
                        .event("results")
                        .id(s.version().to_string())
                        .data(s.json());
                    return Some((Ok(ev), st));
                }
                _ => {}
            }
            tokio::select! {
                next = st.following.next() => match next {
                    Some(next) => event = Some(next),
                    None => return None,
                },
                _ = st.shutdown.cancelled() => return None,
            }
        }
    })
}
