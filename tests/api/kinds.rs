//! Question kinds over the JSON API and the WebSocket: word cloud, scale
//! and ranking, each with its bad input, change-your-vote, idempotency,
//! hidden entries and CSV, on memory, one Redis and the cluster.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::richer_polls::{create, vote_body};

both_backends!(
    each_kind_is_created_with_its_fields,
    bad_kind_input_is_422_naming_the_field_and_creates_nothing,
    a_word_cloud_counts_normalised_entries_by_votes_then_first_seen,
    a_scale_counts_values_with_mean_and_median,
    a_ranking_counts_borda_points_and_first_places,
    bad_votes_of_each_kind_are_422_naming_the_field_and_change_nothing,
    allow_change_replaces_a_whole_vote_of_each_kind,
    a_retried_key_counts_a_kind_vote_once,
    hidden_entries_leave_everyone_but_the_host_and_keep_counting,
    a_websocket_vote_takes_each_kinds_shape,
    csv_has_each_kinds_columns,
    a_word_cloud_holds_at_most_5000_distinct_entries,
    the_no_js_form_votes_on_each_kind,
);

fn cloud() -> Value {
    json!({"question": "One word?", "kind": "wordcloud", "options": []})
}

async fn create_body(app: &TestApp, body: Value) -> (Value, String) {
    let res = app.post_json("/api/polls", &body).await;
    assert_eq!(res.status(), 201, "create {body}");
    let v = json_of(res).await;
    (
        v["poll"].clone(),
        v["admin_token"].as_str().unwrap().to_owned(),
    )
}

