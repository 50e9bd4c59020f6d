//! SIGTERM and SIGKILL of real `tally` processes under load.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Notify;

use crate::helpers::*;
use crate::process::TallyProcess;

/// Votes back to back through `base` until a vote fails or `stop`; counts
/// the 200s.
async fn vote_until_refused(base: String, id: String, ok: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let client = client();
    let url = format!("{base}/api/polls/{id}/votes");
    let mut i = 0u32;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let sent = client
            .post(&url)
            .json(&json!({"option": i % 2}))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match sent {
            Ok(res) if res.status() == 200 => {
                ok.fetch_add(1, Ordering::SeqCst);
            }
            _ => return,
        }
    }
}

/// Five WebSockets and an SSE stream on `id`, each past its first push.
async fn attach_followers(tally: &TallyProcess, id: &str) -> (Vec<WsClient>, SseClient) {
    let mut followers = Vec::new();
    for _ in 0..5 {
        let mut ws = WsClient::connect(&tally.ws_url(&format!("/api/polls/{id}/ws"))).await;
        ws.next_results().await;
        followers.push(ws);
    }
    let mut sse = SseClient::connect(&tally.url(&format!("/api/polls/{id}/events")), None).await;
    sse.next_results().await;
    (followers, sse)
}

/// Reads an SSE stream past its pending events; how it ended.
async fn sse_end(sse: &mut SseClient) -> SseStep {
    loop {
        match sse.step().await {
            SseStep::Event(_) => continue,
            end => return end,
        }
    }
}

/// SIGTERM under load: WebSockets close with 1001, every vote answered
/// 200 is in Redis and nothing else is, and the process exits 0 within
/// its shutdown timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_loses_no_acknowledged_vote() {
    const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
    let redis = TestRedis::start().await;
    let mut tally = TallyProcess::start(&[
        ("TALLY_REDIS_URL", redis.url()),
        ("TALLY_SHUTDOWN_TIMEOUT", "5s".into()),
    ])
    .await;
    let id = tally.create_poll(&["a", "b"]).await;
    let (mut followers, mut sse) = attach_followers(&tally, &id).await;

    let ok = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let voters: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(vote_until_refused(
                tally.base.clone(),
                id.clone(),
                ok.clone(),
                stop.clone(),
            ))
        })
        .collect();
    within("votes to flow", async {
        while ok.load(Ordering::SeqCst) < 200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    let signalled = Instant::now();
    tally.signal("TERM");
    for ws in &mut followers {
        assert_eq!(
            ws.end().await,
            WsEnd::Close(1001),
            "WebSocket told to go away"
        );
    }
    let end = sse_end(&mut sse).await;
    assert!(
        matches!(end, SseStep::End),
        "SSE stream ends cleanly: {end:?}"
    );
    let status = tally
        .wait_exit(SHUTDOWN_TIMEOUT + Duration::from_secs(2))
        .await;
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(took < SHUTDOWN_TIMEOUT, "exit took {took:?}");
    stop.store(true, Ordering::Relaxed);
    for v in voters {
        within("voters to stop", v).await.unwrap();
    }

    let acknowledged = ok.load(Ordering::SeqCst);
    let (counts, version) = redis.tally(&id).await;
    assert_eq!(
        counts.iter().sum::<u64>(),
        acknowledged,
        "Redis holds exactly the acknowledged votes"
    );
    assert_eq!(version, acknowledged);
    tally.assert_no_panic();
    eprintln!("SIGTERM: {acknowledged} votes acknowledged, exit after {took:?}");
}

/// What a voter learned about one key.
#[derive(Default)]
struct Outcomes {
    /// Key → option, for every vote answered 200.
    acked: BTreeMap<String, u32>,
    /// Votes whose answer never came (refused, reset, timed out, 5xx).
    unseen: Vec<(String, u32)>,
}

/// One vote with an idempotency key; whether a 200 came back.
async fn keyed_vote(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    key: &str,
    option: u32,
) -> bool {
    let sent = client
        .post(format!("{base}/api/polls/{id}/votes"))
        .header("Idempotency-Key", key)
        .json(&json!({ "option": option }))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    matches!(sent, Ok(res) if res.status() == 200)
}

const WORKERS: usize = 8;
const VOTES_EACH: usize = 60;
const ALL_VOTES: usize = WORKERS * VOTES_EACH;

/// Votes `ALL_VOTES` keyed votes through `a` from `WORKERS` tasks and
/// kills it with SIGKILL a third of the way through.
async fn burst_then_kill(a: &mut TallyProcess, id: &str) -> Outcomes {
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let acked = Arc::new(AtomicU64::new(0));
    let kill_now = Arc::new(Notify::new());
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (base, id) = (a.base.clone(), id.to_owned());
        let (outcomes, acked, kill_now) = (outcomes.clone(), acked.clone(), kill_now.clone());
        workers.push(tokio::spawn(async move {
            let client = client();
            for i in 0..VOTES_EACH {
                let (key, option) = (format!("w{w}-{i}"), (i % 3) as u32);
                if !keyed_vote(&client, &base, &id, &key, option).await {
                    outcomes.lock().unwrap().unseen.push((key, option));
                    continue;
                }
                outcomes.lock().unwrap().acked.insert(key, option);
                if acked.fetch_add(1, Ordering::SeqCst) + 1 == (ALL_VOTES / 3) as u64 {
                    kill_now.notify_one();
                }
            }
        }));
    }
    within("a third of the votes", kill_now.notified()).await;
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5)).await;
    for w in workers {
        within("the burst to end", w).await.unwrap();
    }
    std::mem::take(&mut *outcomes.lock().unwrap())
}

