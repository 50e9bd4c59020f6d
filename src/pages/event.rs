//! The event pages: `/events/{id}` (the audience: the current question,
//! vote, live results when shown, a lobby between questions),
//! `/events/{id}/present` (the projector), `/events/{id}/manage` (the
//! host: build the deck, drive, export), `/events/new` (create one) and
//! `/events/{id}/qr.svg` (a QR code of `/j/{code}`).
//!
//! The server renders the shell and the event's state as the visitor may
//! see it (escaped in a `data-` attribute); `static/event.js` follows the
//! event from there and switches question without a reload. The admin
//! token travels only in the fragment (`#token=…`) and as
//! `Authorization: Bearer` from the script, so the presenter and manage
//! pages send `Referrer-Policy: no-referrer` and are never stored.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;

use askama::Template;
use askama_web::WebTemplate;

use super::i18n::fill;
use super::qr::svg_of;
use super::ui::Ui;
use super::{PageError, no_store, voter_jar};
use crate::api::events::EventPath;
use crate::api::{AppState, voter};
use crate::error::Error;
use crate::event::EventId;
use crate::event::view::EventSnapshot;

/// What every event page shows before its script runs.
pub struct Shell {
    pub id: String,
    pub title: String,
    pub code: String,
    /// `123 456`, easier to read off a screen.
    pub code_shown: String,
    /// The 0-based place of the question on screen; `None`: the lobby.
    pub current: Option<usize>,
    /// The question on screen, empty in the lobby.
    pub question: String,
    /// `Question 2 of 5`.
    pub question_of: String,
    /// The state as this visitor may see it, for the script.
    pub state_json: String,
    /// The absolute join link (`…/j/123456`), and as shown (no scheme).
    pub join_url: String,
    pub join_url_shown: String,
    /// The oEmbed discovery link, on the audience page.
    pub oembed_href: Option<String>,
    /// The embed page's iframe, on the manage page.
    pub embed_snippet: String,
}

impl Shell {
    fn new(
        state: &EventSnapshot,
        counts: crate::event::view::View,
        ui: &Ui,
        join_url: String,
    ) -> Self {
        let record = &state.record;
        let current = record.current_index();
        let question = current
            .and_then(|i| record.deck.get(i))
            .map(|q| q.question.clone())
            .unwrap_or_default();
        let question_of = current.map_or_else(String::new, |i| {
            fill(
                ui.t.ev_question_of,
                &[
                    ("n", &(i + 1).to_string()),
                    ("total", &record.deck.len().to_string()),
                ],
            )
        });
        let code = record.code.as_str().to_owned();
        Self {
            id: record.id.as_str().to_owned(),
            title: record.title.clone(),
            code_shown: spaced(&code),
            code,
            current,
            question,
            question_of,
            state_json: String::from_utf8_lossy(&state.json(counts)).into_owned(),
            join_url_shown: join_url
                .split_once("://")
                .map_or(join_url.as_str(), |(_, rest)| rest)
                .to_owned(),
            join_url,
            oembed_href: None,
            embed_snippet: String::new(),
        }
    }
}

/// `123456` → `123 456`.
fn spaced(code: &str) -> String {
    match code.split_at_checked(3) {
        Some((a, b)) if code.len() == 6 => format!("{a} {b}"),
        _ => code.to_owned(),
    }
}

/// `/events/{id}`: the audience page.
#[derive(Template, WebTemplate)]
#[template(path = "event_audience.html")]
pub struct AudiencePage {
    pub ui: Ui,
    pub shell: Shell,
    /// `ws`, `sse`, `longpoll` or `poll`.
    pub transport: &'static str,
}

/// `/events/{id}/present`: the projector.
#[derive(Template, WebTemplate)]
#[template(path = "event_present.html")]
pub struct PresentPage {
    pub ui: Ui,
    pub shell: Shell,
    pub transport: &'static str,
}

/// `/events/{id}/manage`: the host's page.
#[derive(Template, WebTemplate)]
#[template(path = "event_manage.html")]
pub struct ManagePage {
    pub ui: Ui,
    pub shell: Shell,
}

/// `/events/new`: a title and a deck, created from the script.
#[derive(Template, WebTemplate)]
#[template(path = "event_new.html")]
pub struct NewPage {
    pub ui: Ui,
}

/// The transport a `?transport=` asks for, `ws` unless it names another.
fn transport(query: Result<Query<Vec<(String, String)>>, QueryRejection>) -> &'static str {
    let asked = query.ok().and_then(|Query(q)| {
        q.into_iter()
            .find(|(k, _)| k == "transport")
            .map(|(_, v)| v)
    });
    ["ws", "sse", "longpoll", "poll"]
        .into_iter()
        .find(|t| asked.as_deref() == Some(*t))
        .unwrap_or("ws")
}

