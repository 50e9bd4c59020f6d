//! Shutdown drains one instance: WebSockets close with 1001, SSE streams
//! end, waiting long polls answer 204, a vote in flight completes, and the
//! instance finishes well within its shutdown timeout.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

memory_only!(shutdown_ends_every_follower_finishes_votes_in_flight_and_exits_quickly);

async fn shutdown_ends_every_follower_finishes_votes_in_flight_and_exits_quickly(backend: Backend) {
    let mut app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let quiet = poll["id"].as_str().unwrap().to_owned();

    let mut ws = app.ws("lpl").await;
    ws.next_results().await;
    let mut sse = app.sse("lpl", None).await;
    sse.next_results().await;
    let long_poll = {
        let (client, url) = (
            client(),
            app.url(&format!("/api/polls/{quiet}/changes?since=0&timeout=60")),
        );
        tokio::spawn(async move { send("long poll", client.get(url)).await })
    };
    app.wait_followed(&quiet, true).await;

    // A vote whose handler is running (hyper sent 100 Continue, so it is
    // reading the body) when shutdown starts.
    let body = json!({"option": 1}).to_string();
    let mut vote = RawConn::connect(app.addr).await;
    let head = format!(
        "POST /api/polls/lpl/votes HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        app.addr,
        body.len()
    );
    vote.write(head.as_bytes()).await;
    let cont = String::from_utf8(vote.read_until(b"\r\n\r\n").await).unwrap();
    assert!(cont.starts_with("HTTP/1.1 100"), "{cont}");

    let started = Instant::now();
    app.shutdown.trigger();

    assert_eq!(
        ws.end().await,
        WsEnd::Close(1001),
        "WebSocket told to go away"
    );
    assert!(
        matches!(sse.step().await, SseStep::End),
        "SSE stream ends cleanly"
    );
    let res = within("long poll answer", long_poll).await.unwrap();
    assert_eq!(res.status(), 204, "waiting long poll answers 204");

    vote.write(body.as_bytes()).await;
    let answer = String::from_utf8(vote.read_to_end().await).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "vote in flight completes: {answer}"
    );
    let results: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(counts(&results["results"]), vec![300, 201, 600]);

    app.wait_stopped().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "shutdown took {took:?} (timeout 10 s)"
    );
    // And it no longer accepts.
    let refused = within(
        "connect after shutdown",
        tokio::net::TcpStream::connect(app.addr),
    )
    .await;
    assert!(refused.is_err(), "still accepting after shutdown");
}