fn with(mut body: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn entries(results: &Value) -> Vec<(String, u64)> {
    results["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["text"].as_str().unwrap().to_owned(),
                e["votes"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(t, v)| (t.to_string(), *v)).collect()
}

async fn each_kind_is_created_with_its_fields(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (c, _) = create_body(&app, with(cloud(), json!({"max_entries": 3}))).await;
    assert_eq!(c["kind"], "wordcloud");
    assert_eq!(c["max_entries"], 3);
    assert_eq!(c["entries"], json!([]));
    assert_eq!(
        (c["distinct"].as_u64(), c["total"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(c["options"], json!([]));
    let (s, _) = create_body(
        &app,
        json!({"question": "Sure?", "kind": "scale",
            "scale": {"min": 0, "max": 4, "min_label": "no", "max_label": "very"}}),
    )
    .await;
    assert_eq!(
        s["scale"],
        json!({"min": 0, "max": 4, "min_label": "no", "max_label": "very"})
    );
    let ids: Vec<u64> = s["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    assert_eq!(
        (s["mean"].clone(), s["median"].clone()),
        (Value::Null, Value::Null)
    );
    assert!(s.get("mean").is_some(), "mean is null, not absent: {s}");
    let (r, _) = create(&app, json!({"kind": "ranking"})).await;
    assert_eq!(r["kind"], "ranking");
    assert_eq!(r["options"][0]["points"], 0);
    assert_eq!(r["options"][0]["first"], 0);
    let (plain, _) = create(&app, json!({})).await;
    assert_eq!(plain["kind"], "choice");
    assert!(plain.get("entries").is_none() && plain.get("mean").is_none());
    // Read back through the store, not the create reply.
    let got = app.results(c["id"].as_str().unwrap()).await;
    assert_eq!(got["max_entries"], 3);
    let got = app.results(s["id"].as_str().unwrap()).await;
    assert_eq!(got["scale"]["max_label"], "very");
}

async fn bad_kind_input_is_422_naming_the_field_and_creates_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let eleven: Vec<String> = (0..11).map(|i| format!("o{i}")).collect();
    let cases = [
        (with(cloud(), json!({"options": ["a", "b"]})), "options"),
        (with(cloud(), json!({"max_entries": 0})), "max_entries"),
        (with(cloud(), json!({"max_entries": 4})), "max_entries"),
        (
            json!({"question": "q", "options": ["a", "b"], "max_entries": 2}),
            "max_entries",
        ),
        (
            json!({"question": "q", "kind": "scale", "scale": {"min": 2, "max": 5}}),
            "scale.min",
        ),
        (
            json!({"question": "q", "kind": "scale", "scale": {"min": 1, "max": 11}}),
            "scale.max",
        ),
        (
            json!({"question": "q", "kind": "scale", "scale": {"min": 1, "max": 1}}),
            "scale.max",
        ),
        (
            json!({"question": "q", "kind": "scale", "scale": {"min": 1, "max": 5, "max_label": "x".repeat(41)}}),
            "scale.max_label",
        ),
        (
            json!({"question": "q", "kind": "ranking", "options": ["a"]}),
            "options",
        ),
        (
            json!({"question": "q", "kind": "ranking", "options": eleven}),
            "options",
        ),
        (
            json!({"question": "q", "kind": "poll", "options": ["a", "b"]}),
            "kind",
        ),
    ];
    for (body, field) in cases {
        let res = app.post_json("/api/polls", &body).await;
        let status = res.status().as_u16();
        let v = json_of(res).await;
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(v["error"]["code"], "validation_failed");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: {message:?} does not name {field}"
        );
    }
    let listed = json_of(app.get("/api/polls?limit=100").await).await;
    assert!(
        listed["polls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"] == "lpl"),
        "nothing was created: {listed}"
    );
}

async fn a_word_cloud_counts_normalised_entries_by_votes_then_first_seen(backend: Backend) {
    let app = spawn_app(&backend).await;
    let body = with(
        cloud(),
        json!({"vote_limit": "unlimited", "max_entries": 3}),
    );
    let (poll, _) = create_body(&app, body).await;
    let id = poll["id"].as_str().unwrap();
    for entries in [
        json!(["Go", "ＲＵＳＴ!"]),
        json!(["zig"]),
        json!(["rust", "Rust", "¿Zig?"]),
        json!(["北京 大学"]),
    ] {
        let (status, v) = vote_body(&app, id, json!({"entries": entries}), None).await;
        assert_eq!(status, 200, "{v}");
    }
    let r = app.results(id).await;
    assert_eq!(
        entries(&r),
        pairs(&[("rust", 2), ("zig", 2), ("go", 1), ("北京 大学", 1)]),
        "votes first, then first seen: {r}"
    );
    assert_eq!(
        (r["distinct"].as_u64(), r["total"].as_u64()),
        (Some(4), Some(6))
    );
    assert_eq!(r["version"], 4);
}

async fn a_scale_counts_values_with_mean_and_median(backend: Backend) {
    let app = spawn_app(&backend).await;
    let body = json!({"question": "Sure?", "kind": "scale", "vote_limit": "unlimited",
        "scale": {"min": 1, "max": 5}});
    let (poll, _) = create_body(&app, body).await;
    let id = poll["id"].as_str().unwrap();
    for value in [1, 2, 2, 5] {
        let (status, v) = vote_body(&app, id, json!({"value": value}), None).await;
        assert_eq!(status, 200, "{v}");
    }
    let r = app.results(id).await;
    assert_eq!(counts(&r), vec![1, 2, 0, 0, 1]);
    assert_eq!(r["options"][4]["id"], 5, "a scale's option id is its value");
    assert_eq!(r["mean"], 2.5);
    assert_eq!(r["median"], 2.0);
    assert_eq!(r["total"], 4);
}

async fn a_ranking_counts_borda_points_and_first_places(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = create(&app, json!({"kind": "ranking", "vote_limit": "unlimited"})).await;
    let id = poll["id"].as_str().unwrap();
    for ranking in [[2, 0, 1], [2, 1, 0], [0, 2, 1]] {
        let (status, v) = vote_body(&app, id, json!({"ranking": ranking}), None).await;
        assert_eq!(status, 200, "{v}");
    }
    let r = app.results(id).await;
    let rows: Vec<(u64, u64, u64)> = r["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_u64().unwrap(),
                o["points"].as_u64().unwrap(),
                o["first"].as_u64().unwrap(),
            )
        })
        .collect();
    // c: 2+2+1 = 5, a: 1+0+2 = 3, b: 0+1+0 = 1.
    assert_eq!(rows, vec![(2, 5, 2), (0, 3, 1), (1, 1, 0)]);
    assert_eq!(r["total"], 3);
    // Ties keep creation order.
    let (tie, _) = create(
        &app,
        json!({"kind": "ranking", "options": ["x", "y"], "vote_limit": "unlimited"}),
    )
    .await;
    let tid = tie["id"].as_str().unwrap();
    vote_body(&app, tid, json!({"ranking": [1, 0]}), None).await;
    vote_body(&app, tid, json!({"ranking": [0, 1]}), None).await;
    let r = app.results(tid).await;
    assert_eq!(
        (
            r["options"][0]["id"].as_u64(),
            r["options"][1]["id"].as_u64()
        ),
        (Some(0), Some(1))
    );
}

