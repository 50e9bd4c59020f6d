//! `TALLY_MAX_UPDATE_RATE`: a hot poll sends each WebSocket and SSE follower
//! at most that many updates per second, and the last one is the newest.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

const RATE: u32 = 5;
const VOTES: usize = 60;

/// Casts votes one after another for about a second and a half.
async fn steady_votes(app: &TestApp, id: &str) -> Duration {
    let started = Instant::now();
    for i in 0..VOTES {
        assert_eq!(app.vote(id, (i % 2) as u32, None).await.0, 200);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    started.elapsed()
}

/// At most one update per gap, plus the first one and one in flight.
fn paced_bound(elapsed: Duration) -> usize {
    (elapsed.as_secs_f64() * f64::from(RATE)).ceil() as usize + 2
}

#[tokio::test]
async fn a_paced_websocket_follower_gets_few_updates_and_ends_on_the_newest() {
    let app = spawn_app_with(&Backend::Memory, |c| c.max_update_rate = RATE).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut ws = app.ws(id).await;
    assert_eq!(ws.next_json().await.unwrap()["version"], 0);
    let elapsed = steady_votes(&app, id).await;

    let mut versions = Vec::new();
    loop {
        let msg: Value = ws.next_json().await.expect("open");
        versions.push(version(&msg));
        assert_strictly_increasing(&versions);
        if total(&msg) == VOTES as u64 {
            break;
        }
    }
    assert!(
        versions.len() <= paced_bound(elapsed),
        "{} updates in {elapsed:?} at {RATE}/s",
        versions.len()
    );
    assert!(versions.len() < VOTES, "pacing skipped versions");
}

#[tokio::test]
async fn a_paced_sse_follower_gets_few_updates_and_ends_on_the_newest() {
    let app = spawn_app_with(&Backend::Memory, |c| c.max_update_rate = RATE).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut sse = app.sse(id, None).await;
    let first = sse.next_event().await.expect("first event");
    assert_eq!(first.id, "0");
    let elapsed = steady_votes(&app, id).await;

    let mut updates = 0;
    loop {
        let ev = sse.next_event().await.expect("open");
        let v: Value = serde_json::from_str(&ev.data).unwrap();
        updates += 1;
        if total(&v) == VOTES as u64 {
            break;
        }
    }
    assert!(
        updates <= paced_bound(elapsed),
        "{updates} updates in {elapsed:?}"
    );
}

#[tokio::test]
async fn without_pacing_a_follower_that_keeps_up_sees_every_version() {
    let app = spawn_app(&Backend::Memory).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut ws = app.ws(id).await;
    assert_eq!(ws.next_json().await.unwrap()["version"], 0);
    for i in 1..=20u64 {
        assert_eq!(app.vote(id, 0, None).await.0, 200);
        // Wait for the push before the next vote: this follower keeps up.
        assert_eq!(version(&ws.next_json().await.unwrap()), i);
    }
}
