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

use super::i18n::Text;
use super::ui::Ui;
use super::view::{Notice, PollPage, TransportLink};
use super::{PageError, voter_jar};
use crate::api::{AppState, poll_id, voter};
use crate::error::Error;
use crate::poll::{Choice, IdempotencyKey, KindName, MAX_OPTIONS};
use crate::service::Transport;
use crate::store::Vote;

/// Every transport, in the order the page falls back through them.
const TRANSPORTS: [Transport; 4] = [
    Transport::Ws,
    Transport::Sse,
    Transport::LongPoll,
    Transport::Poll,
];

/// A transport's name in the visitor's language.
fn transport_label(t: &'static Text, transport: Transport) -> &'static str {
    match transport {
        Transport::Ws => t.t_ws,
        Transport::Sse => t.t_sse,
        Transport::LongPoll => t.t_longpoll,
        Transport::Poll => t.t_poll,
    }
}

/// The transport named in a `?transport=` value, if it is one.
fn transport_named(name: &str) -> Option<Transport> {
    TRANSPORTS.into_iter().find(|t| t.as_str() == name)
}

/// The text of a `?notice=` code; unknown codes show nothing.
fn notice(t: &Text, code: &str) -> Option<Notice> {
    let (text, kind) = match code {
        "voted" => (t.notice_voted, "ok"),
        "already_voted" => (t.notice_already_voted, "warn"),
        "poll_closed" => (t.notice_closed_refused, "warn"),
        "option_not_found" => (t.notice_no_option, "warn"),
        "validation_failed" => (t.notice_bad_choice, "warn"),
        "too_many_entries" => (t.notice_too_many_entries, "warn"),
        "idempotency_key_reused" => (t.notice_key_reused, "warn"),
        "rate_limited" => (t.notice_rate_limited, "warn"),
        "store_unavailable" | "shutting_down" => (t.notice_unavailable, "warn"),
        _ => return None,
    };
    Some(Notice {
        text: text.to_owned(),
        kind,
    })
}

/// The query of the poll page: `transport`, `notice` and `choice`.
#[derive(Default)]
struct PageQuery {
    transport: Option<Transport>,
    notice: Option<Notice>,
    /// The options of the visitor's vote, after a form vote (`choice=0,2`).
    choice: Vec<u32>,
}

impl PageQuery {
    fn read(query: Result<Query<Vec<(String, String)>>, QueryRejection>, t: &Text) -> Self {
        let mut q = PageQuery::default();
        for (name, value) in query.map(|Query(v)| v).unwrap_or_default() {
            match name.as_str() {
                "transport" => q.transport = transport_named(&value),
                "notice" => q.notice = notice(t, &value),
                "choice" => {
                    q.choice = value
                        .split(',')
                        .take(MAX_OPTIONS)
                        .filter_map(|c| c.parse().ok())
                        .collect()
                }
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
    ui: Ui,
    jar: CookieJar,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let mut page = page(&app, &id, query, ui, &jar).await?;
    page.oembed_href =
        crate::api::origin::oembed_href(&app, &headers, &format!("/polls/{}", page.id));
    Ok((voter_jar(jar, &headers), page).into_response())
}

/// The poll page for this visitor (the poll page and its embed).
pub async fn page(
    app: &AppState,
    id: &str,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ui: Ui,
    jar: &CookieJar,
) -> Result<PollPage, PageError> {
    let id = poll_id(id)?;
    let results = app.service.get(&id).await?;
    // The counts as this visitor may see them (`after_vote`: once voted).
    let voter = voter::known(jar);
    let viewer = app.service.viewer(&results, None, voter.as_ref()).await?;
    let mut query = PageQuery::read(query, ui.t);
    // Where the poll keeps the voter's choice, it is the truth: the page
    // shows it on any device, after any reload.
    if let Some(voter) = &voter
        && let Some(choice) = app.service.choice_of(&results, voter).await?
    {
        query.choice = choice.options().to_vec();
    }
    let results = viewer.view(results);
    let transport = query.transport.unwrap_or(Transport::Ws);
    let t = ui.t;
    // A ranking's order is not a choice of rows to mark.
    if results.kind == KindName::Ranking {
        query.choice.clear();
    }
    let mut page = PollPage::new(&results, &query.choice, ui);
    page.transport = transport.as_str();
    page.transport_chosen = query.transport.is_some();
    page.transports = TRANSPORTS
        .into_iter()
        .map(|tr| TransportLink {
            name: tr.as_str(),
            label: transport_label(t, tr),
            current: tr == transport,
        })
        .collect();
    page.instance = app.instance.clone();
    page.notice = query.notice;
    Ok(page)
}

/// Body of the form vote: one `option` (a vote button) or several
/// (checkboxes of a multi-choice poll), the transport, the page's key.
#[derive(Debug, Default)]
pub struct VoteForm {
    options: Vec<String>,
    transport: Option<String>,
    /// The page's idempotency key; absent from forms of older pages.
    key: Option<String>,
    /// Word cloud: the `entry` fields (blank ones left out).
    entries: Vec<String>,
    /// Scale: the `value` button pressed.
    value: Option<String>,
    /// Ranking: (place, option) from the `rank_<option>` fields.
    ranks: Vec<(u32, u32)>,
}

impl VoteForm {
    /// The vote of a word-cloud, scale or ranking form, when it is one:
    /// `Some(Err(code))` when its fields do not make a vote.
    fn kind_choice(&mut self) -> Option<Result<Choice, &'static str>> {
        if !self.entries.is_empty() {
            return Some(Choice::entries(&self.entries).map_err(|_| "validation_failed"));
        }
        if let Some(value) = &self.value {
            return Some(
                value
                    .trim()
                    .parse()
                    .map(Choice::value)
                    .map_err(|_| "validation_failed"),
            );
        }
        if !self.ranks.is_empty() {
            // Places sort the options; equal places keep the option order.
            self.ranks.sort_unstable();
            let order: Vec<u32> = self.ranks.iter().map(|&(_, o)| o).collect();
            return Some(Choice::ranking(&order).map_err(|_| "validation_failed"));
        }
        None
    }
}

impl VoteForm {
    fn read(fields: Vec<(String, String)>) -> Self {
        let mut form = VoteForm::default();
        for (name, value) in fields {
            match name.as_str() {
                // Bounded: a crafted body cannot make a huge choice.
                "option" if form.options.len() <= MAX_OPTIONS => form.options.push(value),
                "entry" if form.entries.len() < 3 && !value.trim().is_empty() => {
                    form.entries.push(value);
                }
                "value" => form.value = Some(value),
                // `rank_<option>` = its place (1 = first), from the ranking form.
                n if n.starts_with("rank_") && form.ranks.len() < MAX_OPTIONS => {
                    if let (Ok(option), Ok(place)) = (n[5..].parse(), value.trim().parse()) {
                        form.ranks.push((place, option));
                    }
                }
                "transport" => form.transport = Some(value),
                "key" => form.key = Some(value),
                _ => {}
            }
        }
        form
    }
}

/// `POST /polls/{id}/vote`: votes, then `303 See Other` back to the page.
#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn vote(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let id = poll_id(&id)?;
    let Form(fields) = form.map_err(|r| PageError(Error::BadRequest(r.body_text())))?;
    let mut form = VoteForm::read(fields);
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
    let options: Option<Vec<u32>> = form.options.iter().map(|o| o.trim().parse().ok()).collect();
    let choice = match form.kind_choice() {
        Some(Ok(choice)) => choice,
        Some(Err(code)) => {
            back.push_str(&format!("notice={code}"));
            return Ok((jar, Redirect::to(&back)).into_response());
        }
        None => match options.and_then(|o| Choice::parse(&o).ok()) {
            Some(choice) => choice,
            None => {
                back.push_str("notice=option_not_found");
                return Ok((jar, Redirect::to(&back)).into_response());
            }
        },
    };
    let chosen: Vec<String> = choice.options().iter().map(u32::to_string).collect();
    let chosen = chosen.join(",");
    let client = app.vote_limiter.client_ip(peer, &headers);
    if let Err(e) = app.vote_limiter.check(client) {
        back.push_str(&format!("notice={}", e.code()));
        return Ok((jar, Redirect::to(&back)).into_response());
    }
    let vote = Vote {
        poll: id,
        choice,
        voter,
        idempotency_key,
    };
    match app.service.vote(vote).await {
        Ok(_) => back.push_str(&format!("notice=voted&choice={chosen}")),
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
            for t in [&crate::pages::i18n::EN, &crate::pages::i18n::ZH] {
                assert!(notice(t, e.code()).is_some(), "{}", e.code());
            }
        }
        assert!(notice(&crate::pages::i18n::EN, "<script>").is_none());
    }
}
