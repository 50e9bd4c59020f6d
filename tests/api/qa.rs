//! Audience Q&A on every backend: posting, upvoting (one per voter, never
//! one's own), the board's order, moderation that never shows a pending or
//! hidden question to anyone but the host (raw frames read), the bounds,
//! and 30 concurrent upvotes counting exactly 30.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::*;

both_backends!(
    questions_are_posted_upvoted_and_ordered_by_votes_then_age,
    moderation_keeps_pending_and_hidden_questions_from_everyone_but_the_host,
    bad_posts_and_upvotes_are_refused_and_change_nothing,
    thirty_concurrent_upvotes_count_thirty,
    no_transport_shows_a_held_question_to_the_audience,
);

async fn create_event(app: &TestApp, moderation: bool) -> (String, String) {
    let body = json!({"title": "Q&A", "questions": [], "qa_moderation": moderation});
    let res = app.post_json("/api/events", &body).await;
    assert_eq!(res.status(), 201);
    let v = json_of(res).await;
    (
        v["event"]["id"].as_str().unwrap().to_owned(),
        v["admin_token"].as_str().unwrap().to_owned(),
    )
}

/// A request as voter `who` (their own `tally_voter` cookie).
fn as_voter(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    who: &str,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, app.url(path))
        .header("cookie", format!("tally_voter=voter-{who}"))
}

async fn post_as(app: &TestApp, id: &str, who: &str, text: &str) -> (u16, Value) {
    let req = as_voter(
        app,
        reqwest::Method::POST,
        &format!("/api/events/{id}/qa"),
        who,
    )
    .json(&json!({"text": text, "name": who}));
    let res = send("post", req).await;
    let status = res.status().as_u16();
    (status, json_of(res).await)
}

async fn upvote_as(app: &TestApp, id: &str, qid: u64, who: &str, up: bool) -> (u16, Value) {
    let method = if up {
        reqwest::Method::POST
    } else {
        reqwest::Method::DELETE
    };
    let res = send(
        "upvote",
        as_voter(
            app,
            method,
            &format!("/api/events/{id}/qa/{qid}/upvote"),
            who,
        ),
    )
    .await;
    let status = res.status().as_u16();
    (status, json_of(res).await)
}

async fn moderate(
    app: &TestApp,
    id: &str,
    token: &str,
    qid: u64,
    action: &str,
) -> reqwest::Response {
    send(
        action,
        app.client
            .post(app.url(&format!("/api/events/{id}/qa/{qid}/{action}")))
            .header("authorization", format!("Bearer {token}")),
    )
    .await
}

async fn board(app: &TestApp, id: &str) -> Value {
    json_of(app.get(&format!("/api/events/{id}")).await).await["qa"].clone()
}

fn ids(questions: &Value) -> Vec<u64> {
    questions
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_u64().unwrap())
        .collect()
}

async fn questions_are_posted_upvoted_and_ordered_by_votes_then_age(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (id, token) = create_event(&app, false).await;
    for who in ["a", "b", "c"] {
        let (status, v) = post_as(&app, &id, who, &format!("from {who}?")).await;
        assert_eq!(status, 201);
        assert_eq!(v["question"]["status"], "open");
        assert_eq!(v["question"]["name"], who);
    }
    assert_eq!(
        ids(&board(&app, &id).await["questions"]),
        vec![1, 2, 3],
        "oldest first"
    );
    upvote_as(&app, &id, 3, "x", true).await;
    upvote_as(&app, &id, 3, "y", true).await;
    upvote_as(&app, &id, 2, "x", true).await;
    let (status, v) = upvote_as(&app, &id, 2, "x", true).await;
    assert_eq!(
        (status, v["question"]["votes"].clone()),
        (200, json!(1)),
        "one upvote per voter"
    );
    let b = board(&app, &id).await;
    assert_eq!(ids(&b["questions"]), vec![3, 2, 1]);
    assert_eq!(b["public"], 3);
    let (_, v) = upvote_as(&app, &id, 3, "y", false).await;
    assert_eq!(v["question"]["votes"], 1, "taken back");
    assert_eq!(
        ids(&board(&app, &id).await["questions"]),
        vec![2, 3, 1],
        "ties: oldest first"
    );
    // Answered ones go last; the pinned one is shown apart, first.
    assert_eq!(moderate(&app, &id, &token, 2, "answer").await.status(), 200);
    assert_eq!(moderate(&app, &id, &token, 1, "pin").await.status(), 200);
    let b = board(&app, &id).await;
    assert_eq!(b["pinned"]["id"], 1);
    assert_eq!(ids(&b["questions"]), vec![3, 2]);
    assert_eq!(moderate(&app, &id, &token, 3, "pin").await.status(), 200);
    let b = board(&app, &id).await;
    assert_eq!(b["pinned"]["id"], 3, "one pin at a time");
    assert_eq!(ids(&b["questions"]), vec![1, 2]);
    // Paging: the pinned one first, then the board order.
    let page = json_of(
        app.get(&format!("/api/events/{id}/qa?offset=1&limit=1"))
            .await,
    )
    .await;
    assert_eq!(ids(&page["questions"]), vec![1]);
    assert_eq!(page["public"], 3);
    // The caller's upvotes ride with its GET.
    let res = send(
        "state",
        as_voter(
            &app,
            reqwest::Method::GET,
            &format!("/api/events/{id}"),
            "x",
        ),
    )
    .await;
    assert_eq!(json_of(res).await["upvoted"], json!([2, 3]));
}

