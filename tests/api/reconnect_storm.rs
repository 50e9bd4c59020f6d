//! A reconnect storm: three `tally` processes on one Redis behind the
//! shipped `deploy/haproxy-local.cfg`, followers of one poll over
//! WebSocket, SSE and long polls, and one instance SIGKILLed while it
//! holds a third of them. The followers here reconnect as `static/app.js`
//! does (0.1 s plus a random share of a window that doubles per failure),
//! and the test prints a histogram of when they came back.
//!
//! `TALLY_STORM_FOLLOWERS` sets how many (default 300, the CI run;
//! `scripts/storm` runs 3,000, about 3,000 open files in each process).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;
use crate::load_balancer::Haproxy;
use crate::process::TallyProcess;

/// How long every follower of the killed instance has to be live again.
const RECOVERY: Duration = Duration::from_secs(15);
const NO_VERSION: u64 = u64::MAX;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Ws,
    Sse,
    LongPoll,
}

/// What one follower has seen, shared with the test.
struct Follower {
    kind: Kind,
    version: AtomicU64,
    instance: Mutex<String>,
    /// Streams that ended (or requests that failed) under it.
    drops: AtomicUsize,
    /// 5xx answers it got while reconnecting.
    errors_5xx: AtomicUsize,
    /// Time from the kill until it was live again after its first drop.
    back_after: Mutex<Option<Duration>>,
}

impl Follower {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            version: AtomicU64::new(NO_VERSION),
            instance: Mutex::new(String::new()),
            drops: AtomicUsize::new(0),
            errors_5xx: AtomicUsize::new(0),
            back_after: Mutex::new(None),
        }
    }

    /// Records results from `instance`; the first after a drop marks the
    /// follower live again.
    fn saw(&self, instance: &str, results: &Value, killed_at: &OnceLock<Instant>) {
        if let Some(v) = results["version"].as_u64() {
            self.version.store(v, Ordering::SeqCst);
        }
        *self.instance.lock().unwrap() = instance.to_owned();
        if self.drops.load(Ordering::SeqCst) > 0
            && let Some(at) = killed_at.get()
        {
            self.back_after
                .lock()
                .unwrap()
                .get_or_insert_with(|| at.elapsed());
        }
    }
}

/// `static/app.js`'s backoff: 0.1 s plus a random share of a window that
/// doubles per failure (from 1 s), capped at 30 s.
fn backoff(attempt: u32) -> Duration {
    let window = 1000.0 * 2f64.powi(attempt.min(5) as i32);
    Duration::from_millis((100.0 + rand::random::<f64>() * window.min(30_000.0)) as u64)
}

