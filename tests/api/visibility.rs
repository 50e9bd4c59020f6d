//! The `results` rule on every transport: while counts are hidden from a
//! client, no byte it receives carries one (read from the raw frames), the
//! version still advances, and the host's token, a vote or the close
//! reveals them.

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;
use crate::richer_polls::{create, vote_body};

both_backends!(
    a_hidden_follower_never_receives_a_count_on_any_transport,
    the_admin_token_always_sees_counts,
    after_vote_shows_counts_to_a_voter_only,
    a_websocket_follower_that_votes_starts_seeing_counts,
    the_csv_follows_the_rule_and_the_token_bypasses_it,
);

/// Whether `text` carries a count: `"votes":` or `"total":` followed by a
/// digit.
fn carries_a_count(text: &str) -> bool {
    ["\"votes\":", "\"total\":"].iter().any(|field| {
        text.match_indices(field).any(|(at, f)| {
            text[at + f.len()..]
                .trim_start()
                .starts_with(|c: char| c.is_ascii_digit())
        })
    })
}

/// Reads a raw SSE stream until an event with `id: version` (or later)
/// has arrived; returns every byte read.
async fn sse_until(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    text: &mut String,
    version: u64,
) {
    within("sse bytes", async {
        loop {
            if text
                .lines()
                .filter_map(|l| l.strip_prefix("id: "))
                .any(|v| v.trim().parse::<u64>().is_ok_and(|v| v >= version))
            {
                return;
            }
            let chunk = stream.next().await.expect("stream open").expect("bytes");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
}

/// Reads raw WebSocket text frames until one has `version` or later.
async fn ws_until(ws: &mut WsClient, frames: &mut Vec<String>, version: u64) -> Value {
    within("ws frames", async {
        loop {
            match ws.stream.next().await.expect("socket open").expect("frame") {
                Message::Text(t) => {
                    frames.push(t.as_str().to_owned());
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == "results" && v["version"].as_u64().unwrap() >= version {
                        return v;
                    }
                }
                _ => continue,
            }
        }
    })
    .await
}

async fn a_hidden_follower_never_receives_a_count_on_any_transport(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = create(
        &app,
        json!({"results": "after_close", "vote_limit": "unlimited", "listed": true}),
    )
    .await;
    let id = poll["id"].as_str().unwrap().to_owned();
    for option in [0, 1, 1] {
        app.vote(&id, option, None).await;
    }
    let stranger = client();
    let mut ws = app.ws(&id).await;
    let mut frames = Vec::new();
    let res = send(
        "sse",
        stranger.get(app.url(&format!("/api/polls/{id}/events"))),
    )
    .await;
    let mut sse = res.bytes_stream();
    let mut sse_text = String::new();
    let first = ws_until(&mut ws, &mut frames, 3).await;
    assert_eq!(first["results_hidden"], true);
    assert_eq!(first["total"], Value::Null);
    sse_until(&mut sse, &mut sse_text, 3).await;
    let long_poll = {
        let (stranger, url) = (
            stranger.clone(),
            app.url(&format!("/api/polls/{id}/changes?since=3&timeout=10")),
        );
        tokio::spawn(async move {
            stranger
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    app.wait_followed(&id, true).await;
    // The vote answer itself hides the counts from the voter (after_close).
    let (status, voted) = vote_body(&app, &id, json!({"option": 2}), None).await;
    assert_eq!(status, 200);
    assert_eq!(voted["results"]["results_hidden"], true);
    app.vote(&id, 0, None).await;
    let latest = ws_until(&mut ws, &mut frames, 5).await;
    assert_eq!(latest["version"], 5, "the version still advances");
    sse_until(&mut sse, &mut sse_text, 5).await;
    let long_text = within("long poll", long_poll).await.unwrap();
    let short_text = send(
        "short poll",
        stranger.get(app.url(&format!("/api/polls/{id}"))),
    )
    .await
    .text()
    .await
    .unwrap();
    // The list holds the demo poll too, whose counts are public: only this
    // poll's entry is checked.
    let list: Value = send("list", stranger.get(app.url("/api/polls")))
        .await
        .json()
        .await
        .unwrap();
    let list_text = list["polls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id.as_str())
        .expect("the listed poll in the list")
        .to_string();
    for (what, text) in [
        ("websocket", frames.join("\n")),
        ("sse", sse_text.clone()),
        ("long poll", long_text.clone()),
        ("short poll", short_text.clone()),
        ("list", list_text),
    ] {
        assert!(!carries_a_count(&text), "{what} leaked a count: {text}");
        assert!(text.contains("\"results_hidden\":true"), "{what}: {text}");
    }
    assert!(long_text.contains("\"votes\":null"));
    // Closing reveals them on the same connections (so the check can fail).
    assert_eq!(app.close_poll(&id, Some(&token)).await.status(), 200);
    let closed = ws_until(&mut ws, &mut frames, 6).await;
    assert_eq!(closed["closed"], true);
    assert_eq!(counts(&closed), vec![2, 2, 1]);
    assert!(carries_a_count(frames.last().unwrap()));
    sse_until(&mut sse, &mut sse_text, 6).await;
    assert!(
        carries_a_count(&sse_text),
        "the closed results reach SSE with counts"
    );
}

async fn the_admin_token_always_sees_counts(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = create(
        &app,
        json!({"results": "after_close", "vote_limit": "unlimited"}),
    )
    .await;
    let id = poll["id"].as_str().unwrap();
    app.vote(id, 1, None).await;
    let hidden = app.results(id).await;
    assert_eq!(hidden["results_hidden"], true);
    let admin = read_as(&app, "admin read", &format!("/api/polls/{id}"), &token).await;
    assert_eq!(admin["results_hidden"], false);
    assert_eq!(counts(&admin), vec![0, 1, 0]);
    let wrong = read_as(&app, "wrong token", &format!("/api/polls/{id}"), "nope").await;
    assert_eq!(
        wrong["results_hidden"], true,
        "a wrong token is just not the host"
    );
    let lp = read_as(
        &app,
        "admin long poll",
        &format!("/api/polls/{id}/changes?since=0&timeout=1"),
        &token,
    )
    .await;
    assert_eq!(counts(&lp), vec![0, 1, 0]);
}

async fn after_vote_shows_counts_to_a_voter_only(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = create(&app, json!({"results": "after_vote"})).await;
    let id = poll["id"].as_str().unwrap();
    let stranger = client();
    vote_with(&stranger, &app.base, id, 0, None).await;
    let before = app.results(id).await;
    assert_eq!(before["results_hidden"], true, "not voted yet");
    assert_eq!(before["version"], 1);
    let (status, voted) = app.vote(id, 1, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        counts(&voted["results"]),
        vec![1, 1, 0],
        "the voter sees counts at once"
    );
    assert_eq!(counts(&app.results(id).await), vec![1, 1, 0]);
    // A stream this voter opens now shows counts too.
    let res = send(
        "sse",
        app.client.get(app.url(&format!("/api/polls/{id}/events"))),
    )
    .await;
    let mut sse = res.bytes_stream();
    let mut text = String::new();
    sse_until(&mut sse, &mut text, 2).await;
    assert!(carries_a_count(&text), "{text}");
    let fresh = client();
    let other = json_of(send("other", fresh.get(app.url(&format!("/api/polls/{id}")))).await).await;
    assert_eq!(other["results_hidden"], true, "someone who has not voted");
}

async fn a_websocket_follower_that_votes_starts_seeing_counts(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = create(
        &app,
        json!({"results": "after_vote", "vote_limit": "unlimited"}),
    )
    .await;
    let id = poll["id"].as_str().unwrap();
    let mut voter = app.ws(id).await;
    let mut watcher = app.ws(id).await;
    let (mut vf, mut wf) = (Vec::new(), Vec::new());
    assert_eq!(
        ws_until(&mut voter, &mut vf, 0).await["results_hidden"],
        true
    );
    ws_until(&mut watcher, &mut wf, 0).await;
    voter
        .send_json(&json!({"type": "vote", "option": 2, "request_id": "v1"}))
        .await;
    let seen = ws_until(&mut voter, &mut vf, 1).await;
    assert_eq!(seen["results_hidden"], false);
    assert_eq!(counts(&seen), vec![0, 0, 1]);
    let unseen = ws_until(&mut watcher, &mut wf, 1).await;
    assert_eq!(unseen["results_hidden"], true);
    assert!(!carries_a_count(&wf.join("\n")));
}

async fn the_csv_follows_the_rule_and_the_token_bypasses_it(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = create(
        &app,
        json!({"results": "after_close", "vote_limit": "unlimited"}),
    )
    .await;
    let id = poll["id"].as_str().unwrap();
    app.vote(id, 1, None).await;
    let path = format!("/api/polls/{id}/results.csv");
    let hidden = app.get(&path).await.text().await.unwrap();
    assert_eq!(hidden, "option,label,votes\r\n0,a,\r\n1,b,\r\n2,c,\r\n");
    let admin = send(
        "admin csv",
        app.client.get(app.url(&path)).bearer_auth(&token),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(admin, "option,label,votes\r\n0,a,0\r\n1,b,1\r\n2,c,0\r\n");
}

/// `GET path` with `Authorization: Bearer token`, as JSON.
async fn read_as(app: &TestApp, what: &str, path: &str, token: &str) -> Value {
    json_of(send(what, app.client.get(app.url(path)).bearer_auth(token)).await).await
}
