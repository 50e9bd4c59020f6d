//! `/polls/{id}/lab`: the transport lab. One page follows the poll over
//! WebSocket, SSE, long polling and short polling at once and measures
//! each live — updates, vote-to-arrival latency, requests, bytes — while it
//! casts votes at a chosen rate (on unlimited polls). The measuring is done
//! by `static/lab.js` in the browser, with real followers; the server only
//! renders the page and answers `GET /api/stats` beside it.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;

use super::i18n::Text;
use super::ui::Ui;
use super::view::{LabPage, LabPanel};
use super::{PageError, voter_jar};
use crate::api::{AppState, poll_id};
use crate::poll::{Results, VoteLimit};
use crate::service::DEMO_POLL_ID;

/// The four panels, pushing transports first, each explained in plain
/// words in the visitor's language.
fn panels(t: &'static Text) -> Vec<LabPanel> {
    vec![
        LabPanel {
            name: "ws",
            label: t.lab_ws_label,
            explain: t.lab_ws_explain,
        },
        LabPanel {
            name: "sse",
            label: t.lab_sse_label,
            explain: t.lab_sse_explain,
        },
        LabPanel {
            name: "longpoll",
            label: t.lab_longpoll_label,
            explain: t.lab_longpoll_explain,
        },
        LabPanel {
            name: "poll",
            label: t.lab_poll_label,
            explain: t.lab_poll_explain,
        },
    ]
}

/// Why the vote control is off on this poll, if it is.
fn why_not(results: &Results, t: &'static Text) -> Option<&'static str> {
    if results.closed {
        Some(t.lab_why_closed)
    } else if results.vote_limit == VoteLimit::OnePerVoter {
        Some(t.lab_why_one)
    } else {
        None
    }
}

/// `GET /polls/{id}/lab`.
#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn show(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ui: Ui,
    jar: CookieJar,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let id = poll_id(&id)?;
    let results = app.service.get(&id).await?;
    let voter = crate::api::voter::known(&jar);
    let results = app
        .service
        .viewer(&results, None, voter.as_ref())
        .await?
        .view(results);
    let t = ui.t;
    let why_not = why_not(&results, t);
    let try_instead = (why_not.is_some() && app.config.demo && id.as_str() != DEMO_POLL_ID)
        .then(|| format!("/polls/{DEMO_POLL_ID}/lab"));
    let page = LabPage {
        ui,
        id: results.id.clone(),
        question: results.question.clone(),
        instance: app.instance.clone(),
        panels: panels(t),
        can_vote: why_not.is_none(),
        why_not,
        try_instead,
        results_json: serde_json::to_string(&results).expect("results always serialise"),
    };
    Ok((voter_jar(jar, &headers), page).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_carry_the_api_transport_names() {
        let names: Vec<_> = panels(&crate::pages::i18n::ZH)
            .iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["ws", "sse", "longpoll", "poll"]);
    }
}
