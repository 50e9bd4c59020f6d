//! A follower that goes away leaves nothing behind: its hub channel is
//! dropped and its place under the follower cap is free again.

use std::time::Duration;

use crate::helpers::*;

both_backends!(
    websocket_that_drops_leaves_the_hub,
    sse_client_that_drops_leaves_the_hub,
    long_poll_client_that_drops_leaves_the_hub,
);

async fn app_and_poll(backend: &Backend) -> (TestApp, String) {
    let app = spawn_app_with(backend, |c| {
        c.sse_keepalive = Duration::from_millis(100);
        c.max_followers = 1;
    })
    .await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    (app, id)
}

/// With a cap of one, a new follower is accepted only if the old one's
/// place was given back.
async fn assert_place_is_free(app: &TestApp, id: &str) {
    let mut ws = app.ws(id).await;
    assert_eq!(ws.next_results().await["id"], id);
}

async fn websocket_that_drops_leaves_the_hub(backend: Backend) {
    let (app, id) = app_and_poll(&backend).await;
    let mut ws = app.ws(&id).await;
    ws.next_results().await;
    app.wait_followed(&id, true).await;
    drop(ws); // no close frame: the TCP connection just ends
    app.wait_followed(&id, false).await;
    assert_place_is_free(&app, &id).await;
}

async fn sse_client_that_drops_leaves_the_hub(backend: Backend) {
    let (app, id) = app_and_poll(&backend).await;
    let mut sse = app.sse(&id, None).await;
    sse.next_results().await;
    app.wait_followed(&id, true).await;
    drop(sse); // noticed at the next write, a keep-alive at the latest
    app.wait_followed(&id, false).await;
    assert_place_is_free(&app, &id).await;
}

async fn long_poll_client_that_drops_leaves_the_hub(backend: Backend) {
    let (app, id) = app_and_poll(&backend).await;
    let waiter = {
        let (client, url) = (
            client(),
            app.url(&format!("/api/polls/{id}/changes?since=0&timeout=60")),
        );
        tokio::spawn(async move { client.get(url).send().await })
    };
    app.wait_followed(&id, true).await;
    waiter.abort(); // the client gives up and closes its connection
    app.wait_followed(&id, false).await;
    assert_place_is_free(&app, &id).await;
}
