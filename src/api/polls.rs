//! The poll resource: create, list, read (short polling), vote, close,
//! delete.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::caller::{Caller, bearer};
use super::errors::{JsonBody, QueryParams};
use super::schema::{self, CreatedPoll, ErrorBody, PollList, VoteResults};
use super::{AppState, PollPath, voter};
use crate::error::Error;
use crate::poll::{
    Choice, IdempotencyKey, KindInput, KindName, NewPoll, Results, ResultsVisibility, Scale,
    SettingsInput, VoteLimit, now_ms,
};
use crate::store::Vote;
use crate::visibility::Viewer;

/// Body of `POST /api/polls`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"question": "Tabs or spaces?", "options": ["tabs", "spaces"]}))]
pub struct CreateBody {
    /// Trimmed; 1–300 Unicode scalar values after trimming.
    #[schema(min_length = 1, max_length = 300)]
    pub question: String,
    /// 2–20 labels (a ranking: 2–10), each 1–100 Unicode scalar values
    /// after trimming, distinct after trimming; none for a word cloud or a
    /// scale.
    #[schema(schema_with = schema::option_labels)]
    #[serde(default)]
    pub options: Vec<String>,
    /// What the poll asks (default `choice`).
    pub kind: Option<KindName>,
    /// Word cloud: entries one vote may carry, 1–3 (default 1).
    #[schema(minimum = 1, maximum = 3)]
    pub max_entries: Option<u32>,
    /// Scale: its bounds (min 0 or 1, max 2–10; default 1–5) and end labels.
    pub scale: Option<Scale>,
    #[serde(default)]
    pub vote_limit: VoteLimit,
    /// How many options one vote may choose: 1 to the number of options
    /// (default 1).
    #[schema(minimum = 1, maximum = 20)]
    pub max_choices: Option<u32>,
    /// Whether a voter may replace their vote (default false); only with
    /// `vote_limit` `one_per_voter`.
    pub allow_change: Option<bool>,
    /// Who sees the counts while the poll runs (default `always`): the
    /// host always; with `after_vote` a voter who has voted; with
    /// `after_close` everyone once it is closed.
    pub results: Option<ResultsVisibility>,
    /// RFC 3339 date and time, in the future and at most a year away, from
    /// which votes are refused and the poll is closed.
    #[schema(format = DateTime)]
    pub closes_at: Option<String>,
    /// Whether `GET /api/polls` lists the poll (default false: reachable by
    /// its link only).
    pub listed: Option<bool>,
}

impl CreateBody {
    /// The poll this body describes, checked (`now_ms` for `closes_at`).
    pub fn to_poll(&self, now_ms: u64) -> Result<NewPoll, crate::poll::Invalid> {
        NewPoll::parse_kind(
            &self.question,
            &self.options,
            self.vote_limit,
            &self.kind_input(),
        )
        .and_then(|poll| poll.with_settings(&self.settings(), now_ms))
    }

    /// The kind fields, for [`NewPoll::parse_kind`].
    pub fn kind_input(&self) -> KindInput {
        KindInput {
            kind: self.kind,
            max_entries: self.max_entries,
            scale: self.scale.clone(),
        }
    }

    fn settings(&self) -> SettingsInput {
        SettingsInput {
            max_choices: self.max_choices,
            allow_change: self.allow_change,
            results: self.results,
            closes_at: self.closes_at.clone(),
            listed: self.listed,
        }
    }
}

/// Body of `POST /api/polls/{id}/votes`: exactly one of `option` or
/// `options` (choice), `entries` (word cloud), `value` (scale), `ranking`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct VoteBody {
    /// One option's 0-based index (below the poll's option count, so at
    /// most 19).
    #[schema(maximum = 19)]
    #[serde(default, deserialize_with = "present")]
    pub option: Option<u32>,
    /// Several distinct options, 1 to the poll's `max_choices`.
    #[schema(schema_with = schema::vote_options)]
    #[serde(default, deserialize_with = "present")]
    pub options: Option<Vec<u32>>,
    /// Word cloud: 1 to the poll's `max_entries` entries, each 1–30
    /// characters once normalised (equal ones count once).
    #[schema(min_items = 1, max_items = 3)]
    #[serde(default, deserialize_with = "present")]
    pub entries: Option<Vec<String>>,
    /// Scale: a value from the scale's min to its max.
    #[schema(maximum = 10)]
    #[serde(default, deserialize_with = "present")]
    pub value: Option<u32>,
    /// Ranking: every option's index once, first to last.
    #[schema(min_items = 2, max_items = 10)]
    #[serde(default, deserialize_with = "present")]
    pub ranking: Option<Vec<u32>>,
}

