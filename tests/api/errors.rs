//! Bad input of every kind gets the contract's JSON error — never a 500,
//! never the framework's plain-text rejection — and every response names
//! the instance that answered.

use serde_json::json;

use crate::helpers::*;

both_backends!(
    unparsable_json_is_400_bad_request,
    missing_or_wrong_content_type_is_415,
    bodies_over_16_kib_are_413_payload_too_large,
    json_of_the_wrong_shape_is_422_validation_failed,
    ids_that_cannot_exist_are_404_poll_not_found,
    percent_encoded_junk_in_ids_is_404_poll_not_found,
    unknown_paths_are_404_and_wrong_methods_405_with_json_bodies,
    every_response_carries_x_tally_instance,
    no_junk_request_gets_a_5xx_or_a_non_json_api_error,
);

const BAD_IDS: &[&str] = &[
    "a:b",
    "%7Bx%7D",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "%2A",
    "a%20b",
    "%C3%A9",
    "a%2Fb",
    "tally:poll:%7Blpl%7D",
    "nope",
];

fn post(app: &TestApp, path: &str) -> reqwest::RequestBuilder {
    app.client.post(app.url(path))
}

async fn unparsable_json_is_400_bad_request(backend: Backend) {
    let app = spawn_app(&backend).await;
    for body in ["{", "{\"question\":", "not json", "{\"option\":0}}", ""] {
        for path in ["/api/polls", "/api/polls/lpl/votes"] {
            let res = send(
                "bad json",
                post(&app, path)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
            assert_error(res, 400, "bad_request").await;
        }
    }
    assert_eq!(total(&app.results("lpl").await), 1100, "nothing counted");
}

async fn missing_or_wrong_content_type_is_415(backend: Backend) {
    let app = spawn_app(&backend).await;
    let body = json!({"question": "q", "options": ["a", "b"]}).to_string();
    let vote = json!({"option": 0}).to_string();
    for ctype in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        for (path, body) in [("/api/polls", &body), ("/api/polls/lpl/votes", &vote)] {
            let mut req = post(&app, path).body(body.clone());
            if let Some(c) = ctype {
                req = req.header("content-type", c);
            }
            let res = send("wrong content type", req).await;
            assert_error(res, 415, "unsupported_media_type").await;
        }
    }
    let res = send(
        "json with charset",
        post(&app, "/api/polls")
            .header("content-type", "application/json; charset=utf-8")
            .body(body),
    )
    .await;
    assert_eq!(res.status(), 201, "a charset parameter is fine");
    assert_eq!(total(&app.results("lpl").await), 1100, "nothing counted");
}

async fn bodies_over_16_kib_are_413_payload_too_large(backend: Backend) {
    let app = spawn_app(&backend).await;
    let big = json!({"question": "q".repeat(17 * 1024), "options": ["a", "b"]});
    assert_error(
        app.post_json("/api/polls", &big).await,
        413,
        "payload_too_large",
    )
    .await;
    let big_vote = json!({"option": 0, "pad": "x".repeat(17 * 1024)});
    let res = app.post_json("/api/polls/lpl/votes", &big_vote).await;
    assert_error(res, 413, "payload_too_large").await;
    // Streamed without a Content-Length: the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(b"{\"option\":0,\"pad\":\"".to_vec()),
        Ok(vec![b'x'; 20 * 1024]),
        Ok(b"\"}".to_vec()),
    ];
    let res = send(
        "chunked big vote",
        post(&app, "/api/polls/lpl/votes")
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            ))),
    )
    .await;
    assert_error(res, 413, "payload_too_large").await;
    assert_eq!(total(&app.results("lpl").await), 1100, "nothing counted");
    // Just under the limit is fine (an unknown field is ignored).
    let ok = json!({"question": "q", "options": ["a", "b"], "pad": "p".repeat(15 * 1024)});
    assert_eq!(app.post_json("/api/polls", &ok).await.status(), 201);
}

