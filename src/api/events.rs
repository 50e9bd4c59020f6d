//! The event resource: create a deck, read its state (short polling),
//! join by code, drive it (admin), and follow it by long polling and SSE
//! ([`super::event_ws`] has the WebSocket).
//!
//! Every state answer is the whole event state (see
//! [`crate::event::view::EventSnapshot`]), so a follower never needs a
//! second read; its `cursor` orders states across moves and votes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;
use tokio::time::{Instant, Sleep, sleep_until};
use tokio_util::sync::WaitForCancellationFutureOwned;
use utoipa::ToSchema;

use super::AppState;
use super::caller::Caller;
use super::errors::{JsonBody, QueryParams};
use super::longpoll::non_negative;
use super::polls::{CreateBody, csv_field, etag_matches};
use super::schema::{AdminJsonErrors, ErrorBody};
use crate::error::Error;
use crate::event::moves::MoveBody;
use crate::event::view::{EventSnapshot, EventUpdate, View};
use crate::event::{Cursor, EventId, JoinCode};
use crate::poll::{NewPoll, PollId, now_ms};
use crate::service::{EventFollowing, Transport};

/// Largest body of a create or an append: a full deck of 100 questions.
pub const MAX_DECK_BYTES: usize = 256 * 1024;

/// The `{id}` of an event path, checked; an impossible id is not found.
pub struct EventPath(pub EventId);

impl<S: Send + Sync> FromRequestParts<S> for EventPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::EventNotFound)?;
        let raw = params
            .iter()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        EventId::parse(raw)
            .map(EventPath)
            .map_err(|_| Error::EventNotFound)
    }
}

/// The `{qid}` of a question path, checked.
pub struct QuestionPath(pub PollId);

impl<S: Send + Sync> FromRequestParts<S> for QuestionPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::PollNotFound)?;
        let raw = params
            .iter()
            .find(|(k, _)| k == "qid")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        PollId::parse(raw)
            .map(QuestionPath)
            .map_err(|_| Error::PollNotFound)
    }
}

/// `POST /api/events`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateEventBody {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// The deck, 0–100 questions, each a poll create body.
    #[serde(default)]
    pub questions: Vec<CreateBody>,
    /// New Q&A questions wait for the host's approval (default false).
    #[serde(default)]
    pub qa_moderation: bool,
}

/// `{"shown": bool}` / `{"open": bool}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShownBody {
    pub shown: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VotingBody {
    pub open: bool,
}

/// `PUT …/order`: every question id of the deck, once, in the new order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderBody {
    pub questions: Vec<String>,
}

fn parse_question(i: Option<usize>, body: &CreateBody) -> Result<NewPoll, Error> {
    body.to_poll(now_ms()).map_err(|e| match i {
        Some(i) => Error::Validation(format!("questions[{i}]: {e}")),
        None => Error::Validation(e.to_string()),
    })
}

/// The state answer for `caller`, with the cursor as ETag.
fn state_response(state: &EventSnapshot, view: View) -> Response {
    let etag = etag_of(state, view);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, HeaderValue::from_str(&etag).expect("ASCII")),
        ],
        state.json(view),
    )
        .into_response()
}

/// The state for one caller: the shared rendering plus, when the caller
/// has a voter cookie, `"upvoted"` — the ids of the board's questions they
/// upvoted (the one per-caller field; streams send it apart).
async fn caller_state_response(
    app: &AppState,
    state: &EventSnapshot,
    view: View,
    caller: &Caller,
) -> Result<Response, Error> {
    let Some(voter) = &caller.voter else {
        return Ok(state_response(state, view));
    };
    let mine = app.service.qa_upvoted(&state.record.id, voter).await?;
    let json = state.json(view);
    let mut body = Vec::with_capacity(json.len() + 32);
    body.extend_from_slice(&json[..json.len() - 1]);
    body.extend_from_slice(format!(",\"upvoted\":{}}}", json!(mine)).as_bytes());
    let mut response = state_response(state, view);
    *response.body_mut() = Body::from(body);
    Ok(response)
}

