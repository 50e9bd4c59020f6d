//! The poll resource: create and its validation, listing, close, delete,
//! and the demo poll's admin rule.

use serde_json::{Value, json};

use crate::helpers::*;

both_backends!(
    create_answers_201_with_location_results_and_admin_token,
    create_trims_text_and_defaults_to_one_per_voter,
    question_length_counts_unicode_scalars_up_to_300,
    option_count_and_length_limits_are_enforced,
    options_must_be_distinct_after_trimming,
    blank_question_or_option_is_refused,
    unknown_vote_limit_is_refused,
    list_is_newest_first_with_closed_polls_and_a_limit,
    list_limit_outside_1_to_100_is_refused,
    close_requires_the_admin_token_and_is_idempotent,
    delete_requires_the_admin_token_then_the_poll_is_gone,
    unknown_poll_is_404_before_any_token_check,
    demo_poll_cannot_be_closed_without_a_configured_token,
    demo_poll_can_be_closed_with_the_configured_token,
);

async fn create(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/api/polls", &body).await
}

async fn create_answers_201_with_location_results_and_admin_token(backend: Backend) {
    let app = spawn_app(&backend).await;
    let res = create(
        &app,
        json!({"question": "Best?", "options": ["a", "b", "c"], "vote_limit": "unlimited"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let body = json_of(res).await;
    let poll = &body["poll"];
    let id = poll["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/polls/{id}"));
    assert_eq!(id.len(), 10, "generated ids are 10 chars");
    assert!(
        id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "base62 id {id}"
    );
    assert_eq!(poll["question"], "Best?");
    assert_eq!(poll["vote_limit"], "unlimited");
    assert_eq!(poll["closed"], false);
    assert_eq!(version(poll), 0);
    assert_eq!(total(poll), 0);
    assert_eq!(counts(poll), vec![0, 0, 0]);
    let labels: Vec<&str> = poll["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["a", "b", "c"]);
    let ids: Vec<u64> = poll["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [0, 1, 2]);
    let token = body["admin_token"].as_str().unwrap();
    assert_eq!(token.len(), 32, "128-bit token as hex");
    // The Location really serves the poll.
    assert_eq!(app.results(id).await, *poll);
}

async fn create_trims_text_and_defaults_to_one_per_voter(backend: Backend) {
    let app = spawn_app(&backend).await;
    let res = create(
        &app,
        json!({"question": "  spaced?\n", "options": [" x ", "\ty"]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let poll = json_of(res).await["poll"].clone();
    assert_eq!(poll["question"], "spaced?");
    assert_eq!(poll["options"][0]["label"], "x");
    assert_eq!(poll["options"][1]["label"], "y");
    assert_eq!(poll["vote_limit"], "one_per_voter");
    let stored = app.results(poll["id"].as_str().unwrap()).await;
    assert_eq!(stored["question"], "spaced?", "stored trimmed");
}

async fn question_length_counts_unicode_scalars_up_to_300(backend: Backend) {
    let app = spawn_app(&backend).await;
    let ok = create(
        &app,
        json!({"question": "票".repeat(300), "options": ["明".repeat(100), "b"]}),
    )
    .await;
    assert_eq!(ok.status(), 201, "300 CJK chars (900 bytes) are valid");
    let poll = json_of(ok).await["poll"].clone();
    assert_eq!(poll["question"].as_str().unwrap().chars().count(), 300);
    let res = create(
        &app,
        json!({"question": "票".repeat(301), "options": ["a", "b"]}),
    )
    .await;
    assert_error(res, 422, "validation_failed").await;
    let res = create(
        &app,
        json!({"question": "q", "options": ["明".repeat(101), "b"]}),
    )
    .await;
    assert_error(res, 422, "validation_failed").await;
    // Surrounding spaces do not count against the limit.
    let padded = format!("  {}  ", "q".repeat(300));
    let res = create(&app, json!({"question": padded, "options": ["a", "b"]})).await;
    assert_eq!(res.status(), 201);
}

async fn option_count_and_length_limits_are_enforced(backend: Backend) {
    let app = spawn_app(&backend).await;
    let opts = |n: usize| (0..n).map(|i| format!("o{i}")).collect::<Vec<_>>();
    for (n, status) in [(0, 422), (1, 422), (2, 201), (20, 201), (21, 422)] {
        let res = create(&app, json!({"question": "q", "options": opts(n)})).await;
        if status == 201 {
            assert_eq!(res.status(), 201, "{n} options");
            assert_eq!(counts(&json_of(res).await["poll"]).len(), n);
        } else {
            assert_error(res, status, "validation_failed").await;
        }
    }
    let res = create(
        &app,
        json!({"question": "q", "options": ["a".repeat(100), "b"]}),
    )
    .await;
    assert_eq!(res.status(), 201, "100-char option");
}

async fn options_must_be_distinct_after_trimming(backend: Backend) {
    let app = spawn_app(&backend).await;
    let res = create(&app, json!({"question": "q", "options": ["a", " a "]})).await;
    assert_error(res, 422, "validation_failed").await;
    let res = create(&app, json!({"question": "q", "options": ["a", "A"]})).await;
    assert_eq!(res.status(), 201, "case differs: distinct");
}

async fn blank_question_or_option_is_refused(backend: Backend) {
    let app = spawn_app(&backend).await;
    for body in [
        json!({"question": "   ", "options": ["a", "b"]}),
        json!({"question": "", "options": ["a", "b"]}),
        json!({"question": "q", "options": ["a", " \t "]}),
        json!({"question": "q", "options": ["", "b"]}),
    ] {
        assert_error(create(&app, body).await, 422, "validation_failed").await;
    }
}

async fn unknown_vote_limit_is_refused(backend: Backend) {
    let app = spawn_app(&backend).await;
    for limit in [json!("twice"), json!(""), json!(1), json!(null)] {
        let res = create(
            &app,
            json!({"question": "q", "options": ["a", "b"], "vote_limit": limit}),
        )
        .await;
        assert_error(res, 422, "validation_failed").await;
    }
}

async fn list_is_newest_first_with_closed_polls_and_a_limit(backend: Backend) {
    let app = spawn_app(&backend).await;
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (poll, token) = app.create_poll(&["a", "b"], "unlimited").await;
        ids.push(poll["id"].as_str().unwrap().to_owned());
        tokens.push(token);
    }
    let res = app.close_poll(&ids[0], Some(&tokens[0])).await;
    assert_eq!(res.status(), 200);
    let res = app.get("/api/polls").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let listed = json_of(res).await["polls"].as_array().unwrap().clone();
    let listed_ids: Vec<&str> = listed.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(
        listed_ids,
        [ids[2].as_str(), &ids[1], &ids[0], "lpl"],
        "newest first, the closed poll and the demo included"
    );
    assert_eq!(listed[2]["closed"], true);
    assert_eq!(total(&listed[3]), 1100, "listed entries are full results");

    let two = json_of(app.get("/api/polls?limit=2").await).await;
    let two: Vec<&str> = two["polls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(two, [ids[2].as_str(), &ids[1]]);
}

async fn list_limit_outside_1_to_100_is_refused(backend: Backend) {
    let app = spawn_app(&backend).await;
    for _ in 0..21 {
        app.create_poll(&["a", "b"], "unlimited").await;
    }
    let default = json_of(app.get("/api/polls").await).await;
    assert_eq!(default["polls"].as_array().unwrap().len(), 20, "default 20");
    let hundred = json_of(app.get("/api/polls?limit=100").await).await;
    assert_eq!(hundred["polls"].as_array().unwrap().len(), 22, "all 22");
    let one = json_of(app.get("/api/polls?limit=1").await).await;
    assert_eq!(one["polls"].as_array().unwrap().len(), 1);
    for bad in [
        "0",
        "101",
        "-1",
        "abc",
        "1.5",
        "",
        "99999999999999999999999",
    ] {
        let res = app.get(&format!("/api/polls?limit={bad}")).await;
        assert_error(res, 400, "bad_request").await;
    }
}

async fn close_requires_the_admin_token_and_is_idempotent(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    assert_eq!(app.vote(id, 0, None).await.0, 200);
    assert_error(app.close_poll(id, None).await, 401, "unauthorized").await;
    assert_error(
        app.close_poll(id, Some("0".repeat(32).as_str())).await,
        403,
        "forbidden",
    )
    .await;
    let res = send(
        "close with a non-bearer scheme",
        app.client
            .post(app.url(&format!("/api/polls/{id}/close")))
            .header("Authorization", format!("Basic {token}")),
    )
    .await;
    assert_error(res, 401, "unauthorized").await;
    assert_eq!(
        app.results(id).await["closed"],
        false,
        "refused closes change nothing"
    );

    let res = app.close_poll(id, Some(&token)).await;
    assert_eq!(res.status(), 200);
    let closed = json_of(res).await;
    assert_eq!(closed["closed"], true);
    assert_eq!(version(&closed), 2, "closing bumps the version");
    assert_eq!(counts(&closed), vec![1, 0]);

    let again = json_of(app.close_poll(id, Some(&token)).await).await;
    assert_eq!(again, closed, "closing twice changes nothing");
    assert_eq!(app.results(id).await, closed);
}

async fn delete_requires_the_admin_token_then_the_poll_is_gone(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    assert_error(app.delete_poll(id, None).await, 401, "unauthorized").await;
    assert_error(app.delete_poll(id, Some("wrong")).await, 403, "forbidden").await;
    assert_eq!(app.get(&format!("/api/polls/{id}")).await.status(), 200);

    let res = app.delete_poll(id, Some(&token)).await;
    assert_eq!(res.status(), 204);
    assert!(res.headers().contains_key("x-tally-instance"));
    assert_error(
        app.get(&format!("/api/polls/{id}")).await,
        404,
        "poll_not_found",
    )
    .await;
    assert_error(
        app.delete_poll(id, Some(&token)).await,
        404,
        "poll_not_found",
    )
    .await;
    let (status, body) = app.vote(id, 0, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("poll_not_found"))
    );
    let listed = json_of(app.get("/api/polls").await).await;
    assert!(
        listed["polls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"] != id),
        "deleted poll is not listed"
    );
}

async fn unknown_poll_is_404_before_any_token_check(backend: Backend) {
    let app = spawn_app(&backend).await;
    for token in [None, Some("whatever")] {
        assert_error(app.close_poll("nope", token).await, 404, "poll_not_found").await;
        assert_error(app.delete_poll("nope", token).await, 404, "poll_not_found").await;
    }
}

async fn demo_poll_cannot_be_closed_without_a_configured_token(backend: Backend) {
    let app = spawn_app(&backend).await;
    assert_error(app.close_poll("lpl", None).await, 401, "unauthorized").await;
    // The empty string's SHA-256 is what an unset token would hash to.
    for guess in [
        "x",
        "e3b0c44298fc1c149afbf4c8996fb924",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ] {
        assert_error(app.close_poll("lpl", Some(guess)).await, 403, "forbidden").await;
        assert_error(app.delete_poll("lpl", Some(guess)).await, 403, "forbidden").await;
    }
    let demo = app.results("lpl").await;
    assert_eq!(demo["closed"], false);
    assert_eq!(demo["vote_limit"], "unlimited");
    assert_eq!(demo["question"], "LPL第一打野投票");
    assert_eq!(version(&demo), 0);
}

async fn demo_poll_can_be_closed_with_the_configured_token(backend: Backend) {
    let app = spawn_app_with(&backend, |c| {
        c.demo_admin_token = Some("demo-secret".into())
    })
    .await;
    assert_error(app.close_poll("lpl", Some("other")).await, 403, "forbidden").await;
    let res = app.close_poll("lpl", Some("demo-secret")).await;
    assert_eq!(res.status(), 200);
    let closed = json_of(res).await;
    assert_eq!(closed["closed"], true);
    assert_eq!(total(&closed), 1100);
    let res = app.delete_poll("lpl", Some("demo-secret")).await;
    assert_eq!(res.status(), 204);
}
