//! A word cloud's host hides an entry (a rude word on the projector) and
//! shows it again. Hidden entries keep counting; they leave everyone's
//! results but the host's.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::caller::bearer;
use super::errors::JsonBody;
use super::schema::{self, ErrorBody};
use super::{AppState, PollPath};
use crate::error::Error;
use crate::poll::{Results, wordcloud};

/// Body of `POST` / `DELETE /api/polls/{id}/hidden`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"text": "rude word"}))]
pub struct HiddenBody {
    /// The entry, normalised as a vote's entries are (so any spelling of
    /// it names it).
    #[schema(min_length = 1, max_length = 120)]
    pub text: String,
}

async fn set(
    app: AppState,
    id: PollPath,
    headers: HeaderMap,
    body: HiddenBody,
    hidden: bool,
) -> Result<Response, Error> {
    let text = wordcloud::normalise(&body.text)
        .map_err(|e| Error::Validation(e.0.replacen("entries: an entry", "text", 1)))?;
    let snapshot = app
        .service
        .set_hidden(&id.0, bearer(&headers), &text, hidden)
        .await?;
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        snapshot.json().to_owned(),
    )
        .into_response())
}

/// Hide a word-cloud entry
///
/// The entry keeps counting but leaves everyone's results but the host's
/// (entries, `distinct`, `total`), on every transport. Hiding a hidden
/// entry changes nothing. A host hides at most 50 entries.
#[utoipa::path(post, path = "/api/polls/{id}/hidden", tag = "polls",
    params(schema::PollIdParam),
    security(("admin_token" = [])),
    request_body(content = HiddenBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The results as the host sees them", body = Results),
        (status = 400, description = "`bad_request`: not JSON", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no admin token", body = ErrorBody),
        (status = 403, description = "`forbidden` (wrong token) or `cross_site_request`", body = ErrorBody),
        (status = 404, description = "`poll_not_found`", body = ErrorBody),
        (status = 409, description = "`too_many_entries`: 50 entries are hidden already", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: not a word cloud, or no entry in `text`",
            body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn hide(
    State(app): State<AppState>,
    id: PollPath,
    headers: HeaderMap,
    JsonBody(body): JsonBody<HiddenBody>,
) -> Result<Response, Error> {
    set(app, id, headers, body, true).await
}

/// Show a hidden word-cloud entry again
///
/// Showing an entry that is not hidden changes nothing.
#[utoipa::path(delete, path = "/api/polls/{id}/hidden", tag = "polls",
    params(schema::PollIdParam),
    security(("admin_token" = [])),
    request_body(content = HiddenBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The results as the host sees them", body = Results),
        (status = 400, description = "`bad_request`: not JSON", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no admin token", body = ErrorBody),
        (status = 403, description = "`forbidden` (wrong token) or `cross_site_request`", body = ErrorBody),
        (status = 404, description = "`poll_not_found`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: not a word cloud, or no entry in `text`",
            body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn unhide(
    State(app): State<AppState>,
    id: PollPath,
    headers: HeaderMap,
    JsonBody(body): JsonBody<HiddenBody>,
) -> Result<Response, Error> {
    set(app, id, headers, body, false).await
}