fn instance_of(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("x-tally-instance")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// One follower, forever: a session, then jittered backoff, again.
async fn follow(lb: String, id: String, me: Arc<Follower>, killed_at: Arc<OnceLock<Instant>>) {
    let http = client();
    let mut attempt = 0;
    loop {
        let live = match me.kind {
            Kind::Ws => ws_session(&lb, &id, &me, &killed_at).await,
            Kind::Sse => sse_session(&http, &lb, &id, &me, &killed_at).await,
            Kind::LongPoll => long_poll_session(&http, &lb, &id, &me, &killed_at).await,
        };
        me.drops.fetch_add(1, Ordering::SeqCst);
        attempt = if live { 0 } else { attempt + 1 };
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// Returns whether the session got as far as results.
async fn ws_session(lb: &str, id: &str, me: &Follower, killed_at: &OnceLock<Instant>) -> bool {
    let url = format!("{}/api/polls/{id}/ws", lb.replacen("http", "ws", 1));
    let Ok((mut ws, res)) = tokio_tungstenite::connect_async(&url).await else {
        return false;
    };
    if res.status().is_server_error() {
        me.errors_5xx.fetch_add(1, Ordering::SeqCst);
    }
    let instance = res
        .headers()
        .get("x-tally-instance")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut live = false;
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(text) = msg
            && let Ok(v) = serde_json::from_str::<Value>(&text)
            && v["type"] == "results"
        {
            me.saw(&instance, &v, killed_at);
            live = true;
        }
    }
    live
}

async fn sse_session(
    http: &reqwest::Client,
    lb: &str,
    id: &str,
    me: &Follower,
    killed_at: &OnceLock<Instant>,
) -> bool {
    let Ok(res) = http.get(format!("{lb}/api/polls/{id}/events")).send().await else {
        return false;
    };
    if res.status().is_server_error() {
        me.errors_5xx.fetch_add(1, Ordering::SeqCst);
    }
    if res.status() != 200 {
        return false;
    }
    let instance = instance_of(res.headers());
    let mut events = res.bytes_stream().eventsource();
    let mut live = false;
    while let Some(Ok(ev)) = events.next().await {
        if ev.event == "results"
            && let Ok(v) = serde_json::from_str::<Value>(&ev.data)
        {
            me.saw(&instance, &v, killed_at);
            live = true;
        }
    }
    live
}

/// Long polls until one fails: the first without `since` (answered at
/// once: that is being live again), then from the last version.
async fn long_poll_session(
    http: &reqwest::Client,
    lb: &str,
    id: &str,
    me: &Follower,
    killed_at: &OnceLock<Instant>,
) -> bool {
    let mut live = false;
    loop {
        let since = match me.version.load(Ordering::SeqCst) {
            v if v == NO_VERSION || !live => String::new(),
            v => format!("&since={v}"),
        };
        let url = format!("{lb}/api/polls/{id}/changes?timeout=20{since}");
        let Ok(res) = http.get(url).send().await else {
            return live;
        };
        match res.status().as_u16() {
            200 => {
                let instance = instance_of(res.headers());
                let Ok(v) = res.json::<Value>().await else {
                    return live;
                };
                me.saw(&instance, &v, killed_at);
                live = true;
            }
            204 => {}
            status => {
                if status >= 500 {
                    me.errors_5xx.fetch_add(1, Ordering::SeqCst);
                }
                return live;
            }
        }
    }
}

/// Votes through the balancer one after another until told to stop.
#[derive(Default)]
struct VoteLog {
    ok: AtomicU64,
    ok_after_kill: AtomicU64,
    errors_5xx: AtomicU64,
    failed: AtomicU64,
    stop: std::sync::atomic::AtomicBool,
}

async fn keep_voting(lb: String, id: String, log: Arc<VoteLog>, killed_at: Arc<OnceLock<Instant>>) {
    let http = client();
    let mut i = 0u64;
    while !log.stop.load(Ordering::SeqCst) {
        i += 1;
        let res = http
            .post(format!("{lb}/api/polls/{id}/votes"))
            .header("Idempotency-Key", format!("storm-{i}"))
            .json(&json!({"option": i % 3}))
            .send()
            .await;
        match res.map(|r| r.status().as_u16()) {
            Ok(200) => {
                log.ok.fetch_add(1, Ordering::SeqCst);
                if killed_at.get().is_some() {
                    log.ok_after_kill.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(s) if s >= 500 => {
                log.errors_5xx.fetch_add(1, Ordering::SeqCst);
            }
            _ => {
                log.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints when the killed instance's followers were live again, in 250 ms
/// buckets; returns how many buckets are not empty.
fn histogram(back: &[Duration]) -> usize {
    const BUCKET_MS: u128 = 250;
    let top = back
        .iter()
        .map(|d| d.as_millis() / BUCKET_MS)
        .max()
        .unwrap_or(0);
    let mut buckets = vec![0usize; top as usize + 1];
    for d in back {
        buckets[(d.as_millis() / BUCKET_MS) as usize] += 1;
    }
    let widest = buckets.iter().copied().max().unwrap_or(1).max(1);
    eprintln!(
        "reconnect storm: live again after the SIGKILL ({} followers):",
        back.len()
    );
    for (i, n) in buckets.iter().enumerate() {
        let bar = "#".repeat((n * 50).div_ceil(widest));
        eprintln!(
            "  {:>5.2}-{:<5.2} s | {bar} {n}",
            (i as u128 * BUCKET_MS) as f64 / 1000.0,
            ((i as u128 + 1) * BUCKET_MS) as f64 / 1000.0
        );
    }
    buckets.iter().filter(|n| **n > 0).count()
}

/// SIGKILL one of three instances behind the shipped HAProxy config while
/// followers of every transport are spread over them: every follower is
/// live on a survivor within 15 s, reconnects spread over time, votes keep
/// succeeding through the balancer with at most the one in flight failing,
/// the survivors' followers never drop, and every follower ends on the
/// final tally in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_three_instances_killed_under_its_followers_they_come_back_on_the_survivors() {
    let n: usize = std::env::var("TALLY_STORM_FOLLOWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let redis = TestRedis::start().await;
    let mut procs = Vec::new();
    for _ in 0..3 {
        procs.push(TallyProcess::start(&[("TALLY_REDIS_URL", redis.url())]).await);
    }
    let lb = Haproxy::start_shipped_local(&[procs[0].addr, procs[1].addr, procs[2].addr]).await;
    let base = lb.base();
    let id = procs[0].create_poll(&["a", "b", "c"]).await;
    let killed_at = Arc::new(OnceLock::new());

    let kinds = [Kind::Ws, Kind::Sse, Kind::LongPoll];
    let followers: Vec<Arc<Follower>> = (0..n)
        .map(|i| Arc::new(Follower::new(kinds[i % 3])))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for f in &followers {
        tasks.spawn(follow(
            base.clone(),
            id.clone(),
            Arc::clone(f),
            Arc::clone(&killed_at),
        ));
    }
    within("every follower to be live", async {
        while followers
            .iter()
            .any(|f| f.version.load(Ordering::SeqCst) == NO_VERSION)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let votes = Arc::new(VoteLog::default());
    let voter = tokio::spawn(keep_voting(
        base.clone(),
        id.clone(),
        Arc::clone(&votes),
        Arc::clone(&killed_at),
    ));

    within("votes to succeed before the kill", async {
        while votes.ok.load(Ordering::SeqCst) < 10 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Kill the instance holding the most streaming followers.
    let streaming = |f: &Follower| !matches!(f.kind, Kind::LongPoll);
    let on = |name: &str| {
        followers
            .iter()
            .filter(|f| streaming(f) && *f.instance.lock().unwrap() == name)
            .count()
    };
    let names: Vec<String> = procs
        .iter()
        .map(|p| format!("proc-{}", p.addr.port()))
        .collect();
    let victim = (0..3).max_by_key(|i| on(&names[*i])).unwrap();
    let held = on(&names[victim]);
    eprintln!(
        "reconnect storm: {n} followers, streams per instance {:?}; killing {}",
        names.iter().map(|name| on(name)).collect::<Vec<_>>(),
        names[victim]
    );
    assert!(held > 0, "the victim holds no follower");
    let drops_before: Vec<usize> = followers
        .iter()
        .map(|f| f.drops.load(Ordering::SeqCst))
        .collect();
    let on_victim: Vec<bool> = followers
        .iter()
        .map(|f| *f.instance.lock().unwrap() == names[victim])
        .collect();
    killed_at.set(Instant::now()).unwrap();
    procs[victim].signal("KILL");
    procs[victim].wait_exit(WAIT).await;

    // Every streaming follower of the victim is live again on a survivor.
    tokio::time::timeout(RECOVERY, async {
        loop {
            let pending = followers
                .iter()
                .enumerate()
                .filter(|(i, f)| {
                    let moved = (on_victim[*i] && streaming(f))
                        || f.drops.load(Ordering::SeqCst) > drops_before[*i];
                    moved
                        && (f.back_after.lock().unwrap().is_none()
                            || *f.instance.lock().unwrap() == names[victim])
                })
                .count();
            if pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!("followers of the killed instance not live again within {RECOVERY:?}")
    });
    let back: Vec<Duration> = followers
        .iter()
        .filter_map(|f| *f.back_after.lock().unwrap())
        .collect();
    let slowest = back.iter().max().copied().unwrap_or_default();
    assert!(slowest < RECOVERY, "one came back after {slowest:?}");
    let spread = histogram(&back);
    assert!(
        spread >= 3,
        "reconnects bunched into {spread} 250 ms buckets"
    );
    // The first retry waits 0.1 s plus up to 1 s at random: spread over
    // most of that second (with a fixed delay they spread over ~0.5 s,
    // only by the survivors' load).
    let fastest = back.iter().min().copied().unwrap_or_default();
    assert!(
        slowest - fastest >= Duration::from_millis(800),
        "reconnects spread over only {:?}",
        slowest - fastest
    );

    // Keep voting a little on the survivors, then stop and check the truth.
    let ok_at_recovery = votes.ok_after_kill.load(Ordering::SeqCst);
    within("votes to go on after the recovery", async {
        while votes.ok_after_kill.load(Ordering::SeqCst) < ok_at_recovery + 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    votes.stop.store(true, Ordering::SeqCst);
    within("the voter to stop", voter).await.unwrap();
    let (ok, ok_after, vote_5xx, vote_failed) = (
        votes.ok.load(Ordering::SeqCst),
        votes.ok_after_kill.load(Ordering::SeqCst),
        votes.errors_5xx.load(Ordering::SeqCst),
        votes.failed.load(Ordering::SeqCst),
    );
    // The voter is sequential: at most the one vote in flight to the
    // killed instance may fail.
    assert!(
        vote_5xx + vote_failed <= 1,
        "{vote_5xx} votes answered 5xx and {vote_failed} failed through the balancer"
    );
    let (in_redis, version) = redis.tally(&id).await;
    let total: u64 = in_redis.iter().sum();
    assert!(
        (ok..=ok + vote_5xx + vote_failed).contains(&total),
        "{total} votes in Redis, {ok} acknowledged"
    );
    assert_eq!(version, total);

    // Every follower ends on the final tally.
    within("every follower on the final tally", async {
        while followers
            .iter()
            .any(|f| f.version.load(Ordering::SeqCst) != version)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // The survivors' streaming followers never dropped; long polls that
    // were waiting on the victim got at most a 5xx each, nobody else did.
    for (i, f) in followers.iter().enumerate() {
        let drops = f.drops.load(Ordering::SeqCst) - drops_before[i];
        if streaming(f) && !on_victim[i] {
            assert_eq!(
                drops, 0,
                "follower {i} ({:?}) on a survivor dropped",
                f.kind
            );
        }
        if streaming(f) {
            // Reconnects through the balancer never see the dead one.
            assert_eq!(f.errors_5xx.load(Ordering::SeqCst), 0, "follower {i}");
        }
    }
    // A long poll waiting on the killed instance gets one 5xx.
    let follower_5xx: usize = followers
        .iter()
        .map(|f| f.errors_5xx.load(Ordering::SeqCst))
        .sum();
    let long_polls = followers.iter().filter(|f| !streaming(f)).count();
    assert!(
        follower_5xx <= long_polls,
        "{follower_5xx} 5xx answers to {long_polls} long-poll followers"
    );
    let moved = followers
        .iter()
        .zip(&drops_before)
        .filter(|(f, before)| f.drops.load(Ordering::SeqCst) > **before)
        .count();
    drop(tasks);
    for (i, p) in procs.iter().enumerate() {
        if i != victim {
            p.assert_no_panic();
        }
    }
    eprintln!(
        "reconnect storm: {held} streams and {moved} followers in all on the killed instance; \
         all live again within {slowest:?}; {ok} votes acknowledged ({ok_after} after the kill), \
         {vote_5xx} answered 5xx, {vote_failed} failed; {follower_5xx} 5xx to followers; final version {version}"
    );
}
