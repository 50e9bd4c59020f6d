//! Long polling: `GET /api/polls/{id}/changes?since=V&timeout=S`.

use std::time::{Duration, Instant};

use crate::helpers::*;

both_backends!(
    answers_at_once_when_the_version_is_already_past_since,
    without_since_answers_the_current_results_at_once,
    waits_for_the_next_change_then_answers_it,
    answers_204_when_the_timeout_passes,
    since_and_timeout_must_be_non_negative_integers,
    timeout_above_60_is_accepted_and_capped,
    since_above_the_current_version_waits,
    waiting_long_poll_answers_404_when_the_poll_is_deleted,
    long_poller_ends_on_the_exact_tallies_of_concurrent_votes,
);

fn changes(id: &str, since: u64, timeout: u64) -> String {
    format!("/api/polls/{id}/changes?since={since}&timeout={timeout}")
}

async fn answers_at_once_when_the_version_is_already_past_since(backend: Backend) {
    let app = spawn_app(&backend).await;
    app.vote("lpl", 0, None).await;
    app.vote("lpl", 0, None).await;
    let started = Instant::now();
    let res = app.get(&changes("lpl", 1, 30)).await;
    assert_eq!(res.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once"
    );
    let body = json_of(res).await;
    assert_eq!(version(&body), 2);
    assert_eq!(counts(&body), vec![302, 200, 600]);
}

async fn without_since_answers_the_current_results_at_once(backend: Backend) {
    let app = spawn_app(&backend).await;
    let res = app.get("/api/polls/lpl/changes?timeout=30").await;
    assert_eq!(res.status(), 200);
    assert_eq!(version(&json_of(res).await), 0);
}

async fn waits_for_the_next_change_then_answers_it(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    let waiter = {
        let (client, url) = (client(), app.url(&changes(&id, 0, 30)));
        tokio::spawn(async move { send("long poll", client.get(url)).await })
    };
    app.wait_followed(&id, true).await;
    assert!(!waiter.is_finished(), "nothing to answer yet");
    let (_, voted) = app.vote(&id, 1, None).await;
    let res = within("long poll answer", waiter).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = json_of(res).await;
    assert_eq!(body, voted["results"], "answers the change");
    assert_eq!(version(&body), 1);
}

async fn answers_204_when_the_timeout_passes(backend: Backend) {
    let app = spawn_app(&backend).await;
    let started = Instant::now();
    let res = app.get(&changes("lpl", 0, 1)).await;
    let waited = started.elapsed();
    assert_eq!(res.status(), 204);
    assert!(res.headers().contains_key("x-tally-instance"));
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "waited {waited:?} for a 1 s timeout"
    );
    assert!(within("204 body", res.bytes()).await.unwrap().is_empty());
    let res = app.get(&changes("lpl", 0, 0)).await;
    assert_eq!(res.status(), 204, "timeout=0 answers at once");
}

async fn since_and_timeout_must_be_non_negative_integers(backend: Backend) {
    let app = spawn_app(&backend).await;
    for query in [
        "since=-1",
        "since=1.5",
        "since=abc",
        "since=",
        "since=1e3",
        "timeout=-1",
        "timeout=2.5",
        "timeout=soon",
        "since=0&timeout=",
        "since=99999999999999999999999",
    ] {
        let res = app.get(&format!("/api/polls/lpl/changes?{query}")).await;
        assert_error(res, 400, "bad_request").await;
    }
}

async fn timeout_above_60_is_accepted_and_capped(backend: Backend) {
    let app = spawn_app(&backend).await;
    // Accepted (not 400) and answered at once since the version is past.
    app.vote("lpl", 0, None).await;
    let res = app.get(&changes("lpl", 0, 3600)).await;
    assert_eq!(res.status(), 200);
    let res = app.get(&changes("lpl", 0, u64::MAX)).await;
    assert_eq!(res.status(), 200, "a huge timeout is capped, not an error");
}

async fn since_above_the_current_version_waits(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    let waiter = {
        let (client, url) = (client(), app.url(&changes(&id, 2, 30)));
        tokio::spawn(async move { send("long poll", client.get(url)).await })
    };
    app.wait_followed(&id, true).await;
    app.vote(&id, 0, None).await;
    app.vote(&id, 0, None).await;
    app.vote(&id, 1, None).await;
    let res = within("long poll answer", waiter).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = json_of(res).await;
    assert_eq!(
        version(&body),
        3,
        "answers only once the version passes since"
    );
    assert_eq!(counts(&body), vec![2, 1]);
}

async fn waiting_long_poll_answers_404_when_the_poll_is_deleted(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    let waiter = {
        let (client, url) = (client(), app.url(&changes(&id, 0, 30)));
        tokio::spawn(async move { send("long poll", client.get(url)).await })
    };
    app.wait_followed(&id, true).await;
    assert_eq!(app.delete_poll(&id, Some(&token)).await.status(), 204);
    let res = within("long poll answer", waiter).await.unwrap();
    assert_error(res, 404, "poll_not_found").await;
}

async fn long_poller_ends_on_the_exact_tallies_of_concurrent_votes(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b", "c", "d"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    const K: usize = 150;
    let poller = {
        let (client, base) = (client(), app.base.clone());
        let id = id.clone();
        tokio::spawn(async move {
            let mut seen = vec![0u64];
            loop {
                let since = *seen.last().unwrap();
                let url = format!("{base}{}", changes(&id, since, 30));
                let res = send("long poll", client.get(url)).await;
                assert_eq!(res.status(), 200);
                let body = json_of(res).await;
                seen.push(version(&body));
                if version(&body) == K as u64 {
                    return (seen, body);
                }
            }
        })
    };
    app.wait_followed(&id, true).await;
    let expected = cast_concurrent_votes(&app, &id, K, 4).await;
    let (seen, last) = within("long poller to reach the end", poller)
        .await
        .unwrap();
    assert_strictly_increasing(&seen);
    assert_eq!(counts(&last), expected);
    assert_eq!(total(&last), K as u64);
}

mod redis_reads {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn followed_poll_answers_long_polls_without_a_store_read() {
        super::followed_poll_answers_long_polls_without_a_store_read().await;
    }
}

/// Scripted calls Redis has answered so far (every store read is one).
async fn script_calls(redis: &TestRedis) -> u64 {
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = within(
        "redis connection",
        client.get_multiplexed_async_connection(),
    )
    .await
    .unwrap();
    let info: String = within(
        "INFO commandstats",
        ::redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn),
    )
    .await
    .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// While a poll is followed on an instance whose feed is live, the hub is
/// current: a long poll is answered from it, not from a Redis read.
async fn followed_poll_answers_long_polls_without_a_store_read() {
    let redis = TestRedis::start().await;
    let app = spawn_app(&Backend::Redis(redis.clone())).await;
    wait_until_ready(&app).await;
    assert_eq!(app.vote("lpl", 0, None).await.0, 200);
    let mut ws = app.ws("lpl").await;
    let first = ws.next_results().await;
    let version = first["version"].as_u64().unwrap();
    let before = script_calls(&redis).await;
    for _ in 0..10 {
        let res = app.get(&changes("lpl", version - 1, 30)).await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = within("long poll body", res.json()).await.unwrap();
        assert_eq!(body["version"].as_u64(), Some(version));
    }
    let reads = script_calls(&redis).await - before;
    assert!(
        reads < 5,
        "10 long polls of a followed poll made {reads} store reads"
    );
    drop(ws);
}
