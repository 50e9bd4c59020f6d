//! A real haproxy on loopback in front of three in-process instances on one
//! Redis: what a deployment looks like, without Docker.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// haproxy on a free loopback port, killed when dropped.
pub(crate) struct Haproxy {
    addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// Starts haproxy balancing over `backends`, with health checks on
    /// `/readyz` as the deployment's config has, and waits until it serves.
    async fn start(backends: &[SocketAddr]) -> Self {
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, a)| format!("    server app{i} {a} check\n"))
            .collect();
        let config = format!(
            "defaults
    mode http
    option redispatch 1
    retries 3
    timeout connect 1s
    timeout http-request 10s
    timeout client 75s
    timeout server 75s
    timeout tunnel 1h
frontend web
    bind 127.0.0.1:{port}
    default_backend app
backend app
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server inter 200ms fastinter 100ms downinter 200ms fall 1 rise 1
{servers}"
        );
        Self::run(port, &config).await
    }

    /// Starts the repository's own `deploy/haproxy-local.cfg`, its ports
    /// (8080 in front, 8081–8083 behind) moved to free ones and `backends`.
    pub(crate) async fn start_shipped_local(backends: &[SocketAddr; 3]) -> Self {
        let port = free_port();
        let mut config = include_str!("../../deploy/haproxy-local.cfg")
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
        for (i, backend) in backends.iter().enumerate() {
            config = config.replace(&format!("127.0.0.1:808{}", i + 1), &backend.to_string());
        }
        Self::run(port, &config).await
    }

    async fn run(port: u16, config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy config");
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `haproxy` ({e}); install it, e.g. apt-get install haproxy")
            });
        let lb = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            _dir: dir,
        };
        let probe = client();
        let url = format!("{}/healthz", lb.base());
        within("haproxy to serve", async {
            loop {
                if let Ok(res) = probe.get(&url).send().await
                    && res.status() == 200
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        lb
    }

    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn create_unlimited_poll(base: &str) -> String {
    let body = json!({"question": "Behind a balancer?", "options": ["a", "b", "c"], "vote_limit": "unlimited"});
    let res = send(
        "create",
        client().post(format!("{base}/api/polls")).json(&body),
    )
    .await;
    assert_eq!(res.status(), 201);
    json_of(res).await["poll"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Reads WebSocket pushes until the total reaches `total`; returns the
/// versions seen (checked strictly increasing) and the last results.
async fn ws_until_total(ws: &mut WsClient, total_wanted: u64) -> Value {
    let mut versions = Vec::new();
    loop {
        let msg = ws.next_json().await.expect("websocket open");
        if msg["type"] == "results" {
            versions.push(version(&msg));
            assert_strictly_increasing(&versions);
            if total(&msg) == total_wanted {
                return msg;
            }
        }
    }
}

#[tokio::test]
async fn followers_through_haproxy_see_every_vote_cast_on_any_instance() {
    let apps = ready_instances(&Backend::redis().await, 3).await;
    let lb = Haproxy::start(&apps.iter().map(|a| a.addr).collect::<Vec<_>>()).await;
    let base = lb.base();
    let id = create_unlimited_poll(&base).await;

    let mut ws = Vec::new();
    for _ in 0..3 {
        ws.push(WsClient::connect(&format!("ws://{}/api/polls/{id}/ws", lb.addr)).await);
    }
    let mut sse = SseClient::connect(&format!("{base}/api/polls/{id}/events"), None).await;
    const VOTES: u64 = 150;
    let longpoll = {
        let base = base.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let client = client();
            let mut since = 0;
            let mut last = Value::Null;
            while last.is_null() || total(&last) < VOTES {
                let url = format!("{base}/api/polls/{id}/changes?since={since}&timeout=5");
                let res = send("long poll", client.get(url)).await;
                if res.status() == 200 {
                    last = json_of(res).await;
                    assert!(version(&last) > since);
                    since = version(&last);
                }
            }
            last
        })
    };

    let mut votes = Vec::new();
    for i in 0..VOTES {
        let base = base.clone();
        let id = id.clone();
        votes.push(tokio::spawn(async move {
            let res = send(
                "vote",
                client()
                    .post(format!("{base}/api/polls/{id}/votes"))
                    .json(&json!({"option": i % 3})),
            )
            .await;
            assert_eq!(res.status(), 200);
            res.headers()["x-tally-instance"]
                .to_str()
                .unwrap()
                .to_owned()
        }));
    }
    let mut instances = std::collections::BTreeSet::new();
    for v in votes {
        instances.insert(within("vote task", v).await.unwrap());
    }
    assert_eq!(
        instances.len(),
        3,
        "votes reached every instance: {instances:?}"
    );

    let truth = json_of(send("final", client().get(format!("{base}/api/polls/{id}"))).await).await;
    assert_eq!(total(&truth), VOTES);
    for w in &mut ws {
        assert_eq!(counts(&ws_until_total(w, VOTES).await), counts(&truth));
    }
    loop {
        let ev = sse.next_event().await.expect("sse open");
        if ev.event == "results" {
            let v: Value = serde_json::from_str(&ev.data).unwrap();
            if total(&v) == VOTES {
                assert_eq!(counts(&v), counts(&truth));
                break;
            }
        }
    }
    let last = within("long poll follower", longpoll).await.unwrap();
    assert_eq!(counts(&last), counts(&truth));
}

#[tokio::test]
async fn a_stopped_instance_is_taken_out_and_its_followers_come_back_through_haproxy() {
    let mut apps = ready_instances(&Backend::redis().await, 3).await;
    let lb = Haproxy::start(&apps.iter().map(|a| a.addr).collect::<Vec<_>>()).await;
    let base = lb.base();
    let id = create_unlimited_poll(&base).await;
    let ws_url = format!("ws://{}/api/polls/{id}/ws", lb.addr);

    // Six followers, two per instance under round robin; note who serves each.
    let mut followers = Vec::new();
    for _ in 0..6 {
        let (stream, res) = within("ws connect", tokio_tungstenite::connect_async(&ws_url))
            .await
            .expect("handshake");
        let instance = res.headers()["x-tally-instance"]
            .to_str()
            .unwrap()
            .to_owned();
        followers.push((instance, WsClient { stream }));
    }
    assert!(
        followers.iter().any(|(i, _)| i == "app0"),
        "a follower on app0"
    );

    // Votes flow while app0 stops; a vote whose answer is lost is retried
    // with the same key, so each key counts exactly once.
    let voting = {
        let base = base.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let client = client();
            for n in 0..120u32 {
                let key = format!("lb-{n}");
                within("vote eventually accepted", async {
                    loop {
                        let req = client
                            .post(format!("{base}/api/polls/{id}/votes"))
                            .header("idempotency-key", &key)
                            .json(&json!({"option": n % 3}));
                        if let Ok(res) = req.send().await
                            && res.status() == 200
                        {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
                .await;
            }
        })
    };
    apps[0].stop().await;

    // The followers of app0 were closed with 1001 ("go elsewhere"); they
    // reconnect through haproxy, which no longer sends them to app0.
    for (instance, ws) in &mut followers {
        if instance != "app0" {
            continue;
        }
        loop {
            match within(
                "close from app0",
                futures_util::StreamExt::next(&mut ws.stream),
            )
            .await
            {
                Some(Ok(Message::Close(frame))) => {
                    assert_eq!(u16::from(frame.expect("close frame").code), 1001);
                    break;
                }
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
        let (stream, res) = within("reconnect", tokio_tungstenite::connect_async(&ws_url))
            .await
            .expect("reconnect through haproxy");
        let now = res.headers()["x-tally-instance"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(
            now, "app0",
            "haproxy sent a follower back to the stopped instance"
        );
        *instance = now;
        *ws = WsClient { stream };
    }
    within("votes", voting).await.unwrap();

    let truth = json_of(send("final", client().get(format!("{base}/api/polls/{id}"))).await).await;
    assert_eq!(total(&truth), 120, "every key counted exactly once");
    for (_, ws) in &mut followers {
        assert_eq!(counts(&ws_until_total(ws, 120).await), counts(&truth));
    }
}

#[tokio::test]
async fn a_forged_forwarded_for_does_not_dodge_the_vote_limit_behind_the_shipped_haproxy() {
    // haproxy reaches the instances from 127.0.0.1: that is the trusted proxy.
    let backend = Backend::Memory;
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(
            spawn_app_with(&backend, |c| {
                c.vote_rate = 1;
                c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            })
            .await,
        );
    }
    let lb = Haproxy::start_shipped_local(&[apps[0].addr, apps[1].addr, apps[2].addr]).await;
    let url = format!("{}/api/polls/lpl/votes", lb.base());
    let client = client();
    let mut statuses = Vec::new();
    for n in 0..9 {
        // A different forged address each time: if the instances believed
        // it, every vote would count as a new client's first.
        let req = client
            .post(&url)
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .json(&json!({"option": 0}));
        statuses.push(send("vote through haproxy", req).await.status().as_u16());
    }
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    // One vote per second per instance: at most three (one per instance,
    // plus one more should a second pass on a slow machine) get through.
    assert!(
        accepted <= 4,
        "forged addresses dodged the limit: {statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// The load balancer's idle timeouts for the short-timeout tests, and how
/// long followers are held behind it: `TALLY_LB_TIMEOUT` (seconds, default
/// 2) and `TALLY_LB_HOLD` (default 8) — `TALLY_LB_TIMEOUT=5 TALLY_LB_HOLD=40`
/// is the full run (`timeout server 5s` / `timeout tunnel 5s` for 40 s).
fn lb_timeouts() -> (Duration, Duration) {
    let secs = |name: &str, default: u64| {
        Duration::from_secs(
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default),
        )
    };
    (secs("TALLY_LB_TIMEOUT", 2), secs("TALLY_LB_HOLD", 8))
}

impl Haproxy {
    /// The shipped local config with `timeout server` and `timeout tunnel`
    /// cut to `idle`: a balancer whose idle timeout is shorter than a
    /// stream's quiet time.
    async fn start_shipped_local_with_idle_timeout(
        backends: &[SocketAddr; 3],
        idle: Duration,
    ) -> Self {
        let shipped = include_str!("../../deploy/haproxy-local.cfg");
        assert!(shipped.contains("timeout server 75s") && shipped.contains("timeout tunnel 1h"));
        let ms = idle.as_millis();
        let port = free_port();
        let mut config = shipped
            .replace("timeout server 75s", &format!("timeout server {ms}ms"))
            .replace("timeout tunnel 1h", &format!("timeout tunnel {ms}ms"))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
        for (i, backend) in backends.iter().enumerate() {
            config = config.replace(&format!("127.0.0.1:808{}", i + 1), &backend.to_string());
        }
        Self::run(port, &config).await
    }
}

/// What a follower saw while it was held quiet behind the balancer.
#[derive(Debug, Default)]
struct Held {
    /// SSE keep-alive comments, WebSocket pings, or 204s of long polls.
    beats: usize,
    /// How the follower ended before the hold was over, if it did.
    ended: Option<String>,
}

/// Holds an SSE stream open until `until`, counting keep-alive comments;
/// then waits (bounded) on the same stream for results with `total`.
async fn hold_sse(
    url: String,
    until: tokio::time::Instant,
    vote_cast: tokio::sync::watch::Receiver<u64>,
) -> (Held, bool) {
    use futures_util::StreamExt;
    let res = send("sse", client().get(&url)).await;
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut held = Held::default();
    let mut text = String::new();
    loop {
        match tokio::time::timeout_at(until, body.next()).await {
            Err(_) => break,
            Ok(Some(Ok(chunk))) => {
                let chunk = String::from_utf8_lossy(&chunk);
                held.beats += chunk.lines().filter(|l| l.starts_with(':')).count();
                text.push_str(&chunk);
            }
            Ok(Some(Err(e))) => {
                held.ended = Some(format!("error: {e}"));
                return (held, false);
            }
            Ok(None) => {
                held.ended = Some("ended".into());
                return (held, false);
            }
        }
    }
    let mut cast = vote_cast;
    let total = *within("vote cast", cast.wait_for(|t| *t > 0))
        .await
        .unwrap();
    let wanted = format!("\"total\":{total}");
    let seen = within("the vote on the held stream", async {
        while !text.contains(&wanted) {
            match body.next().await {
                Some(Ok(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return false,
            }
        }
        true
    })
    .await;
    (held, seen)
}

/// Holds a WebSocket open until `until`, counting pings (answered by the
/// client as it reads); then waits on it for results with the new total.
async fn hold_ws(
    url: String,
    until: tokio::time::Instant,
    vote_cast: tokio::sync::watch::Receiver<u64>,
) -> (Held, bool) {
    use futures_util::StreamExt;
    let mut ws = WsClient::connect(&url).await;
    let mut held = Held::default();
    loop {
        match tokio::time::timeout_at(until, ws.stream.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Ping(_)))) => held.beats += 1,
            Ok(Some(Ok(Message::Close(frame)))) => {
                held.ended = Some(format!("closed: {frame:?}"));
                return (held, false);
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                held.ended = Some(format!("error: {e}"));
                return (held, false);
            }
            Ok(None) => {
                held.ended = Some("ended".into());
                return (held, false);
            }
        }
    }
    let mut cast = vote_cast;
    let total_wanted = *within("vote cast", cast.wait_for(|t| *t > 0))
        .await
        .unwrap();
    let results = ws_until_total(&mut ws, total_wanted).await;
    (held, total(&results) == total_wanted)
}

/// Long polls back to back until `until`, each with the instance's default
/// wait: every one must answer 204 (a balancer timeout would be a 504).
async fn hold_long_polls(url: String, until: tokio::time::Instant) -> Held {
    let mut held = Held::default();
    let client = client();
    while tokio::time::Instant::now() < until {
        let res = send("long poll", client.get(&url)).await;
        match res.status().as_u16() {
            204 => held.beats += 1,
            other => {
                held.ended = Some(format!("answered {other}"));
                return held;
            }
        }
    }
    held
}

/// HAProxy's `timeout server` / `timeout tunnel` shorter than a poll's quiet
/// time: SSE keep-alives and WebSocket pings (both set below the timeout)
/// keep the streams open, long polls answer 204 (their default wait set
/// below it) before the balancer gives up, nothing reconnects, and the
/// same connections then carry the next vote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alives_and_pings_hold_streams_open_through_a_short_lb_timeout() {
    let (idle, hold) = lb_timeouts();
    let backend = Backend::redis().await;
    let mut apps = Vec::new();
    for i in 0..3 {
        apps.push(
            spawn_app_with(&backend, |c| {
                c.instance_id = Some(format!("app{i}"));
                c.sse_keepalive = idle / 2;
                c.ws_ping_interval = idle / 2;
                c.longpoll_timeout = idle / 2;
            })
            .await,
        );
        wait_until_ready(&apps[i]).await;
    }
    let lb = Haproxy::start_shipped_local_with_idle_timeout(
        &[apps[0].addr, apps[1].addr, apps[2].addr],
        idle,
    )
    .await;
    let base = lb.base();
    let id = create_unlimited_poll(&base).await;
    let until = tokio::time::Instant::now() + hold;
    let (cast_tx, cast_rx) = tokio::sync::watch::channel(0u64);
    let mut sse = Vec::new();
    let mut ws = Vec::new();
    for _ in 0..3 {
        sse.push(tokio::spawn(hold_sse(
            format!("{base}/api/polls/{id}/events"),
            until,
            cast_rx.clone(),
        )));
        ws.push(tokio::spawn(hold_ws(
            format!("ws://{}/api/polls/{id}/ws", lb.addr),
            until,
            cast_rx.clone(),
        )));
    }
    let long_polls: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(hold_long_polls(
                format!("{base}/api/polls/{id}/changes?since=0"),
                until,
            ))
        })
        .collect();
    for p in long_polls {
        let held = tokio::time::timeout(hold + WAIT, p)
            .await
            .expect("long polls end")
            .unwrap();
        println!("long poller: {held:?}");
        assert_eq!(held.ended, None, "a long poll failed behind the balancer");
        assert!(
            held.beats as u128 >= hold.as_millis() / idle.as_millis(),
            "{held:?}"
        );
    }
    // The hold is over: a vote reaches every follower on its first connection.
    let (status, body) = vote_with(&client(), &base, &id, 0, None).await;
    assert_eq!(status, 200, "{body}");
    cast_tx.send(total(&body["results"])).unwrap();
    for (kind, tasks) in [("sse", sse), ("ws", ws)] {
        for t in tasks {
            let (held, saw_vote) = tokio::time::timeout(hold + WAIT * 2, t)
                .await
                .expect("follower ends")
                .unwrap();
            println!("{kind} follower: {held:?}");
            assert_eq!(held.ended, None, "{kind} follower cut by the balancer");
            assert!(
                held.beats >= 2,
                "{kind}: the hold saw keep-alives: {held:?}"
            );
            assert!(
                saw_vote,
                "{kind} follower got the vote on its first connection"
            );
        }
    }
}

/// The control: the same short balancer timeout with the instance's
/// keep-alive, ping and long-poll wait above it. The balancer cuts the
/// streams and times out the long poll — what the settings above prevent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keep_alives_a_short_lb_timeout_cuts_streams() {
    let (idle, _) = lb_timeouts();
    let backend = Backend::redis().await;
    let mut apps = Vec::new();
    for i in 0..3 {
        apps.push(
            spawn_app_with(&backend, |c| {
                c.instance_id = Some(format!("app{i}"));
                c.sse_keepalive = Duration::from_secs(60);
                c.ws_ping_interval = Duration::from_secs(60);
                c.longpoll_timeout = Duration::from_secs(60);
            })
            .await,
        );
        wait_until_ready(&apps[i]).await;
    }
    let lb = Haproxy::start_shipped_local_with_idle_timeout(
        &[apps[0].addr, apps[1].addr, apps[2].addr],
        idle,
    )
    .await;
    let base = lb.base();
    let id = create_unlimited_poll(&base).await;
    let until = tokio::time::Instant::now() + idle * 3;
    let (_cast_tx, cast_rx) = tokio::sync::watch::channel(0u64);
    let (sse, _) = hold_sse(
        format!("{base}/api/polls/{id}/events"),
        until,
        cast_rx.clone(),
    )
    .await;
    assert!(
        sse.ended.is_some(),
        "the balancer cut the quiet SSE stream: {sse:?}"
    );
    let (ws, _) = hold_ws(
        format!("ws://{}/api/polls/{id}/ws", lb.addr),
        until,
        cast_rx,
    )
    .await;
    assert!(
        ws.ended.is_some(),
        "the balancer cut the quiet WebSocket: {ws:?}"
    );
    let lp = hold_long_polls(format!("{base}/api/polls/{id}/changes?since=0"), until).await;
    assert_eq!(lp.ended.as_deref(), Some("answered 504"), "{lp:?}");
}
