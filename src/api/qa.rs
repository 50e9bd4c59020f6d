//! Audience Q&A over HTTP: post, upvote (and take it back), moderate, and
//! page through the board. The board itself reaches followers inside the
//! event state on every transport ([`super::events`], [`super::event_ws`]).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::caller::Caller;
use super::errors::{JsonBody, QueryParams};
use super::events::EventPath;
use super::schema::ErrorBody;
use super::{AppState, voter};
use crate::error::Error;
use crate::event::qa::{Action, Item, NewQuestion};

/// `POST /api/events/{id}/qa`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostBody {
    #[schema(min_length = 1, max_length = 280)]
    pub text: String,
    #[schema(max_length = 40)]
    pub name: Option<String>,
}

/// The `{qid}` of a Q&A path: a question number; anything else is not found.
pub struct QaPath(pub u32);

impl<S: Send + Sync> FromRequestParts<S> for QaPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::QuestionNotFound)?;
        params
            .iter()
            .find(|(k, _)| k == "qid")
            .and_then(|(_, v)| v.parse::<u32>().ok())
            .filter(|&n| n > 0)
            .map(QaPath)
            .ok_or(Error::QuestionNotFound)
    }
}

fn with_cookie(mut response: Response, cookie: Option<header::HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Post a question to the event's board
///
/// Anyone following the event may post: text 1–280 characters, an
/// optional name of at most 40. On an event with `qa_moderation` it waits
/// (`status: pending`) until the host approves it. One post per voter every
/// 10 s; at most 2,000 questions per event.
#[utoipa::path(post, path = "/api/events/{id}/qa", tag = "qa",
    params(("id" = String, Path)),
    request_body(content = PostBody, content_type = "application/json"),
    responses(
        (status = 201, description = "`{\"question\": …}`"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 409, description = "`too_many_questions`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: empty or too long text or name", body = ErrorBody),
        (status = 429, description = "`rate_limited`: a second post within 10 s", body = ErrorBody,
            headers(("Retry-After" = u32))),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn post(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PostBody>,
) -> Result<Response, Error> {
    let question =
        NewQuestion::parse(&body.text, body.name.as_deref()).map_err(|e| Error::Validation(e.0))?;
    let (voter, cookie) = voter::identify_for_header(&headers);
    let item = app.service.qa_post(&id, &voter, &question).await?;
    let response = (StatusCode::CREATED, axum::Json(json!({"question": item}))).into_response();
    Ok(with_cookie(response, cookie))
}

async fn upvote_as(
    app: &AppState,
    id: &crate::event::EventId,
    qid: u32,
    headers: &HeaderMap,
    up: bool,
) -> Result<Response, Error> {
    let (voter, cookie) = voter::identify_for_header(headers);
    let item = app.service.qa_upvote(id, qid, &voter, up).await?;
    let response = axum::Json(json!({"question": item, "upvoted": up})).into_response();
    Ok(with_cookie(response, cookie))
}

/// Upvote a question
///
/// One upvote per voter (repeating it changes nothing), never on one's own
/// question (409 `own_question`); an unknown, pending or hidden question
/// is 404 `question_not_found`.
#[utoipa::path(post, path = "/api/events/{id}/qa/{qid}/upvote", tag = "qa",
    params(("id" = String, Path), ("qid" = u32, Path)),
    responses(
        (status = 200, description = "`{\"question\": …, \"upvoted\": true}`"),
        (status = 404, description = "`event_not_found` or `question_not_found`", body = ErrorBody),
        (status = 409, description = "`own_question`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn upvote(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    QaPath(qid): QaPath,
    headers: HeaderMap,
) -> Result<Response, Error> {
    upvote_as(&app, &id, qid, &headers, true).await
}

/// Take an upvote back
#[utoipa::path(delete, path = "/api/events/{id}/qa/{qid}/upvote", tag = "qa",
    params(("id" = String, Path), ("qid" = u32, Path)),
    responses(
        (status = 200, description = "`{\"question\": …, \"upvoted\": false}`"),
        (status = 404, description = "`event_not_found` or `question_not_found`", body = ErrorBody),
        (status = 409, description = "`own_question`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn take_back(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    QaPath(qid): QaPath,
    headers: HeaderMap,
) -> Result<Response, Error> {
    upvote_as(&app, &id, qid, &headers, false).await
}

/// Moderate a question (admin)
///
/// `approve` shows a pending question; `hide` takes it off everyone's
/// board but the host's; `answer` moves it after the open ones; `pin` puts
/// it first (one pin at a time: pinning another moves the pin, pinning the
/// pinned one unpins it).
#[utoipa::path(post, path = "/api/events/{id}/qa/{qid}/{action}", tag = "qa",
    params(("id" = String, Path), ("qid" = u32, Path),
        ("action" = String, Path, description = "approve, hide, answer or pin")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "`{\"question\": …}`"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`event_not_found`, `question_not_found` or an unknown action", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn moderate(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    QaPath(qid): QaPath,
    Path(params): Path<Vec<(String, String)>>,
    caller: Caller,
) -> Result<Response, Error> {
    let admin = app.service.authorize_event(&id, caller.token()).await?;
    let action = params
        .iter()
        .find(|(k, _)| k == "action")
        .and_then(|(_, v)| Action::parse(v))
        .ok_or(Error::NotFound)?;
    let item = app.service.qa_moderate(&admin, qid, action).await?;
    Ok(axum::Json(json!({"question": item})).into_response())
}

/// Query of `GET …/qa`.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    offset: Option<String>,
    limit: Option<String>,
}

/// Page through the board
///
/// Public questions in board order (the pinned one first, then by votes
/// and age, answered ones last), `offset` 0… and `limit` 1–100 (default
/// 50); `upvoted` lists the caller's upvotes among them.
#[utoipa::path(get, path = "/api/events/{id}/qa", tag = "qa",
    params(("id" = String, Path),
        ("offset" = Option<u32>, Query), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "`{\"questions\": […], \"public\": n, \"upvoted\": […]}`"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn page(
    State(app): State<AppState>,
    EventPath(id): EventPath,
    caller: Caller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, Error> {
    let number =
        |name: &str, v: Option<&str>, default: usize, range: std::ops::RangeInclusive<usize>| {
            match v {
                None => Ok(default),
                Some(s) => s
                    .parse::<usize>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| {
                        Error::BadRequest(format!("{name} must be an integer in {range:?}"))
                    }),
            }
        };
    let offset = number("offset", q.offset.as_deref(), 0, 0..=2_000)?;
    let limit = number("limit", q.limit.as_deref(), 50, 1..=100)?;
    let (items, public) = app.service.qa_page(&id, offset, limit).await?;
    let upvoted = upvoted_among(&app, &id, &caller, &items).await?;
    Ok(
        axum::Json(json!({"questions": items, "public": public, "upvoted": upvoted}))
            .into_response(),
    )
}

/// The caller's upvotes among `items` (none without a voter cookie).
pub async fn upvoted_among(
    app: &AppState,
    id: &crate::event::EventId,
    caller: &Caller,
    items: &[Item],
) -> Result<Vec<u32>, Error> {
    let Some(voter) = &caller.voter else {
        return Ok(Vec::new());
    };
    let mine = app.service.qa_upvoted(id, voter).await?;
    Ok(items
        .iter()
        .map(|i| i.id)
        .filter(|id| mine.contains(id))
        .collect())
}