fn etag_of(state: &EventSnapshot, view: View) -> String {
    let variant = match view {
        View::Hidden => "h",
        View::Counts => "",
        View::Host => "a",
    };
    format!("\"{}{variant}\"", state.cursor)
}

/// The state as the host sees it (every admin route answers with it).
async fn admin_state(app: &AppState, id: &EventId) -> Result<Response, Error> {
    let state = app.service.fresh_event_state(id).await?;
    Ok(state_response(&state, View::Host))
}

async fn is_admin(app: &AppState, id: &EventId, caller: &Caller) -> Result<bool, Error> {
    match caller.token() {
        Some(token) => app.service.is_event_admin(id, Some(token)).await,
        None => Ok(false),
    }
}

/// Create an event
#[utoipa::path(post, path = "/api/events", tag = "events",
    request_body(content = CreateEventBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created: `{\"event\": state, \"admin_token\"}`",
            headers(("Location" = String))),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 256 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`validation_failed` (a bad question is named `questions[i]`)",
            body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateEventBody>,
) -> Result<Response, Error> {
    crate::event::parse_title(&body.title).map_err(|e| Error::Validation(format!("title: {e}")))?;
    if body.questions.len() > crate::event::MAX_QUESTIONS {
        return Err(Error::Validation(format!(
            "questions: an event holds at most {} questions",
            crate::event::MAX_QUESTIONS
        )));
    }
    let questions = body
        .questions
        .iter()
        .enumerate()
        .map(|(i, q)| parse_question(Some(i), q))
        .collect::<Result<Vec<_>, _>>()?;
    app.create_limiter
        .check(app.create_limiter.client_ip(peer, &headers))?;
    let (record, token) = app
        .service
        .create_event(&body.title, questions, body.qa_moderation)
        .await?;
    let state = app.service.fresh_event_state(&record.id).await?;
    let state_json: serde_json::Value =
        serde_json::from_slice(&state.json(View::Host)).expect("state is JSON");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/events/{}", record.id))],
        axum::Json(json!({"event": state_json, "admin_token": token.as_str()})),
    )
        .into_response())
}

/// Read an event's state (short polling)
#[utoipa::path(get, path = "/api/events/{id}", tag = "events",
    params(("id" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "The whole state; the cursor is the ETag"),
        (status = 304, description = "Not modified"),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody),
    ))]
pub async fn show(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let admin = is_admin(&app, &id, &caller).await?;
    let (state, counts) = app
        .service
        .event_state(&id, admin, caller.voter.as_ref())
        .await?;
    app.service.stats().answered_at_once(Transport::Poll);
    let etag = etag_of(&state, counts);
    if etag_matches(&headers, &etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, HeaderValue::from_str(&etag).expect("ASCII"))],
        )
            .into_response());
    }
    caller_state_response(&app, &state, counts, &caller).await
}

/// Find an event by its join code
///
/// Failed look-ups are limited per client (`TALLY_JOIN_RATE` a minute):
/// codes cannot be enumerated.
#[utoipa::path(get, path = "/api/join/{code}", tag = "events",
    params(("code" = String, Path, description = "6 digits; spaces ignored")),
    responses(
        (status = 200, description = "`{\"event\": id}`"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ))]
pub async fn join(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Response, Error> {
    let id = join_code(&app, peer, &headers, &code).await?;
    Ok(axum::Json(json!({"event": id})).into_response())
}

/// Looks a typed code up under the join limit (the pages use it too).
pub async fn join_code(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    code: &str,
) -> Result<EventId, Error> {
    let client = app.join_limiter.client_ip(peer, headers);
    app.join_limiter.before(client)?;
    let found = match JoinCode::parse(code) {
        Ok(code) => app.service.join(&code).await,
        Err(_) => Err(Error::CodeNotFound),
    };
    if matches!(found, Err(Error::CodeNotFound)) {
        app.join_limiter.failed(client)?;
    }
    found
}

/// Move the event (admin)
///
/// `{"to": index|null}` or `{"step": "next"|"prev"}`. Only the question on
/// screen takes votes; the one left closes. Safe to repeat and to race.
#[utoipa::path(post, path = "/api/events/{id}/move", tag = "events",
    params(("id" = String, Path)), security(("admin_token" = [])),
    responses(
        (status = 200, description = "The state after the move"),
        (status = 422, description = "`validation_failed`: to out of range or of the wrong type, an unknown step, both or neither", body = ErrorBody),
        AdminJsonErrors,
    ))]
