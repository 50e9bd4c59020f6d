//! A bounded soak: three real `tally` processes on one Redis, followers
//! over all four transports on every instance, and a steady stream of
//! votes with idempotency keys — some abandoned mid-flight and retried on
//! another instance, some sent twice on purpose. At the end every follower
//! must show exactly what Redis holds, and Redis exactly one vote per
//! acknowledged key: nothing lost, nothing doubled.
//!
//! Ignored by default; `scripts/soak [seconds]` runs it (CI: 20 s).
//! Knobs: `TALLY_SOAK_SECS` (default 180), `TALLY_SOAK_RATE` (votes/s,
//! default 150), `TALLY_SOAK_FOLLOWERS` (per transport, instance and poll,
//! default 3).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;
use crate::process::TallyProcess;

const INSTANCES: usize = 3;
const POLLS: usize = 2;
const OPTIONS: u32 = 4;
const VOTERS: usize = 6;
/// Share of votes whose first attempt is abandoned mid-flight.
const ABANDON: f64 = 0.05;
/// Share of acknowledged votes sent again, through another instance.
const DUPLICATE: f64 = 0.03;
/// Longest the followers may take to converge once voting stops.
const SETTLE: Duration = Duration::from_secs(30);

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the voters learned, shared.
#[derive(Default)]
struct Ledger {
    /// Per poll: key → option of every acknowledged vote.
    acked: Vec<BTreeMap<String, u32>>,
}

#[derive(Default)]
struct Stats {
    ok_replies: AtomicU64,
    abandoned: AtomicU64,
    failed_attempts: AtomicU64,
    duplicates: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a bounded soak of a few minutes: scripts/soak [seconds]"]
async fn soak_three_instances_four_transports_nothing_lost_or_doubled() {
    let secs = knob("TALLY_SOAK_SECS", 180);
    let rate = knob("TALLY_SOAK_RATE", 150) as f64;
    let per = knob("TALLY_SOAK_FOLLOWERS", 3) as usize;
    let started = Instant::now();
    let redis = TestRedis::start().await;
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(TallyProcess::start(&[("TALLY_REDIS_URL", redis.url())]).await);
    }
    let bases: Arc<Vec<String>> = Arc::new(instances.iter().map(|i| i.base.clone()).collect());
    let mut polls = Vec::new();
    for _ in 0..POLLS {
        polls.push(instances[0].create_poll(&["a", "b", "c", "d"]).await);
    }

    // Followers: every transport, on every instance, of every poll.
    let targets: Vec<watch::Sender<Option<u64>>> =
        (0..POLLS).map(|_| watch::channel(None).0).collect();
    let mut followers: Vec<(String, usize, JoinHandle<Value>)> = Vec::new();
    for (i, tally) in instances.iter().enumerate() {
        for (p, id) in polls.iter().enumerate() {
            for n in 0..per {
                for transport in ["ws", "sse", "longpoll", "poll"] {
                    let name = format!("{transport} #{n} on instance {i}, poll {p}");
                    let task = spawn_follower(transport, tally, id, targets[p].subscribe());
                    followers.push((name, p, task));
                }
            }
        }
    }
    let rss_start = rss(&instances);
    eprintln!(
        "soak: {} followers, {rate} votes/s for {secs} s; RSS at start {rss_start:?} KiB",
        followers.len()
    );

