//! Server-Sent Events: `GET /api/polls/{id}/events`.

use crate::helpers::*;

both_backends!(
    stream_starts_with_retry_2000_then_results_at_once,
    results_events_carry_the_version_as_id,
    last_event_id_delays_the_first_event_until_the_version_passes_it,
    non_integer_last_event_id_is_ignored,
    deleting_the_poll_sends_deleted_then_ends_the_stream,
    sse_follower_ends_on_the_exact_tallies_of_concurrent_votes,
    idle_stream_gets_keep_alive_comments,
);

async fn stream_starts_with_retry_2000_then_results_at_once(backend: Backend) {
    let app = spawn_app(&backend).await;
    let res = app.get("/api/polls/lpl/events").await;
    assert_eq!(res.status(), 200);
    let ctype = res.headers()["content-type"].to_str().unwrap();
    assert!(ctype.starts_with("text/event-stream"), "{ctype}");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert!(res.headers().contains_key("x-tally-instance"));
    let mut body = res.bytes_stream();
    let mut text = String::new();
    within("first two SSE blocks", async {
        use futures_util::StreamExt;
        while text.matches("\n\n").count() < 2 {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await;
    let blocks: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(blocks[0], "retry: 2000", "the stream opens with retry");
    let lines: Vec<&str> = blocks[1].lines().collect();
    assert_eq!(lines[0], "event: results");
    assert!(lines.contains(&"id: 0"), "{lines:?}");
    let data = lines
        .iter()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data line");
    let results: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(total(&results), 1100);
}

async fn results_events_carry_the_version_as_id(backend: Backend) {
    let app = spawn_app(&backend).await;
    let mut sse = app.sse("lpl", None).await;
    assert_eq!(version(&sse.next_results().await), 0);
    let (_, voted) = app.vote("lpl", 2, None).await;
    let pushed = sse.next_results().await;
    assert_eq!(pushed, voted["results"]);
    assert_eq!(version(&pushed), 1);
}

async fn last_event_id_delays_the_first_event_until_the_version_passes_it(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    for _ in 0..3 {
        app.vote(id, 0, None).await;
    }
    // Already past: the current results at once.
    let mut behind = app.sse(id, Some(1)).await;
    assert_eq!(version(&behind.next_results().await), 3);
    // Caught up: nothing until the next change, which comes first.
    let mut current = app.sse(id, Some(3)).await;
    app.vote(id, 1, None).await;
    let first = current.next_results().await;
    assert_eq!(version(&first), 4, "version 3 was not sent again");
    assert_eq!(counts(&first), vec![3, 1]);
    // Ahead of the poll (reconnect to a lagging replica): waits past it.
    let mut ahead = app.sse(id, Some(5)).await;
    app.vote(id, 1, None).await;
    app.vote(id, 1, None).await;
    assert_eq!(version(&ahead.next_results().await), 6);
}

async fn non_integer_last_event_id_is_ignored(backend: Backend) {
    let app = spawn_app(&backend).await;
    for bad in ["abc", "-1", "1.5", ""] {
        let res = send(
            "sse",
            client()
                .get(app.url("/api/polls/lpl/events"))
                .header("last-event-id", bad),
        )
        .await;
        assert_eq!(res.status(), 200, "Last-Event-ID {bad:?} is not an error");
    }
    let mut sse = SseClient::connect_with_header(&app.url("/api/polls/lpl/events"), "nope").await;
    assert_eq!(version(&sse.next_results().await), 0, "first event at once");
}

async fn deleting_the_poll_sends_deleted_then_ends_the_stream(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut sse = app.sse(id, None).await;
    assert_eq!(version(&sse.next_results().await), 0);
    assert_eq!(app.delete_poll(id, Some(&token)).await.status(), 204);
    match sse.step().await {
        SseStep::Event(ev) => assert_eq!(ev.event, "deleted", "{ev:?}"),
        other => panic!("expected a deleted event, got {other:?}"),
    }
    assert!(
        matches!(sse.step().await, SseStep::End),
        "then the stream ends"
    );
    let res = app.get(&format!("/api/polls/{id}/events")).await;
    assert_error(res, 404, "poll_not_found").await;
}

async fn sse_follower_ends_on_the_exact_tallies_of_concurrent_votes(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b", "c"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut sse = app.sse(id, None).await;
    assert_eq!(version(&sse.next_results().await), 0);
    const K: usize = 200;
    let expected = cast_concurrent_votes(&app, id, K, 3).await;
    let mut seen = vec![0u64];
    let last = loop {
        let results = sse.next_results().await;
        seen.push(version(&results));
        if version(&results) == K as u64 {
            break results;
        }
    };
    assert_strictly_increasing(&seen);
    assert_eq!(counts(&last), expected);
}

async fn idle_stream_gets_keep_alive_comments(backend: Backend) {
    let app = spawn_app_with(&backend, |c| {
        c.sse_keepalive = std::time::Duration::from_millis(50)
    })
    .await;
    let res = app.get("/api/polls/lpl/events").await;
    let mut body = res.bytes_stream();
    let mut text = String::new();
    within("two keep-alive comments", async {
        use futures_util::StreamExt;
        while text.lines().filter(|l| l.starts_with(':')).count() < 2 {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await;
    assert!(text.starts_with("retry: 2000\n\n"), "{text}");
    assert_eq!(
        text.matches("event: results").count(),
        1,
        "no change, no event: {text}"
    );
}
