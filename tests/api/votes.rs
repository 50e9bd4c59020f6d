//! Voting over HTTP: results right after the vote, the voter cookie, the
//! one-per-voter rule, and idempotency keys.

use serde_json::json;

use crate::helpers::*;

both_backends!(
    vote_answers_the_results_right_after_it,
    first_vote_sets_the_voter_cookie_for_a_year,
    one_per_voter_refuses_a_second_vote_from_the_same_cookie,
    unlimited_polls_count_every_repeat,
    unknown_option_closed_poll_and_unknown_poll_are_refused,
    retry_with_the_same_idempotency_key_counts_once,
    retry_on_a_one_per_voter_poll_replays_200_not_409,
    retry_after_the_poll_closed_replays_the_counted_vote,
    idempotency_key_with_another_option_is_422,
    malformed_idempotency_key_is_400,
    idempotency_keys_are_per_poll,
);

async fn vote_answers_the_results_right_after_it(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b", "c"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let (status, body) = app.vote(id, 2, None).await;
    assert_eq!(status, 200);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["results"], "body is {{\"results\":…}}");
    let results = &body["results"];
    assert_eq!(version(results), 1);
    assert_eq!(counts(results), vec![0, 0, 1]);
    assert_eq!(total(results), 1);
    assert_eq!(results["id"], id);
    let (_, body) = app.vote(id, 0, None).await;
    assert_eq!(version(&body["results"]), 2);
    assert_eq!(counts(&body["results"]), vec![1, 0, 1]);
    assert_eq!(app.results(id).await, body["results"]);
}

async fn first_vote_sets_the_voter_cookie_for_a_year(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let res = app
        .post_json(&format!("/api/polls/{id}/votes"), &json!({"option": 0}))
        .await;
    assert_eq!(res.status(), 200);
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 1, "one cookie: {cookies:?}");
    let cookie = &cookies[0];
    let value = cookie
        .strip_prefix("tally_voter=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("tally_voter cookie: {cookie}"));
    assert!(value.len() >= 16, "random voter id: {value}");
    let attrs: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for expected in ["httponly", "samesite=lax", "max-age=31536000", "path=/"] {
        assert!(
            attrs.iter().any(|a| a == expected),
            "{expected} in {cookie}"
        );
    }
    assert!(
        !attrs.iter().any(|a| a == "secure"),
        "not Secure over plain HTTP"
    );
    // The client now sends it: no new cookie.
    let res = app
        .post_json(&format!("/api/polls/{id}/votes"), &json!({"option": 1}))
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none(), "cookie kept");
}

async fn one_per_voter_refuses_a_second_vote_from_the_same_cookie(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    assert_eq!(app.vote(id, 0, None).await.0, 200);
    for option in [0, 1] {
        let res = app
            .post_json(
                &format!("/api/polls/{id}/votes"),
                &json!({"option": option}),
            )
            .await;
        assert_error(res, 409, "already_voted").await;
    }
    // A fresh key does not get around the rule.
    let (status, body) = app.vote(id, 1, Some("fresh-key")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already_voted"))
    );
    // Another browser (another cookie) can vote.
    let (status, body) = vote_with(&client(), &app.base, id, 1, None).await;
    assert_eq!(status, 200);
    assert_eq!(counts(&body["results"]), vec![1, 1]);
    assert_eq!(version(&body["results"]), 2);
    // The same cookie sent by another client is the same voter.
    let (status, _) = vote_with_cookie(&app, id, "shared-voter-id-123456").await;
    assert_eq!(status, 200);
    let (status, _) = vote_with_cookie(&app, id, "shared-voter-id-123456").await;
    assert_eq!(status, 409);
    assert_eq!(counts(&app.results(id).await), vec![2, 1]);
}

async fn vote_with_cookie(app: &TestApp, id: &str, voter: &str) -> (u16, serde_json::Value) {
    let res = send(
        "vote with cookie",
        reqwest::Client::new()
            .post(app.url(&format!("/api/polls/{id}/votes")))
            .header("cookie", format!("tally_voter={voter}"))
            .json(&json!({"option": 0})),
    )
    .await;
    (res.status().as_u16(), json_of(res).await)
}

async fn unlimited_polls_count_every_repeat(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    for i in 1..=5 {
        let (status, body) = app.vote(id, 1, None).await;
        assert_eq!(status, 200);
        assert_eq!(version(&body["results"]), i);
    }
    assert_eq!(counts(&app.results(id).await), vec![0, 5]);
}

async fn unknown_option_closed_poll_and_unknown_poll_are_refused(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let path = format!("/api/polls/{id}/votes");
    for option in [2, 3, 4_000_000_000u32] {
        let res = app.post_json(&path, &json!({"option": option})).await;
        assert_error(res, 422, "option_not_found").await;
    }
    let res = app
        .post_json("/api/polls/nope/votes", &json!({"option": 0}))
        .await;
    assert_error(res, 404, "poll_not_found").await;
    assert_eq!(app.close_poll(id, Some(&token)).await.status(), 200);
    let res = app.post_json(&path, &json!({"option": 0})).await;
    assert_error(res, 409, "poll_closed").await;
    let after = app.results(id).await;
    assert_eq!(
        (total(&after), version(&after)),
        (0, 1),
        "only the close counted"
    );
}