pub async fn move_event(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    caller: Caller,
    body: Result<JsonBody<MoveBody>, Error>,
) -> Result<Response, Error> {
    // An unknown event is 404 and a missing token 401 before a bad body.
    let admin = app.service.authorize_event(&id, caller.token()).await?;
    let mv = body?.0.parse().map_err(|e| Error::Validation(e.0))?;
    app.service.move_event(&admin, mv).await?;
    admin_state(&app, &id).await
}

/// Show or hide the current question's counts (admin)
#[utoipa::path(post, path = "/api/events/{id}/results", tag = "events",
    params(("id" = String, Path)), security(("admin_token" = [])),
    request_body(content = ShownBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The state"),
        (status = 422, description = "`validation_failed`", body = ErrorBody),
        AdminJsonErrors,
    ))]
pub async fn results(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    caller: Caller,
    body: Result<JsonBody<ShownBody>, Error>,
) -> Result<Response, Error> {
    let admin = app.service.authorize_event(&id, caller.token()).await?;
    let JsonBody(body) = body?;
    app.service.set_results_shown(&admin, body.shown).await?;
    admin_state(&app, &id).await
}

/// Open or close voting on the current question (admin)
#[utoipa::path(post, path = "/api/events/{id}/voting", tag = "events",
    params(("id" = String, Path)), security(("admin_token" = [])),
    request_body(content = VotingBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The state"),
        (status = 422, description = "`validation_failed` (also: the event is in the lobby)", body = ErrorBody),
        AdminJsonErrors,
    ))]
pub async fn voting(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    caller: Caller,
    body: Result<JsonBody<VotingBody>, Error>,
) -> Result<Response, Error> {
    let admin = app.service.authorize_event(&id, caller.token()).await?;
    let JsonBody(body) = body?;
    app.service.set_voting(&admin, body.open).await?;
    admin_state(&app, &id).await
}

/// Append a question (admin)
#[utoipa::path(post, path = "/api/events/{id}/questions", tag = "events",
    params(("id" = String, Path)), security(("admin_token" = [])),
    request_body(content = CreateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The state"),
        (status = 422, description = "`validation_failed` (also: the deck is full)", body = ErrorBody),
        AdminJsonErrors,
    ))]
pub async fn append(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    caller: Caller,
    body: Result<JsonBody<CreateBody>, Error>,
) -> Result<Response, Error> {
    let admin = app.service.authorize_event(&id, caller.token()).await?;
    let poll = parse_question(None, &body?.0);
    app.service.append_question(&admin, poll?).await?;
    admin_state(&app, &id).await
}

/// Edit a question before its first vote (admin)
///
/// The edited question gets a new id (the reply's state has it).
#[utoipa::path(put, path = "/api/events/{id}/questions/{qid}", tag = "events",
    params(("id" = String, Path), ("qid" = String, Path)), security(("admin_token" = [])),
    request_body(content = CreateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The state"),
        (status = 409, description = "`has_votes`", body = ErrorBody),
        (status = 422, description = "`validation_failed`", body = ErrorBody),
        AdminJsonErrors,
    ))]
pub async fn edit(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    QuestionPath(qid): QuestionPath,
    caller: Caller,
    body: Result<JsonBody<CreateBody>, Error>,
) -> Result<Response, Error> {
    let admin = app.service.authorize_event(&id, caller.token()).await?;
    let poll = parse_question(None, &body?.0);
    app.service.edit_question(&admin, &qid, poll?).await?;
    admin_state(&app, &id).await
}

