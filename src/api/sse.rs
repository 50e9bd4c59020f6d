//! Server-Sent Events: `GET /api/polls/{id}/events`.
//!
//! The stream opens with `retry: 2000`, then sends `event: results` with
//! `id: <version>` at once (or, with `Last-Event-ID`, once the version
//! passes it) and on every change; `event: deleted` ends it, and so does
//! shutdown, so the browser reconnects to another instance.
//!
//! Every results event is the snapshot's own [`Snapshot::sse_event`] text,
//! built once per version and shared by every stream of the instance: a
//! delivery copies a reference, not the JSON. The keep-alive comment is
//! written after `sse_keepalive` without an event; its timer is re-armed
//! only when it fires, not on every event.
//!
//! [`Snapshot::sse_event`]: crate::poll::Snapshot::sse_event

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use std::pin::Pin;

use tokio::time::{Duration, Instant, Sleep, sleep_until};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::caller::Caller;
use super::schema::{self, ErrorBody};
use super::{AppState, PollPath};
use crate::error::Error;
use crate::hub::PollEvent;
use crate::service::{Following, Transport};
use crate::visibility::Viewer;

/// Opens every stream: browsers wait 2 s before reconnecting.
const RETRY: &[u8] = b"retry: 2000\n\n";
/// The keep-alive comment.
const KEEP_ALIVE: &[u8] = b":\n\n";

struct StreamState {
    following: Following,
    /// Decides, per version, the shared variant this stream sends.
    viewer: Viewer,
    last_sent: Option<u64>,
    /// Registered once for the stream's life, not once per wait.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    keep_alive: Duration,
    /// When something was last written; the keep-alive is due a
    /// `keep_alive` after it.
    last_write: Instant,
    /// Fires at the keep-alive deadline as it was when last armed; events
    /// written since only move the deadline when it fires.
    alive_timer: Pin<Box<Sleep>>,
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
    params(schema::PollIdParam,
        ("Last-Event-ID" = Option<String>, Header,
            description = "The last version seen; ignored unless an integer")),
    responses(
        (status = 200, description = "An endless event stream; the schema is one event's",
            content_type = "text/event-stream", body = schema::SseEvent),
        (status = 404, description = "`poll_not_found`", body = ErrorBody),
        (status = 503, description = "`too_many_connections` or `store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn events(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let following = app.service.follow(&id, Transport::Sse).await?;
    let caller = Caller::of(&headers);
    let viewer = app
        .service
        .follower_viewer(&following, caller.token(), caller.voter.as_ref())
        .await?;
    let keep_alive = app.config.sse_keepalive;
    let state = StreamState {
        following,
        viewer,
        last_sent: last_event_id(&headers),
        shutdown: Box::pin(app.shutdown.triggered_owned()),
        keep_alive,
        last_write: Instant::now(),
        alive_timer: Box::pin(sleep_until(Instant::now() + keep_alive)),
        started: false,
        done: false,
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(event_stream(state)),
    )
        .into_response())
}

fn event_stream(state: StreamState) -> impl Stream<Item = Result<Bytes, Infallible>> {
    stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if !st.started {
            st.started = true;
            st.last_write = Instant::now();
            return Some((Ok(Bytes::from_static(RETRY)), st));
        }
        let mut event = st.following.follower.latest();
        loop {
            match event.take() {
                Some(PollEvent::Deleted) => {
                    st.done = true;
                    let id = st.following.follower.poll_id();
                    let text = format!("event: deleted\ndata: {{\"id\":\"{id}\"}}\n\n");
                    return Some((Ok(Bytes::from(text)), st));
                }
                Some(PollEvent::Results(s))
                    if st.last_sent.is_none_or(|last| s.version() > last) =>
                {
                    st.last_sent = Some(s.version());
                    st.last_write = Instant::now();
                    st.following.delivered();
                    return Some((Ok(s.for_viewer(&st.viewer).sse_event()), st));
                }
                _ => {}
            }
            tokio::select! {
                next = st.following.next() => match next {
                    Some(next) => event = Some(next),
                    None => return None,
                },
                _ = st.alive_timer.as_mut() => {
                    let due = st.last_write + st.keep_alive;
                    let now = Instant::now();
                    if due > now {
                        // Something was written since it was armed.
                        st.alive_timer.as_mut().reset(due);
                        continue;
                    }
                    st.last_write = now;
                    st.alive_timer.as_mut().reset(now + st.keep_alive);
                    return Some((Ok(Bytes::from_static(KEEP_ALIVE)), st));
                }
                _ = st.shutdown.as_mut() => return None,
            }
        }
    })
}
