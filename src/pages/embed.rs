//! The embed pages, `/polls/{id}/embed` and `/events/{id}/embed`: the
//! voting card alone, live, made for an iframe on another site — and the
//! oEmbed discovery link the poll and event pages carry.
//!
//! Only these two pages may be framed: their `frame-ancestors` is
//! `TALLY_EMBED_ORIGINS` (default `*`); every other page keeps `'none'`.
//!
//! Voter identity inside a cross-site frame: browsers do not send a
//! `SameSite=Lax` cookie there, and block third-party cookies. So the
//! embed page gives the frame a partitioned cookie (CHIPS: `Partitioned;
//! SameSite=None; Secure`), kept by the browser per embedding site. The
//! frame's votes (same-origin requests from the frame) carry it, so one
//! voter stays one voter on a poll embedded in a site; the same person on
//! tally's own page or on another site is another partition, as CHIPS
//! means.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;

use super::ui::Ui;
use super::{CONTENT_SECURITY_POLICY, PageError, event, poll};
use crate::api::events::EventPath;
use crate::api::{AppState, voter};
use crate::error::Error;
use crate::poll::VoterId;

/// The headers of an embed page: a CSP whose `frame-ancestors` is
/// `TALLY_EMBED_ORIGINS`, and a partitioned voter cookie when the frame's
/// partition has none yet.
fn embed_headers(app: &AppState, jar: &CookieJar) -> Vec<(header::HeaderName, HeaderValue)> {
    let csp = CONTENT_SECURITY_POLICY.replace(
        "frame-ancestors 'none'",
        &format!("frame-ancestors {}", app.config.embed_origins),
    );
    let mut headers = vec![(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).expect("checked sources"),
    )];
    if voter::known(jar).is_none() {
        headers.push((
            header::SET_COOKIE,
            voter::partitioned_cookie(&VoterId::generate()),
        ));
    }
    headers
}

/// `GET /polls/{id}/embed`.
#[tracing::instrument(skip_all)]
pub async fn poll_embed(
    State(app): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    mut ui: Ui,
    jar: CookieJar,
) -> Result<Response, PageError> {
    ui.embed = true;
    let page = poll::page(&app, &id, query, ui, &jar).await?;
    let headers = embed_headers(&app, &jar);
    Ok((headers_of(headers), page).into_response())
}

/// `GET /events/{id}/embed`.
#[tracing::instrument(skip_all)]
pub async fn event_embed(
    State(app): State<AppState>,
    id: Result<EventPath, Error>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    mut ui: Ui,
    jar: CookieJar,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let EventPath(id) = id.map_err(|_| PageError(Error::EventNotFound))?;
    ui.embed = true;
    let page = event::audience_page(&app, &id, query, ui, &jar, &headers).await?;
    let headers = embed_headers(&app, &jar);
    Ok((headers_of(headers), page).into_response())
}

fn headers_of(list: Vec<(header::HeaderName, HeaderValue)>) -> HeaderMap {
    list.into_iter().collect()
}
