//! A WebSocket client that never reads costs the server a bounded amount:
//! the send timeout drops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::raw_websocket::RawWs;
use crate::helpers::*;
use crate::redis_faults::{sse_until, ws_until};

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
