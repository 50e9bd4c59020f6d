//! A paused Redis under concurrent votes: fail fast, recover by itself.
//! (`redis_faults.rs` has the single-vote version.)

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::redis_faults::{sse_until, ws_until};

/// Casts `n` concurrent keyed votes (`paused-{i}`) while Redis is paused:
/// each must answer 503 `store_unavailable` within the Redis timeout plus
/// slack. Returns the slowest answer's time.
async fn paused_votes_fail_fast(
    app: &TestApp,
    id: &str,
    n: usize,
    redis_timeout: Duration,
) -> Duration {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (client, base, id) = (client(), app.base.clone(), id.to_owned());
        tasks.spawn(async move {
            let started = Instant::now();
            let res = client
                .post(format!("{base}/api/polls/{id}/votes"))
                .header("Idempotency-Key", format!("paused-{i}"))
                .json(&json!({"option": i % 2}))
                .send()
                .await
                .expect("vote request");
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (i, status, body["error"]["code"].clone(), started.elapsed())
        });
    }
    let bound = redis_timeout + Duration::from_secs(1);
    let mut slowest = Duration::ZERO;
    while let Some(joined) = within("paused votes", tasks.join_next()).await {
        let (i, status, code, took) = joined.unwrap();
        assert_eq!(
            (status, code),
            (503, json!("store_unavailable")),
            "vote {i}"
        );
        assert!(
            took < bound,
            "vote {i} took {took:?} to fail (timeout {redis_timeout:?})"
        );
        slowest = slowest.max(took);
    }
    slowest
}

/// Redis paused (`CLIENT PAUSE 3000 ALL`) under many concurrent votes:
/// each fails fast with 503 within the Redis timeout (they do not queue up
/// behind each other), followers stay connected, and once Redis answers
/// again votes succeed without restarting anything; retrying the failed
/// votes with their keys counts each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_fails_concurrent_votes_fast_and_recovers_by_itself() {
    const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
    const PAUSE: Duration = Duration::from_millis(3000);
    const CONCURRENT: usize = 50;
    let redis = TestRedis::start().await;
    let backend = Backend::Redis(redis.clone());
    let app = spawn_app_with(&backend, |c| c.redis_timeout = REDIS_TIMEOUT).await;
    wait_until_ready(&app).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    let mut ws = app.ws(&id).await;
    ws.next_results().await;
    let mut sse = app.sse(&id, None).await;
    sse.next_results().await;

    let mut conn = redis.conn().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(PAUSE.as_millis() as u64)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    let paused_at = Instant::now();

    let slowest = paused_votes_fail_fast(&app, &id, CONCURRENT, REDIS_TIMEOUT).await;
    assert!(
        paused_at.elapsed() < PAUSE,
        "all {CONCURRENT} failed while Redis was still paused"
    );

    // Recovery needs nothing but time: a new vote succeeds once the pause ends.
    let recovered = within("a vote to succeed again", async {
        loop {
            let (status, body) = app.vote(&id, 0, Some("after-pause")).await;
            if status == 200 {
                return paused_at.elapsed();
            }
            assert_eq!(status, 503, "{body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        recovered < PAUSE + Duration::from_secs(3),
        "recovered after {recovered:?}"
    );
    wait_until_ready(&app).await;

    // Each failed vote, retried with its key, counts once in all.
    for i in 0..CONCURRENT {
        let (status, body) = app
            .vote(&id, (i % 2) as u32, Some(&format!("paused-{i}")))
            .await;
        assert_eq!(status, 200, "retry {i}: {body}");
    }
    let (in_redis, version) = redis.tally(&id).await;
    let expected_total = CONCURRENT as u64 + 1;
    assert_eq!(in_redis.iter().sum::<u64>(), expected_total);
    assert_eq!(version, expected_total);
    // The followers never disconnected and end on the truth.
    let (mut ws_last, mut sse_last) = (None, None);
    assert_eq!(
        counts(&ws_until(&mut ws, &mut ws_last, version).await),
        in_redis
    );
    assert_eq!(
        counts(&sse_until(&mut sse, &mut sse_last, version).await),
        in_redis
    );
    eprintln!(
        "paused Redis: slowest 503 after {slowest:?}; votes succeed again {recovered:?} after the pause began"
    );
}
