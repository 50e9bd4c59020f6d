//! The per-instance follower cap: past it, 503 `too_many_connections`;
//! a place frees up when a follower leaves.

use crate::helpers::*;

both_backends!(followers_past_the_cap_get_503_until_one_leaves);

async fn followers_past_the_cap_get_503_until_one_leaves(backend: Backend) {
    let app = spawn_app_with(&backend, |c| c.max_followers = 2).await;
    let mut first = app.ws("lpl").await;
    first.next_results().await;
    let mut sse = app.sse("lpl", None).await;
    sse.next_results().await;

    let refused =
        WsClient::connect_request(WsClient::request(&app.ws_url("/api/polls/lpl/ws"), &[]))
            .await
            .err()
            .expect("a third WebSocket is refused");
    let tokio_tungstenite::tungstenite::Error::Http(res) = refused else {
        panic!("expected an HTTP refusal, got {refused}");
    };
    assert_eq!(res.status(), 503);
    let body = String::from_utf8(res.body().clone().unwrap_or_default()).unwrap();
    assert_error_body(&body, "too_many_connections");
    assert_error(
        app.get("/api/polls/lpl/events").await,
        503,
        "too_many_connections",
    )
    .await;
    let res = app.get("/api/polls/lpl/changes?since=0&timeout=1").await;
    assert_error(res, 503, "too_many_connections").await;
    // Reading without following is not capped.
    assert_eq!(app.get("/api/polls/lpl").await.status(), 200);
    assert_eq!(app.get("/api/polls/lpl/changes").await.status(), 200);

    // One leaves: the close handshake completes, then its place is free.
    within("close", first.stream.close(None)).await.ok();
    first.end().await;
    let mut replacement = within("a follower to be accepted again", async {
        loop {
            let req = WsClient::request(&app.ws_url("/api/polls/lpl/ws"), &[]);
            match WsClient::connect_request(req).await {
                Ok((ws, _)) => return ws,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    assert_eq!(version(&replacement.next_results().await), 0);
    assert_error(
        app.get("/api/polls/lpl/events").await,
        503,
        "too_many_connections",
    )
    .await;
}
