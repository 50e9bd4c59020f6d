//! The optional per-client vote rate limit, on every way to vote.

use serde_json::json;

use crate::helpers::*;

async fn limited_app() -> TestApp {
    spawn_app_with(&Backend::Memory, |c| c.vote_rate = 3).await
}

#[tokio::test]
async fn votes_past_the_rate_get_429_with_retry_after_and_count_nothing() {
    let app = limited_app().await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(app.vote(id, 0, None).await.0, 200);
    }
    let res = within(
        "limited vote",
        app.client
            .post(app.url(&format!("/api/polls/{id}/votes")))
            .json(&json!({"option": 0}))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let now: serde_json::Value = app
        .client
        .get(app.url(&format!("/api/polls/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(total(&now), 3);
}

#[tokio::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    // The test client connects from 127.0.0.1; trust it as the proxy.
    let app = spawn_app_with(&Backend::Memory, |c| {
        c.vote_rate = 1;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let vote_as = |client_ip: &'static str| {
        app.client
            .post(app.url(&format!("/api/polls/{id}/votes")))
            .header("x-forwarded-for", client_ip)
            .json(&json!({"option": 1}))
            .send()
    };
    assert_eq!(
        within("a", vote_as("198.51.100.1")).await.unwrap().status(),
        200
    );
    assert_eq!(
        within("a again", vote_as("198.51.100.1"))
            .await
            .unwrap()
            .status(),
        429
    );
    // Another client behind the same proxy has its own allowance.
    assert_eq!(
        within("b", vote_as("198.51.100.2")).await.unwrap().status(),
        200
    );

    // Without trust, the header is ignored: every request is the peer's.
    let untrusting = spawn_app_with(&Backend::Memory, |c| c.vote_rate = 1).await;
    let (poll, _) = untrusting.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let url = untrusting.url(&format!("/api/polls/{id}/votes"));
    let first = untrusting
        .client
        .post(&url)
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({"option": 0}))
        .send();
    assert_eq!(within("first", first).await.unwrap().status(), 200);
    let second = untrusting
        .client
        .post(&url)
        .header("x-forwarded-for", "198.51.100.9")
        .json(&json!({"option": 0}))
        .send();
    assert_eq!(within("spoofed", second).await.unwrap().status(), 429);
}

#[tokio::test]
async fn websocket_and_form_votes_are_limited_too() {
    let app = spawn_app_with(&Backend::Memory, |c| c.vote_rate = 1).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut ws = WsClient::connect(&app.ws_url(&format!("/api/polls/{id}/ws"))).await;
    assert_eq!(ws.next_json().await.unwrap()["type"], "results");
    ws.send_json(&json!({"type": "vote", "option": 0, "request_id": "r1"}))
        .await;
    ws.send_json(&json!({"type": "vote", "option": 0, "request_id": "r2"}))
        .await;
    let mut codes = Vec::new();
    while codes.len() < 2 {
        let msg = ws.next_json().await.expect("message");
        match msg["type"].as_str() {
            Some("vote_ack") => codes.push("ack".to_owned()),
            Some("error") => codes.push(msg["code"].as_str().unwrap().to_owned()),
            _ => {}
        }
    }
    assert_eq!(codes, vec!["ack", "rate_limited"]);

    let res = within(
        "form vote",
        app.client
            .post(app.url(&format!("/polls/{id}/vote")))
            .form(&[("option", "1")])
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.contains("notice=rate_limited"), "{location}");
}
