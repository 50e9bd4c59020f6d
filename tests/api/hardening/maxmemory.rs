//! Redis at `maxmemory` with `noeviction`: Redis refuses every write with
//! an OOM error. Votes and creates then answer 503 `store_unavailable`
//! (with `Retry-After: 1`), nothing is half-written — no key is added or
//! changed by a refused create or vote — and once memory frees, the same
//! instance works again without a restart, a retried vote counting once.

use std::collections::BTreeMap;

use serde_json::json;

use crate::helpers::*;

/// Every key in Redis with a dump of its value: what "nothing written" is
/// checked against.
async fn everything(redis: &TestRedis) -> BTreeMap<String, Vec<u8>> {
    let mut conn = redis.conn().await;
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let mut all = BTreeMap::new();
    for key in keys {
        let dump: Vec<u8> = ::redis::cmd("DUMP")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("DUMP");
        all.insert(key, dump);
    }
    all
}

async fn config_set(redis: &TestRedis, name: &str, value: &str) {
    let mut conn = redis.conn().await;
    let () = ::redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CONFIG SET {name} {value}: {e}"));
}

async fn create(app: &TestApp) -> reqwest::Response {
    let body =
        json!({"question": "At maxmemory?", "options": ["a", "b"], "vote_limit": "unlimited"});
    send("create", app.client.post(app.url("/api/polls")).json(&body)).await
}

async fn keyed_vote(app: &TestApp, id: &str, key: &str) -> reqwest::Response {
    send(
        "vote",
        app.client
            .post(app.url(&format!("/api/polls/{id}/votes")))
            .header("Idempotency-Key", key)
            .json(&json!({"option": 1})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_maxmemory_writes_are_503_nothing_is_half_written_and_it_recovers() {
    let redis = TestRedis::start().await;
    let backend = Backend::Redis(redis.clone());
    let app = spawn_app(&backend).await;
    wait_until_ready(&app).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    assert_eq!(app.vote(&id, 0, Some("before")).await.0, 200);

    // Full: any limit below what Redis already holds refuses every write.
    config_set(&redis, "maxmemory-policy", "noeviction").await;
    config_set(&redis, "maxmemory", "1").await;
    let before = everything(&redis).await;

    let res = create(&app).await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_error(res, 503, "store_unavailable").await;
    let res = keyed_vote(&app, &id, "at-oom").await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_error(res, 503, "store_unavailable").await;
    let form = [
        ("question", "From the form"),
        ("option", "a"),
        ("option", "b"),
    ];
    let res = send(
        "form create",
        app.client.post(app.url("/polls")).form(&form),
    )
    .await;
    assert_eq!(res.status(), 503, "the create form too");
    assert_eq!(
        everything(&redis).await,
        before,
        "a refused create or vote wrote nothing"
    );
    // Reading still works: what is stored can be followed.
    let results = app.results(&id).await;
    assert_eq!((counts(&results), version(&results)), (vec![1, 0], 1));

    // Memory frees: the same instance creates and counts again, and the vote
    // refused at maxmemory, retried with its key, counts once.
    config_set(&redis, "maxmemory", "0").await;
    assert_eq!(create(&app).await.status(), 201, "creates again");
    for _ in 0..2 {
        let res = keyed_vote(&app, &id, "at-oom").await;
        assert_eq!(res.status(), 200, "the retried vote");
    }
    assert_eq!(redis.tally(&id).await, (vec![1, 1], 2), "counted once");
}