async fn moderation_keeps_pending_and_hidden_questions_from_everyone_but_the_host(
    backend: Backend,
) {
    let app = spawn_app(&backend).await;
    let (id, token) = create_event(&app, true).await;
    let mut audience = WsClient::connect(&app.ws_url(&format!("/api/events/{id}/ws"))).await;
    audience.next_json().await.unwrap();
    let (status, v) = post_as(&app, &id, "a", "SECRET-PENDING").await;
    assert_eq!(
        (status, v["question"]["status"].clone()),
        (201, json!("pending"))
    );
    post_as(&app, &id, "b", "visible one").await;
    // The host sees both held; the audience neither.
    let res = send(
        "host",
        app.client
            .get(app.url(&format!("/api/events/{id}")))
            .header("authorization", format!("Bearer {token}")),
    )
    .await;
    let host = json_of(res).await;
    assert_eq!(host["qa"]["held"].as_array().unwrap().len(), 2);
    let public = board(&app, &id).await;
    assert_eq!(public["public"], 0);
    assert!(public.get("held").is_none());
    assert_error(
        upvote_as_res(&app, &id, 1, "x").await,
        404,
        "question_not_found",
    )
    .await;
    // Approve the second (the audience sees it), then hide it again.
    let mut frames: Vec<String> = Vec::new();
    assert_eq!(
        moderate(&app, &id, &token, 2, "approve").await.status(),
        200
    );
    assert_eq!(ids(&board(&app, &id).await["questions"]), vec![2]);
    within("the approved question reaches the audience", async {
        loop {
            let frame = audience.next_json().await.unwrap().to_string();
            let shown = frame.contains("visible one");
            frames.push(frame);
            if shown {
                return;
            }
        }
    })
    .await;
    assert_eq!(moderate(&app, &id, &token, 2, "hide").await.status(), 200);
    assert_eq!(board(&app, &id).await["public"], 0);
    assert_error(
        upvote_as_res(&app, &id, 2, "x").await,
        404,
        "question_not_found",
    )
    .await;
    within("the hidden question leaves the audience's board", async {
        loop {
            let frame = audience.next_json().await.unwrap();
            frames.push(frame.to_string());
            if frame["qa"]["public"] == 0 && frame["type"] == "event" {
                return;
            }
        }
    })
    .await;
    // Every raw frame the audience got: no pending or hidden text, ever.
    assert!(
        frames.iter().all(|f| !f.contains("SECRET-PENDING")),
        "{frames:?}"
    );
    assert!(
        !frames.last().unwrap().contains("visible one"),
        "hidden again"
    );
    // Admin routes need the token.
    let res = send(
        "no token",
        app.client
            .post(app.url(&format!("/api/events/{id}/qa/1/approve"))),
    )
    .await;
    assert_error(res, 401, "unauthorized").await;
    let res = send(
        "bad action",
        app.client
            .post(app.url(&format!("/api/events/{id}/qa/1/delete")))
            .header("authorization", format!("Bearer {token}")),
    )
    .await;
    assert_eq!(res.status(), 404);
}

async fn upvote_as_res(app: &TestApp, id: &str, qid: u64, who: &str) -> reqwest::Response {
    send(
        "upvote",
        as_voter(
            app,
            reqwest::Method::POST,
            &format!("/api/events/{id}/qa/{qid}/upvote"),
            who,
        ),
    )
    .await
}