async fn json_of_the_wrong_shape_is_422_validation_failed(backend: Backend) {
    let app = spawn_app(&backend).await;
    for body in [
        json!({}),
        json!({"question": "q"}),
        json!({"options": ["a", "b"]}),
        json!({"question": 5, "options": ["a", "b"]}),
        json!({"question": "q", "options": "a,b"}),
        json!({"question": "q", "options": [1, 2]}),
        json!({"question": "q", "options": [null, "b"]}),
        json!([]),
        json!(null),
        json!("q"),
    ] {
        let res = app.post_json("/api/polls", &body).await;
        assert_error(res, 422, "validation_failed").await;
    }
    for body in [
        json!({}),
        json!({"option": "1"}),
        json!({"option": 1.0}),
        json!({"option": 0.5}),
        json!({"option": true}),
        json!({"option": -1}),
        json!({"option": null}),
        json!({"option": 99999999999u64}),
        json!([0]),
        json!(0),
    ] {
        let res = app.post_json("/api/polls/lpl/votes", &body).await;
        assert_error(res, 422, "validation_failed").await;
    }
    assert_eq!(total(&app.results("lpl").await), 1100, "nothing counted");
}

async fn ids_that_cannot_exist_are_404_poll_not_found(backend: Backend) {
    let app = spawn_app(&backend).await;
    for id in BAD_IDS {
        for path in [
            format!("/api/polls/{id}"),
            format!("/api/polls/{id}/changes"),
            format!("/api/polls/{id}/changes?since=0&timeout=0"),
            format!("/api/polls/{id}/events"),
            format!("/api/polls/{id}/ws"),
        ] {
            assert_error(app.get(&path).await, 404, "poll_not_found").await;
        }
        let vote = app
            .post_json(&format!("/api/polls/{id}/votes"), &json!({"option": 0}))
            .await;
        assert_error(vote, 404, "poll_not_found").await;
        assert_error(app.close_poll(id, Some("t")).await, 404, "poll_not_found").await;
        assert_error(app.delete_poll(id, Some("t")).await, 404, "poll_not_found").await;
    }
}

async fn percent_encoded_junk_in_ids_is_404_poll_not_found(backend: Backend) {
    let app = spawn_app(&backend).await;
    // Not UTF-8 once decoded: the framework's own rejection must not leak.
    for id in ["%FF", "%C3", "a%00b", "%ZZ", "%"] {
        let path = format!("/api/polls/{id}");
        let res = send(path.as_str(), app.client.get(app.url(&path))).await;
        assert_error(res, 404, "poll_not_found").await;
        let path = format!("/api/polls/{id}/votes");
        let res = app.post_json(&path, &json!({"option": 0})).await;
        assert_error(res, 404, "poll_not_found").await;
        let res = app.get(&format!("/api/polls/{id}/events")).await;
        assert_error(res, 404, "poll_not_found").await;
    }
}

async fn unknown_paths_are_404_and_wrong_methods_405_with_json_bodies(backend: Backend) {
    let app = spawn_app(&backend).await;
    for path in [
        "/api",
        "/api/",
        "/api/nope",
        "/api/polls/lpl/nope",
        "/api/polls/lpl/votes/1",
        "/api//polls",
    ] {
        assert_error(app.get(path).await, 404, "not_found").await;
    }
    let cases = [
        (reqwest::Method::PUT, "/api/polls/lpl"),
        (reqwest::Method::GET, "/api/polls/lpl/votes"),
        (reqwest::Method::DELETE, "/api/polls"),
        (reqwest::Method::PATCH, "/api/polls/lpl/close"),
        (reqwest::Method::POST, "/api/polls/lpl/events"),
        (reqwest::Method::POST, "/healthz"),
    ];
    for (method, path) in cases {
        let res = send(path, app.client.request(method.clone(), app.url(path))).await;
        assert_error(res, 405, "method_not_allowed").await;
    }
}

