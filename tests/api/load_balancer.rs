//! A real haproxy on loopback in front of three in-process instances on one
//! Redis: what a deployment looks like, without Docker.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// haproxy on a free loopback port, killed when dropped.
struct Haproxy {
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
    async fn start_shipped_local(backends: &[SocketAddr; 3]) -> Self {
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

    fn base(&self) -> String {
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
