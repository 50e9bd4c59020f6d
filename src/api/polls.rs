//! The poll resource: create, list, read (short polling), vote, close,
//! delete.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use super::errors::{JsonBody, QueryParams};
use super::{AppState, PollPath, voter};
use crate::error::Error;
use crate::poll::{IdempotencyKey, NewPoll, VoteLimit};
use crate::store::Vote;

/// Body of `POST /api/polls`.
#[derive(Debug, Deserialize)]
pub struct CreateBody {
    pub question: String,
    pub options: Vec<String>,
    #[serde(default)]
    pub vote_limit: VoteLimit,
}

/// Body of `POST /api/polls/{id}/votes`.
#[derive(Debug, Deserialize)]
pub struct VoteBody {
    pub option: u32,
}

/// A JSON body that is already serialised text.
fn json_text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

#[tracing::instrument(skip_all)]
pub async fn create(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, Error> {
    let poll = NewPoll::parse(&body.question, &body.options, body.vote_limit)
        .map_err(|e| Error::Validation(e.0))?;
    let (results, token) = app.service.create(poll).await?;
    let location = format!("/api/polls/{}", results.id);
    let body = json!({"poll": results, "admin_token": token.as_str()});
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
}

pub async fn list(
    State(app): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response, Error> {
    let limit = match q.limit.as_deref() {
        None => 20,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| Error::BadRequest("limit must be an integer from 1 to 100".into()))?,
    };
    let polls = app.service.list(limit).await?;
    Ok(axum::Json(json!({ "polls": polls })).into_response())
}

/// Whether `If-None-Match` names this entity tag (or `*`).
fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// Short polling: the current results, with the version as `ETag`.
pub async fn show(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let results = app.service.get(&id).await?;
    let etag = format!("\"{}\"", results.version);
    if etag_matches(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok(([(header::ETAG, etag)], axum::Json(results)).into_response())
}

#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn vote(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    headers: HeaderMap,
    JsonBody(body): JsonBody<VoteBody>,
) -> Result<Response, Error> {
    app.vote_limiter
        .check(app.vote_limiter.client_ip(peer, &headers))?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| IdempotencyKey::parse(s).ok())
                .ok_or_else(|| {
                    Error::BadRequest(
                        "Idempotency-Key must be 1-64 characters of A-Z, a-z, 0-9, _ and -".into(),
                    )
                })?,
        ),
    };
    let (voter, cookie) = voter::identify(&jar, &headers);
    let jar = voter::with_cookie(jar, cookie);
    let vote = Vote {
        poll: id,
        option: body.option,
        voter,
        idempotency_key,
    };
    match app.service.vote(vote).await {
        Ok(snapshot) => {
            let body = format!("{{\"results\":{}}}", snapshot.json());
            Ok((jar, json_text(StatusCode::OK, body)).into_response())
        }
        Err(e) => Ok((jar, e).into_response()),
    }
}

/// The token of `Authorization: Bearer <token>`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub async fn close(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let snapshot = app.service.close(&id, bearer(&headers)).await?;
    Ok(json_text(StatusCode::OK, snapshot.json().to_owned()))
}

pub async fn delete(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    headers: HeaderMap,
) -> Result<StatusCode, Error> {
    app.service.delete(&id, bearer(&headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_handles_lists_weak_tags_and_star() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"1\", W/\"7\""),
        );
        assert!(etag_matches(&h, "\"7\""));
        assert!(!etag_matches(&h, "\"8\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(etag_matches(&h, "\"8\""));
    }
}
