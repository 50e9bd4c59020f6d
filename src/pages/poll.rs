//! `/polls/{id}`: the poll page; `POST /polls/{id}/vote`: its form
//! fallback for browsers without JavaScript.
//!
//! The form vote follows the same rules as the API (the service decides),
//! then answers `303 See Other` back to the page with a `notice` naming the
//! outcome, so a reload never repeats the vote. Each rendered page carries
//! its own idempotency key in the form, so a form sent twice (a double
//! click, a resubmission after a lost reply) counts once too.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::view::{Notice, PollPage, TransportLink};
use super::{PageError, voter_jar};
use crate::api::{AppState, poll_id, voter};
use crate::error::Error;
use crate::poll::IdempotencyKey;
use crate::service::Transport;
use crate::store::Vote;

/// Every transport, in the order the page falls back through them.
const TRANSPORTS: [(Transport, &str); 4] = [
    (Transport::Ws, "WebSocket"),
    (Transport::Sse, "SSE"),
    (Transport::LongPoll, "Long polling"),
    (Transport::Poll, "Short polling"),
];

/// The transport named in a `?transport=` value, if it is one.
fn transport_named(name: &str) -> Option<Transport> {
    TRANSPORTS
        .iter()
        .map(|(t, _)| *t)
        .find(|t| t.as_str() == name)
}

/// The text of a `?notice=` code; unknown codes show nothing.
fn notice(code: &str) -> Option<Notice> {
    let (text, kind) = match code {
        "voted" => ("Your vote was counted.", "ok"),
        "already_voted" => ("You have already voted on this poll.", "warn"),
        "poll_closed" => ("This poll is closed; your vote was not counted.", "warn"),
        "option_not_found" => ("That option does not exist.", "warn"),
        "idempotency_key_reused" => (
            "This page already sent a vote. Reload it to vote again.",
            "warn",
        ),
        "rate_limited" => ("Too many votes at once; please wait a moment.", "warn"),
        "store_unavailable" | "shutting_down" => (
            "Your vote could not be stored right now. Please try again.",
            "warn",
        ),
        _ => return None,
    };
    Some(Notice { text, kind })
}

/// The query of the poll page: `transport`, `notice` and `choice`.
#[derive(Default)]
struct PageQuery {
    transport: Option<Transport>,
    notice: Option<Notice>,
    choice: Option<u32>,
}

impl PageQuery {
    fn read(query: Result<Query<Vec<(String, String)>>, QueryRejection>) -> Self {
        let mut q = PageQuery::default();
        for (name, value) in query.map(|Query(v)| v).unwrap_or_default() {
            match name.as_str() {
                "transport" => q.transport = transport_named(&value),
                "notice" => q.notice = notice(&value),
                "choice" => q.choice = value.parse().ok(),
                _ => {}
            }
        }
        q
    }
}

/// `GET /polls/{id}`.
#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn show(
    State(app): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    jar: CookieJar,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let id = poll_id(&id)?;
    let results = app.service.get(&id).await?;
    let query = PageQuery::read(query);
    let transport = query.transport.unwrap_or(Transport::Ws);
    let mut page = PollPage::new(&results, query.choice);
    page.transport = transport.as_str();
    page.transport_chosen = query.transport.is_some();
    page.transports = TRANSPORTS
        .iter()
        .map(|(t, label)| TransportLink {
            name: t.as_str(),
            label,
            current: *t == transport,
        })
        .collect();
    page.instance = app.instance.clone();
    page.notice = query.notice;
    Ok((voter_jar(jar, &headers), page).into_response())
}

/// Body of the form vote.
#[derive(Debug, Deserialize)]
pub struct VoteForm {
    option: Option<String>,
    transport: Option<String>,
    /// The page's idempotency key; absent from forms of older pages.
    key: Option<String>,
}

/// `POST /polls/{id}/vote`: votes, then `303 See Other` back to the page.
#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn vote(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<VoteForm>, FormRejection>,
) -> Result<Response, PageError> {
    let id = poll_id(&id)?;
    let Form(form) = form.map_err(|r| PageError(Error::BadRequest(r.body_text())))?;
    let idempotency_key = form
        .key
        .as_deref()
        .map(IdempotencyKey::parse)
        .transpose()
        .map_err(|e| PageError(Error::BadRequest(e.0)))?;
    let (voter, cookie) = voter::identify(&jar, &headers);
    let jar = voter::with_cookie(jar, cookie);
    let mut back = format!("/polls/{id}?");
    if let Some(t) = form.transport.as_deref().and_then(transport_named) {
        back.push_str(&format!("transport={}&", t.as_str()));
    }
    let Some(option) = form.option.as_deref().and_then(|o| o.trim().parse().ok()) else {
        back.push_str("notice=option_not_found");
        return Ok((jar, Redirect::to(&back)).into_response());
    };
    let client = app.vote_limiter.client_ip(peer, &headers);
    if let Err(e) = app.vote_limiter.check(client) {
        back.push_str(&format!("notice={}", e.code()));
        return Ok((jar, Redirect::to(&back)).into_response());
    }
    let vote = Vote {
        poll: id,
        choice: crate::poll::Choice::one(option),
        voter,
        idempotency_key,
    };
    match app.service.vote(vote).await {
        Ok(_) => back.push_str(&format!("notice=voted&choice={option}")),
        Err(Error::PollNotFound) => {
            return Ok((jar, PageError(Error::PollNotFound)).into_response());
        }
        Err(e) => back.push_str(&format!("notice={}", e.code())),
    }
    Ok((jar, Redirect::to(&back)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_are_named_as_in_the_api() {
        for name in ["ws", "sse", "longpoll", "poll"] {
            assert_eq!(transport_named(name).map(Transport::as_str), Some(name));
        }
        assert!(transport_named("carrier-pigeon").is_none());
    }

    #[test]
    fn every_vote_error_a_form_can_meet_has_a_notice() {
        for e in [
            Error::AlreadyVoted,
            Error::PollClosed,
            Error::OptionNotFound,
            Error::StoreUnavailable,
            Error::RateLimited {
                what: "votes",
                retry_after_secs: 1,
            },
            Error::IdempotencyKeyReused,
        ] {
            assert!(notice(e.code()).is_some(), "{}", e.code());
        }
        assert!(notice("<script>").is_none());
    }
}
