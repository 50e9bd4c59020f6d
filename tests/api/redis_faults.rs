//! Faults on the Redis backend: Redis killed and restarted, paused, its
//! pub/sub connections killed, an instance stopped under load. Nothing
//! acknowledged is lost, nothing hangs, and followers end on the truth.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::helpers::*;

/// How fast a vote must fail while Redis cannot answer (the timeout is 1 s).
const FAIL_FAST: Duration = Duration::from_secs(2);

/// Reads a WebSocket follower until it reports `version`; checks that the
/// versions it sees strictly increase, and returns the last results.
pub(crate) async fn ws_until(ws: &mut WsClient, last: &mut Option<u64>, version: u64) -> Value {
    loop {
        let msg = ws.next_json().await.expect("websocket stays open");
        if msg["type"] != "results" {
            continue;
        }
        let v = msg["version"].as_u64().unwrap();
        assert!(last.is_none_or(|l| v > l), "version {v} after {last:?}");
        *last = Some(v);
        if v >= version {
            return msg;
        }
    }
}

/// The same for an SSE follower.
pub(crate) async fn sse_until(sse: &mut SseClient, last: &mut Option<u64>, version: u64) -> Value {
    loop {
        let ev = sse.next_event().await.expect("stream stays open");
        assert_eq!(ev.event, "results");
        let msg: Value = serde_json::from_str(&ev.data).unwrap();
        let v = msg["version"].as_u64().unwrap();
        assert!(last.is_none_or(|l| v > l), "version {v} after {last:?}");
        *last = Some(v);
        if v >= version {
            return msg;
        }
    }
}