    // Votes.
    let ledger = Arc::new(Mutex::new(Ledger {
        acked: vec![BTreeMap::new(); POLLS],
    }));
    let stats = Arc::new(Stats::default());
    let polls = Arc::new(polls);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let period = Duration::from_secs_f64(VOTERS as f64 / rate);
    let voters: Vec<_> = (0..VOTERS)
        .map(|v| {
            let (bases, polls, ledger, stats) =
                (bases.clone(), polls.clone(), ledger.clone(), stats.clone());
            tokio::spawn(voter(v, bases, polls, ledger, stats, period, deadline))
        })
        .collect();
    let mut rss_warm = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(10).min(deadline - Instant::now())).await;
        let now = rss(&instances);
        rss_warm.get_or_insert_with(|| now.clone());
        eprintln!(
            "soak: {:>4} s, {} acknowledged, {} abandoned, {} failed attempts, {} duplicates; RSS {now:?} KiB",
            started.elapsed().as_secs(),
            stats.ok_replies.load(Ordering::Relaxed),
            stats.abandoned.load(Ordering::Relaxed),
            stats.failed_attempts.load(Ordering::Relaxed),
            stats.duplicates.load(Ordering::Relaxed),
        );
    }
    for v in voters {
        tokio::time::timeout(Duration::from_secs(30), v)
            .await
            .expect("voters to finish")
            .expect("voter");
    }

    // Redis holds one vote per acknowledged key, per poll and option.
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let mut finals = Vec::new();
    for (p, id) in polls.iter().enumerate() {
        let mut expected = vec![0u64; OPTIONS as usize];
        for option in ledger.acked[p].values() {
            expected[*option as usize] += 1;
        }
        let (counts, version) = redis.tally(id).await;
        assert_eq!(
            counts, expected,
            "poll {p}: Redis against the acknowledged keys"
        );
        assert_eq!(
            version,
            ledger.acked[p].len() as u64,
            "poll {p}: one version per vote"
        );
        targets[p].send_replace(Some(version));
        finals.push(counts);
    }

    // Every follower ends on exactly that.
    let settle = tokio::time::Instant::now() + SETTLE;
    for (name, p, task) in followers {
        let last = tokio::time::timeout_at(settle, task)
            .await
            .unwrap_or_else(|_| panic!("{name} did not converge within {SETTLE:?}"))
            .unwrap_or_else(|e| panic!("{name} failed: {e}"));
        assert_eq!(counts(&last), finals[p], "{name}");
    }

    let rss_end = rss(&instances);
    let rss_warm = rss_warm.unwrap_or_else(|| rss_start.clone());
    for (i, tally) in instances.iter().enumerate() {
        tally.assert_no_panic();
        let grew = rss_end[i].saturating_sub(rss_warm[i]);
        assert!(
            grew < 64 * 1024,
            "instance {i} grew {grew} KiB during the soak"
        );
    }
    let keys: usize = ledger.acked.iter().map(BTreeMap::len).sum();
    eprintln!(
        "soak: passed in {:?}: {keys} votes, each counted once; {} 200 replies \
         ({} deliberate duplicates), {} abandoned and {} failed attempts retried; \
         RSS KiB start {rss_start:?}, warm {rss_warm:?}, end {rss_end:?}",
        started.elapsed(),
        stats.ok_replies.load(Ordering::Relaxed),
        stats.duplicates.load(Ordering::Relaxed),
        stats.abandoned.load(Ordering::Relaxed),
        stats.failed_attempts.load(Ordering::Relaxed),
    );
}

