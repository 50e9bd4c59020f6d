//! What clients can make the store hold is bounded in time: idle polls
//! expire (`TALLY_POLL_TTL`, every key of them on Redis) and idempotency
//! records stop replaying (`TALLY_IDEMPOTENCY_TTL`).

use std::time::Duration;

use ::redis::AsyncCommands;

use crate::helpers::*;

/// Polls `f` until it holds; bounded by [`within`].
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    within(what, async {
        while !f().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

async fn status_of(app: &TestApp, path: &str) -> u16 {
    send("GET", app.client.get(app.url(path)))
        .await
        .status()
        .as_u16()
}

async fn a_poll_idle_past_its_ttl_is_gone(backend: Backend) {
    let app = spawn_app_with(&backend, |c| c.poll_ttl = Duration::from_millis(1500)).await;
    let (poll, _) = app.create_poll(&["a", "b"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    // A vote renews the poll's life; it also makes a voters set that must
    // expire with the poll.
    assert_eq!(app.vote(&id, 0, Some("k")).await.0, 200);
    assert_eq!(status_of(&app, &format!("/api/polls/{id}")).await, 200);
    eventually("the idle poll to expire", || async {
        status_of(&app, &format!("/api/polls/{id}")).await == 404
    })
    .await;
    assert_eq!(
        app.vote(&id, 0, None).await.0,
        404,
        "an expired poll takes no vote"
    );
    let listed = json_of(send("list", app.client.get(app.url("/api/polls?limit=100"))).await).await;
    assert!(
        !listed["polls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == id.as_str()),
        "an expired poll is not listed"
    );
    // On one Redis and on the cluster alike (there `KEYS` asks every master).
    if let (Some(prefix), Some(mut conn)) = (backend.key_prefix(), backend.store_conn().await) {
        let left: Vec<String> = within("KEYS", conn.keys(format!("{prefix}:poll:{{{id}}}*")))
            .await
            .unwrap();
        let left: Vec<&String> = left.iter().filter(|k| !k.contains(":idem:")).collect();
        assert!(left.is_empty(), "keys left behind: {left:?}");
        let indexed: Option<f64> = within("ZSCORE", conn.zscore(format!("{prefix}:polls"), &id))
            .await
            .unwrap();
        assert_eq!(
            indexed, None,
            "listing dropped the expired id from the index"
        );
    }
}

async fn an_idempotency_key_replays_only_within_its_ttl(backend: Backend) {
    let app = spawn_app_with(&backend, |c| c.idempotency_ttl = Duration::from_secs(1)).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    let (status, first) = app.vote(&id, 1, Some("retry-me")).await;
    assert_eq!(status, 200);
    let (status, again) = app.vote(&id, 1, Some("retry-me")).await;
    assert_eq!(status, 200);
    assert_eq!(
        again["results"]["version"], first["results"]["version"],
        "replayed"
    );
    // Past the TTL the same key is a new vote (until then each try replays).
    eventually("the key's record to expire", || async {
        let (status, body) = app.vote(&id, 1, Some("retry-me")).await;
        status == 200 && body["results"]["version"] != first["results"]["version"]
    })
    .await;
}

both_backends!(
    a_poll_idle_past_its_ttl_is_gone,
    an_idempotency_key_replays_only_within_its_ttl
);

/// The change channel carries counts, not text: tens of bytes per change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_channel_carries_a_compact_message() {
    let redis = TestRedis::start().await;
    let app = spawn_app(&Backend::Redis(redis.clone())).await;
    let (poll, _) = app
        .create_poll(&["a long label that never travels", "b"], "unlimited")
        .await;
    let id = poll["id"].as_str().unwrap().to_owned();
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut pubsub = within("pubsub", client.get_async_pubsub()).await.unwrap();
    within(
        "subscribe",
        pubsub.subscribe(format!("tally:poll:{{{id}}}:changes")),
    )
    .await
    .unwrap();
    assert_eq!(app.vote(&id, 1, None).await.0, 200);
    let mut messages = pubsub.on_message();
    let msg = within(
        "the change message",
        futures_util::StreamExt::next(&mut messages),
    )
    .await
    .unwrap();
    let payload: String = msg.get_payload().unwrap();
    let created_at = poll_created_at(&redis, &id).await;
    assert_eq!(
        payload,
        format!(
            r#"{{"id":"{id}","created_at":{created_at},"version":1,"closed":false,"counts":[0,1]}}"#
        )
    );
    // The poll's keys carry the TTL; the demo's too.
    let mut conn = redis.conn().await;
    for key in ["", ":votes", ":version"] {
        let ttl: i64 = conn
            .pttl(format!("tally:poll:{{{id}}}{key}"))
            .await
            .unwrap();
        assert!(ttl > 0, "{key}: PTTL {ttl}");
    }
}

async fn poll_created_at(redis: &TestRedis, id: &str) -> u64 {
    let mut conn = redis.conn().await;
    let created: String = conn
        .hget(format!("tally:poll:{{{id}}}"), "created_at")
        .await
        .unwrap();
    created.parse().unwrap()
}