async fn cast(apps: &[TestApp], id: &str, n: usize) {
    for i in 0..n {
        let (status, body) = apps[i % apps.len()].vote(id, (i % 2) as u32, None).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// A vote answered while Redis cannot: its status, code, Retry-After and
/// how long it took.
async fn vote_while_down(app: &TestApp, id: &str, key: &str) -> (u16, Value, String, Duration) {
    let started = Instant::now();
    let res = within(
        "vote while Redis is down",
        app.client
            .post(app.url(&format!("/api/polls/{id}/votes")))
            .header("Idempotency-Key", key)
            .json(&json!({"option": 0}))
            .send(),
    )
    .await
    .expect("vote request");
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].clone(), retry_after, elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_fails_fast_then_resyncs_followers_without_reconnecting() {
    let redis = TestRedis::start_persistent().await;
    let backend = Backend::Redis(redis.clone());
    let apps = ready_instances(&backend, 2).await;
    let (poll, _) = apps[0].create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut ws = WsClient::connect(&apps[0].ws_url(&format!("/api/polls/{id}/ws"))).await;
    let mut sse = SseClient::connect(&apps[1].url(&format!("/api/polls/{id}/events")), None).await;
    let (mut ws_last, mut sse_last) = (None, None);
    ws_until(&mut ws, &mut ws_last, 0).await;
    sse_until(&mut sse, &mut sse_last, 0).await;
    cast(&apps, id, 20).await;

    redis.kill();
    for app in &apps {
        let (status, code, retry_after, took) = vote_while_down(app, id, "while-down").await;
        assert_eq!(
            (status, code, retry_after.as_str()),
            (503, json!("store_unavailable"), "1")
        );
        assert!(took < FAIL_FAST, "a vote took {took:?} to fail");
        let started = Instant::now();
        assert_eq!(readyz(app).await, 503);
        assert!(started.elapsed() < FAIL_FAST);
        let res = within(
            "short poll while down",
            app.client.get(app.url(&format!("/api/polls/{id}"))).send(),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 503);
    }

    redis.restart().await;
    for app in &apps {
        wait_until_ready(app).await;
    }
    cast(&apps, id, 20).await;
    let (counts_now, version) = redis.tally(id).await;
    assert_eq!(version, 40, "every acknowledged vote survived the restart");
    // The same connections, never reopened, end on the truth.
    let last = ws_until(&mut ws, &mut ws_last, version).await;
    assert_eq!(counts(&last), counts_now);
    let last = sse_until(&mut sse, &mut sse_last, version).await;
    assert_eq!(counts(&last), counts_now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_pubsub_connections_reconnect_and_resync_missed_changes() {
    let redis = TestRedis::start().await;
    let backend = Backend::Redis(redis.clone());
    let apps = ready_instances(&backend, 2).await;
    let (poll, _) = apps[0].create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut ws = WsClient::connect(&apps[1].ws_url(&format!("/api/polls/{id}/ws"))).await;
    let mut sse = SseClient::connect(&apps[1].url(&format!("/api/polls/{id}/events")), None).await;
    let (mut ws_last, mut sse_last) = (None, None);
    ws_until(&mut ws, &mut ws_last, 0).await;
    sse_until(&mut sse, &mut sse_last, 0).await;

    // Redis takes no new connection while the pub/sub ones are killed, so
    // the instances cannot resubscribe until it does again; their command
    // connections, already open, keep working.
    let mut conn = redis.conn().await;
    set_maxclients(&mut conn, 1).await;
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(killed, 2, "one pub/sub connection per instance");
    // Published while app1 is not subscribed: only its resync can tell it.
    let only = &apps[..1];
    cast(only, id, 10).await;
    within("app1 to report it is not live", async {
        while readyz(&apps[1]).await != 503 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    set_maxclients(&mut conn, 10_000).await;
    let last = ws_until(&mut ws, &mut ws_last, 10).await;
    assert_eq!(counts(&last), vec![5, 5]);
    sse_until(&mut sse, &mut sse_last, 10).await;

    // And changes flow again over the new connection.
    cast(only, id, 10).await;
    let last = ws_until(&mut ws, &mut ws_last, 20).await;
    assert_eq!(counts(&last), vec![10, 10]);
    sse_until(&mut sse, &mut sse_last, 20).await;
    for app in &apps {
        wait_until_ready(app).await;
    }
    let pubsub = redis_clients(&mut conn)
        .await
        .into_iter()
        .filter(|c| c["flags"].contains('P'))
        .count();
    assert_eq!(pubsub, 2, "one pub/sub connection per instance again");
}

async fn set_maxclients(conn: &mut redis::aio::MultiplexedConnection, n: u64) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(n)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn votes_fail_fast_while_redis_is_paused_and_a_retry_counts_once() {
    let redis = TestRedis::start().await;
    let backend = Backend::Redis(redis.clone());
    let app = spawn_app(&backend).await;
    wait_until_ready(&app).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();

    let mut conn = redis.conn().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2500)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (status, code, retry_after, took) = vote_while_down(&app, id, "paused").await;
    assert_eq!(
        (status, code, retry_after.as_str()),
        (503, json!("store_unavailable"), "1")
    );
    assert!(took < FAIL_FAST, "the vote took {took:?} to fail");
    assert_eq!(readyz(&app).await, 503);

    // The client retries with the same key until Redis answers. Whether the
    // first attempt ran late or not at all, the vote counts exactly once.
    let replayed = within("retry to succeed", async {
        loop {
            let (status, body) = app.vote(id, 0, Some("paused")).await;
            if status == 200 {
                return body;
            }
            assert_eq!(status, 503, "{body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(counts(&replayed["results"]), vec![1, 0]);
    assert_eq!(redis.tally(id).await, (vec![1, 0], 1));
    wait_until_ready(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_stopped_mid_load_loses_no_acknowledged_vote() {
    const WORKERS: usize = 30;
    const VOTES_EACH: usize = 40;
    let redis = TestRedis::start().await;
    let backend = Backend::Redis(redis.clone());
    let mut apps = ready_instances(&backend, 3).await;
    let (poll, _) = apps[0].create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let halfway = Arc::new(Notify::new());
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let url = apps[w % 3].url(&format!("/api/polls/{id}/votes"));
        let (ok, failed, halfway) = (ok.clone(), failed.clone(), halfway.clone());
        workers.push(tokio::spawn(async move {
            let client = client();
            for i in 0..VOTES_EACH {
                let sent = client
                    .post(&url)
                    .json(&json!({"option": i % 2}))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match sent {
                    Ok(res) if res.status() == 200 => {
                        let n = ok.fetch_add(1, Ordering::SeqCst) + 1;
                        if n == (WORKERS * VOTES_EACH / 3) as u64 {
                            halfway.notify_one();
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    within("a third of the votes", halfway.notified()).await;
    let mut conn = redis.conn().await;
    let own: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await
        .unwrap();
    let took = apps[2].stop().await;
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    for worker in workers {
        within("load to finish", worker).await.unwrap();
    }

    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(failed > 0, "the stopped instance refused votes");
    assert_eq!(ok + failed, (WORKERS * VOTES_EACH) as u64);
    let (counts, version) = redis.tally(&id).await;
    assert_eq!(version, ok, "exactly the acknowledged votes were counted");
    assert_eq!(counts.iter().sum::<u64>(), ok);

    // The stopped instance let go of both its Redis connections.
    within("stopped instance to disconnect", async {
        loop {
            let others = redis_clients(&mut conn)
                .await
                .into_iter()
                .filter(|c| c["id"] != own.to_string())
                .count();
            if others == 4 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// An instance that starts while Redis is down serves (503s, not ready),
/// and creates the demo poll by itself once Redis is there.
#[tokio::test]
async fn an_instance_started_before_redis_creates_the_demo_poll_when_redis_comes() {
    let redis = TestRedis::start().await;
    redis.kill();
    let app = spawn_app(&Backend::Redis(Arc::clone(&redis))).await;
    assert_eq!(readyz(&app).await, 503);
    let demo = app.url("/api/polls/lpl");
    let status = within("demo while down", app.client.get(&demo).send())
        .await
        .unwrap()
        .status();
    assert_eq!(status, 503);

    redis.restart().await;
    wait_until_ready(&app).await;
    within("demo poll to appear", async {
        loop {
            if let Ok(res) = app.client.get(&demo).send().await
                && res.status() == 200
            {
                let v: serde_json::Value = res.json().await.unwrap();
                assert_eq!(counts(&v), vec![300, 200, 600]);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}
