//! `closes_at`: from that instant the store refuses votes by its own clock,
//! and every follower gets the closed results within a second even when no
//! vote comes; a poll past it cannot be reopened.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::helpers::*;
use crate::richer_polls::{create, rfc3339_in_ms};

both_backends!(
    followers_get_the_closed_results_within_a_second_with_no_vote,
    past_closes_at_votes_are_409_and_reopen_is_422,
);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits (bounded) until the wall clock passes `at_ms`: the event here is
/// the clock itself.
async fn until_ms(at_ms: u64) {
    let wait = at_ms.saturating_sub(now_ms());
    within("the clock", tokio::time::sleep(Duration::from_millis(wait))).await;
}

async fn followers_get_the_closed_results_within_a_second_with_no_vote(backend: Backend) {
    let app = spawn_app(&backend).await;
    let lead = 1500;
    let closes_at = rfc3339_in_ms(lead);
    let (poll, _) = create(
        &app,
        json!({"closes_at": closes_at, "vote_limit": "unlimited"}),
    )
    .await;
    let at_ms = now_ms() + lead as u64;
    let id = poll["id"].as_str().unwrap().to_owned();
    app.vote(&id, 0, None).await;
    let mut ws = app.ws(&id).await;
    assert_eq!(ws.next_json().await.unwrap()["closed"], false);
    let mut sse = app.sse(&id, None).await;
    assert!(sse.next_event().await.is_some());
    let long_poll = {
        let (c, url) = (
            client(),
            app.url(&format!("/api/polls/{id}/changes?since=1&timeout=20")),
        );
        tokio::spawn(async move {
            c.get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        })
    };
    let closed = ws.next_json().await.expect("the close arrives");
    let late = now_ms() as i64 - at_ms as i64;
    assert_eq!(closed["closed"], true);
    assert_eq!(closed["version"], 2, "the close is one version");
    assert!(late >= -50, "closed {late} ms before closes_at");
    assert!(late < 1000, "closed {late} ms after closes_at");
    let event = sse.next_event().await.expect("sse close");
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(data["closed"], true);
    let lp = within("long poll", long_poll).await.unwrap();
    assert_eq!(lp["closed"], true);
    assert_eq!(counts(&lp), vec![1, 0, 0]);
}

async fn past_closes_at_votes_are_409_and_reopen_is_422(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = create(
        &app,
        json!({"closes_at": rfc3339_in_ms(600), "vote_limit": "unlimited"}),
    )
    .await;
    let at_ms = now_ms() + 600;
    let id = poll["id"].as_str().unwrap();
    assert_eq!(app.vote(id, 1, None).await.0, 200);
    until_ms(at_ms + 20).await;
    // No follower, no timer: the vote itself finds the deadline passed.
    let (status, body) = app.vote(id, 1, None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "poll_closed");
    let res = send(
        "reopen",
        app.client
            .post(app.url(&format!("/api/polls/{id}/reopen")))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(res.status(), 422);
    let text = res.text().await.unwrap();
    assert_error_body(&text, "validation_failed");
    assert!(text.contains("closes_at"), "{text}");
    let results = app.results(id).await;
    assert_eq!(results["closed"], true);
    assert_eq!(counts(&results), vec![0, 1, 0]);
    assert_eq!(version(&results), 2, "one vote and the close");
}