async fn every_response_carries_x_tally_instance(backend: Backend) {
    let app = spawn_app_with(&backend, |c| c.instance_id = Some("replica-7".into())).await;
    let (poll, token) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut responses = vec![
        app.get("/api/polls/lpl").await,
        app.get("/api/polls").await,
        app.get("/api/polls/nope").await,
        app.get("/nowhere").await,
        app.get("/healthz").await,
        app.get("/readyz").await,
        app.get("/metrics").await,
        send("405", app.client.put(app.url("/api/polls/lpl"))).await,
        send(
            "304",
            app.client
                .get(app.url("/api/polls/lpl"))
                .header("if-none-match", "\"0\""),
        )
        .await,
        app.get(&format!("/api/polls/{id}/changes?since=0&timeout=0"))
            .await,
    ];
    responses.push(app.delete_poll(id, Some(&token)).await);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses,
        [200, 200, 404, 404, 200, 200, 200, 405, 304, 204, 204]
    );
    for res in &responses {
        assert_eq!(
            res.headers()
                .get("x-tally-instance")
                .map(|v| v.to_str().unwrap()),
            Some("replica-7"),
            "{} {}",
            res.status(),
            res.url()
        );
    }
    let request = WsClient::request(&app.ws_url("/api/polls/lpl/ws"), &[]);
    let (_ws, handshake) = WsClient::connect_request(request).await.expect("handshake");
    assert_eq!(handshake.status(), 101);
    assert_eq!(
        handshake.headers()["x-tally-instance"],
        "replica-7",
        "on the 101"
    );
}

async fn no_junk_request_gets_a_5xx_or_a_non_json_api_error(backend: Backend) {
    use reqwest::Method;
    use reqwest::header::HeaderValue;
    let app = spawn_app(&backend).await;
    let paths = [
        "/api/polls",
        "/api/polls/lpl",
        "/api/polls/lpl/votes",
        "/api/polls/lpl/close",
        "/api/polls/lpl/changes?since=%FF&timeout=%00",
        "/api/polls/lpl/events",
        "/api/polls/%FF%FE/votes",
        "/api/polls?limit=%FF",
    ];
    let bodies: [&[u8]; 5] = [
        b"",
        b"\xff\xfe",
        b"{\"option\":0",
        b"[[[[[[[[[[",
        b"{\"option\":1e999}",
    ];
    let headers: [(&str, &[u8]); 5] = [
        ("cookie", b"tally_voter=\xff; tally_voter=a b"),
        ("authorization", b"Bearer \xff\xfe"),
        ("origin", b"\xff"),
        ("idempotency-key", b"\xe2\x98\x83"),
        ("last-event-id", b"\xff"),
    ];
    for method in [Method::GET, Method::POST, Method::DELETE, Method::PUT] {
        for path in paths {
            for body in bodies {
                for (name, value) in headers {
                    let req = app
                        .client
                        .request(method.clone(), app.url(path))
                        .header("content-type", "application/json")
                        .header(name, HeaderValue::from_bytes(value).unwrap())
                        .body(body.to_vec());
                    let res = send(path, req).await;
                    let status = res.status().as_u16();
                    assert!(status < 500, "{method} {path} {name}: {status}");
                    if status >= 400 {
                        let text = within("body", res.text()).await.unwrap();
                        let v: serde_json::Value =
                            serde_json::from_str(&text).unwrap_or_else(|_| {
                                panic!("{method} {path} {name}: {status} {text:?}")
                            });
                        assert!(v["error"]["code"].is_string(), "{text}");
                    }
                }
            }
        }
    }
    // Whatever got through, the poll is intact and counts as it should.
    let demo = app.results("lpl").await;
    assert_eq!(
        total(&demo) - 1100,
        version(&demo),
        "each version is one vote"
    );
}
