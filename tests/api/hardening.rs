//! Hostile clients, overload and faults. Each test here fails without the
//! protection it names: the header-read timeout (slowloris), the WebSocket
//! send timeout (a reader that never reads), the frame checks (raw abuse),
//! the drain on SIGTERM, idempotency keys across a SIGKILL, and the Redis
//! command timeout (a paused Redis).
//!
//! `redis_faults.rs` has the single-vote versions of the Redis faults; the
//! tests here add concurrency, real processes and signals.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::helpers::*;
use crate::process::TallyProcess;
use crate::redis_faults::{sse_until, truth, ws_until};

// ---------------------------------------------------------------------------
// Slowloris

/// How a slow client's connection ended.
#[derive(Debug)]
struct SlowEnd {
    /// When the server hung up, if it did before the client gave up.
    closed_after: Option<Duration>,
    /// What the server sent (nothing, for a request it never finished reading).
    received: usize,
}

/// Connects and writes `bytes` one every `every`, until the server hangs
/// up or `give_up` passes.
async fn dribble(addr: SocketAddr, bytes: Vec<u8>, every: Duration, give_up: Duration) -> SlowEnd {
    let mut stream = within("slow connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    let (mut sent, mut received) = (0, 0);
    let mut buf = [0u8; 1024];
    while started.elapsed() < give_up {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return SlowEnd { closed_after: Some(started.elapsed()), received },
                Ok(n) => received += n,
            },
            _ = tick.tick() => {
                if sent < bytes.len() {
                    if stream.write_all(&bytes[sent..=sent]).await.is_err() {
                        return SlowEnd { closed_after: Some(started.elapsed()), received };
                    }
                    sent += 1;
                }
            }
        }
    }
    SlowEnd {
        closed_after: None,
        received,
    }
}

/// A request whose headers never end: a request line, then header after
/// header, far more than a dribbler can send before it gives up.
fn endless_request() -> Vec<u8> {
    let mut bytes = b"GET /api/polls/lpl HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for i in 0..1000 {
        bytes.extend_from_slice(format!("X-Slow-{i}: z\r\n").as_bytes());
    }
    bytes
}

/// Slowloris: clients that dribble a request's header bytes — or the
/// HTTP/2 preface, or nothing at all — are cut off at the header timeout,
/// and a normal client is served while they hang on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_are_cut_off_at_the_header_timeout_while_others_are_served() {
    const HEADER_TIMEOUT: Duration = Duration::from_millis(500);
    const GIVE_UP: Duration = Duration::from_secs(6);
    let app = spawn_app_with(&Backend::Memory, |c| c.header_timeout = HEADER_TIMEOUT).await;
    let every = Duration::from_millis(50);
    let mut slow = Vec::new();
    for i in 0..20 {
        let bytes = match i {
            0 => Vec::new(),
            1 => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            _ => endless_request(),
        };
        slow.push(tokio::spawn(dribble(app.addr, bytes, every, GIVE_UP)));
    }

    // While they hang on, an ordinary client is served at once, repeatedly.
    for _ in 0..5 {
        let started = Instant::now();
        let res = app.get("/api/polls/lpl").await;
        assert_eq!(res.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "normal request took {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for (i, task) in slow.into_iter().enumerate() {
        let end = within("slow client to end", task).await.unwrap();
        let closed = end
            .closed_after
            .unwrap_or_else(|| panic!("slow client {i} still connected after {GIVE_UP:?}"));
        assert!(
            closed >= HEADER_TIMEOUT && closed < HEADER_TIMEOUT + Duration::from_secs(2),
            "slow client {i} cut off after {closed:?} (header timeout {HEADER_TIMEOUT:?})"
        );
        assert_eq!(end.received, 0, "slow client {i} got a response");
    }
    assert_eq!(app.get("/healthz").await.status(), 200);
}

// ---------------------------------------------------------------------------
// Raw WebSocket

/// A WebSocket client over a bare TCP socket: it writes whatever frames a
/// test builds, legal or not, and reads the server's frames one by one.
struct RawWs {
    stream: TcpStream,
}

/// The first byte of a frame: FIN flag and opcode.
const FIN: u8 = 0x80;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

impl RawWs {
    async fn connect(addr: SocketAddr, path: &str) -> Self {
        let stream = within("tcp connect", TcpStream::connect(addr))
            .await
            .expect("tcp connect");
        Self::handshake(stream, addr, path).await
    }

