//! tally on a real Redis Cluster (three masters, three replicas).
//!
//! Every shared behaviour (`both_backends!`) runs on ONE cluster per test
//! process, each test under its own key prefix (`mod cluster_backend` in
//! each feature's module). Here, on that same cluster, what only a cluster
//! has: changes crossing instances on all four transports, concurrent votes
//! and retries split over two instances, close and delete reaching another
//! instance's followers, polls spread over the masters, and a cluster with
//! one Redis refused. `faults`: each on a cluster of its own — a master
//! SIGKILLed, a planned failover, a slot migrated, a node's pub/sub
//! clients killed. Filter with `cargo test --test api cluster`.

pub mod harness;

mod faults;

use std::time::Duration;

use futures_util::future::join_all;
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::helpers::*;
use harness::TestCluster;

/// The counts of poll `id` as Redis holds them (`HGETALL …:votes`).
pub async fn redis_counts(
    cluster: &TestCluster,
    prefix: &str,
    id: &str,
    options: usize,
) -> Vec<u64> {
    let mut conn = cluster.conn().await;
    let raw: std::collections::HashMap<u32, u64> = within(
        "HGETALL votes",
        conn.hgetall(format!("{prefix}:poll:{{{id}}}:votes")),
    )
    .await
    .expect("HGETALL");
    (0..options as u32)
        .map(|i| raw.get(&i).copied().unwrap_or(0))
        .collect()
}

pub fn prefix_of(backend: &Backend) -> String {
    match backend {
        Backend::Cluster { prefix, .. } => prefix.clone(),
        _ => unreachable!("a cluster backend"),
    }
}

pub async fn readyz(app: &TestApp) -> u16 {
    send("readyz", app.client.get(app.url("/readyz")))
        .await
        .status()
        .as_u16()
}

/// Waits until `/readyz` answers `status`.
pub async fn until_ready(app: &TestApp, status: u16) {
    within("readyz", async {
        while readyz(app).await != status {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn id_of(poll: &Value) -> String {
    poll["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_reach_followers_on_every_transport_across_instances() {
    let cluster = TestCluster::shared();
    let backend = cluster.backend();
    let a = spawn_app(&backend).await;
    let b = spawn_app(&backend).await;
    until_ready(&a, 200).await;
    until_ready(&b, 200).await;
    let (poll, _) = a.create_poll(&["x", "y"], "unlimited").await;
    let id = id_of(&poll);

    let mut ws = b.ws(&id).await;
    assert_eq!(version(&ws.next_results().await), 0);
    let mut sse = b.sse(&id, None).await;
    assert_eq!(version(&sse.next_results().await), 0);
    let long_poll = {
        let (client, url) = (
            b.client.clone(),
            b.url(&format!("/api/polls/{id}/changes?since=0&timeout=8")),
        );
        tokio::spawn(async move { json_of(send("long poll", client.get(url)).await).await })
    };
    b.wait_followed(&id, true).await;

    let (status, voted) = a.vote(&id, 1, None).await;
    assert_eq!(status, 200, "{voted}");
    assert_eq!(counts(&ws.next_results().await), [0, 1]);
    assert_eq!(counts(&sse.next_results().await), [0, 1]);
    let answered = within("long poll answer", long_poll).await.expect("task");
    assert_eq!(version(&answered), 1, "{answered}");
    // Short polling, on the other instance.
    assert_eq!(counts(&b.results(&id).await), [0, 1]);
    assert_eq!(
        redis_counts(&cluster, &prefix_of(&backend), &id, 2).await,
        [0, 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_votes_on_both_instances_are_all_counted_once() {
    let cluster = TestCluster::shared();
    let backend = cluster.backend();
    let a = spawn_app(&backend).await;
    let b = spawn_app(&backend).await;
    let (poll, _) = a.create_poll(&["x", "y", "z"], "unlimited").await;
    let id = id_of(&poll);
    let mut ws = a.ws(&id).await;
    ws.next_results().await;
    let votes = (0..200).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let key = format!("k{i}");
        let id = id.clone();
        async move { app.vote(&id, (i % 3) as u32, Some(&key)).await.0 }
    });
    let statuses = join_all(votes).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // Retrying every key replays; nothing counts twice.
    let again = join_all((0..200).map(|i| {
        let key = format!("k{i}");
        let id = id.clone();
        let b = &b;
        async move { b.vote(&id, (i % 3) as u32, Some(&key)).await.0 }
    }))
    .await;
    assert!(again.iter().all(|&s| s == 200), "{again:?}");
    let expected = [67, 67, 66];
    assert_eq!(
        redis_counts(&cluster, &prefix_of(&backend), &id, 3).await,
        expected
    );
    within("follower converges", async {
        loop {
            if counts(&ws.next_results().await) == expected {
                return;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_and_delete_reach_followers_of_another_instance() {
    let cluster = TestCluster::shared();
    let backend = cluster.backend();
    let a = spawn_app(&backend).await;
    let b = spawn_app(&backend).await;
    let (poll, token) = a.create_poll(&["x", "y"], "unlimited").await;
    let id = id_of(&poll);
    let mut ws = b.ws(&id).await;
    ws.next_results().await;
    assert_eq!(a.close_poll(&id, Some(&token)).await.status(), 200);
    assert_eq!(ws.next_results().await["closed"], json!(true));
    let (status, _) = a.vote(&id, 0, None).await;
    assert_eq!(status, 409);
    assert!(a.delete_poll(&id, Some(&token)).await.status().is_success());
    assert_eq!(b.get(&format!("/api/polls/{id}")).await.status(), 404);
    // Listing skips it; the index lives in its own slot, written apart.
    let list = json_of(a.get("/api/polls").await).await;
    assert!(!list.to_string().contains(&id), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_spread_over_the_masters() {
    let cluster = TestCluster::shared();
    let backend = cluster.backend();
    let a = spawn_app_with(&backend, |c| c.demo = false).await;
    let prefix = prefix_of(&backend);
    let mut masters = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let (poll, _) = a.create_poll(&["x", "y"], "unlimited").await;
        let id = id_of(&poll);
        assert_eq!(a.vote(&id, 1, None).await.0, 200);
        assert_eq!(redis_counts(&cluster, &prefix, &id, 2).await, [0, 1]);
        masters.insert(cluster.master_of(&format!("{prefix}:poll:{{{id}}}")).port);
    }
    assert!(
        masters.len() >= 2,
        "12 polls all on one master: {masters:?}"
    );
    let list = json_of(a.get("/api/polls").await).await;
    assert_eq!(list["polls"].as_array().map(Vec::len), Some(12), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_and_a_cluster_together_refuse_to_start() {
    let cluster = TestCluster::shared();
    let redis = Backend::redis().await;
    let mut config = redis.config();
    config.redis_cluster = cluster.seeds();
    let err = tally::Application::build(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("TALLY_REDIS_URL") && err.contains("TALLY_REDIS_CLUSTER"),
        "{err}"
    );
    // And the binary exits with that message.
    let out = within(
        "tally to exit",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tally"))
            .env("TALLY_REDIS_URL", "redis://127.0.0.1:1")
            .env("TALLY_REDIS_CLUSTER", "redis://127.0.0.1:2")
            .env("TALLY_LISTEN", "127.0.0.1:0")
            .output(),
    )
    .await
    .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TALLY_REDIS_CLUSTER"), "{stderr}");
}
