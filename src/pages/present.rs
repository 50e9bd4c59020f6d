//! `/polls/{id}/present`: the presenter view — the question in large type,
//! live bars and the count, and the way in (the link and its QR code) — for
//! a projector at 1920×1080 or a phone held up to the room. The page
//! follows the poll like the poll page does (`static/app.js`).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::PageError;
use super::qr::poll_url;
use super::ui::Ui;
use super::view::{KindView, PresentPage, hidden_because, option_rows, total_text};
use crate::api::{AppState, poll_id};
use crate::visibility::Viewer;

/// `GET /polls/{id}/present`.
#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn show(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ui: Ui,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let id = poll_id(&id)?;
    // What the room may see: the screen is public, so no one's rights.
    let results = Viewer::anonymous().view(app.service.get(&id).await?);
    let poll_url =
        poll_url(&app, &headers, id.as_str()).unwrap_or_else(|| format!("/polls/{}", results.id));
    let shown = poll_url
        .split_once("://")
        .map_or(poll_url.as_str(), |(_, rest)| rest)
        .to_owned();
    let page = PresentPage {
        id: results.id.clone(),
        question: results.question.clone(),
        closed: results.closed,
        total: total_text(&results, &ui),
        hidden: hidden_because(&results, &ui),
        options: option_rows(&results, &ui, &[]),
        big: true,
        poll_url_shown: shown,
        poll_url,
        results_json: serde_json::to_string(&results).expect("results always serialise"),
        k: KindView::new(&results),
        ui,
    };
    Ok(page.into_response())
}