/// A field that may be left out but, when sent, holds a value: `null` is
/// refused like any other wrong type, as the OpenAPI schema says.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl VoteBody {
    /// The vote's choice, or why the body is not one.
    pub fn choice(&self) -> Result<Choice, Error> {
        let given = [
            self.option.is_some(),
            self.options.is_some(),
            self.entries.is_some(),
            self.value.is_some(),
            self.ranking.is_some(),
        ];
        match given.iter().filter(|g| **g).count() {
            0 => {
                return Err(Error::Validation(
                    "option (one index) or options (a list) is required; entries, value or \
                     ranking for a word cloud, a scale or a ranking"
                        .into(),
                ));
            }
            1 => {}
            _ if given[2..].iter().all(|g| !g) => {
                return Err(Error::Validation("send option or options, not both".into()));
            }
            _ => {
                return Err(Error::Validation(
                    "send one of option, options, entries, value or ranking".into(),
                ));
            }
        }
        let invalid = |e: crate::poll::Invalid| Error::Validation(e.0);
        if let Some(option) = self.option {
            Ok(Choice::one(option))
        } else if let Some(options) = &self.options {
            Choice::parse(options).map_err(invalid)
        } else if let Some(entries) = &self.entries {
            Choice::entries(entries).map_err(invalid)
        } else if let Some(value) = self.value {
            Ok(Choice::value(value))
        } else {
            Choice::ranking(self.ranking.as_deref().unwrap_or_default()).map_err(invalid)
        }
    }
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

/// Create a poll
///
/// Answers the poll's results and its admin token, which is shown only
/// here (the server keeps only its SHA-256).
#[utoipa::path(post, path = "/api/polls", tag = "polls",
    request_body(content = CreateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = CreatedPoll,
            headers(("Location" = String, description = "The poll's API URL, /api/polls/{id}"))),
        (status = 400, description = "`bad_request`: the body is not JSON", body = ErrorBody),
        (status = 403, description = "`cross_site_request`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 16 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not application/json", body = ErrorBody),
        (status = 422, description = "`validation_failed`: wrong shape or limits", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client created its allowance of polls \
            (`TALLY_CREATE_RATE` a minute, default 10); nothing is created", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds until the next poll is allowed"))),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, Error> {
    let poll = body.to_poll(now_ms()).map_err(|e| Error::Validation(e.0))?;
    // Only a valid poll takes from the allowance: a refused body made nothing.
    app.create_limiter
        .check(app.create_limiter.client_ip(peer, &headers))?;
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

/// Query of `GET /api/polls`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
}

