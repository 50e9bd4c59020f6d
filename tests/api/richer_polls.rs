//! Richer polls over the JSON API: multi-choice votes, change-your-vote,
//! listing, reopen and the CSV export, with bad input for every new field.

use serde_json::{Value, json};

use crate::helpers::*;

both_backends!(
    create_carries_every_new_field_back,
    bad_input_for_every_new_field_is_422_naming_it_and_creates_nothing,
    a_multi_choice_vote_adds_one_to_each_option_and_one_version,
    bad_multi_choice_votes_are_refused_and_change_nothing,
    a_multi_choice_key_replays_its_choice_in_any_order_and_refuses_another,
    a_websocket_vote_may_choose_several_options,
    a_changed_vote_moves_the_count_atomically,
    the_same_choice_again_changes_nothing,
    without_allow_change_a_second_vote_is_409,
    only_listed_polls_are_listed,
    reopen_opens_a_closed_poll_for_the_admin_only,
    results_csv_has_one_quoted_row_per_option,
    results_csv_refuses_a_wrong_admin_token,
    the_poll_page_shows_a_changeable_choice_wherever_it_is_opened,
);

/// Creates a poll from a full body; returns the results and admin token.
pub async fn create(app: &TestApp, extra: Value) -> (Value, String) {
    let mut body = json!({"question": "Which?", "options": ["a", "b", "c"]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let res = app.post_json("/api/polls", &body).await;
    assert_eq!(res.status(), 201, "create {body}");
    let v = json_of(res).await;
    (
        v["poll"].clone(),
        v["admin_token"].as_str().unwrap().to_owned(),
    )
}

/// Votes `body` with `app`'s client (its cookie); status and body.
pub async fn vote_body(app: &TestApp, id: &str, body: Value, key: Option<&str>) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url(&format!("/api/polls/{id}/votes")))
        .json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let res = send("vote", req).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// An RFC 3339 instant `secs` from now (negative: in the past), to the
/// millisecond (what the store keeps).
pub fn rfc3339_in(secs: i64) -> String {
    rfc3339_in_ms(secs * 1000)
}

/// An RFC 3339 instant `ms` milliseconds from now.
pub fn rfc3339_in_ms(ms: i64) -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap();
    let at = now + time::Duration::milliseconds(ms);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn create_carries_every_new_field_back(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (plain, _) = create(&app, json!({})).await;
    assert_eq!(plain["max_choices"], 1);
    assert_eq!(plain["allow_change"], false);
    assert_eq!(plain["results"], "always");
    assert_eq!(plain["closes_at"], Value::Null);
    assert_eq!(plain["listed"], false);
    assert_eq!(plain["results_hidden"], false);
    let at = rfc3339_in(3600);
    let (rich, _) = create(
        &app,
        json!({"max_choices": 2, "allow_change": true, "results": "after_vote",
               "closes_at": at, "listed": true}),
    )
    .await;
    assert_eq!(rich["max_choices"], 2);
    assert_eq!(rich["allow_change"], true);
    assert_eq!(rich["results"], "after_vote");
    assert_eq!(rich["listed"], true);
    let back = rich["closes_at"].as_str().unwrap();
    let parse = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert_eq!(
        parse(back),
        parse(&at),
        "closes_at comes back as the same instant"
    );
    // The creator holds the token: the create answer shows counts.
    assert_eq!(rich["total"], 0);
    // And a read of it says the same, on any instance.
    let read = app
        .client
        .get(app.url(&format!("/api/polls/{}", rich["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    let read = json_of(read).await;
    for field in [
        "max_choices",
        "allow_change",
        "results",
        "closes_at",
        "listed",
    ] {
        assert_eq!(read[field], rich[field], "{field}");
    }
}

async fn bad_input_for_every_new_field_is_422_naming_it_and_creates_nothing(backend: Backend) {
    let app = spawn_app_with(&backend, |c| c.demo = false).await;
    let base = json!({"question": "Bad?", "options": ["a", "b", "c"], "listed": true});
    let cases = [
        (json!({"max_choices": 0}), "max_choices"),
        (json!({"max_choices": 4}), "max_choices"),
        (json!({"max_choices": -1}), "max_choices"),
        (json!({"max_choices": "2"}), "max_choices"),
        (
            json!({"allow_change": true, "vote_limit": "unlimited"}),
            "allow_change",
        ),
        (json!({"allow_change": "yes"}), "allow_change"),
        (json!({"results": "sometimes"}), "results"),
        (json!({"closes_at": "tomorrow"}), "closes_at"),
        (json!({"closes_at": "2020-01-01T00:00:00Z"}), "closes_at"),
        (json!({"closes_at": rfc3339_in(-5)}), "closes_at"),
        (
            json!({"closes_at": rfc3339_in(400 * 24 * 3600)}),
            "closes_at",
        ),
        (json!({"closes_at": 1_900_000_000}), "closes_at"),
        (json!({"listed": "yes"}), "listed"),
    ];
    for (extra, field) in cases {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let res = app.post_json("/api/polls", &body).await;
        assert_eq!(res.status(), 422, "{body}");
        let text = res.text().await.unwrap();
        assert_error_body(&text, "validation_failed");
        assert!(
            text.contains(field),
            "{body}: message should name {field}: {text}"
        );
    }
    let list = json_of(app.get("/api/polls").await).await;
    assert_eq!(list["polls"], json!([]), "no refused body made a poll");
}

async fn a_multi_choice_vote_adds_one_to_each_option_and_one_version(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = create(&app, json!({"max_choices": 2, "vote_limit": "unlimited"})).await;
    let id = poll["id"].as_str().unwrap();
    let (status, body) = vote_body(&app, id, json!({"options": [2, 0]}), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(counts(&body["results"]), vec![1, 0, 1]);
    assert_eq!(total(&body["results"]), 2);
    assert_eq!(version(&body["results"]), 1);
    // `{"option":N}` stays one choice.
    let (status, body) = vote_body(&app, id, json!({"option": 1}), None).await;
    assert_eq!(status, 200);
    assert_eq!(counts(&body["results"]), vec![1, 1, 1]);
    assert_eq!(version(&body["results"]), 2);
    assert_eq!(app.results(id).await, body["results"]);
}

async fn bad_multi_choice_votes_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = create(&app, json!({"max_choices": 2, "vote_limit": "unlimited"})).await;
    let id = poll["id"].as_str().unwrap();
    for (body, status, code, names) in [
        (
            json!({"options": [1, 1]}),
            422,
            "validation_failed",
            "options",
        ),
        (
            json!({"options": [0, 1, 2]}),
            422,
            "validation_failed",
            "options",
        ),
        (json!({"options": []}), 422, "validation_failed", "options"),
        (json!({"options": [0, 5]}), 422, "option_not_found", ""),
        (json!({"options": [0, -1]}), 422, "validation_failed", ""),
        (json!({"options": "0"}), 422, "validation_failed", ""),
        (
            json!({"option": 0, "options": [1]}),
            422,
            "validation_failed",
            "options",
        ),
        (json!({}), 422, "validation_failed", "option"),
    ] {
        let res = send(
            "bad vote",
            app.client
                .post(app.url(&format!("/api/polls/{id}/votes")))
                .json(&body),
        )
        .await;
        assert_eq!(res.status().as_u16(), status, "{body}");
        let text = res.text().await.unwrap();
        assert_error_body(&text, code);
        assert!(text.contains(names), "{body}: {text}");
    }
    let results = app.results(id).await;
    assert_eq!(version(&results), 0, "nothing changed");
    assert_eq!(counts(&results), vec![0, 0, 0]);
}

async fn a_multi_choice_key_replays_its_choice_in_any_order_and_refuses_another(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = create(&app, json!({"max_choices": 3, "vote_limit": "unlimited"})).await;
    let id = poll["id"].as_str().unwrap();
    let (s1, first) = vote_body(&app, id, json!({"options": [0, 2]}), Some("k1")).await;
    assert_eq!(s1, 200);
    vote_body(&app, id, json!({"option": 1}), None).await;
    let (s2, again) = vote_body(&app, id, json!({"options": [2, 0]}), Some("k1")).await;
    assert_eq!(s2, 200);
    assert_eq!(again, first, "the retry replays the first outcome");
    let (s3, body) = vote_body(&app, id, json!({"options": [0, 1]}), Some("k1")).await;
    assert_eq!(s3, 422);
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    let results = app.results(id).await;
    assert_eq!(counts(&results), vec![1, 1, 1]);
    assert_eq!(version(&results), 2);
}

async fn a_websocket_vote_may_choose_several_options(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = create(&app, json!({"max_choices": 2, "vote_limit": "unlimited"})).await;
    let id = poll["id"].as_str().unwrap();
    let mut ws = app.ws(id).await;
    assert_eq!(ws.next_json().await.unwrap()["version"], 0);
    ws.send_json(&json!({"type": "vote", "options": [0, 1], "request_id": "w1"}))
        .await;
    ws.send_json(&json!({"type": "vote", "options": [0, 1, 2], "request_id": "w2"}))
        .await;
    let (mut ack, mut refused) = (None, None);
    while ack.is_none() || refused.is_none() {
        let msg = ws.next_json().await.expect("a message");
        match msg["type"].as_str() {
            Some("vote_ack") => ack = Some(msg),
            Some("error") => refused = Some(msg),
            _ => {}
        }
    }
    assert_eq!(ack.unwrap()["version"], 1);
    let refused = refused.unwrap();
    assert_eq!(refused["request_id"], "w2");
    assert_eq!(refused["code"], "validation_failed");
    assert_eq!(counts(&app.results(id).await), vec![1, 1, 0]);
}

async fn a_changed_vote_moves_the_count_atomically(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = create(&app, json!({"allow_change": true, "max_choices": 2})).await;
    let id = poll["id"].as_str().unwrap();
    let other = client();
    let (s, _) = vote_with(&other, &app.base, id, 2, None).await;
    assert_eq!(s, 200);
    let (s, body) = vote_body(&app, id, json!({"option": 0}), None).await;
    assert_eq!(s, 200);
    assert_eq!(counts(&body["results"]), vec![1, 0, 1]);
    let (s, body) = vote_body(&app, id, json!({"options": [1, 2]}), None).await;
    assert_eq!(s, 200);
    assert_eq!(counts(&body["results"]), vec![0, 1, 2], "old -1, new +1");
    assert_eq!(version(&body["results"]), 3, "one version for the change");
    let (s, body) = vote_body(&app, id, json!({"option": 0}), None).await;
    assert_eq!(s, 200);
    assert_eq!(counts(&body["results"]), vec![1, 0, 1]);
    assert_eq!(version(&body["results"]), 4);
    assert_eq!(app.results(id).await, body["results"]);
}

async fn the_same_choice_again_changes_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = create(&app, json!({"allow_change": true, "max_choices": 2})).await;
    let id = poll["id"].as_str().unwrap();
    let (_, first) = vote_body(&app, id, json!({"options": [0, 1]}), None).await;
    let (s, again) = vote_body(&app, id, json!({"options": [1, 0]}), None).await;
    assert_eq!(s, 200);
    assert_eq!(version(&again["results"]), 1, "nothing changed");
    assert_eq!(again["results"], first["results"]);
    assert_eq!(counts(&app.results(id).await), vec![1, 1, 0]);
    // A key keeps even that answer: replayed, and never a different vote.
    let (s, keyed) = vote_body(&app, id, json!({"options": [0, 1]}), Some("again")).await;
    assert_eq!((s, version(&keyed["results"])), (200, 1));
    let (s, replay) = vote_body(&app, id, json!({"options": [1, 0]}), Some("again")).await;
    assert_eq!((s, &replay), (200, &keyed));
    let (s, refused) = vote_body(&app, id, json!({"option": 2}), Some("again")).await;
    assert_eq!(s, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    assert_eq!(counts(&app.results(id).await), vec![1, 1, 0]);
}

async fn without_allow_change_a_second_vote_is_409(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = create(&app, json!({"max_choices": 2})).await;
    let id = poll["id"].as_str().unwrap();
    assert_eq!(
        vote_body(&app, id, json!({"options": [0, 1]}), None)
            .await
            .0,
        200
    );
    let (s, body) = vote_body(&app, id, json!({"option": 2}), None).await;
    assert_eq!(s, 409);
    assert_eq!(body["error"]["code"], "already_voted");
    assert_eq!(counts(&app.results(id).await), vec![1, 1, 0]);
}

async fn only_listed_polls_are_listed(backend: Backend) {
    let app = spawn_app_with(&backend, |c| c.demo = false).await;
    let (listed, _) = create(&app, json!({"listed": true})).await;
    let (private, _) = create(&app, json!({})).await;
    let list = json_of(app.get("/api/polls").await).await;
    let ids: Vec<&str> = list["polls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![listed["id"].as_str().unwrap()]);
    assert!(!ids.contains(&private["id"].as_str().unwrap()));
    // The private poll still works by its link.
    app.results(private["id"].as_str().unwrap()).await;
}

async fn reopen_opens_a_closed_poll_for_the_admin_only(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = create(&app, json!({"vote_limit": "unlimited"})).await;
    let id = poll["id"].as_str().unwrap();
    let reopen = |token: Option<&str>| {
        let mut req = app.client.post(app.url(&format!("/api/polls/{id}/reopen")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        send("reopen", req)
    };
    let open = json_of(reopen(Some(&token)).await).await;
    assert_eq!(open["closed"], false);
    assert_eq!(version(&open), 0, "reopening an open poll changes nothing");
    app.vote(id, 0, None).await;
    assert_eq!(app.close_poll(id, Some(&token)).await.status(), 200);
    assert_error(reopen(None).await, 401, "unauthorized").await;
    assert_error(reopen(Some("nope")).await, 403, "forbidden").await;
    assert_eq!(
        app.results(id).await["closed"],
        true,
        "refusals changed nothing"
    );
    let res = reopen(Some(&token)).await;
    assert_eq!(res.status(), 200);
    let open = json_of(res).await;
    assert_eq!(open["closed"], false);
    assert_eq!(version(&open), 3, "vote, close, reopen");
    assert_eq!(app.vote(id, 1, None).await.0, 200, "votes count again");
    let missing = send(
        "reopen unknown",
        app.client
            .post(app.url("/api/polls/nosuchpoll/reopen"))
            .bearer_auth(&token),
    )
    .await;
    assert_error(missing, 404, "poll_not_found").await;
}

async fn results_csv_has_one_quoted_row_per_option(backend: Backend) {
    let app = spawn_app(&backend).await;
    let body = json!({"question": "CSV?", "options": ["plain", "a, b", "say \"hi\""],
                      "vote_limit": "unlimited"});
    let res = app.post_json("/api/polls", &body).await;
    let id = json_of(res).await["poll"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.vote(&id, 1, None).await;
    app.vote(&id, 1, None).await;
    app.vote(&id, 2, None).await;
    let res = app.get(&format!("/api/polls/{id}/results.csv")).await;
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/csv"), "{ct}");
    assert_eq!(
        res.text().await.unwrap(),
        "option,label,votes\r\n0,plain,0\r\n1,\"a, b\",2\r\n2,\"say \"\"hi\"\"\",1\r\n"
    );
    assert_error(
        app.get("/api/polls/nosuchpoll/results.csv").await,
        404,
        "poll_not_found",
    )
    .await;
}

async fn results_csv_refuses_a_wrong_admin_token(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = create(&app, json!({"results": "after_close"})).await;
    let id = poll["id"].as_str().unwrap();
    app.vote(id, 2, None).await;
    let csv = |auth: Option<String>| {
        let mut req = app
            .client
            .get(app.url(&format!("/api/polls/{id}/results.csv")));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        send("results.csv", req)
    };
    assert_error(csv(Some("Bearer wrong".into())).await, 403, "forbidden").await;
    let host = csv(Some(format!("Bearer {token}"))).await;
    assert_eq!(host.status(), 200);
    assert_eq!(
        host.text().await.unwrap(),
        "option,label,votes\r\n0,a,0\r\n1,b,0\r\n2,c,1\r\n"
    );
    let anonymous = csv(None).await;
    assert_eq!(anonymous.status(), 200);
    assert_eq!(
        anonymous.text().await.unwrap(),
        "option,label,votes\r\n0,a,\r\n1,b,\r\n2,c,\r\n",
        "no token: the counts stay hidden until close"
    );
}

/// The rows of a poll page marked as the visitor's choice.
async fn chosen_on_page(client: &reqwest::Client, app: &TestApp, id: &str) -> Vec<u32> {
    let page = send("poll page", client.get(app.url(&format!("/polls/{id}"))))
        .await
        .text()
        .await
        .unwrap();
    (0..3)
        .filter(|i| page.contains(&format!("class=\"result chosen\" data-option=\"{i}\"")))
        .collect()
}

async fn the_poll_page_shows_a_changeable_choice_wherever_it_is_opened(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = create(&app, json!({"allow_change": true, "max_choices": 2})).await;
    let id = poll["id"].as_str().unwrap();
    assert_eq!(
        chosen_on_page(&app.client, &app, id).await,
        Vec::<u32>::new()
    );
    let (s, _) = vote_body(&app, id, json!({"options": [0, 2]}), None).await;
    assert_eq!(s, 200);
    // No `choice=` in the URL: the page reads it from the store.
    assert_eq!(chosen_on_page(&app.client, &app, id).await, vec![0, 2]);
    let (s, _) = vote_body(&app, id, json!({"option": 1}), None).await;
    assert_eq!(s, 200);
    assert_eq!(chosen_on_page(&app.client, &app, id).await, vec![1]);
    // Another instance of the same deployment knows it too; a stranger
    // sees no choice.
    let other = spawn_app(&backend).await;
    if !matches!(backend, Backend::Memory) {
        assert_eq!(chosen_on_page(&app.client, &other, id).await, vec![1]);
    }
    assert_eq!(chosen_on_page(&client(), &app, id).await, Vec::<u32>::new());
}