    /// Upgrades `stream`, reading exactly the 101 response's head.
    async fn handshake(mut stream: TcpStream, addr: SocketAddr, path: &str) -> Self {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        within("handshake write", stream.write_all(request.as_bytes()))
            .await
            .expect("handshake write");
        let mut head = Vec::new();
        within("handshake response", async {
            while !head.ends_with(b"\r\n\r\n") {
                head.push(stream.read_u8().await.expect("handshake read"));
            }
        })
        .await;
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self { stream }
    }

    /// Writes one frame: `first` is FIN | RSV | opcode.
    async fn send(&mut self, first: u8, payload: &[u8]) {
        self.write(&frame(first, payload)).await;
    }

    async fn write(&mut self, bytes: &[u8]) {
        within("raw frame write", self.stream.write_all(bytes))
            .await
            .expect("raw frame write");
    }

    /// The server's next frame (opcode, payload), or `None` once the
    /// connection has ended.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        within("server frame", async {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await.ok()?;
            let len = match head[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await.ok()?),
                127 => self.stream.read_u64().await.ok()?,
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.stream.read_exact(&mut payload).await.ok()?;
            Some((head[0] & 0x0f, payload))
        })
        .await
    }

    /// The next text message that is not a results push, as JSON.
    async fn reply(&mut self) -> Value {
        loop {
            let (opcode, payload) = self.frame().await.expect("socket open");
            if opcode != TEXT {
                continue;
            }
            let v: Value = serde_json::from_slice(&payload).expect("JSON text");
            if v["type"] != "results" {
                return v;
            }
        }
    }

    /// Reads until the server's close frame; its code (`None` if the
    /// connection ended without one).
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            let (opcode, payload) = self.frame().await?;
            if opcode == CLOSE {
                return Some(u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    }
}

/// A frame header with a payload length in its shortest encoding.
fn frame_header(first: u8, len: u64, masked: bool) -> Vec<u8> {
    let mask = if masked { 0x80 } else { 0 };
    let mut head = vec![first];
    match len {
        0..=125 => head.push(mask | len as u8),
        126..=65535 => {
            head.push(mask | 126);
            head.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            head.push(mask | 127);
            head.extend_from_slice(&len.to_be_bytes());
        }
    }
    head
}

/// Raw frames that break the protocol each get the close code RFC 6455
/// gives them; a binary frame only gets an error message; the process
/// never panics and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_websocket_abuse_gets_the_right_close_codes_and_never_a_panic() {
    let tally = TallyProcess::start(&[]).await;
    let path = "/api/polls/lpl/ws";
    let vote = br#"{"type":"vote","option":0,"request_id":"raw-1"}"#;
    let mut oversized = vote.to_vec();
    oversized.resize(5000, b' ');

    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a 5000-byte text frame",
            frame(FIN | TEXT, &oversized),
            1009,
        ),
        (
            "a frame header announcing 2^62 bytes",
            [frame_header(FIN | TEXT, 1 << 62, true), MASK.to_vec()].concat(),
            1009,
        ),
        (
            "invalid UTF-8 in a text frame",
            frame(FIN | TEXT, &[0x7b, 0xff, 0xfe, 0x7d]),
            1007,
        ),
        ("a fragmented ping (FIN = 0)", frame(PING, b"hi"), 1002),
        ("a ping of 126 bytes", frame(FIN | PING, &[0; 126]), 1002),
        ("an unmasked frame", unmasked(FIN | TEXT, vote), 1002),
        ("a reserved bit set", frame(FIN | 0x40 | TEXT, vote), 1002),
        ("an unknown opcode", frame(FIN | 0x3, vote), 1002),
        (
            "a continuation with nothing to continue",
            frame(FIN, vote),
            1002,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut ws = RawWs::connect(tally.addr, path).await;
        ws.write(&bytes).await;
        assert_eq!(ws.close_code().await, Some(code), "{what}");
        assert!(
            ws.frame().await.is_none(),
            "{what}: connection ends after the close"
        );
    }

    // Binary: an error message, and the same socket still votes.
    let mut ws = RawWs::connect(tally.addr, path).await;
    ws.send(FIN | BINARY, b"{}").await;
    let reply = ws.reply().await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("bad_message"))
    );
    ws.send(FIN | TEXT, vote).await;
    let reply = ws.reply().await;
    assert_eq!(reply["type"], "vote_ack", "{reply}");

    // Nothing broke: the process serves, a fresh WebSocket works, no panic.
    let res = send("healthz", client().get(tally.url("/healthz"))).await;
    assert_eq!(res.status(), 200);
    let mut fresh = WsClient::connect(&tally.ws_url(path)).await;
    assert_eq!(
        total(&fresh.next_results().await),
        1101,
        "only the one good vote counted"
    );
    tally.assert_no_panic();
}