/// Delete a question (admin)
#[utoipa::path(delete, path = "/api/events/{id}/questions/{qid}", tag = "events",
    params(("id" = String, Path), ("qid" = String, Path)), security(("admin_token" = [])),
    responses((status = 200, description = "The state"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_question(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    QuestionPath(qid): QuestionPath,
    caller: Caller,
) -> Result<Response, Error> {
    let admin = app.service.authorize_event(&id, caller.token()).await?;
    app.service.delete_question(&admin, &qid).await?;
    admin_state(&app, &id).await
}

/// Reorder the deck (admin)
#[utoipa::path(put, path = "/api/events/{id}/order", tag = "events",
    params(("id" = String, Path)), security(("admin_token" = [])),
    request_body(content = OrderBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The state"),
        (status = 422, description = "`validation_failed`: not every question of the deck exactly once", body = ErrorBody),
        AdminJsonErrors,
    ))]
pub async fn order(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    caller: Caller,
    body: Result<JsonBody<OrderBody>, Error>,
) -> Result<Response, Error> {
    let admin = app.service.authorize_event(&id, caller.token()).await?;
    let JsonBody(body) = body?;
    let order = body
        .questions
        .iter()
        .map(|q| PollId::parse(q))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            Error::Validation("questions: give every question id of the deck exactly once".into())
        })?;
    app.service.reorder(&admin, order).await?;
    admin_state(&app, &id).await
}

/// Delete the event and every question (admin)
#[utoipa::path(delete, path = "/api/events/{id}", tag = "events",
    params(("id" = String, Path)), security(("admin_token" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    caller: Caller,
) -> Result<Response, Error> {
    let admin = app.service.authorize_event(&id, caller.token()).await?;
    app.service.delete_event(&admin).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every question's results as CSV (admin)
///
/// `question,option,label,votes`, questions in deck order.
#[utoipa::path(get, path = "/api/events/{id}/results.csv", tag = "events",
    params(("id" = String, Path)), security(("admin_token" = [])),
    responses((status = 200, description = "CSV", content_type = "text/csv", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn results_csv(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    caller: Caller,
) -> Result<Response, Error> {
    let admin = app.service.authorize_event(&id, caller.token()).await?;
    let all = app.service.event_results(&admin).await?;
    let mut csv = String::from("question,option,label,votes\r\n");
    for results in &all {
        for option in &results.options {
            csv.push_str(&format!(
                "{},{},{},{}\r\n",
                csv_field(&results.question),
                option.id,
                csv_field(&option.label),
                option.votes.unwrap_or(0)
            ));
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"event-{id}.csv\""),
            ),
        ],
        csv,
    )
        .into_response())
}

/// Query of the event long poll.
#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    since: Option<String>,
    timeout: Option<String>,
}

