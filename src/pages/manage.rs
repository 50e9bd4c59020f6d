//! `/polls/{id}/manage`: the host's page — close, reopen, delete, share,
//! present, export — and `POST /polls/{id}/manage`, its form without
//! JavaScript.
//!
//! The admin token never travels in an address the server sees: the link
//! shown after creation carries it in the fragment (`#token=…`), which
//! browsers keep to themselves, and the script sends it as
//! `Authorization: Bearer` to the API. The page sends
//! `Referrer-Policy: no-referrer` and `Cache-Control: no-store`. Without
//! the script the host pastes the token into the form, which posts it in
//! the body; the token is what authorises, not a cookie, so another site
//! cannot make a visitor's browser act with it.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::qr::poll_url;
use super::ui::Ui;
use super::view::{ManagePage, Notice};
use super::{PageError, no_store};
use crate::api::{AppState, poll_id};
use crate::error::Error;
use crate::poll::{PollId, Results};
use crate::visibility::Viewer;
/// The headers of every manage answer: nothing cached, no referrer sent.
fn private() -> [(HeaderName, HeaderValue); 2] {
    [
        no_store(),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

fn page(app: &AppState, headers: &HeaderMap, results: &Results, ui: Ui) -> ManagePage {
    let url =
        poll_url(app, headers, &results.id).unwrap_or_else(|| format!("/polls/{}", results.id));
    let mut page = ManagePage::new(results, ui, url);
    page.embed_snippet = crate::api::oembed::iframe_html(
        &crate::api::origin::public_origin(app, headers),
        &format!("/polls/{}/embed", results.id),
        &results.question,
        crate::api::oembed::POLL_SIZE,
    );
    page
}

/// `GET /polls/{id}/manage`.
#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn show(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ui: Ui,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let id = poll_id(&id)?;
    // The server cannot see the token (it is in the fragment): the page
    // comes as anyone sees it, and the script asks for counts with it.
    let results = Viewer::anonymous().view(app.service.get(&id).await?);
    Ok((private(), page(&app, &headers, &results, ui)).into_response())
}

/// Body of the manage form.
#[derive(Debug, Deserialize)]
pub struct ManageForm {
    #[serde(default)]
    token: String,
    action: Option<String>,
    confirm: Option<String>,
}

/// What the form asks for.
enum Action {
    Close,
    Reopen,
    Delete,
    /// Download the results as CSV (the token shows hidden counts).
    Export,
}

/// `POST /polls/{id}/manage`: does what was pressed with the token from the
/// body and shows the page again saying what happened. A missing or wrong
/// token, or a delete not confirmed, changes nothing.
#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn act(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ui: Ui,
    headers: HeaderMap,
    form: Result<Form<ManageForm>, FormRejection>,
) -> Result<Response, PageError> {
    let id = poll_id(&id)?;
    let Form(form) = form.map_err(|r| PageError(Error::BadRequest(r.body_text())))?;
    let token = form.token.trim().to_owned();
    let action = match form.action.as_deref() {
        Some("close") => Action::Close,
        Some("reopen") => Action::Reopen,
        Some("delete") => Action::Delete,
        Some("export") => Action::Export,
        _ => return Err(PageError(Error::BadRequest("unknown action".into()))),
    };
    if matches!(action, Action::Export)
        && !token.is_empty()
        && app.service.is_admin(&id, Some(&token)).await?
    {
        return Ok(export(&app, &id).await?);
    }
    let t = ui.t;
    let refuse = |text: &str| Notice {
        text: text.to_owned(),
        kind: "warn",
    };
    let outcome = if token.is_empty() {
        Err((StatusCode::UNAUTHORIZED, refuse(t.missing_token)))
    } else if matches!(action, Action::Delete) && form.confirm.as_deref() != Some("delete") {
        Err((StatusCode::UNPROCESSABLE_ENTITY, refuse(t.need_confirm)))
    } else {
        run(&app, &id, &action, &token).await.map_err(|e| match e {
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, refuse(t.missing_token)),
            Error::Forbidden => (StatusCode::FORBIDDEN, refuse(t.wrong_token)),
            other => (
                other.status(),
                refuse(&super::i18n::fill(
                    t.manage_failed,
                    &[("message", &other.to_string())],
                )),
            ),
        })
    };
    let (status, notice, keep_token) = match outcome {
        Ok(done) => (
            StatusCode::OK,
            Notice {
                text: done(t).to_owned(),
                kind: "ok",
            },
            true,
        ),
        Err((status, notice)) => (status, notice, status != StatusCode::FORBIDDEN),
    };
    // A token that just worked is the host's: they see the counts.
    let viewer = if status.is_success() {
        Viewer::admin()
    } else {
        Viewer::anonymous()
    };
    let results = match app.service.get(&id).await {
        Ok(results) => Some(viewer.view(results)),
        Err(Error::PollNotFound) if matches!(action, Action::Delete) && status.is_success() => None,
        Err(e) => return Err(PageError(e)),
    };
    let mut view = match &results {
        Some(results) => page(&app, &headers, results, ui),
        // Deleted: the page says so and offers nothing more to press.
        None => ManagePage::deleted(&id, ui),
    };
    view.notice = Some(notice);
    // So the next press needs no pasting; a token found wrong is not echoed.
    if keep_token {
        view.token = token;
    }
    Ok((status, private(), view).into_response())
}

type Done = fn(&super::i18n::Text) -> &'static str;

async fn run(app: &AppState, id: &PollId, action: &Action, token: &str) -> Result<Done, Error> {
    match action {
        Action::Close => {
            app.service.close(id, Some(token)).await?;
            Ok(|t| t.done_closed)
        }
        Action::Reopen => {
            app.service.reopen(id, Some(token)).await?;
            Ok(|t| t.done_reopened)
        }
        Action::Delete => {
            app.service.delete(id, Some(token)).await?;
            Ok(|t| t.done_deleted)
        }
        // Reached only with a token that is not the host's.
        Action::Export => {
            app.service.is_admin(id, Some(token)).await?;
            Err(Error::Forbidden)
        }
    }
}

/// The CSV file, every count shown (the caller checked the token).
async fn export(app: &AppState, id: &PollId) -> Result<Response, Error> {
    let results = app.service.get(id).await?;
    let disposition = format!("attachment; filename=\"{id}-results.csv\"");
    Ok((
        private(),
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        crate::api::polls::results_csv(&Viewer::admin().view(results)),
    )
        .into_response())
}