/// A masked frame as a client sends it.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = frame_header(first, payload.len() as u64, true);
    bytes.extend_from_slice(&MASK);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    bytes
}

/// A frame without the mask every client frame must have.
fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = frame_header(first, payload.len() as u64, false);
    bytes.extend_from_slice(payload);
    bytes
}

// ---------------------------------------------------------------------------
// A WebSocket reader that never reads

/// A poll whose every push is large (about 7 KB), so a few fill a socket.
async fn bulky_poll(app: &TestApp) -> String {
    let options: Vec<String> = (0..20)
        .map(|i| format!("{i:02}{}", "票".repeat(98)))
        .collect();
    let body = json!({"question": "票".repeat(300), "options": options, "vote_limit": "unlimited"});
    let res = app.post_json("/api/polls", &body).await;
    assert_eq!(res.status(), 201);
    json_of(res).await["poll"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A WebSocket client that never reads, on a socket with a tiny receive
/// buffer, while votes flood its poll: the server drops it once a send
/// has waited `TALLY_WS_SEND_TIMEOUT`, so what it holds for that client is
/// bounded; other followers receive every update meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_never_reads_is_dropped_after_the_send_timeout() {
    const SEND_TIMEOUT: Duration = Duration::from_millis(500);
    let app = spawn_app_with(&Backend::Memory, |c| {
        c.ws_send_timeout = SEND_TIMEOUT;
        // Only the send timeout may act: no pings to go unanswered.
        c.ws_ping_interval = Duration::from_secs(3600);
    })
    .await;
    let id = bulky_poll(&app).await;
    let poll_id = tally::poll::PollId::parse(&id).unwrap();
    let mut ws = app.ws(&id).await;
    ws.next_results().await;
    let mut sse = app.sse(&id, None).await;
    sse.next_results().await;

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = within("connect", socket.connect(app.addr)).await.unwrap();
    let mut stuck = RawWs::handshake(stream, app.addr, &format!("/api/polls/{id}/ws")).await;
    within("three followers", async {
        while app.hub.followers(&poll_id) != 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    // Flood until the server gives up on the stuck reader.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let mut voters = Vec::new();
    for _ in 0..4 {
        let (client, base, id) = (client(), app.base.clone(), id.clone());
        let (stop, acked) = (stop.clone(), acked.clone());
        voters.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = vote_with(&client, &base, &id, 0, None).await;
                assert_eq!(status, 200, "{body}");
                acked.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let flood_started = Instant::now();
    within("the stuck reader to be dropped", async {
        while app.hub.followers(&poll_id) != 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let dropped_after = flood_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for v in voters {
        within("voters to stop", v).await.unwrap();
    }
    let acked = acked.load(Ordering::Relaxed);
    assert!(acked > 0);
    eprintln!("stuck reader dropped {dropped_after:?} into the flood, after {acked} votes");

    // The other followers end on the final count, on the same connections.
    let (mut ws_last, mut sse_last) = (None, None);
    let last = ws_until(&mut ws, &mut ws_last, acked).await;
    assert_eq!(total(&last), acked);
    sse_until(&mut sse, &mut sse_last, acked).await;
    // The stuck socket holds only what was in flight, then ends.
    let mut bytes = 0;
    while let Some((_, payload)) = stuck.frame().await {
        bytes += payload.len();
    }
    assert!(bytes < 8 << 20, "the stuck reader was sent {bytes} bytes");
}

// ---------------------------------------------------------------------------
// SIGTERM and SIGKILL of real processes

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
    let mut followers = Vec::new();
    for _ in 0..5 {
        let mut ws = WsClient::connect(&tally.ws_url(&format!("/api/polls/{id}/ws"))).await;
        ws.next_results().await;
        followers.push(ws);
    }
    let mut sse = SseClient::connect(&tally.url(&format!("/api/polls/{id}/events")), None).await;
    sse.next_results().await;

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
    let sse_end = loop {
        match sse.step().await {
            SseStep::Event(_) => continue,
            end => break end,
        }
    };
    assert!(
        matches!(sse_end, SseStep::End),
        "SSE stream ends cleanly: {sse_end:?}"
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
    let (counts, version) = truth(&redis, &id).await;
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

/// SIGKILL mid-burst: votes with idempotency keys go through instance A,
/// which is killed; every vote whose answer was lost is retried through B
/// with the same key. Redis ends with exactly one vote per key: none lost
/// (acknowledged by A, or retried), none doubled (counted by A before it
/// died and retried anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_then_retries_elsewhere_count_every_vote_exactly_once() {
    const WORKERS: usize = 8;
    const VOTES_EACH: usize = 60;
    let redis = TestRedis::start().await;
    let env = [("TALLY_REDIS_URL", redis.url())];
    let mut a = TallyProcess::start(&env).await;
    let b = TallyProcess::start(&env).await;
    let id = a.create_poll(&["a", "b", "c"]).await;

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let acked = Arc::new(AtomicU64::new(0));
    let kill_now = Arc::new(Notify::new());
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (base, id) = (a.base.clone(), id.clone());
        let (outcomes, acked, kill_now) = (outcomes.clone(), acked.clone(), kill_now.clone());
        workers.push(tokio::spawn(async move {
            let client = client();
            for i in 0..VOTES_EACH {
                let (key, option) = (format!("w{w}-{i}"), (i % 3) as u32);
                if keyed_vote(&client, &base, &id, &key, option).await {
                    outcomes.lock().unwrap().acked.insert(key, option);
                    if acked.fetch_add(1, Ordering::SeqCst) + 1 == (WORKERS * VOTES_EACH / 3) as u64
                    {
                        kill_now.notify_one();
                    }
                } else {
                    outcomes.lock().unwrap().unseen.push((key, option));
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

    let (counted_before_retry, _) = truth(&redis, &id).await;
    let mut outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let acked_by_a = outcomes.acked.len() as u64;
    assert!(!outcomes.unseen.is_empty(), "the kill hit the burst");
    let client = client();
    for (key, option) in std::mem::take(&mut outcomes.unseen) {
        let ok = within("retry through B", async {
            loop {
                if keyed_vote(&client, &b.base, &id, &key, option).await {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(ok);
        assert!(
            outcomes.acked.insert(key, option).is_none(),
            "a key acknowledged twice"
        );
    }

    // And a client that retries a vote it did see answered (through the
    // other instance) counts nothing either.
    let replays: Vec<(String, u32)> = outcomes
        .acked
        .iter()
        .take(10)
        .map(|(k, o)| (k.clone(), *o))
        .collect();
    for (key, option) in replays {
        assert!(
            keyed_vote(&client, &b.base, &id, &key, option).await,
            "replay of {key}"
        );
    }

    let mut expected = vec![0u64; 3];
    for option in outcomes.acked.values() {
        expected[*option as usize] += 1;
    }
    assert_eq!(
        outcomes.acked.len(),
        WORKERS * VOTES_EACH,
        "every key acknowledged in the end"
    );
    let (counts, version) = truth(&redis, &id).await;
    assert_eq!(
        counts, expected,
        "one vote per key: nothing lost, nothing doubled"
    );
    assert_eq!(version, (WORKERS * VOTES_EACH) as u64);
    let counted_unseen = counted_before_retry.iter().sum::<u64>() - acked_by_a;
    eprintln!(
        "SIGKILL: {acked_by_a} acknowledged by A, {} retried through B, of which {counted_unseen} \
         A had counted without answering",
        WORKERS * VOTES_EACH - acked_by_a as usize
    );
    b.assert_no_panic();
}

// ---------------------------------------------------------------------------
// Redis paused

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

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT {
        let (client, base, id) = (client(), app.base.clone(), id.clone());
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
    let bound = REDIS_TIMEOUT + Duration::from_secs(1);
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
            "vote {i} took {took:?} to fail (timeout {REDIS_TIMEOUT:?})"
        );
        slowest = slowest.max(took);
    }
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
    let (in_redis, version) = truth(&redis, &id).await;
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