/// Retries every unseen vote through `base` with its key until it is
/// acknowledged.
async fn retry_unseen(base: &str, id: &str, outcomes: &mut Outcomes) {
    let client = client();
    for (key, option) in std::mem::take(&mut outcomes.unseen) {
        within("retry through B", async {
            while !keyed_vote(&client, base, id, &key, option).await {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let before = outcomes.acked.insert(key, option);
        assert!(before.is_none(), "a key acknowledged twice");
    }
}

/// SIGKILL mid-burst: votes with idempotency keys go through instance A,
/// which is killed; every vote whose answer was lost is retried through B
/// with the same key. Redis ends with exactly one vote per key: none lost
/// (acknowledged by A, or retried), none doubled (counted by A before it
/// died and retried anyway, or deliberately sent again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_then_retries_elsewhere_count_every_vote_exactly_once() {
    let redis = TestRedis::start().await;
    let env = [("TALLY_REDIS_URL", redis.url())];
    let mut a = TallyProcess::start(&env).await;
    let b = TallyProcess::start(&env).await;
    let id = a.create_poll(&["a", "b", "c"]).await;

    let mut outcomes = burst_then_kill(&mut a, &id).await;
    let acked_by_a = outcomes.acked.len() as u64;
    assert!(!outcomes.unseen.is_empty(), "the kill hit the burst");
    let (counted_before_retry, _) = redis.tally(&id).await;
    retry_unseen(&b.base, &id, &mut outcomes).await;
    // A client that sends again a vote it did see answered counts nothing
    // either: this holds whether or not the kill left such votes behind.
    let client = client();
    for (key, option) in outcomes.acked.iter().take(10) {
        let replayed = keyed_vote(&client, &b.base, &id, key, *option).await;
        assert!(replayed, "replay of {key}");
    }

    assert_eq!(
        outcomes.acked.len(),
        ALL_VOTES,
        "every key acknowledged in the end"
    );
    let mut expected = vec![0u64; 3];
    for option in outcomes.acked.values() {
        expected[*option as usize] += 1;
    }
    let (counts, version) = redis.tally(&id).await;
    assert_eq!(
        counts, expected,
        "one vote per key: nothing lost, nothing doubled"
    );
    assert_eq!(version, ALL_VOTES as u64);
    let counted_unseen = counted_before_retry.iter().sum::<u64>() - acked_by_a;
    eprintln!(
        "SIGKILL: {acked_by_a} acknowledged by A, {} retried through B, of which \
         {counted_unseen} A had counted without answering",
        ALL_VOTES as u64 - acked_by_a
    );
    b.assert_no_panic();
}