async fn bad_votes_of_each_kind_are_422_naming_the_field_and_change_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (c, _) = create_body(&app, with(cloud(), json!({"max_entries": 2}))).await;
    let (s, _) = create_body(&app, json!({"question": "q", "kind": "scale"})).await;
    let (r, _) = create(&app, json!({"kind": "ranking"})).await;
    let (p, _) = create(&app, json!({})).await;
    let cases = [
        (&c, json!({"entries": []}), "entries"),
        (&c, json!({"entries": ["!!!"]}), "entries"),
        (&c, json!({"entries": ["x".repeat(31)]}), "entries"),
        (&c, json!({"entries": ["a", "b", "c"]}), "entries"),
        (&c, json!({"option": 0}), "wordcloud"),
        (&s, json!({"value": 0}), "value"),
        (&s, json!({"value": 6}), "value"),
        (&s, json!({"ranking": [0, 1]}), "scale"),
        (&r, json!({"ranking": [0, 1]}), "ranking"),
        (&r, json!({"ranking": [0, 1, 1]}), "ranking"),
        (&r, json!({"ranking": [0, 1, 3]}), "ranking"),
        (&r, json!({"ranking": [0, 1, 2, 3]}), "ranking"),
        (&r, json!({"value": 1}), "ranking"),
        (&p, json!({"entries": ["a"]}), "choice"),
        (&p, json!({"value": 1, "option": 0}), "one of"),
    ];
    for (poll, body, field) in cases {
        let id = poll["id"].as_str().unwrap();
        let (status, v) = vote_body(&app, id, body.clone(), None).await;
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(v["error"]["code"], "validation_failed", "{body}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: {message:?} does not name {field}"
        );
    }
    for poll in [&c, &s, &r, &p] {
        let now = app.results(poll["id"].as_str().unwrap()).await;
        assert_eq!(
            (now["version"].as_u64(), now["total"].as_u64()),
            (Some(0), Some(0)),
            "{now}"
        );
    }
}