/// List the newest listed polls
///
/// Only polls created with `listed: true` (and the demo poll), closed ones
/// included, newest first. Counts follow each poll's `results` rule.
#[utoipa::path(get, path = "/api/polls", tag = "polls",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100,
        description = "How many polls (default 20)")),
    responses(
        (status = 200, description = "The newest polls", body = PollList),
        (status = 400, description = "`bad_request`: limit is not an integer from 1 to 100", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
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
    let voter = caller.voter;
    let mut polls = Vec::new();
    for results in app.service.list(limit).await? {
        let viewer = app.service.viewer(&results, None, voter.as_ref()).await?;
        polls.push(viewer.view(results));
    }
    Ok(axum::Json(json!({ "polls": polls })).into_response())
}

/// Whether `If-None-Match` names this entity tag (or `*`).
pub(crate) fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// Read a poll's results (short polling)
///
/// The version is the `ETag`; `If-None-Match` with it answers 304. Counts
/// follow the poll's `results` rule (`results_hidden`); the admin token
/// (`Authorization: Bearer`) always shows them.
#[utoipa::path(get, path = "/api/polls/{id}", tag = "polls",
    params(schema::PollIdParam,
        ("If-None-Match" = Option<String>, Header, description = "An ETag seen before, e.g. \"17\"")),
    responses(
        (status = 200, description = "The current results", body = Results,
            headers(("ETag" = String, description = "The version, quoted"))),
        (status = 304, description = "Not modified since the ETag given",
            headers(("ETag" = String))),
        (status = 404, description = "`poll_not_found`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn show(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let results = app.service.get(&id).await?;
    let results = viewer_of(&app, &results, &Caller::of(&headers))
        .await?
        .view(results);
    let etag = format!("\"{}\"", results.version);
    let modified = !etag_matches(&headers, &etag);
    app.service.stats().short_poll_answered(modified);
    if !modified {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok(([(header::ETAG, etag)], axum::Json(results)).into_response())
}

/// Vote
///
/// Answers the results right after this vote. A retry with the same
/// `Idempotency-Key` replays the first outcome and counts nothing, even
/// after the poll has closed. Sets the
/// `tally_voter` cookie when the request had none.
#[utoipa::path(post, path = "/api/polls/{id}/votes", tag = "polls",
    params(schema::PollIdParam,
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[A-Za-z0-9_-]{1,64}$",
            description = "Makes retries safe: the vote counts once per key and poll (24 h, TALLY_IDEMPOTENCY_TTL)")),
    request_body(content = VoteBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Counted (or replayed)", body = VoteResults),
        (status = 400, description = "`bad_request`: not JSON, or a malformed Idempotency-Key", body = ErrorBody),
        (status = 403, description = "`cross_site_request`", body = ErrorBody),
        (status = 404, description = "`poll_not_found`", body = ErrorBody),
        (status = 409, description = "`already_voted` or `poll_closed`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`validation_failed`, `option_not_found` or `idempotency_key_reused`",
            body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody,
            headers(("Retry-After" = u32))),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
#[tracing::instrument(level = "debug", skip_all, fields(poll = %id))]
pub async fn vote(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
    let (voter, set_cookie) = voter::identify_for_header(&headers);
    let mut response = match body.choice() {
        Err(e) => e.into_response(),
        Ok(choice) => {
            let vote = Vote {
                poll: id,
                choice,
                voter,
                idempotency_key,
            };
            match app.service.vote(vote).await {
                Ok(snapshot) => {
                    // The voter has voted now: `after_vote` shows them the counts.
                    let snapshot = snapshot.for_viewer(&Viewer::voter());
                    let body = format!("{{\"results\":{}}}", snapshot.json());
                    json_text(StatusCode::OK, body)
                }
                Err(e) => e.into_response(),
            }
        }
    };
    if let Some(cookie) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Who a request is, for the poll's `results` rule.
pub async fn viewer_of(
    app: &AppState,
    results: &Results,
    caller: &Caller,
) -> Result<Viewer, Error> {
    app.service
        .viewer(results, caller.token(), caller.voter.as_ref())
        .await
}

/// Close a poll
///
/// Closing a closed poll answers 200 and changes nothing.
#[utoipa::path(post, path = "/api/polls/{id}/close", tag = "polls",
    params(schema::PollIdParam),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The closed poll's results", body = Results),
        (status = 401, description = "`unauthorized`: no admin token", body = ErrorBody),
        (status = 403, description = "`forbidden` (wrong token) or `cross_site_request`", body = ErrorBody),
        (status = 404, description = "`poll_not_found`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn close(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let snapshot = app.service.close(&id, bearer(&headers)).await?;
    Ok(json_text(StatusCode::OK, snapshot.json().to_owned()))
}

/// Reopen a closed poll
///
/// Opening an open poll answers 200 and changes nothing. A poll whose
/// `closes_at` has passed stays closed: 422 `validation_failed` naming
/// `closes_at`.
#[utoipa::path(post, path = "/api/polls/{id}/reopen", tag = "polls",
    params(schema::PollIdParam),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The open poll's results", body = Results),
        (status = 401, description = "`unauthorized`: no admin token", body = ErrorBody),
        (status = 403, description = "`forbidden` (wrong token) or `cross_site_request`", body = ErrorBody),
        (status = 404, description = "`poll_not_found`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: its closes_at has passed", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn reopen(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let snapshot = app.service.reopen(&id, bearer(&headers)).await?;
    Ok(json_text(StatusCode::OK, snapshot.json().to_owned()))
}

/// One CSV field, quoted when it holds a comma, a quote or a line break
/// (RFC 4180: quotes inside are doubled).
pub(crate) fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The results as CSV, by kind: `option,label,votes` (choice; a scale's
/// `option` is the value), `text,votes` (word cloud: its top entries),
/// `option,label,points,first` (ranking, by points); counts are empty
/// where they are hidden.
pub fn results_csv(results: &Results) -> String {
    let count = |c: Option<u64>| c.map(|v| v.to_string()).unwrap_or_default();
    match results.kind {
        KindName::Wordcloud => {
            let mut csv = String::from("text,votes\r\n");
            for entry in results.entries.iter().flatten() {
                csv.push_str(&format!("{},{}\r\n", csv_field(&entry.text), entry.votes));
            }
            return csv;
        }
        KindName::Ranking => {
            let mut csv = String::from("option,label,points,first\r\n");
            for option in &results.options {
                csv.push_str(&format!(
                    "{},{},{},{}\r\n",
                    option.id,
                    csv_field(&option.label),
                    count(option.points),
                    count(option.first)
                ));
            }
            return csv;
        }
        KindName::Choice | KindName::Scale => {}
    }
    let mut csv = String::from("option,label,votes\r\n");
    for option in &results.options {
        let votes = option.votes.map(|v| v.to_string()).unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{}\r\n",
            option.id,
            csv_field(&option.label),
            votes
        ));
    }
    csv
}

/// Export the results as CSV
///
/// `text/csv` with the header `option,label,votes` and one row per option.
/// The `results` rule applies: while counts are hidden from this client the
/// votes column is empty; the admin token always shows them, and a wrong
/// one is refused (403) rather than answered with hidden counts.
#[utoipa::path(get, path = "/api/polls/{id}/results.csv", tag = "polls",
    params(schema::PollIdParam),
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "The results, one row per option", content_type = "text/csv",
            body = String),
        (status = 403, description = "`forbidden`: an `Authorization` header with a wrong admin token",
            body = ErrorBody),
        (status = 404, description = "`poll_not_found`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn results_csv_file(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    caller: Caller,
) -> Result<Response, Error> {
    let results = app.service.get(&id).await?;
    // A host's download with a wrong token must not pass for the counts:
    // a token given is checked once, and refused when wrong.
    let viewer = match caller.token() {
        Some(token) if app.service.is_admin(&id, Some(token)).await? => Viewer::admin(),
        Some(_) => return Err(Error::Forbidden),
        None => viewer_of(&app, &results, &caller).await?,
    };
    let results = viewer.view(results);
    let disposition = format!("attachment; filename=\"{id}-results.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        results_csv(&results),
    )
        .into_response())
}

/// Delete a poll
///
/// Followers are told (`deleted`) and their streams end.
#[utoipa::path(delete, path = "/api/polls/{id}", tag = "polls",
    params(schema::PollIdParam),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`: no admin token", body = ErrorBody),
        (status = 403, description = "`forbidden` (wrong token) or `cross_site_request`", body = ErrorBody),
        (status = 404, description = "`poll_not_found`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
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
    fn csv_quotes_labels_that_need_it() {
        let id = crate::poll::PollId::parse("p").unwrap();
        let labels = vec!["plain".to_owned(), "a, \"b\"".to_owned()];
        let r = Results::new(&id, "q", VoteLimit::Unlimited, false, 1, &labels, &[2, 0]);
        assert_eq!(
            results_csv(&r),
            "option,label,votes\r\n0,plain,2\r\n1,\"a, \"\"b\"\"\",0\r\n"
        );
        assert_eq!(results_csv(&r.hidden()).lines().nth(1), Some("0,plain,"));
    }

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
