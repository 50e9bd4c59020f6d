//! Several instances on one Redis: one tally, every change seen everywhere,
//! the documented key layout, and a bounded number of Redis connections.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::helpers::*;

/// Versions and counts one follower saw, in order.
type Seen = Vec<(u64, Vec<u64>)>;

/// The bound on a whole load phase (many waits of at most [`WAIT`] each).
const LOAD_WAIT: Duration = Duration::from_secs(60);

fn seen_of(results: &Value) -> (u64, Vec<u64>) {
    (
        results["version"].as_u64().expect("version"),
        counts(results),
    )
}

/// A WebSocket follower that reads until it has seen `until`.
async fn ws_follower(app: &TestApp, id: &str, until: u64) -> JoinHandle<Seen> {
    let mut ws = WsClient::connect(&app.ws_url(&format!("/api/polls/{id}/ws"))).await;
    let first = ws.next_json().await.expect("first results");
    tokio::spawn(async move {
        let mut seen = vec![seen_of(&first)];
        while seen.last().unwrap().0 < until {
            let msg = ws.next_json().await.expect("websocket stays open");
            if msg["type"] == "results" {
                seen.push(seen_of(&msg));
            }
        }
        seen
    })
}

/// An SSE follower that reads until it has seen `until`.
async fn sse_follower(app: &TestApp, id: &str, until: u64) -> JoinHandle<Seen> {
    let mut sse = SseClient::connect(&app.url(&format!("/api/polls/{id}/events")), None).await;
    let first = sse.next_event().await.expect("first event");
    tokio::spawn(async move {
        let mut ev = first;
        let mut seen = Seen::new();
        loop {
            assert_eq!(ev.event, "results");
            seen.push(seen_of(&serde_json::from_str(&ev.data).unwrap()));
            if seen.last().unwrap().0 >= until {
                return seen;
            }
            ev = sse.next_event().await.expect("stream stays open");
        }
    })
}

/// A long-polling loop that asks until it has seen `until`.
async fn longpoll_follower(app: &TestApp, id: &str, until: u64) -> JoinHandle<Seen> {
    let client = client();
    let url = app.url(&format!("/api/polls/{id}/changes"));
    let first: Value = within("first long poll", client.get(&url).send())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut seen = vec![seen_of(&first)];
        while seen.last().unwrap().0 < until {
            let since = seen.last().unwrap().0;
            let res = within(
                "long poll",
                client.get(format!("{url}?since={since}&timeout=5")).send(),
            )
            .await
            .expect("long poll");
            match res.status().as_u16() {
                200 => seen.push(seen_of(&res.json().await.unwrap())),
                204 => {}
                other => panic!("long poll answered {other}"),
            }
        }
        seen
    })
}