async fn bad_posts_and_upvotes_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (id, _) = create_event(&app, false).await;
    let path = format!("/api/events/{id}/qa");
    for body in [
        json!({"text": " "}),
        json!({"text": "x".repeat(281)}),
        json!({"text": "ok", "name": "n".repeat(41)}),
        json!({"name": "no text"}),
    ] {
        let res = send(
            "bad post",
            as_voter(&app, reqwest::Method::POST, &path, "a").json(&body),
        )
        .await;
        assert_error(res, 422, "validation_failed").await;
    }
    let (status, _) = post_as(&app, &id, "a", &"问".repeat(280)).await;
    assert_eq!(status, 201, "280 CJK characters fit");
    let res = send(
        "second",
        as_voter(&app, reqwest::Method::POST, &path, "a").json(&json!({"text": "again"})),
    )
    .await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry));
    assert_error(res, 429, "rate_limited").await;
    assert_error(upvote_as_res(&app, &id, 1, "a").await, 409, "own_question").await;
    assert_error(
        upvote_as_res(&app, &id, 99, "b").await,
        404,
        "question_not_found",
    )
    .await;
    assert_error(
        upvote_as_res(&app, "nope", 1, "b").await,
        404,
        "event_not_found",
    )
    .await;
    let b = board(&app, &id).await;
    assert_eq!(
        (b["public"].clone(), b["questions"][0]["votes"].clone()),
        (json!(1), json!(0))
    );
    // The 2,001st question is refused; a full board's state stays small.
    let mut statuses = Vec::new();
    for batch in (2..=2_000u32).collect::<Vec<_>>().chunks(100) {
        let posts = batch.iter().map(|i| {
            let (app, id) = (&app, &id);
            let text = "问".repeat(280);
            async move {
                let req = as_voter(
                    app,
                    reqwest::Method::POST,
                    &format!("/api/events/{id}/qa"),
                    &format!("p{i}"),
                )
                .json(&json!({"text": text, "name": "名".repeat(40)}));
                send("fill", req).await.status().as_u16()
            }
        });
        statuses.extend(join_all(posts).await);
    }
    assert!(statuses.iter().all(|s| *s == 201));
    let (status, v) = post_as(&app, &id, "late", "one more?").await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (409, json!("too_many_questions"))
    );
    let res = app.get(&format!("/api/events/{id}")).await;
    let bytes = res.bytes().await.unwrap();
    assert!(
        bytes.len() < 64 * 1024,
        "a full board's state is {} bytes",
        bytes.len()
    );
    let state: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(state["qa"]["public"], 2_000);
    assert_eq!(state["qa"]["questions"].as_array().unwrap().len(), 50);
}

async fn thirty_concurrent_upvotes_count_thirty(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (id, _) = create_event(&app, false).await;
    post_as(&app, &id, "author", "upvote me").await;
    let votes = (0..30).map(|i| {
        let (app, id) = (&app, &id);
        async move { upvote_as(app, id, 1, &format!("fan{i}"), true).await.0 }
    });
    assert!(join_all(votes).await.iter().all(|s| *s == 200));
    assert_eq!(board(&app, &id).await["questions"][0]["votes"], 30);
}

/// SSE, long polling, short polling and paging, read raw: a pending and a
/// hidden question never reach anyone but the host.
async fn no_transport_shows_a_held_question_to_the_audience(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (id, token) = create_event(&app, true).await;
    let mut sse = SseClient::connect(&app.url(&format!("/api/events/{id}/events")), None).await;
    let first = sse.next_event().await.unwrap();
    let cursor = first.id.clone();
    let long_poll = {
        let url = app.url(&format!(
            "/api/events/{id}/changes?since={cursor}&timeout=20"
        ));
        tokio::spawn(async move {
            send("long poll", client().get(url))
                .await
                .text()
                .await
                .unwrap()
        })
    };
    post_as(&app, &id, "a", "PENDING-SECRET").await;
    post_as(&app, &id, "b", "HIDDEN-SECRET").await;
    // Hidden while still pending: it was never public, so no transport may
    // ever carry it (a question approved, then hidden, was public between).
    assert_eq!(moderate(&app, &id, &token, 2, "hide").await.status(), 200);
    post_as(&app, &id, "c", "shown").await;
    assert_eq!(
        moderate(&app, &id, &token, 3, "approve").await.status(),
        200
    );
    let mut seen = vec![first.data];
    within("the SSE stream shows the approved one", async {
        loop {
            let e = sse.next_event().await.unwrap();
            let done = e.data.contains("\"shown\"");
            seen.push(e.data);
            if done {
                return;
            }
        }
    })
    .await;
    seen.push(within("long poll", long_poll).await.unwrap());
    seen.push(
        app.get(&format!("/api/events/{id}"))
            .await
            .text()
            .await
            .unwrap(),
    );
    seen.push(
        app.get(&format!("/api/events/{id}/qa?limit=100"))
            .await
            .text()
            .await
            .unwrap(),
    );
    for raw in &seen {
        assert!(!raw.contains("SECRET"), "held text leaked: {raw}");
    }
    // The host does see both.
    let res = send(
        "host",
        app.client
            .get(app.url(&format!("/api/events/{id}")))
            .header("authorization", format!("Bearer {token}")),
    )
    .await;
    let host = res.text().await.unwrap();
    assert!(host.contains("PENDING-SECRET") && host.contains("HIDDEN-SECRET"));
}
