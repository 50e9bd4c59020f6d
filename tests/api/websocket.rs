//! WebSocket: `GET /api/polls/{id}/ws` — pushes, votes, bad frames, size
//! limits, origins, idempotency, deletion, and pings.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::helpers::*;

both_backends!(
    results_are_pushed_at_once_on_connect,
    vote_message_gets_a_vote_ack_and_a_results_push,
    vote_errors_come_back_as_error_messages_with_the_request_id,
    bad_frames_get_bad_message_and_the_socket_stays_open,
    foreign_origin_is_refused_with_403_origin_not_allowed,
    same_host_configured_or_absent_origin_is_accepted,
    request_id_is_an_idempotency_key_shared_with_http,
    votes_use_the_handshake_cookie_or_a_per_connection_voter,
    deleting_the_poll_sends_deleted_then_closes_with_1000,
    ws_follower_ends_on_the_exact_tallies_of_concurrent_votes,
);

memory_only!(
    message_of_exactly_4096_bytes_is_accepted,
    message_over_4096_bytes_is_closed_with_1009,
    fragmented_message_over_4096_bytes_is_closed_with_1009,
    server_pings_and_a_peer_that_answers_stays_connected,
    server_drops_a_peer_that_never_answers_pings,
);

async fn fresh_poll(app: &TestApp, vote_limit: &str) -> (String, String) {
    let (poll, token) = app.create_poll(&["a", "b"], vote_limit).await;
    (poll["id"].as_str().unwrap().to_owned(), token)
}

/// Reads the next `n` messages (results pushes included).
async fn next_messages(ws: &mut WsClient, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(ws.next_json().await.expect("socket open"));
    }
    out
}

/// Sends a vote and returns its reply (ack or error), skipping pushes.
async fn ws_vote(ws: &mut WsClient, option: Value, request_id: Option<&str>) -> Value {
    let mut msg = json!({"type": "vote", "option": option});
    if let Some(rid) = request_id {
        msg["request_id"] = json!(rid);
    }
    ws.send_json(&msg).await;
    loop {
        let reply = ws.next_json().await.expect("socket open");
        if reply["type"] != "results" {
            return reply;
        }
    }
}

async fn results_are_pushed_at_once_on_connect(backend: Backend) {
    let app = spawn_app(&backend).await;
    let mut ws = app.ws("lpl").await;
    let first = ws.next_json().await.expect("first message");
    assert_eq!(first["type"], "results");
    assert_eq!(first["id"], "lpl");
    assert_eq!(version(&first), 0);
    assert_eq!(counts(&first), vec![300, 200, 600]);
    assert_eq!(first["question"], "LPL第一打野投票");
}

async fn vote_message_gets_a_vote_ack_and_a_results_push(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (id, _) = fresh_poll(&app, "unlimited").await;
    let mut ws = app.ws(&id).await;
    assert_eq!(version(&ws.next_results().await), 0);
    ws.send_json(&json!({"type": "vote", "option": 1, "request_id": "r1"}))
        .await;
    let mut two = next_messages(&mut ws, 2).await;
    two.sort_by_key(|m| m["type"].as_str().unwrap().to_owned());
    let (push, ack) = (&two[0], &two[1]);
    assert_eq!(
        *ack,
        json!({"type": "vote_ack", "request_id": "r1", "version": 1})
    );
    assert_eq!(push["type"], "results");
    assert_eq!(version(push), 1);
    assert_eq!(counts(push), vec![0, 1]);
    // Without a request_id.
    ws.send_json(&json!({"type": "vote", "option": 0})).await;
    let two = next_messages(&mut ws, 2).await;
    let ack = two
        .iter()
        .find(|m| m["type"] == "vote_ack")
        .expect("an ack");
    assert_eq!(version(ack), 2);
    assert_eq!(counts(&app.results(&id).await), vec![1, 1]);
}