/// The join link `…/j/{code}`, absolute when an origin is known
/// (`TALLY_PUBLIC_URL`, else the request's), else relative.
pub fn join_url(app: &AppState, headers: &HeaderMap, code: &str) -> String {
    format!("{}/j/{code}", super::public_origin(app, headers))
}

/// The headers of the pages that hold the admin token in their fragment.
fn private() -> [(HeaderName, HeaderValue); 2] {
    [
        no_store(),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

/// An unknown event shows the not-found page.
fn not_found(e: Error) -> PageError {
    match e {
        Error::EventNotFound => PageError(Error::NotFound),
        other => PageError(other),
    }
}

/// The event's state as anyone (`voter`: this visitor) may see it.
async fn shell(
    app: &AppState,
    id: &EventId,
    voter: Option<&crate::poll::VoterId>,
    ui: &Ui,
    headers: &HeaderMap,
) -> Result<Shell, PageError> {
    let (state, counts) = app
        .service
        .event_state(id, false, voter)
        .await
        .map_err(not_found)?;
    let url = join_url(app, headers, state.record.code.as_str());
    let mut shell = Shell::new(&state, counts, ui, url);
    shell.embed_snippet = crate::api::oembed::iframe_html(
        &crate::api::origin::public_origin(app, headers),
        &format!("/events/{id}/embed"),
        &state.record.title,
        crate::api::oembed::EVENT_SIZE,
    );
    Ok(shell)
}

/// `GET /events/{id}`.
#[tracing::instrument(skip_all)]
pub async fn audience(
    State(app): State<AppState>,
    id: Result<EventPath, Error>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ui: Ui,
    jar: CookieJar,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let EventPath(id) = id.map_err(not_found)?;
    let mut page = audience_page(&app, &id, query, ui, &jar, &headers).await?;
    page.shell.oembed_href =
        crate::api::origin::oembed_href(&app, &headers, &format!("/events/{}", page.shell.id));
    Ok((voter_jar(jar, &headers), page).into_response())
}

/// The audience page for this visitor (the page and its embed).
pub async fn audience_page(
    app: &AppState,
    id: &EventId,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ui: Ui,
    jar: &CookieJar,
    headers: &HeaderMap,
) -> Result<AudiencePage, PageError> {
    let voter = voter::known(jar);
    let shell = shell(app, id, voter.as_ref(), &ui, headers).await?;
    Ok(AudiencePage {
        ui,
        shell,
        transport: transport(query),
    })
}

/// `GET /events/{id}/present`.
#[tracing::instrument(skip_all)]
pub async fn present(
    State(app): State<AppState>,
    id: Result<EventPath, Error>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ui: Ui,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let EventPath(id) = id.map_err(not_found)?;
    // The screen is public: what the room may see, no one's rights.
    let shell = shell(&app, &id, None, &ui, &headers).await?;
    let page = PresentPage {
        ui,
        shell,
        transport: transport(query),
    };
    Ok((private(), page).into_response())
}

/// `GET /events/{id}/manage`: the token is in the fragment, which the
/// server never sees; the script asks for the host's view with it.
#[tracing::instrument(skip_all)]
pub async fn manage(
    State(app): State<AppState>,
    id: Result<EventPath, Error>,
    ui: Ui,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let EventPath(id) = id.map_err(not_found)?;
    let shell = shell(&app, &id, None, &ui, &headers).await?;
    Ok((private(), ManagePage { ui, shell }).into_response())
}

/// `GET /events/new`.
pub async fn new_event(ui: Ui, jar: CookieJar, headers: HeaderMap) -> Response {
    (voter_jar(jar, &headers), NewPage { ui }).into_response()
}

/// `GET /events/{id}/qr.svg`: the join link `/j/{code}` as a QR code.
#[tracing::instrument(skip_all)]
pub async fn qr(
    State(app): State<AppState>,
    id: Result<EventPath, Error>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let EventPath(id) = id.map_err(not_found)?;
    let event = app.service.get_event(&id).await.map_err(not_found)?;
    let url = join_url(&app, &headers, event.code.as_str());
    if !url.contains("://") {
        return Err(PageError(Error::BadRequest(
            "the Host header is not a plain host; set TALLY_PUBLIC_URL".into(),
        )));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("image/svg+xml"),
        )],
        svg_of(&url),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_shown_in_two_halves() {
        assert_eq!(spaced("012345"), "012 345");
        assert_eq!(spaced("12345"), "12345");
    }

    #[test]
    fn only_known_transports_are_taken() {
        let q = |s: &str| {
            let uri: axum::http::Uri = format!("/x?{s}").parse().unwrap();
            Query::<Vec<(String, String)>>::try_from_uri(&uri)
        };
        assert_eq!(transport(q("transport=sse")), "sse");
        assert_eq!(transport(q("transport=longpoll")), "longpoll");
        assert_eq!(transport(q("transport=carrier-pigeon")), "ws");
        assert_eq!(transport(q("")), "ws");
    }
}