async fn retry_with_the_same_idempotency_key_counts_once(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let (s1, first) = app.vote(id, 1, Some("retry-me")).await;
    assert_eq!(s1, 200);
    assert_eq!(app.vote(id, 0, None).await.0, 200);
    // A retry from another connection (the first answer was lost) replays.
    let (s2, replay) = vote_with(&client(), &app.base, id, 1, Some("retry-me")).await;
    assert_eq!(s2, 200);
    assert_eq!(replay, first, "same outcome, same version");
    assert_eq!(version(&replay["results"]), 1);
    let now = app.results(id).await;
    assert_eq!(
        (counts(&now), version(&now)),
        (vec![1, 1], 2),
        "counted once"
    );
}

async fn retry_on_a_one_per_voter_poll_replays_200_not_409(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    let (s1, first) = app.vote(id, 0, Some("k-1")).await;
    assert_eq!(s1, 200);
    for _ in 0..3 {
        let (status, replay) = app.vote(id, 0, Some("k-1")).await;
        assert_eq!(status, 200, "replay, not already_voted: {replay}");
        assert_eq!(replay, first);
    }
    // The key with another option is a reused key (422), not a second vote.
    let (status, reused) = app.vote(id, 1, Some("k-1")).await;
    assert_eq!(
        (status, reused["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{reused}"
    );
    assert_eq!(
        app.vote(id, 0, None).await.0,
        409,
        "a new vote is still refused"
    );
    assert_eq!(total(&app.results(id).await), 1);
    assert_eq!(counts(&app.results(id).await), vec![1, 0]);
}

/// A vote counted just before the close, whose answer was lost: its retry
/// must not say `poll_closed`, or the client would think it never counted.
async fn retry_after_the_poll_closed_replays_the_counted_vote(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = app.create_poll(&["a", "b"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    let (s1, first) = app.vote(id, 1, Some("before-close")).await;
    assert_eq!(s1, 200);
    assert_eq!(app.close_poll(id, Some(&token)).await.status(), 200);
    let (s2, replay) = vote_with(&client(), &app.base, id, 1, Some("before-close")).await;
    assert_eq!(s2, 200, "{replay}");
    assert_eq!(replay, first, "the first outcome, open as it was then");
    // Anything else is refused as closed: a new key, the key with another
    // option, no key.
    let (s, _) = vote_with(&client(), &app.base, id, 0, Some("after-close")).await;
    assert_eq!(s, 409);
    let (s, _) = vote_with(&client(), &app.base, id, 0, Some("before-close")).await;
    assert_eq!(s, 409);
    let res = send(
        "vote on a closed poll",
        client()
            .post(app.url(&format!("/api/polls/{id}/votes")))
            .json(&json!({"option": 0})),
    )
    .await;
    assert_error(res, 409, "poll_closed").await;
    let now = app.results(id).await;
    assert_eq!(
        (counts(&now), version(&now)),
        (vec![0, 1], 2),
        "counted once"
    );
}

async fn idempotency_key_with_another_option_is_422(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    assert_eq!(app.vote(id, 0, Some("same-key")).await.0, 200);
    let res = send(
        "reuse key",
        app.client
            .post(app.url(&format!("/api/polls/{id}/votes")))
            .header("idempotency-key", "same-key")
            .json(&json!({"option": 1})),
    )
    .await;
    assert_error(res, 422, "idempotency_key_reused").await;
    assert_eq!(counts(&app.results(id).await), vec![1, 0]);
}

async fn malformed_idempotency_key_is_400(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let long = "k".repeat(65);
    for key in ["", "has space", "a:b", "{x}", "ключ", long.as_str()] {
        let res = send(
            "bad key",
            app.client
                .post(app.url(&format!("/api/polls/{id}/votes")))
                .header(
                    "idempotency-key",
                    reqwest::header::HeaderValue::from_bytes(key.as_bytes()).unwrap(),
                )
                .json(&json!({"option": 0})),
        )
        .await;
        assert_error(res, 400, "bad_request").await;
    }
    assert_eq!(total(&app.results(id).await), 0, "nothing counted");
    assert_eq!(
        app.vote(id, 0, Some(&"k".repeat(64))).await.0,
        200,
        "64 chars is fine"
    );
}

async fn idempotency_keys_are_per_poll(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (a, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let (b, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    assert_eq!(app.vote(a, 0, Some("shared")).await.0, 200);
    let (status, body) = app.vote(b, 1, Some("shared")).await;
    assert_eq!(status, 200, "the key is new on another poll: {body}");
    assert_eq!(counts(&body["results"]), vec![0, 1]);
    assert_eq!(counts(&app.results(a).await), vec![1, 0]);
}
