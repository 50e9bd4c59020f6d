//! `GET /api/stats`: this instance's own followers and deliveries per
//! transport and the votes it accepted — exact counts, read back per
//! instance (unlike `/metrics`, whose recorder the in-process test
//! instances share).

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

both_backends!(
    stats_count_each_transports_followers_and_deliveries,
    stats_count_votes_accepted_and_not_refused_ones,
);

async fn stats(app: &TestApp) -> Value {
    let res = app.get("/api/stats").await;
    assert_eq!(res.status(), 200, "GET /api/stats");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    json_of(res).await
}

/// `transports.<name>.<field>` of a stats body.
fn field(stats: &Value, transport: &str, name: &str) -> u64 {
    stats["transports"][transport][name]
        .as_u64()
        .unwrap_or_else(|| panic!("transports.{transport}.{name} in {stats}"))
}

/// Waits until `transports.<transport>.followers` is `want` (a follower
/// that hangs up is counted out when the server notices, not at once).
async fn wait_followers(app: &TestApp, transport: &str, want: u64) {
    within(&format!("{transport} followers to be {want}"), async {
        loop {
            if field(&stats(app).await, transport, "followers") == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

async fn stats_count_each_transports_followers_and_deliveries(backend: Backend) {
    let app = spawn_app_with(&backend, |c| c.instance_id = Some("stats-a".into())).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let before = stats(&app).await;
    assert_eq!(before["instance"], "stats-a");
    for t in ["ws", "sse", "longpoll", "poll"] {
        assert_eq!(field(&before, t, "followers"), 0, "{t} followers at start");
    }

    // WebSocket and SSE: one follower each; the first results count.
    let mut ws = app.ws(id).await;
    ws.next_results().await;
    let mut sse = app.sse(id, None).await;
    sse.next_results().await;
    let open = stats(&app).await;
    assert_eq!(field(&open, "ws", "followers"), 1);
    assert_eq!(field(&open, "sse", "followers"), 1);
    assert_eq!(field(&open, "ws", "deliveries"), 1);
    assert_eq!(field(&open, "sse", "deliveries"), 1);

    // A waiting long poll is a follower; its answer is a delivery.
    let waiting = tokio::spawn({
        let (client, url) = (
            app.client.clone(),
            app.url(&format!("/api/polls/{id}/changes?since=0&timeout=20")),
        );
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    wait_followers(&app, "longpoll", 1).await;

    for option in [0, 1] {
        assert_eq!(app.vote(id, option, None).await.0, 200);
        ws.next_results().await;
        sse.next_results().await;
    }
    let answered = within("long poll answer", waiting).await.unwrap().unwrap();
    assert_eq!(answered, 200);
    wait_followers(&app, "longpoll", 0).await;
    // Without `since`, a long poll is answered at once: a delivery too.
    let res = app.get(&format!("/api/polls/{id}/changes")).await;
    assert_eq!(res.status(), 200);

    // Short polling: a 200 is a delivery, a 304 is counted apart.
    let res = app.get(&format!("/api/polls/{id}")).await;
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let res = send(
        "conditional short poll",
        app.client
            .get(app.url(&format!("/api/polls/{id}")))
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(res.status(), 304);

    let after = stats(&app).await;
    assert_eq!(
        field(&after, "ws", "deliveries"),
        3,
        "1 on connect + 2 votes"
    );
    assert_eq!(
        field(&after, "sse", "deliveries"),
        3,
        "1 on connect + 2 votes"
    );
    assert_eq!(
        field(&after, "longpoll", "deliveries"),
        2,
        "one waited, one at once"
    );
    assert_eq!(field(&after, "poll", "deliveries"), 1);
    assert_eq!(field(&after, "poll", "not_modified"), 1);
    assert_eq!(field(&after, "poll", "followers"), 0);
    assert_eq!(after["votes_accepted"], 2);

    // Hanging up counts a follower out; its deliveries stay counted.
    drop(ws);
    drop(sse);
    wait_followers(&app, "ws", 0).await;
    wait_followers(&app, "sse", 0).await;
    let closed = stats(&app).await;
    assert_eq!(field(&closed, "ws", "deliveries"), 3);

    // It is a read-only resource: other methods get the JSON 405.
    let res = app.post_json("/api/stats", &json!({})).await;
    assert_error(res, 405, "method_not_allowed").await;
}

async fn stats_count_votes_accepted_and_not_refused_ones(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    assert_eq!(app.vote(id, 0, None).await.0, 200);
    assert_eq!(app.vote(id, 1, None).await.0, 409, "already voted");
    let other = client();
    let (status, _) = vote_with(&other, &app.base, id, 9, None).await;
    assert_eq!(status, 422, "no option 9");
    assert_eq!(stats(&app).await["votes_accepted"], 1);
}

/// Two instances on one Redis each count their own share: votes where they
/// were cast, deliveries where the follower is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_counts_only_its_own_share() {
    let backend = Backend::redis().await;
    let apps = ready_instances(&backend, 2).await;
    let (a, b) = (&apps[0], &apps[1]);
    let (poll, _) = a.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut ws = b.ws(id).await;
    ws.next_results().await;
    for _ in 0..3 {
        assert_eq!(a.vote(id, 0, None).await.0, 200);
    }
    let mut seen = 0;
    while seen < 3 {
        seen = version(&ws.next_results().await);
    }
    let (sa, sb) = (stats(a).await, stats(b).await);
    assert_eq!(
        (&sa["instance"], &sb["instance"]),
        (&json!("app0"), &json!("app1"))
    );
    assert_eq!(sa["votes_accepted"], 3);
    assert_eq!(sb["votes_accepted"], 0);
    assert_eq!(field(&sa, "ws", "followers"), 0);
    assert_eq!(field(&sb, "ws", "followers"), 1);
    assert_eq!(field(&sa, "ws", "deliveries"), 0);
    assert!(
        (2..=4).contains(&field(&sb, "ws", "deliveries")),
        "the first results plus the votes (coalescing may merge some): {sb}"
    );
}
