//! Events over the JSON API on every backend: a deck under one join code,
//! moves that open only the question on screen, deck edits, hidden
//! results, and followers on another instance switching question on each
//! transport. Bad input answers the contract's error and changes nothing.

use ::redis::AsyncCommands;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::*;

both_backends!(
    an_event_is_created_in_the_lobby_and_joined_by_its_code,
    bad_events_are_refused_naming_the_field_and_create_nothing,
    moves_open_only_the_question_on_screen,
    moves_at_the_ends_and_repeats_change_nothing,
    bad_moves_and_admin_routes_are_refused,
    the_deck_is_edited_reordered_and_exported,
    hidden_results_reach_only_the_host,
    followers_on_another_instance_switch_on_every_transport,
    concurrent_moves_from_two_instances_leave_one_open_question,
    deleting_an_event_removes_it_its_code_and_its_questions,
);

const ADMIN: &str = "authorization";

fn deck(n: usize) -> Value {
    let questions: Vec<Value> = (0..n)
        .map(|i| json!({"question": format!("Q{i}?"), "options": ["yes", "no"], "vote_limit": "unlimited"}))
        .collect();
    json!({"title": "Town hall", "questions": questions})
}

/// Creates an event of `n` questions; its state and admin token.
async fn create_event(app: &TestApp, n: usize) -> (Value, String) {
    let res = app.post_json("/api/events", &deck(n)).await;
    assert_eq!(res.status(), 201);
    let v = json_of(res).await;
    (
        v["event"].clone(),
        v["admin_token"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header(ADMIN, format!("Bearer {token}"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    send(path, req).await
}

async fn move_to(app: &TestApp, id: &str, token: &str, body: Value) -> Value {
    let res = admin(
        app,
        reqwest::Method::POST,
        &format!("/api/events/{id}/move"),
        token,
        Some(body),
    )
    .await;
    assert_eq!(res.status(), 200);
    json_of(res).await
}

async fn state(app: &TestApp, id: &str) -> Value {
    json_of(app.get(&format!("/api/events/{id}")).await).await
}

fn question_ids(state: &Value) -> Vec<String> {
    state["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Which questions are open, read as polls.
async fn open_questions(app: &TestApp, ids: &[String]) -> Vec<usize> {
    let mut open = Vec::new();
    for (i, q) in ids.iter().enumerate() {
        if app.results(q).await["closed"] == false {
            open.push(i);
        }
    }
    open
}

async fn an_event_is_created_in_the_lobby_and_joined_by_its_code(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (event, _) = create_event(&app, 3).await;
    assert_eq!(event["current"], Value::Null);
    assert_eq!(event["now"], Value::Null);
    assert_eq!(event["results_shown"], true);
    assert_eq!(event["version"], 0);
    let code = event["code"].as_str().unwrap();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    let ids = question_ids(&event);
    assert_eq!(ids.len(), 3);
    assert!(
        open_questions(&app, &ids).await.is_empty(),
        "the lobby opens nothing"
    );
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let found = json_of(app.get(&format!("/api/join/{spaced}")).await).await;
    assert_eq!(found["event"], event["id"]);
    let unknown = if code == "000000" { "000001" } else { "000000" };
    assert_error(
        app.get(&format!("/api/join/{unknown}")).await,
        404,
        "not_found",
    )
    .await;
    assert_error(app.get("/api/join/12ab56").await, 404, "not_found").await;
    assert_error(app.get("/api/events/nope").await, 404, "event_not_found").await;
}

async fn bad_events_are_refused_naming_the_field_and_create_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let res = app
        .post_json("/api/events", &json!({"title": " ", "questions": []}))
        .await;
    assert_error(res, 422, "validation_failed").await;
    let long = json!({"title": "x".repeat(201), "questions": []});
    assert_error(
        app.post_json("/api/events", &long).await,
        422,
        "validation_failed",
    )
    .await;
    let mut bad = deck(5);
    bad["questions"][3]["options"] = json!(["only one"]);
    let res = app.post_json("/api/events", &bad).await;
    assert_eq!(res.status(), 422);
    let body = json_of(res).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("questions[3]"),
        "{body}"
    );
    assert_error(
        app.post_json("/api/events", &deck(101)).await,
        422,
        "validation_failed",
    )
    .await;
    let (event, _) = create_event(&app, 100).await;
    assert_eq!(event["questions"].as_array().unwrap().len(), 100);
}

async fn moves_open_only_the_question_on_screen(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (event, token) = create_event(&app, 3).await;
    let id = event["id"].as_str().unwrap();
    let ids = question_ids(&event);
    let s = move_to(&app, id, &token, json!({"step": "next"})).await;
    assert_eq!(s["current"], 0);
    assert_eq!(s["now"]["id"], ids[0].as_str());
    assert_eq!(open_questions(&app, &ids).await, vec![0]);
    let (status, _) = vote_on(&app, &ids[1]).await;
    assert_eq!(status, 409, "a question not on screen takes no vote");
    let (status, _) = vote_on(&app, &ids[0]).await;
    assert_eq!(status, 200);
    let s = move_to(&app, id, &token, json!({"to": 2})).await;
    assert_eq!(s["current"], 2);
    assert_eq!(open_questions(&app, &ids).await, vec![2]);
    let q0 = app.results(&ids[0]).await;
    assert_eq!(q0["total"], 1, "counts never change on a move");
    let s = move_to(&app, id, &token, json!({"step": "prev"})).await;
    assert_eq!(s["current"], 1);
    let s = move_to(&app, id, &token, json!({"to": 0})).await;
    assert_eq!(s["current"], 0, "going back reopens");
    assert_eq!(open_questions(&app, &ids).await, vec![0]);
    let s = move_to(&app, id, &token, json!({"to": null})).await;
    assert_eq!(s["current"], Value::Null);
    assert!(open_questions(&app, &ids).await.is_empty());
    // A plain reopen of a question not on screen is refused.
    let res = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/polls/{}/reopen", ids[1]),
        &token,
        None,
    )
    .await;
    assert_error(res, 409, "poll_closed").await;
    assert!(open_questions(&app, &ids).await.is_empty());
}

async fn vote_on(app: &TestApp, poll: &str) -> (u16, Value) {
    let res = app
        .post_json(&format!("/api/polls/{poll}/votes"), &json!({"option": 0}))
        .await;
    let status = res.status().as_u16();
    (status, json_of(res).await)
}

async fn moves_at_the_ends_and_repeats_change_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (event, token) = create_event(&app, 2).await;
    let id = event["id"].as_str().unwrap();
    let s = move_to(&app, id, &token, json!({"step": "prev"})).await;
    assert_eq!(
        (s["current"].clone(), s["version"].clone()),
        (Value::Null, json!(0))
    );
    move_to(&app, id, &token, json!({"step": "next"})).await;
    let s = move_to(&app, id, &token, json!({"step": "prev"})).await;
    assert_eq!(
        (s["current"].clone(), s["version"].clone()),
        (json!(0), json!(1))
    );
    let s = move_to(&app, id, &token, json!({"to": 1})).await;
    let version = s["version"].clone();
    let again = move_to(&app, id, &token, json!({"to": 1})).await;
    assert_eq!(again["version"], version, "a repeated move changes nothing");
    let end = move_to(&app, id, &token, json!({"step": "next"})).await;
    assert_eq!(
        (end["current"].clone(), end["version"].clone()),
        (json!(1), version)
    );
}

async fn bad_moves_and_admin_routes_are_refused(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (event, token) = create_event(&app, 2).await;
    let id = event["id"].as_str().unwrap();
    let path = format!("/api/events/{id}/move");
    for body in [
        json!({"to": 2}),
        json!({"to": -1}),
        json!({"to": "1"}),
        json!({}),
        json!({"to": 0, "step": "next"}),
        json!({"step": "up"}),
    ] {
        let res = admin(
            &app,
            reqwest::Method::POST,
            &path,
            &token,
            Some(body.clone()),
        )
        .await;
        assert_error(res, 422, "validation_failed").await;
    }
    assert_eq!(
        state(&app, id).await["version"],
        0,
        "refused moves change nothing"
    );
    let res = app.post_json(&path, &json!({"step": "next"})).await;
    assert_error(res, 401, "unauthorized").await;
    let res = admin(
        &app,
        reqwest::Method::POST,
        &path,
        "wrong",
        Some(json!({"step": "next"})),
    )
    .await;
    assert_error(res, 403, "forbidden").await;
    let res = admin(
        &app,
        reqwest::Method::POST,
        "/api/events/nope/move",
        &token,
        Some(json!({"step": "next"})),
    )
    .await;
    assert_error(res, 404, "event_not_found").await;
    let res = app.get(&format!("/api/events/{id}/results.csv")).await;
    assert_error(res, 401, "unauthorized").await;
    assert_eq!(state(&app, id).await["version"], 0);
}

async fn the_deck_is_edited_reordered_and_exported(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (event, token) = create_event(&app, 3).await;
    let id = event["id"].as_str().unwrap();
    let ids = question_ids(&event);
    move_to(&app, id, &token, json!({"to": 1})).await;
    // Reorder: the question on screen stays on screen.
    let order = json!({"questions": [ids[2], ids[1], ids[0]]});
    let res = admin(
        &app,
        reqwest::Method::PUT,
        &format!("/api/events/{id}/order"),
        &token,
        Some(order),
    )
    .await;
    let s = json_of(res).await;
    assert_eq!(
        question_ids(&s),
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(s["current"], 1);
    assert_eq!(s["now"]["id"], ids[1].as_str());
    for bad in [
        json!({"questions": [ids[0], ids[1]]}),
        json!({"questions": [ids[0], ids[0], ids[1]]}),
        json!({"questions": [ids[0], ids[1], "zzz"]}),
    ] {
        let res = admin(
            &app,
            reqwest::Method::PUT,
            &format!("/api/events/{id}/order"),
            &token,
            Some(bad),
        )
        .await;
        assert_error(res, 422, "validation_failed").await;
    }
    // Append.
    let q = json!({"question": "Added?", "options": ["a", "b"]});
    let res = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/events/{id}/questions"),
        &token,
        Some(q),
    )
    .await;
    let s = json_of(res).await;
    assert_eq!(s["questions"][3]["question"], "Added?");
    // Edit before the first vote; after it, 409.
    let edit = json!({"question": "Edited?", "options": ["c", "d"]});
    let path = format!("/api/events/{id}/questions/{}", ids[0]);
    let res = admin(
        &app,
        reqwest::Method::PUT,
        &path,
        &token,
        Some(edit.clone()),
    )
    .await;
    let s = json_of(res).await;
    assert_eq!(s["questions"][2]["question"], "Edited?");
    vote_on(&app, &ids[1]).await;
    let path = format!("/api/events/{id}/questions/{}", ids[1]);
    let res = admin(&app, reqwest::Method::PUT, &path, &token, Some(edit)).await;
    assert_error(res, 409, "has_votes").await;
    assert_eq!(
        app.results(&ids[1]).await["closed"],
        false,
        "a refused edit leaves it open"
    );
    // Deleting the question on screen sends the event to the lobby.
    let res = admin(&app, reqwest::Method::DELETE, &path, &token, None).await;
    let s = json_of(res).await;
    assert_eq!(s["current"], Value::Null);
    assert_eq!(s["questions"].as_array().unwrap().len(), 3);
    assert_error(
        app.get(&format!("/api/polls/{}", ids[1])).await,
        404,
        "poll_not_found",
    )
    .await;
    // The CSV: every question in deck order.
    let res = admin(
        &app,
        reqwest::Method::GET,
        &format!("/api/events/{id}/results.csv"),
        &token,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "question,option,label,votes");
    assert_eq!(lines.len(), 1 + 2 * 3, "{csv}");
    assert!(lines[1].starts_with("Q2?,0,yes,0"), "{csv}");
    assert!(lines[3].starts_with("Edited?,0,c,0"), "{csv}");
}

async fn hidden_results_reach_only_the_host(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (event, token) = create_event(&app, 1).await;
    let id = event["id"].as_str().unwrap();
    move_to(&app, id, &token, json!({"step": "next"})).await;
    vote_on(&app, &question_ids(&event)[0]).await;
    let res = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/events/{id}/results"),
        &token,
        Some(json!({"shown": false})),
    )
    .await;
    let host = json_of(res).await;
    assert_eq!(host["results_shown"], false);
    assert_eq!(host["now"]["total"], 1, "the host sees counts");
    let audience = state(&app, id).await;
    assert_eq!(audience["now"]["total"], Value::Null);
    assert_eq!(audience["now"]["results_hidden"], true);
    let mut ws = app.ws_url(&format!("/api/events/{id}/ws"));
    ws.push_str("");
    let mut client = WsClient::connect(&ws).await;
    let first = client.next_json().await.unwrap();
    assert_eq!(first["type"], "event");
    assert_eq!(first["now"]["total"], Value::Null, "nor does a follower");
    admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/events/{id}/results"),
        &token,
        Some(json!({"shown": true})),
    )
    .await;
    let shown = client.next_json().await.unwrap();
    assert_eq!(shown["now"]["total"], 1);
}