async fn allow_change_replaces_a_whole_vote_of_each_kind(backend: Backend) {
    let app = spawn_app(&backend).await;
    let change = json!({"allow_change": true});
    let (c, _) = create_body(
        &app,
        with(cloud(), json!({"allow_change": true, "max_entries": 2})),
    )
    .await;
    let (s, _) = create_body(
        &app,
        json!({"question": "q", "kind": "scale", "allow_change": true}),
    )
    .await;
    let (r, _) = create(&app, with(json!({"kind": "ranking"}), change)).await;
    let (cid, sid, rid) = (
        c["id"].as_str().unwrap(),
        s["id"].as_str().unwrap(),
        r["id"].as_str().unwrap(),
    );

    vote_body(&app, cid, json!({"entries": ["red", "blue"]}), None).await;
    let (status, v) = vote_body(&app, cid, json!({"entries": ["blue", "green"]}), None).await;
    assert_eq!(status, 200, "{v}");
    let now = app.results(cid).await;
    assert_eq!(entries(&now), pairs(&[("blue", 1), ("green", 1)]), "{now}");
    assert_eq!(
        (now["distinct"].as_u64(), now["total"].as_u64()),
        (Some(2), Some(2))
    );

    vote_body(&app, sid, json!({"value": 2}), None).await;
    vote_body(&app, sid, json!({"value": 4}), None).await;
    let now = app.results(sid).await;
    assert_eq!(counts(&now), vec![0, 0, 0, 1, 0]);
    assert_eq!(now["mean"], 4.0);

    vote_body(&app, rid, json!({"ranking": [0, 1, 2]}), None).await;
    vote_body(&app, rid, json!({"ranking": [2, 1, 0]}), None).await;
    let now = app.results(rid).await;
    assert_eq!(now["options"][0]["id"], 2);
    assert_eq!(now["options"][0]["points"], 2);
    assert_eq!(now["options"][0]["first"], 1);
    assert_eq!(now["total"], 1);
    assert_eq!(now["version"], 2);
    // The same ranking again changes nothing.
    let (status, _) = vote_body(&app, rid, json!({"ranking": [2, 1, 0]}), None).await;
    assert_eq!(status, 200);
    assert_eq!(app.results(rid).await["version"], 2);
}

async fn a_retried_key_counts_a_kind_vote_once(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (c, _) = create_body(&app, with(cloud(), json!({"vote_limit": "unlimited"}))).await;
    let (r, _) = create(&app, json!({"kind": "ranking", "vote_limit": "unlimited"})).await;
    let (cid, rid) = (c["id"].as_str().unwrap(), r["id"].as_str().unwrap());
    for _ in 0..2 {
        let (status, v) = vote_body(&app, cid, json!({"entries": ["a, b"]}), Some("k-cloud")).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["results"]["version"], 1);
        let (status, v) = vote_body(&app, rid, json!({"ranking": [1, 0, 2]}), Some("k-rank")).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["results"]["version"], 1);
    }
    let (status, v) = vote_body(&app, cid, json!({"entries": ["other"]}), Some("k-cloud")).await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (422, json!("idempotency_key_reused"))
    );
    let (status, _) = vote_body(&app, rid, json!({"ranking": [0, 1, 2]}), Some("k-rank")).await;
    assert_eq!(status, 422);
    assert_eq!(app.results(cid).await["total"], 1);
    assert_eq!(app.results(rid).await["total"], 1);
}