/// Wait for a newer state (long polling)
#[utoipa::path(get, path = "/api/events/{id}/changes", tag = "events",
    params(("id" = String, Path),
        ("since" = Option<String>, Query, description = "The cursor last seen"),
        ("timeout" = Option<u32>, Query, description = "Seconds (default 25, max 60)")),
    responses((status = 200, description = "A newer state"),
        (status = 204, description = "No change within the timeout"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn changes(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    caller: Caller,
    QueryParams(q): QueryParams<ChangesQuery>,
) -> Result<Response, Error> {
    let since = q
        .since
        .as_deref()
        .map(|s| Cursor::parse(s).ok_or_else(|| Error::BadRequest("since must be a cursor".into())))
        .transpose()?;
    let timeout = non_negative("timeout", q.timeout.as_deref())?
        .map(|s| Duration::from_secs(s.min(super::longpoll::MAX_TIMEOUT_SECS)))
        .unwrap_or(app.config.longpoll_timeout);
    let admin = is_admin(&app, &id, &caller).await?;
    let Some(since) = since else {
        let (state, counts) = app
            .service
            .event_state(&id, admin, caller.voter.as_ref())
            .await?;
        app.service.stats().answered_at_once(Transport::LongPoll);
        return caller_state_response(&app, &state, counts, &caller).await;
    };
    let mut following = app.service.follow_event(&id, Transport::LongPoll).await?;
    let deadline = Instant::now() + timeout;
    let mut update = following.follower.latest();
    loop {
        match &update {
            Some(EventUpdate::Deleted) => return Err(Error::EventNotFound),
            Some(EventUpdate::State(s)) if s.cursor.is_after(&since) => {
                following.delivered();
                return caller_state_response(&app, s, s.view_for(admin, false), &caller).await;
            }
            _ => {}
        }
        tokio::select! {
            next = following.next() => match next {
                Some(next) => update = Some(next),
                None => return Err(Error::ShuttingDown),
            },
            _ = sleep_until(deadline) => return Ok(StatusCode::NO_CONTENT.into_response()),
            _ = app.shutdown.triggered() => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

const RETRY: &[u8] = b"retry: 2000\n\n";
const KEEP_ALIVE: &[u8] = b":\n\n";

struct StreamState {
    following: EventFollowing,
    /// What the stream starts with: `retry:`, and the caller's upvotes.
    preamble: Bytes,
    admin: bool,
    last_sent: Option<Cursor>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    keep_alive: Duration,
    alive_timer: Pin<Box<Sleep>>,
    started: bool,
    done: bool,
}

/// Follow an event (Server-Sent Events)
///
/// `event: state`, `id: <cursor>`, the state as `data`; `Last-Event-ID`
/// resumes; `event: deleted` when the event is deleted.
#[utoipa::path(get, path = "/api/events/{id}/events", tag = "events",
    params(("id" = String, Path), ("Last-Event-ID" = Option<String>, Header)),
    responses((status = 200, description = "An endless event stream", content_type = "text/event-stream"),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn events(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let admin = is_admin(&app, &id, &caller).await?;
    let following = app.service.follow_event(&id, Transport::Sse).await?;
    let keep_alive = app.config.sse_keepalive;
    let last_sent = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Cursor::parse(v.trim()));
    let mut preamble = RETRY.to_vec();
    if let Some(voter) = &caller.voter {
        let mine = app.service.qa_upvoted(&id, voter).await?;
        preamble.extend_from_slice(
            format!("event: upvoted\ndata: {}\n\n", json!({"ids": mine})).as_bytes(),
        );
    }
    let state = StreamState {
        following,
        preamble: Bytes::from(preamble),
        admin,
        last_sent,
        shutdown: Box::pin(app.shutdown.triggered_owned()),
        keep_alive,
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
            let preamble = st.preamble.clone();
            return Some((Ok(preamble), st));
        }
        let mut update = st.following.follower.latest();
        loop {
            match update.take() {
                Some(EventUpdate::Deleted) => {
                    st.done = true;
                    let id = st.following.follower.key();
                    let text = format!("event: deleted\ndata: {{\"id\":\"{id}\"}}\n\n");
                    return Some((Ok(Bytes::from(text)), st));
                }
                Some(EventUpdate::State(s))
                    if st.last_sent.is_none_or(|c| s.cursor.is_after(&c)) =>
                {
                    st.last_sent = Some(s.cursor);
                    st.following.delivered();
                    let now = Instant::now();
                    st.alive_timer.as_mut().reset(now + st.keep_alive);
                    return Some((Ok(s.sse_event(s.view_for(st.admin, false))), st));
                }
                _ => {}
            }
            tokio::select! {
                next = st.following.next() => match next {
                    Some(next) => update = Some(next),
                    None => return None,
                },
                _ = st.alive_timer.as_mut() => {
                    let now = Instant::now();
                    st.alive_timer.as_mut().reset(now + st.keep_alive);
                    return Some((Ok(Bytes::from_static(KEEP_ALIVE)), st));
                }
                _ = st.shutdown.as_mut() => return None,
            }
        }
    })
}

/// The current question's id in a follower's newest state.
pub fn current_question(following: &EventFollowing) -> Option<PollId> {
    match following.follower.peek_value() {
        Some(EventUpdate::State(s)) => s.record.current.clone(),
        _ => None,
    }
}

/// The newest state a follower holds.
pub fn latest_state(following: &EventFollowing) -> Option<Arc<EventSnapshot>> {
    match following.follower.peek_value() {
        Some(EventUpdate::State(s)) => Some(s),
        _ => None,
    }
}