async fn followers_on_another_instance_switch_on_every_transport(backend: Backend) {
    let a_owned = spawn_app(&backend).await;
    let a = &a_owned;
    // One instance in memory; two on Redis.
    let b_owned;
    let b = if matches!(backend, Backend::Memory) {
        a
    } else {
        b_owned = spawn_app(&backend).await;
        &b_owned
    };
    let (event, token) = create_event(a, 2).await;
    let id = event["id"].as_str().unwrap();
    let ids = question_ids(&event);
    let mut ws = WsClient::connect(&b.ws_url(&format!("/api/events/{id}/ws"))).await;
    assert_eq!(ws.next_json().await.unwrap()["current"], Value::Null);
    let mut sse = SseClient::connect(&b.url(&format!("/api/events/{id}/events")), None).await;
    let first = sse.next_event().await.unwrap();
    assert_eq!(first.event, "state");
    let cursor = first.id.clone();
    let long_poll = {
        let url = b.url(&format!(
            "/api/events/{id}/changes?since={cursor}&timeout=20"
        ));
        let client = b.client.clone();
        tokio::spawn(async move { send("long poll", client.get(url)).await })
    };
    move_to(a, id, &token, json!({"step": "next"})).await;
    let pushed = within("ws switch", async {
        loop {
            let m = ws.next_json().await.unwrap();
            if m["current"] == 0 && m["now"]["closed"] == false {
                return m;
            }
        }
    })
    .await;
    assert_eq!(pushed["now"]["id"], ids[0].as_str());
    within("sse switch", async {
        loop {
            let e = sse.next_event().await.unwrap();
            let v: Value = serde_json::from_str(&e.data).unwrap();
            if v["current"] == 0 {
                assert_eq!(e.id, v["cursor"].as_str().unwrap());
                return;
            }
        }
    })
    .await;
    let res = within("long poll answer", long_poll).await.unwrap();
    assert_eq!(res.status(), 200);
    let v = json_of(res).await;
    assert_ne!(v["cursor"].as_str().unwrap(), cursor);
    // A vote over the event's WebSocket counts on the question on screen.
    ws.send_json(&json!({"type": "vote", "option": 1, "request_id": "k1"}))
        .await;
    within("vote counted", async {
        loop {
            let m = ws.next_json().await.unwrap();
            if m["type"] == "vote_ack" {
                assert_eq!(m["question"], ids[0].as_str());
            }
            if m["type"] == "event" && m["now"]["total"] == 1 {
                return;
            }
        }
    })
    .await;
    // Short polling sees the same state, and 304 while nothing changes.
    let res = b.get(&format!("/api/events/{id}")).await;
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let again = send(
        "304",
        b.client
            .get(b.url(&format!("/api/events/{id}")))
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(again.status(), 304);
}

async fn concurrent_moves_from_two_instances_leave_one_open_question(backend: Backend) {
    let a_owned = spawn_app(&backend).await;
    let a = &a_owned;
    // Two instances share a Redis; in memory the moves race on one.
    let b_owned;
    let b = if matches!(backend, Backend::Memory) {
        a
    } else {
        b_owned = spawn_app(&backend).await;
        &b_owned
    };
    let (event, token) = create_event(a, 5).await;
    let id = event["id"].as_str().unwrap();
    let ids = question_ids(&event);
    let path = format!("/api/events/{id}/move");
    let moves = (0..8).map(|i| {
        let app = if i % 2 == 0 { a } else { b };
        let body = if i % 3 == 0 {
            json!({"step": "prev"})
        } else {
            json!({"step": "next"})
        };
        admin(app, reqwest::Method::POST, &path, &token, Some(body))
    });
    for res in join_all(moves).await {
        assert_eq!(res.status(), 200);
    }
    let s = state(a, id).await;
    let current = s["current"].as_u64().expect("on a question") as usize;
    assert_eq!(
        open_questions(a, &ids).await,
        vec![current],
        "exactly the question on screen is open"
    );
}

async fn deleting_an_event_removes_it_its_code_and_its_questions(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (event, token) = create_event(&app, 2).await;
    let id = event["id"].as_str().unwrap();
    let code = event["code"].as_str().unwrap();
    let mut ws = WsClient::connect(&app.ws_url(&format!("/api/events/{id}/ws"))).await;
    ws.next_json().await.unwrap();
    let res = admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/events/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(res.status(), 204);
    let told = within("deleted pushed", async {
        loop {
            let m = ws.next_json().await.unwrap();
            if m["type"] != "event" {
                return m;
            }
        }
    })
    .await;
    assert_eq!(told["type"], "deleted");
    assert_error(
        app.get(&format!("/api/events/{id}")).await,
        404,
        "event_not_found",
    )
    .await;
    assert_error(
        app.get(&format!("/api/join/{code}")).await,
        404,
        "not_found",
    )
    .await;
    for q in question_ids(&event) {
        assert_error(
            app.get(&format!("/api/polls/{q}")).await,
            404,
            "poll_not_found",
        )
        .await;
    }
    if let (Some(mut conn), Some(prefix)) = (backend.store_conn().await, backend.key_prefix()) {
        let left: bool = conn
            .exists(format!("{prefix}:event:{{{id}}}"))
            .await
            .unwrap();
        assert!(!left, "the event's keys are gone");
    }
}

/// Failed join-code look-ups are limited per client (`TALLY_JOIN_RATE`);
/// successful ones do not count, and a limited client learns nothing more,
/// not even about a code that exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_join_codes_are_limited_per_client_and_successes_are_free() {
    let app = spawn_app_with(&Backend::Memory, |c| c.join_rate = 5).await;
    let (event, _) = create_event(&app, 1).await;
    let code = event["code"].as_str().unwrap().to_owned();
    let wrong = if code == "999999" { "999998" } else { "999999" };
    for _ in 0..10 {
        let res = app.get(&format!("/api/join/{code}")).await;
        assert_eq!(res.status(), 200, "successes are not counted");
    }
    for i in 0..5 {
        let res = app.get(&format!("/api/join/{wrong}")).await;
        assert_eq!(res.status(), 404, "failure {i} within the allowance");
    }
    let res = app.get(&format!("/api/join/{wrong}")).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_error(res, 429, "rate_limited").await;
    let res = app.get(&format!("/api/join/{code}")).await;
    assert_error(res, 429, "rate_limited").await;
}