/// A short-polling loop (with ETags) that asks until it has seen `until`.
async fn poll_follower(app: &TestApp, id: &str, until: u64) -> JoinHandle<Seen> {
    let client = client();
    let url = app.url(&format!("/api/polls/{id}"));
    tokio::spawn(async move {
        let mut seen = Seen::new();
        let mut etag = String::new();
        while seen.last().is_none_or(|s| s.0 < until) {
            let res = within(
                "short poll",
                client.get(&url).header("If-None-Match", &etag).send(),
            )
            .await
            .expect("short poll");
            match res.status().as_u16() {
                200 => {
                    etag = res.headers()["etag"].to_str().unwrap().to_owned();
                    seen.push(seen_of(&res.json().await.unwrap()));
                }
                304 => {}
                other => panic!("short poll answered {other}"),
            }
            // The interval is what short polling is; nothing to await.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    })
}

/// Every transport on every instance.
async fn followers_everywhere(apps: &[TestApp], id: &str, until: u64) -> Vec<JoinHandle<Seen>> {
    let mut all = Vec::new();
    for app in apps {
        all.push(ws_follower(app, id, until).await);
        all.push(sse_follower(app, id, until).await);
        all.push(longpoll_follower(app, id, until).await);
        all.push(poll_follower(app, id, until).await);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_follower_on_every_instance_ends_on_the_exact_tally() {
    const VOTES: usize = 1000;
    let redis = TestRedis::start().await;
    let backend = Backend::Redis(redis.clone());
    let apps = ready_instances(&backend, 3).await;
    let (poll, _) = apps[0].create_poll(&["a", "b", "c"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    let followers = followers_everywhere(&apps, &id, VOTES as u64).await;

    // Vote i goes to instance i % 3; every tenth carries an idempotency key
    // and is sent twice at once, on two different instances.
    let plan: Vec<(usize, u32, Option<String>)> = (0..VOTES)
        .map(|i| {
            (
                i % 3,
                (i % 7 % 3) as u32,
                (i % 10 == 0).then(|| format!("k-{i}")),
            )
        })
        .collect();
    let mut expected = vec![0u64; 3];
    for (_, option, _) in &plan {
        expected[*option as usize] += 1;
    }
    let apps_ref = &apps;
    let id_ref = id.as_str();
    let casting = futures_util::stream::iter(plan)
        .map(|(at, option, key)| async move {
            let app = &apps_ref[at];
            let Some(key) = key else {
                let (status, body) = app.vote(id_ref, option, None).await;
                assert_eq!(status, 200, "{body}");
                return;
            };
            let other = &apps_ref[(at + 1) % 3];
            let (first, retry) = tokio::join!(
                app.vote(id_ref, option, Some(&key)),
                other.vote(id_ref, option, Some(&key)),
            );
            assert_eq!((first.0, retry.0), (200, 200), "{} / {}", first.1, retry.1);
            assert_eq!(
                first.1["results"], retry.1["results"],
                "a retry replays the first outcome"
            );
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>();
    tokio::time::timeout(LOAD_WAIT, casting)
        .await
        .expect("votes cast in time");

    for follower in followers {
        let seen = tokio::time::timeout(LOAD_WAIT, follower)
            .await
            .expect("follower reaches the final version")
            .expect("follower task");
        assert!(
            seen.windows(2).all(|w| w[1].0 > w[0].0),
            "versions strictly increase: {:?}",
            seen.iter().map(|s| s.0).collect::<Vec<_>>()
        );
        assert_eq!(seen.last().unwrap(), &(VOTES as u64, expected.clone()));
    }
    assert_eq!(redis.tally(&id).await, (expected, VOTES as u64));
}

#[tokio::test]
async fn redis_holds_the_documented_key_layout() {
    let redis = TestRedis::start().await;
    let backend = Backend::Redis(redis.clone());
    let app = spawn_app_with(&backend, |c| {
        c.demo_admin_token = Some("demo-secret".into());
    })
    .await;
    let mut conn = redis.conn().await;

    let votes: HashMap<String, String> = conn.hgetall("tally:poll:{lpl}:votes").await.unwrap();
    let expected: HashMap<String, String> = [("0", "300"), ("1", "200"), ("2", "600")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(votes, expected);
    let version: String = conn.get("tally:poll:{lpl}:version").await.unwrap();
    assert_eq!(version, "0");
    let poll: HashMap<String, String> = conn.hgetall("tally:poll:{lpl}").await.unwrap();
    assert_eq!(poll["question"], "LPL第一打野投票");
    assert_eq!(poll["vote_limit"], "unlimited");
    assert_eq!(poll["closed"], "0");
    let options: Vec<String> = serde_json::from_str(&poll["options"]).unwrap();
    assert_eq!(options, ["明凯", "厂长", "7酱"]);
    let created_at: u64 = poll["created_at"].parse().unwrap();
    assert!(
        created_at > 1_700_000_000_000,
        "unix milliseconds: {created_at}"
    );
    let sha = &poll["admin_token_sha256"];
    assert_eq!(sha.len(), 64);
    assert!(
        sha.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let score: f64 = conn.zscore("tally:polls", "lpl").await.unwrap();
    assert_eq!(score as u64, created_at);

    // A one-per-voter poll: the voter lands in the set, the key's record
    // lives for 24 h, and closing is stored as 1.
    let (poll, token) = app.create_poll(&["x", "y"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    let (status, _) = app.vote(id, 1, Some("key-1")).await;
    assert_eq!(status, 200);
    let voters: Vec<String> = conn
        .smembers(format!("tally:poll:{{{id}}}:voters"))
        .await
        .unwrap();
    assert_eq!(voters.len(), 1);
    let ttl: i64 = conn
        .ttl(format!("tally:poll:{{{id}}}:idem:key-1"))
        .await
        .unwrap();
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");
    let votes: HashMap<String, u64> = conn
        .hgetall(format!("tally:poll:{{{id}}}:votes"))
        .await
        .unwrap();
    assert_eq!(
        votes,
        HashMap::from([("0".to_owned(), 0), ("1".to_owned(), 1)])
    );
    let res = app
        .client
        .post(app.url(&format!("/api/polls/{id}/close")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let closed: String = conn
        .hget(format!("tally:poll:{{{id}}}"), "closed")
        .await
        .unwrap();
    assert_eq!(closed, "1");
    let version: u64 = conn
        .get(format!("tally:poll:{{{id}}}:version"))
        .await
        .unwrap();
    assert_eq!(version, 2);

    // Deleting removes the poll's keys and its index entry.
    let res = app
        .client
        .delete(app.url(&format!("/api/polls/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let left: Vec<String> = conn.keys(format!("tally:poll:{{{id}}}")).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    let indexed: Option<f64> = conn.zscore("tally:polls", id).await.unwrap();
    assert_eq!(indexed, None);
}

#[tokio::test]
async fn text_survives_the_round_trip_through_lua_unchanged() {
    let backend = Backend::redis().await;
    let apps = ready_instances(&backend, 2).await;
    let question = "He said \"hi\" / <b>&amp;</b>\n\\ 😀 票";
    let options = ["明凯", "a/b", "\"quoted\"", "tab\there"];
    let res = within(
        "create",
        apps[0]
            .client
            .post(apps[0].url("/api/polls"))
            .json(&json!({"question": question, "options": options, "vote_limit": "unlimited"}))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let id = created["poll"]["id"].as_str().unwrap();
    // Read back on another instance, and as a vote's results.
    let read: Value = within(
        "get",
        apps[1]
            .client
            .get(apps[1].url(&format!("/api/polls/{id}")))
            .send(),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let (status, voted) = apps[1].vote(id, 3, None).await;
    assert_eq!(status, 200);
    for results in [&created["poll"], &read, &voted["results"]] {
        assert_eq!(results["question"], question);
        let labels: Vec<&str> = results["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["label"].as_str().unwrap())
            .collect();
        assert_eq!(labels, options);
    }
    assert_eq!(counts(&voted["results"]), vec![0, 0, 0, 1]);
}

#[tokio::test]
async fn the_key_prefix_is_configurable() {
    let redis = TestRedis::start().await;
    let backend = Backend::Redis(redis.clone());
    let _app = spawn_app_with(&backend, |c| c.redis_prefix = "other".into()).await;
    let mut conn = redis.conn().await;
    let votes: HashMap<String, u64> = conn.hgetall("other:poll:{lpl}:votes").await.unwrap();
    assert_eq!(votes.values().sum::<u64>(), 1100);
    let default: HashMap<String, u64> = conn.hgetall("tally:poll:{lpl}:votes").await.unwrap();
    assert!(default.is_empty());
}

/// The clients of the instances: all but the test's own connection.
async fn instance_clients(
    conn: &mut redis::aio::MultiplexedConnection,
) -> Vec<HashMap<String, String>> {
    let own: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(conn)
        .await
        .unwrap();
    redis_clients(conn)
        .await
        .into_iter()
        .filter(|c| c["id"] != own.to_string())
        .collect()
}

/// Subscriptions of each pub/sub connection, sorted.
fn subscriptions(clients: &[HashMap<String, String>]) -> Vec<u64> {
    let mut subs: Vec<u64> = clients
        .iter()
        .filter(|c| c["flags"].contains('P'))
        .map(|c| c["sub"].parse().unwrap())
        .collect();
    subs.sort();
    subs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connections_stay_bounded_as_followers_grow() {
    const POLLS: usize = 20;
    const FOLLOWERS: usize = 200;
    let redis = TestRedis::start().await;
    let backend = Backend::Redis(redis.clone());
    let apps = ready_instances(&backend, 3).await;
    let mut conn = redis.conn().await;
    let before = instance_clients(&mut conn).await;
    assert_eq!(
        before.len(),
        6,
        "one command and one pub/sub connection each"
    );
    assert_eq!(
        subscriptions(&before),
        vec![1, 1, 1],
        "each hears only its heartbeat"
    );

    let mut ids = Vec::new();
    for _ in 0..POLLS {
        let (poll, _) = apps[0].create_poll(&["a", "b"], "unlimited").await;
        ids.push(poll["id"].as_str().unwrap().to_owned());
    }
    let mut ws = Vec::new();
    let mut sse = Vec::new();
    for j in 0..FOLLOWERS {
        let (app, id) = (&apps[j % 3], &ids[j % POLLS]);
        if j % 2 == 0 {
            let mut c = WsClient::connect(&app.ws_url(&format!("/api/polls/{id}/ws"))).await;
            assert_eq!(c.next_json().await.unwrap()["type"], "results");
            ws.push(c);
        } else {
            let mut c =
                SseClient::connect(&app.url(&format!("/api/polls/{id}/events")), None).await;
            assert_eq!(c.next_event().await.unwrap().event, "results");
            sse.push(c);
        }
    }
    let during = instance_clients(&mut conn).await;
    assert_eq!(during.len(), 6, "no connection per follower");
    // Every instance follows every poll (j % 3, j % 20 covers all pairs):
    // one subscription per poll plus the heartbeat, on one connection.
    let per_instance = POLLS as u64 + 1;
    assert_eq!(subscriptions(&during), vec![per_instance; 3]);

    // Followers gone: after the grace, only heartbeats stay subscribed.
    drop(ws);
    drop(sse);
    within("polls to be unsubscribed", async {
        loop {
            if subscriptions(&instance_clients(&mut conn).await) == vec![1, 1, 1] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn one_vote_per_voter_holds_across_instances() {
    let backend = Backend::redis().await;
    let apps = ready_instances(&backend, 3).await;
    let (poll, _) = apps[0].create_poll(&["a", "b"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    // One browser (one cookie jar) talking to every instance.
    let browser = client();
    let (status, first) = vote_with(&browser, &apps[0].base, id, 0, Some("once")).await;
    assert_eq!(status, 200);
    let (status, body) = vote_with(&browser, &apps[1].base, id, 1, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already_voted"))
    );
    // A retry of the first vote replays it, even elsewhere and after the 409.
    let (status, replay) = vote_with(&browser, &apps[2].base, id, 0, Some("once")).await;
    assert_eq!(status, 200);
    assert_eq!(replay, first);
    let (status, body) = vote_with(&browser, &apps[2].base, id, 1, Some("once")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    // Another browser still votes.
    let (status, other) = vote_with(&client(), &apps[1].base, id, 1, None).await;
    assert_eq!(status, 200);
    assert_eq!(counts(&other["results"]), vec![1, 1]);
}

#[tokio::test]
async fn close_and_delete_reach_followers_on_other_instances() {
    let backend = Backend::redis().await;
    let apps = ready_instances(&backend, 3).await;
    let (poll, token) = apps[0].create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut ws = WsClient::connect(&apps[1].ws_url(&format!("/api/polls/{id}/ws"))).await;
    assert_eq!(ws.next_json().await.unwrap()["version"], 0);
    let mut sse = SseClient::connect(&apps[2].url(&format!("/api/polls/{id}/events")), None).await;
    assert_eq!(sse.next_event().await.unwrap().id, "0");

    let closed = apps[0]
        .client
        .post(apps[0].url(&format!("/api/polls/{id}/close")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 200);
    let msg = ws.next_json().await.unwrap();
    assert_eq!(
        (msg["closed"].clone(), msg["version"].clone()),
        (json!(true), json!(1))
    );
    let ev = sse.next_event().await.unwrap();
    assert_eq!((ev.event.as_str(), ev.id.as_str()), ("results", "1"));

    let waiting = {
        let url = apps[2].url(&format!("/api/polls/{id}/changes?since=1&timeout=10"));
        tokio::spawn(async move { client().get(url).send().await.unwrap().status().as_u16() })
    };
    // Waiting already or arriving after the deletion, the long poll must
    // answer 404.
    let deleted = apps[0]
        .client
        .delete(apps[0].url(&format!("/api/polls/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(ws.next_json().await.unwrap()["type"], "deleted");
    assert_eq!(sse.next_event().await.unwrap().event, "deleted");
    assert_eq!(within("long poll answers", waiting).await.unwrap(), 404);
}
