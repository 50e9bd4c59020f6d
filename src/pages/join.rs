//! `/join`: the room types the 6-digit code on the screen (spaces ignored)
//! and lands on the event; `/j/{code}`: the same from a link or the QR code.
//!
//! The form is a plain GET, so it works without JavaScript. A code that is
//! not six digits is refused on the page without a look-up; unknown codes
//! count against the client's join limit (`TALLY_JOIN_RATE`), exactly as
//! the API's `GET /api/join/{code}` does, so the page is no way around it.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::PageError;
use super::i18n::fill;
use super::ui::Ui;
use crate::api::AppState;
use crate::api::events::join_code;
use crate::error::Error;
use crate::event::JoinCode;

/// `/join`: the code field, and what went wrong with the last one.
#[derive(Template, WebTemplate)]
#[template(path = "join.html")]
pub struct JoinPage {
    pub ui: Ui,
    /// The code as typed, so a refused one comes back to be corrected.
    pub code: String,
    pub error: Option<String>,
}

/// The query of the join form.
#[derive(Debug, Deserialize)]
pub struct JoinQuery {
    code: Option<String>,
}

/// `GET /join` (the form) and `GET /join?code=…` (its answer).
pub async fn show(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ui: Ui,
    query: Result<Query<JoinQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let code = query.ok().and_then(|Query(q)| q.code).unwrap_or_default();
    if code.trim().is_empty() {
        let page = JoinPage {
            ui,
            code: String::new(),
            error: None,
        };
        return Ok(page.into_response());
    }
    lead_to_event(&app, peer, &headers, ui, code).await
}

/// `GET /j/{code}`: the link on the screen and in its QR code.
pub async fn short_link(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ui: Ui,
    Path(code): Path<String>,
) -> Result<Response, PageError> {
    lead_to_event(&app, peer, &headers, ui, code).await
}

/// `303` to the event the code names, or the form again with the reason.
async fn lead_to_event(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    ui: Ui,
    code: String,
) -> Result<Response, PageError> {
    let t = ui.t;
    let (status, error, retry_after) = if JoinCode::parse(&code).is_err() {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            t.join_err_format.to_owned(),
            None,
        )
    } else {
        match join_code(app, peer, headers, &code).await {
            Ok(id) => return Ok(Redirect::to(&format!("/events/{id}")).into_response()),
            Err(Error::CodeNotFound) => (
                StatusCode::NOT_FOUND,
                fill(t.join_err_unknown, &[("code", code.trim())]),
                None,
            ),
            Err(Error::RateLimited {
                retry_after_secs, ..
            }) => (
                StatusCode::TOO_MANY_REQUESTS,
                fill(t.join_err_rate, &[("s", &retry_after_secs.to_string())]),
                Some(retry_after_secs),
            ),
            Err(other) => return Err(PageError(other)),
        }
    };
    let page = JoinPage {
        ui,
        code,
        error: Some(error),
    };
    let mut response = (status, page).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Ok(response)
}
