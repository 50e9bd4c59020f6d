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

use super::ui::Ui;
use super::view::{LabPage, LabPanel};
use super::{PageError, voter_jar};
use crate::api::{AppState, poll_id};
use crate::poll::{Results, VoteLimit};
use crate::service::DEMO_POLL_ID;

/// The four panels, pushing transports first, each explained in plain words.
const PANELS: [LabPanel; 4] = [
    LabPanel {
        name: "ws",
        label: "WebSocket",
        explain: "One connection, opened once and kept open in both directions. \
                  The server pushes each new result down it as a small frame the moment it \
                  changes; the browser never has to ask again.",
    },
    LabPanel {
        name: "sse",
        label: "Server-Sent Events",
        explain: "One HTTP response that never ends. The server writes each change into it \
                  as a short text event; if the connection drops, the browser reconnects by \
                  itself and says which version it saw last.",
    },
    LabPanel {
        name: "longpoll",
        label: "Long polling",
        explain: "The browser asks, and the server holds the question until something \
                  changes, then answers. The browser asks again at once: it stays live, but \
                  every update costs a whole request and response, headers included.",
    },
    LabPanel {
        name: "poll",
        label: "Short polling",
        explain: "The browser asks every 2 seconds whether anything changed. Most answers \
                  are a short “304 Not Modified”; a change waits for the next question, so \
                  it arrives up to 2 seconds late.",
    },
];

/// Why the vote control is off on this poll, if it is.
fn why_not(results: &Results) -> Option<&'static str> {
    if results.closed {
        Some(
            "This poll is closed, so every vote would be refused: the lab only follows it \
             here. Start still opens the four followers.",
        )
    } else if results.vote_limit == VoteLimit::OnePerVoter {
        Some(
            "This poll allows one vote per person, so the lab cannot cast a stream of votes \
             here: it only follows, and measures the votes other people cast (latency needs \
             votes the lab cast itself). Start still opens the four followers.",
        )
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
    let why_not = why_not(&results);
    let try_instead = (why_not.is_some() && app.config.demo && id.as_str() != DEMO_POLL_ID)
        .then(|| format!("/polls/{DEMO_POLL_ID}/lab"));
    let page = LabPage {
        ui,
        id: results.id.clone(),
        question: results.question.clone(),
        instance: app.instance.clone(),
        panels: PANELS.to_vec(),
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
        let names: Vec<_> = PANELS.iter().map(|p| p.name).collect();
        assert_eq!(names, ["ws", "sse", "longpoll", "poll"]);
    }
}