async fn hide(
    app: &TestApp,
    id: &str,
    token: Option<&str>,
    text: &str,
    hidden: bool,
) -> (u16, Value) {
    let url = app.url(&format!("/api/polls/{id}/hidden"));
    let mut req = if hidden {
        app.client.post(url)
    } else {
        app.client.delete(url)
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = send("hide", req.json(&json!({ "text": text }))).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn hidden_entries_leave_everyone_but_the_host_and_keep_counting(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (c, token) = create_body(&app, with(cloud(), json!({"vote_limit": "unlimited"}))).await;
    let id = c["id"].as_str().unwrap();
    for word in ["rude", "rude", "nice", "fine"] {
        vote_body(&app, id, json!({"entries": [word]}), None).await;
    }
    assert_eq!(hide(&app, id, None, "rude", true).await.0, 401);
    assert_eq!(hide(&app, id, Some("wrong"), "rude", true).await.0, 403);
    let (status, host) = hide(&app, id, Some(&token), " RUDE! ", true).await;
    assert_eq!(status, 200, "{host}");
    assert_eq!(
        host["entries"][0],
        json!({"text": "rude", "votes": 2, "hidden": true})
    );
    assert_eq!(host["total"], 4);
    let public = app.results(id).await;
    assert_eq!(
        entries(&public),
        pairs(&[("nice", 1), ("fine", 1)]),
        "{public}"
    );
    assert_eq!(
        (public["distinct"].as_u64(), public["total"].as_u64()),
        (Some(2), Some(2))
    );
    let mut ws = app.ws(id).await;
    // Hidden entries keep counting.
    vote_body(&app, id, json!({"entries": ["rude"]}), None).await;
    let res = send(
        "host read",
        app.client
            .get(app.url(&format!("/api/polls/{id}")))
            .bearer_auth(&token),
    )
    .await;
    let host = json_of(res).await;
    assert_eq!(host["entries"][0]["votes"], 3);
    // A non-host follower's raw frames never carry it.
    let mut seen = 0;
    while seen < 6 {
        // Versions 5 (the hide) and 6 (the vote), as a stranger gets them.
        let frame = within("ws frame", ws.next_json()).await.expect("frame");
        assert!(
            !frame.to_string().contains("rude"),
            "leaked to a follower: {frame}"
        );
        seen = frame["version"].as_u64().unwrap_or(seen);
    }
    let (status, shown) = hide(&app, id, Some(&token), "rude", false).await;
    assert_eq!(status, 200);
    assert_eq!(shown["version"], 7);
    assert_eq!(entries(&app.results(id).await)[0], ("rude".to_owned(), 3));
    let (plain, ptoken) = create(&app, json!({})).await;
    let (status, v) = hide(
        &app,
        plain["id"].as_str().unwrap(),
        Some(&ptoken),
        "a",
        true,
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (422, json!("validation_failed"))
    );
}

async fn a_websocket_vote_takes_each_kinds_shape(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (c, _) = create_body(&app, cloud()).await;
    let (s, _) = create_body(&app, json!({"question": "q", "kind": "scale"})).await;
    let (r, _) = create(&app, json!({"kind": "ranking"})).await;
    for (poll, vote) in [
        (&c, json!({"entries": ["hello"]})),
        (&s, json!({"value": 3})),
        (&r, json!({"ranking": [1, 2, 0]})),
    ] {
        let id = poll["id"].as_str().unwrap();
        let mut ws = app.ws(id).await;
        ws.next_json().await.expect("first frame");
        let mut msg = with(
            json!({"type": "vote", "request_id": format!("ws-{id}")}),
            vote,
        );
        ws.send_json(&msg).await;
        let ack = within("ack", async {
            loop {
                let m = ws.next_json().await.expect("message");
                if m["type"] != "results" {
                    return m;
                }
            }
        })
        .await;
        assert_eq!(ack["type"], "vote_ack", "{ack}");
        assert_eq!(app.results(id).await["total"], 1);
        msg["request_id"] = json!("ws-bad");
        msg["option"] = json!(0);
        ws.send_json(&msg).await;
        let err = within("error", async {
            loop {
                let m = ws.next_json().await.expect("message");
                if m["type"] == "error" {
                    return m;
                }
            }
        })
        .await;
        assert_eq!(err["code"], "validation_failed", "{err}");
    }
}

async fn csv_has_each_kinds_columns(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (c, _) = create_body(&app, with(cloud(), json!({"vote_limit": "unlimited"}))).await;
    let (s, _) = create_body(
        &app,
        json!({"question": "q", "kind": "scale", "scale": {"min": 0, "max": 2}}),
    )
    .await;
    let (r, _) = create(&app, json!({"kind": "ranking"})).await;
    let (cid, sid, rid) = (
        c["id"].as_str().unwrap(),
        s["id"].as_str().unwrap(),
        r["id"].as_str().unwrap(),
    );
    vote_body(&app, cid, json!({"entries": ["a, \"b\" c"]}), None).await;
    vote_body(&app, cid, json!({"entries": ["zed"]}), None).await;
    vote_body(&app, sid, json!({"value": 2}), None).await;
    vote_body(&app, rid, json!({"ranking": [1, 0, 2]}), None).await;
    let csv = |id: &str| {
        let app = &app;
        let path = format!("/api/polls/{id}/results.csv");
        async move { app.get(&path).await.text().await.unwrap() }
    };
    assert_eq!(
        csv(cid).await,
        "text,votes\r\n\"a, \"\"b\"\" c\",1\r\nzed,1\r\n"
    );
    assert_eq!(
        csv(sid).await,
        "option,label,votes\r\n0,0,0\r\n1,1,0\r\n2,2,1\r\n"
    );
    assert_eq!(
        csv(rid).await,
        "option,label,points,first\r\n1,b,2,1\r\n0,a,1,0\r\n2,c,0,0\r\n"
    );
}

async fn a_word_cloud_holds_at_most_5000_distinct_entries(backend: Backend) {
    let app = spawn_app(&backend).await;
    let body = with(
        cloud(),
        json!({"vote_limit": "unlimited", "max_entries": 3}),
    );
    let (poll, _) = create_body(&app, body).await;
    let id = poll["id"].as_str().unwrap().to_owned();
    let votes = (0..5000).collect::<Vec<u32>>();
    let chunks: Vec<Vec<u32>> = votes.chunks(3).map(<[u32]>::to_vec).collect();
    let app = std::sync::Arc::new(app);
    let mut tasks = tokio::task::JoinSet::new();
    for group in chunks.chunks(chunks.len().div_ceil(16)) {
        let (app, id, group) = (app.clone(), id.clone(), group.to_vec());
        tasks.spawn(async move {
            for words in group {
                let entries: Vec<String> = words.iter().map(|w| format!("w{w}")).collect();
                let (status, v) = vote_body(&app, &id, json!({ "entries": entries }), None).await;
                assert_eq!(status, 200, "{v}");
            }
        });
    }
    within_for(
        std::time::Duration::from_secs(120),
        "5,000 entries",
        async {
            while let Some(done) = tasks.join_next().await {
                done.expect("voter task");
            }
        },
    )
    .await;
    let r = app.results(&id).await;
    assert_eq!(r["distinct"], 5000);
    assert_eq!(
        r["entries"].as_array().unwrap().len(),
        50,
        "only the top travels"
    );
    let (status, v) = vote_body(&app, &id, json!({"entries": ["w1", "new"]}), None).await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (409, json!("too_many_entries"))
    );
    let (status, _) = vote_body(&app, &id, json!({"entries": ["w1"]}), None).await;
    assert_eq!(status, 200, "a known entry still counts");
    let r = app.results(&id).await;
    assert_eq!(entries(&r)[0], ("w1".to_owned(), 2));
    assert_eq!(r["total"], 5001);
}

async fn the_no_js_form_votes_on_each_kind(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (c, _) = create_body(&app, with(cloud(), json!({"max_entries": 2}))).await;
    let (s, _) = create_body(&app, json!({"question": "q", "kind": "scale"})).await;
    let (r, _) = create(&app, json!({"kind": "ranking"})).await;
    let (cid, sid, rid) = (
        c["id"].as_str().unwrap(),
        s["id"].as_str().unwrap(),
        r["id"].as_str().unwrap(),
    );
    for (id, form) in [
        (cid, vec![("entry", "Hello!"), ("entry", "")]),
        (sid, vec![("value", "4")]),
        (rid, vec![("rank_0", "3"), ("rank_1", "1"), ("rank_2", "2")]),
    ] {
        let page = app.get(&format!("/polls/{id}")).await;
        assert_eq!(page.status(), 200);
        let req = app
            .client
            .post(app.url(&format!("/polls/{id}/vote")))
            .form(&form);
        let res = send("form vote", req).await;
        assert_eq!(res.status(), 303);
        let back = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(back.contains("notice=voted"), "{back}");
    }
    assert_eq!(entries(&app.results(cid).await), pairs(&[("hello", 1)]));
    assert_eq!(counts(&app.results(sid).await), vec![0, 0, 0, 1, 0]);
    let ranked = app.results(rid).await;
    assert_eq!(
        (
            ranked["options"][0]["id"].as_u64(),
            ranked["options"][0]["first"].as_u64()
        ),
        (Some(1), Some(1))
    );
}