async fn vote_errors_come_back_as_error_messages_with_the_request_id(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (id, token) = fresh_poll(&app, "unlimited").await;
    let mut ws = app.ws(&id).await;
    ws.next_results().await;
    let reply = ws_vote(&mut ws, json!(7), Some("r-7")).await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], "option_not_found");
    assert_eq!(reply["request_id"], "r-7");
    assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    let reply = ws_vote(&mut ws, json!(0), Some("not a key")).await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );
    assert_eq!(app.close_poll(&id, Some(&token)).await.status(), 200);
    let reply = ws_vote(&mut ws, json!(0), Some("r-8")).await;
    assert_eq!(reply["code"], "poll_closed");
    assert_eq!(reply["request_id"], "r-8");
    assert_eq!(total(&app.results(&id).await), 0);
}

async fn bad_frames_get_bad_message_and_the_socket_stays_open(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (id, _) = fresh_poll(&app, "unlimited").await;
    let mut ws = app.ws(&id).await;
    ws.next_results().await;
    let bad: Vec<Message> = vec![
        Message::Text("not json".into()),
        Message::Text("{\"type\":\"shout\"}".into()),
        Message::Text("{}".into()),
        Message::Text("[1,2]".into()),
        Message::Text("{\"type\":\"vote\",\"option\":\"1\"}".into()),
        Message::Text("{\"type\":\"vote\",\"option\":-1}".into()),
        Message::Text("{\"type\":\"vote\",\"option\":1.0}".into()),
        Message::Text("{\"type\":\"vote\"}".into()),
        Message::Binary(vec![0x7b, 0x7d].into()),
    ];
    for msg in bad {
        let shown = format!("{msg:?}");
        ws.send_message(msg).await;
        let reply = ws
            .next_json()
            .await
            .unwrap_or_else(|| panic!("closed after {shown}"));
        assert_eq!(reply["type"], "error", "{shown}");
        assert_eq!(reply["code"], "bad_message", "{shown}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let reply = ws_vote(&mut ws, json!(0), Some("after-bad")).await;
    assert_eq!(reply["type"], "vote_ack", "still open and voting: {reply}");
    assert_eq!(
        counts(&app.results(&id).await),
        vec![1, 0],
        "bad frames counted nothing"
    );
}

async fn foreign_origin_is_refused_with_403_origin_not_allowed(backend: Backend) {
    let app = spawn_app(&backend).await;
    for origin in ["http://evil.example", "null", "http://127.0.0.1"] {
        let req = WsClient::request(&app.ws_url("/api/polls/lpl/ws"), &[("origin", origin)]);
        let err = WsClient::connect_request(req)
            .await
            .err()
            .unwrap_or_else(|| panic!("origin {origin} was accepted"));
        let tokio_tungstenite::tungstenite::Error::Http(res) = err else {
            panic!("expected an HTTP refusal, got {err}");
        };
        assert_eq!(res.status(), 403);
        assert!(res.headers().contains_key("x-tally-instance"));
        let body = String::from_utf8(res.body().clone().unwrap_or_default()).unwrap();
        assert_error_body(&body, "origin_not_allowed");
    }
}

async fn same_host_configured_or_absent_origin_is_accepted(backend: Backend) {
    let app = spawn_app_with(&backend, |c| {
        c.allowed_origins = vec!["https://vote.example.com".into()];
    })
    .await;
    let url = app.ws_url("/api/polls/lpl/ws");
    let same = same_origin(&app);
    for headers in [
        vec![("origin", same.as_str())],
        vec![("origin", "https://vote.example.com")],
        vec![],
    ] {
        let (mut ws, res) = WsClient::connect_request(WsClient::request(&url, &headers))
            .await
            .unwrap_or_else(|e| panic!("{headers:?} refused: {e}"));
        assert_eq!(res.status(), 101);
        assert_eq!(version(&ws.next_results().await), 0);
    }
}

async fn request_id_is_an_idempotency_key_shared_with_http(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (id, _) = fresh_poll(&app, "unlimited").await;
    let mut ws = app.ws(&id).await;
    ws.next_results().await;
    let ack = ws_vote(&mut ws, json!(0), Some("shared-1")).await;
    assert_eq!(ack["type"], "vote_ack");
    assert_eq!(version(&ack), 1);
    let again = ws_vote(&mut ws, json!(0), Some("shared-1")).await;
    assert_eq!(again, ack, "the same request_id replays its ack");
    let (status, body) = app.vote(&id, 0, Some("shared-1")).await;
    assert_eq!(status, 200, "HTTP retry of a WebSocket vote replays");
    assert_eq!(version(&body["results"]), 1);
    let reused = ws_vote(&mut ws, json!(1), Some("shared-1")).await;
    assert_eq!(reused["code"], "idempotency_key_reused");
    // And the other way round: an HTTP key replayed over the socket.
    let (_, http) = app.vote(&id, 1, Some("http-first")).await;
    let ack = ws_vote(&mut ws, json!(1), Some("http-first")).await;
    assert_eq!(ack["type"], "vote_ack");
    assert_eq!(ack["version"], http["results"]["version"]);
    let now = app.results(&id).await;
    assert_eq!(
        (counts(&now), version(&now)),
        (vec![1, 1], 2),
        "each counted once"
    );
}

async fn votes_use_the_handshake_cookie_or_a_per_connection_voter(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (id, _) = fresh_poll(&app, "one_per_voter").await;
    let voter = "tally_voter=ws-voter-0123456789";
    let res = send(
        "http vote with cookie",
        reqwest::Client::new()
            .post(app.url(&format!("/api/polls/{id}/votes")))
            .header("cookie", voter)
            .json(&json!({"option": 0})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let url = app.ws_url(&format!("/api/polls/{id}/ws"));
    let (mut same_voter, _) =
        WsClient::connect_request(WsClient::request(&url, &[("cookie", voter)]))
            .await
            .expect("handshake");
    same_voter.next_results().await;
    let reply = ws_vote(&mut same_voter, json!(1), None).await;
    assert_eq!(
        reply["code"], "already_voted",
        "the cookie is the voter: {reply}"
    );
    let mut anonymous = app.ws(&id).await;
    anonymous.next_results().await;
    assert_eq!(
        ws_vote(&mut anonymous, json!(1), None).await["type"],
        "vote_ack"
    );
    let reply = ws_vote(&mut anonymous, json!(1), None).await;
    assert_eq!(reply["code"], "already_voted", "one voter per connection");
    assert_eq!(counts(&app.results(&id).await), vec![1, 1]);
}

async fn deleting_the_poll_sends_deleted_then_closes_with_1000(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (id, token) = fresh_poll(&app, "unlimited").await;
    let mut ws = app.ws(&id).await;
    ws.next_results().await;
    assert_eq!(app.delete_poll(&id, Some(&token)).await.status(), 204);
    let msg = ws.next_json().await.expect("a deleted message");
    assert_eq!(msg["type"], "deleted");
    assert_eq!(ws.end().await, WsEnd::Close(1000));
    let res = app.get(&format!("/api/polls/{id}/ws")).await;
    assert_error(res, 404, "poll_not_found").await;
}

async fn ws_follower_ends_on_the_exact_tallies_of_concurrent_votes(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app
        .create_poll(&["a", "b", "c", "d", "e"], "unlimited")
        .await;
    let id = poll["id"].as_str().unwrap();
    let mut ws = app.ws(id).await;
    assert_eq!(version(&ws.next_results().await), 0);
    const K: usize = 200;
    let expected = cast_concurrent_votes(&app, id, K, 5).await;
    let mut seen = vec![0u64];
    let last = loop {
        let results = ws.next_results().await;
        seen.push(version(&results));
        if version(&results) == K as u64 {
            break results;
        }
    };
    assert_strictly_increasing(&seen);
    assert_eq!(counts(&last), expected);
}

/// A vote message padded with JSON whitespace to exactly `len` bytes.
fn padded_vote(len: usize, request_id: &str) -> String {
    let core = format!("{{\"type\":\"vote\",\"option\":0,\"request_id\":\"{request_id}\"");
    let mut msg = core.clone();
    msg.push_str(&" ".repeat(len - core.len() - 1));
    msg.push('}');
    assert_eq!(msg.len(), len);
    msg
}

async fn message_of_exactly_4096_bytes_is_accepted(backend: Backend) {
    let app = spawn_app(&backend).await;
    let mut ws = app.ws("lpl").await;
    ws.next_results().await;
    ws.send_message(Message::Text(padded_vote(4096, "exact").into()))
        .await;
    let reply = loop {
        let m = ws.next_json().await.expect("still open after 4096 bytes");
        if m["type"] != "results" {
            break m;
        }
    };
    assert_eq!(reply["type"], "vote_ack", "{reply}");
    assert_eq!(total(&app.results("lpl").await), 1101);
}

async fn message_over_4096_bytes_is_closed_with_1009(backend: Backend) {
    let app = spawn_app(&backend).await;
    for len in [4097, 64 * 1024] {
        let mut ws = app.ws("lpl").await;
        ws.next_results().await;
        ws.send_message(Message::Text(padded_vote(len, "big").into()))
            .await;
        assert_eq!(ws.end().await, WsEnd::Close(1009), "{len} bytes");
    }
    assert_eq!(total(&app.results("lpl").await), 1100, "nothing counted");
}

async fn fragmented_message_over_4096_bytes_is_closed_with_1009(backend: Backend) {
    let app = spawn_app(&backend).await;
    let mut ws = app.ws("lpl").await;
    ws.next_results().await;
    let msg = padded_vote(6000, "fragments").into_bytes();
    let (head, tail) = msg.split_at(3000);
    let first = Frame::message(head.to_vec(), OpCode::Data(Data::Text), false);
    let last = Frame::message(tail.to_vec(), OpCode::Data(Data::Continue), true);
    ws.send_message(Message::Frame(first)).await;
    ws.send_message(Message::Frame(last)).await;
    assert_eq!(ws.end().await, WsEnd::Close(1009), "limit is per message");
    assert_eq!(total(&app.results("lpl").await), 1100, "nothing counted");
}

async fn server_pings_and_a_peer_that_answers_stays_connected(backend: Backend) {
    let app = spawn_app_with(&backend, |c| {
        c.ws_ping_interval = Duration::from_millis(100);
        c.ws_pong_timeout = Duration::from_millis(300);
    })
    .await;
    let mut ws = app.ws("lpl").await;
    ws.next_results().await;
    // tungstenite answers each ping as it reads it; read five of them,
    // which spans several pong timeouts.
    let mut pings = 0;
    within("five pings", async {
        use futures_util::StreamExt;
        while pings < 5 {
            match ws.stream.next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(_)) => {}
                other => panic!("socket ended while answering pings: {other:?}"),
            }
        }
    })
    .await;
    let reply = ws_vote(&mut ws, json!(0), None).await;
    assert_eq!(reply["type"], "vote_ack", "still connected");
}

async fn server_drops_a_peer_that_never_answers_pings(backend: Backend) {
    let app = spawn_app_with(&backend, |c| {
        c.ws_ping_interval = Duration::from_millis(100);
        c.ws_pong_timeout = Duration::from_millis(300);
    })
    .await;
    let mut raw = RawConn::connect(app.addr).await;
    let handshake = format!(
        "GET /api/polls/lpl/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        app.addr
    );
    raw.write(handshake.as_bytes()).await;
    let head = String::from_utf8(raw.read_until(b"\r\n\r\n").await).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let started = Instant::now();
    // Read everything, answer nothing, until the server hangs up.
    let frames = raw.read_to_end().await;
    let waited = started.elapsed();
    let opcodes = server_frame_opcodes(&frames);
    assert_eq!(opcodes.first(), Some(&0x1), "results first: {opcodes:?}");
    assert!(opcodes.contains(&0x9), "the server pinged: {opcodes:?}");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "dropped after {waited:?} (interval 100 ms, pong timeout 300 ms)"
    );
}