/// Resident memory of each instance, in KiB.
fn rss(instances: &[TallyProcess]) -> Vec<u64> {
    instances
        .iter()
        .map(|i| {
            std::fs::read_to_string(format!("/proc/{}/status", i.pid()))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// One voter: a vote every `period` until `deadline`, each with its own
/// key, retried on another instance until acknowledged.
async fn voter(
    v: usize,
    bases: Arc<Vec<String>>,
    polls: Arc<Vec<String>>,
    ledger: Arc<Mutex<Ledger>>,
    stats: Arc<Stats>,
    period: Duration,
    deadline: Instant,
) {
    let client = client();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    while Instant::now() < deadline {
        tick.tick().await;
        n += 1;
        let p = rand::random_range(0..POLLS);
        let option = rand::random_range(0..OPTIONS);
        let key = format!("soak-{v}-{n}");
        let first = rand::random_range(0..bases.len());
        let mut attempt = 0;
        let results = loop {
            let base = &bases[(first + attempt) % bases.len()];
            attempt += 1;
            let abandon = attempt == 1 && rand::random_bool(ABANDON);
            match vote_once(&client, base, &polls[p], &key, option, abandon).await {
                Some(results) => break results,
                None if abandon => stats.abandoned.fetch_add(1, Ordering::Relaxed),
                None => stats.failed_attempts.fetch_add(1, Ordering::Relaxed),
            };
            assert!(attempt < 50, "vote {key} never acknowledged");
            if !abandon {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        stats.ok_replies.fetch_add(1, Ordering::Relaxed);
        let first_reply = ledger.lock().unwrap().acked[p].insert(key.clone(), option);
        assert!(first_reply.is_none(), "key {key} acknowledged twice");
        if rand::random_bool(DUPLICATE) {
            let base = &bases[(first + attempt) % bases.len()];
            let replay = vote_once(&client, base, &polls[p], &key, option, false)
                .await
                .unwrap_or_else(|| panic!("replay of {key} refused"));
            assert_eq!(replay, results, "a replay answers the first outcome");
            stats.duplicates.fetch_add(1, Ordering::Relaxed);
            stats.ok_replies.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One attempt; the results of a 200, or `None`. An abandoned attempt is
/// dropped a moment after it starts, so nobody knows whether it counted.
async fn vote_once(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    key: &str,
    option: u32,
    abandon: bool,
) -> Option<Value> {
    let request = client
        .post(format!("{base}/api/polls/{id}/votes"))
        .header("Idempotency-Key", key)
        .json(&json!({ "option": option }))
        .timeout(Duration::from_secs(5))
        .send();
    let limit = if abandon {
        Duration::from_micros(rand::random_range(0..3000))
    } else {
        Duration::from_secs(6)
    };
    let res = tokio::time::timeout(limit, request).await.ok()?.ok()?;
    if res.status() != 200 {
        return None;
    }
    let body: Value = res.json().await.ok()?;
    Some(body["results"].clone())
}

fn spawn_follower(
    transport: &str,
    tally: &TallyProcess,
    id: &str,
    target: watch::Receiver<Option<u64>>,
) -> JoinHandle<Value> {
    let path = format!("/api/polls/{id}");
    match transport {
        "ws" => tokio::spawn(follow_ws(tally.ws_url(&format!("{path}/ws")), target)),
        "sse" => tokio::spawn(follow_sse(tally.url(&format!("{path}/events")), target)),
        "longpoll" => tokio::spawn(follow_longpoll(
            tally.url(&format!("{path}/changes")),
            target,
        )),
        _ => tokio::spawn(follow_poll(tally.url(&path), target)),
    }
}

/// The versions one follower saw, checked as they come.
struct Seen {
    last: Option<Value>,
}

impl Seen {
    fn new() -> Self {
        Self { last: None }
    }

    /// Takes a newer results object; versions must strictly increase.
    fn push(&mut self, results: Value, what: &str) {
        if let Some(last) = &self.last {
            assert!(
                version(&results) > version(last),
                "{what}: version {} after {}",
                version(&results),
                version(last)
            );
        }
        self.last = Some(results);
    }

    /// The last results, once they reach the final version.
    fn done(&self, target: &watch::Receiver<Option<u64>>) -> Option<Value> {
        let target = (*target.borrow())?;
        self.last.clone().filter(|l| version(l) >= target)
    }
}

async fn follow_ws(url: String, mut target: watch::Receiver<Option<u64>>) -> Value {
    let mut ws = WsClient::connect(&url).await;
    let mut seen = Seen::new();
    loop {
        if let Some(last) = seen.done(&target) {
            return last;
        }
        tokio::select! {
            msg = ws.stream.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(text.as_str()).expect("JSON");
                    if v["type"] == "results" {
                        seen.push(v, "ws");
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("ws follower {url} ended: {other:?}"),
            },
            _ = target.changed() => {}
        }
    }
}

async fn follow_sse(url: String, mut target: watch::Receiver<Option<u64>>) -> Value {
    // The shared test client bounds whole requests (70 s); a stream must
    // outlive that.
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let res = send("sse connect", client.get(&url)).await;
    assert_eq!(res.status(), 200);
    let mut events = res.bytes_stream().eventsource();
    let mut seen = Seen::new();
    loop {
        if let Some(last) = seen.done(&target) {
            return last;
        }
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(ev)) if ev.event == "results" => {
                    let v: Value = serde_json::from_str(&ev.data).expect("JSON");
                    assert_eq!(ev.id, version(&v).to_string(), "SSE id is the version");
                    seen.push(v, "sse");
                }
                Some(Ok(_)) => {}
                other => panic!("sse follower {url} ended: {other:?}"),
            },
            _ = target.changed() => {}
        }
    }
}

async fn follow_longpoll(url: String, target: watch::Receiver<Option<u64>>) -> Value {
    let client = client();
    let mut seen = Seen::new();
    loop {
        if let Some(last) = seen.done(&target) {
            return last;
        }
        let since = seen.last.as_ref().map(version);
        let mut req = client.get(&url).query(&[("timeout", "5")]);
        if let Some(since) = since {
            req = req.query(&[("since", since)]);
        }
        let res = send("long poll", req).await;
        match res.status().as_u16() {
            200 => seen.push(json_of(res).await, "longpoll"),
            204 => {}
            other => panic!("long poll {url} answered {other}"),
        }
    }
}

async fn follow_poll(url: String, target: watch::Receiver<Option<u64>>) -> Value {
    let client = client();
    let mut seen = Seen::new();
    loop {
        if let Some(last) = seen.done(&target) {
            return last;
        }
        let mut req = client.get(&url);
        if let Some(last) = &seen.last {
            req = req.header("If-None-Match", format!("\"{}\"", version(last)));
        }
        let res = send("short poll", req).await;
        match res.status().as_u16() {
            200 => seen.push(json_of(res).await, "poll"),
            304 => {}
            other => panic!("short poll {url} answered {other}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
