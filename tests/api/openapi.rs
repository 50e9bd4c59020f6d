//! `GET /api/openapi.json`: the OpenAPI document is served, and what it
//! promises matches what a live instance answers for a few exchanges
//! (`scripts/schemathesis` checks the rest by fuzzing).

use serde_json::{Value, json};

use crate::helpers::*;

memory_only!(
    the_openapi_document_is_served_and_describes_every_route,
    documented_statuses_match_live_answers,
    safe_methods_with_a_foreign_origin_get_405_not_403,
    long_poll_integers_are_documented_as_the_server_reads_them,
    the_event_stream_is_documented_event_by_event,
);

async fn document(app: &TestApp) -> Value {
    let res = app.get("/api/openapi.json").await;
    assert_eq!(res.status(), 200);
    let ctype = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("application/json"), "{ctype}");
    json_of(res).await
}

async fn the_openapi_document_is_served_and_describes_every_route(backend: Backend) {
    let app = spawn_app(&backend).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/polls",
        "/api/polls/{id}",
        "/api/polls/{id}/votes",
        "/api/polls/{id}/close",
        "/api/polls/{id}/changes",
        "/api/polls/{id}/events",
        "/api/polls/{id}/ws",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/stats",
        "/api/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} undocumented");
    }
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    for code in [
        "poll_not_found",
        "already_voted",
        "store_unavailable",
        "rate_limited",
    ] {
        assert!(codes.as_array().unwrap().contains(&json!(code)), "{code}");
    }
}

/// The documented statuses of an operation.
fn statuses(doc: &Value, path: &str, method: &str) -> Vec<u16> {
    doc["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} undocumented"))
        .keys()
        .map(|k| k.parse().unwrap())
        .collect()
}

async fn documented_statuses_match_live_answers(backend: Backend) {
    let app = spawn_app(&backend).await;
    let doc = document(&app).await;
    let (poll, _) = app.create_poll(&["a", "b"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    let votes = format!("/api/polls/{id}/votes");
    let live: Vec<(&str, &str, u16)> = vec![
        (
            "/api/polls/{id}/votes",
            "post",
            app.post_json(&votes, &json!({"option": 0}))
                .await
                .status()
                .as_u16(),
        ),
        (
            "/api/polls/{id}/votes",
            "post",
            app.post_json(&votes, &json!({"option": 1}))
                .await
                .status()
                .as_u16(),
        ),
        (
            "/api/polls/{id}/votes",
            "post",
            app.post_json(&votes, &json!({"option": 7}))
                .await
                .status()
                .as_u16(),
        ),
        (
            "/api/polls/{id}/votes",
            "post",
            app.post_json(&votes, &json!([0])).await.status().as_u16(),
        ),
        (
            "/api/polls/{id}",
            "get",
            app.get("/api/polls/nope").await.status().as_u16(),
        ),
        (
            "/api/polls",
            "get",
            app.get("/api/polls?limit=0").await.status().as_u16(),
        ),
        (
            "/api/polls/{id}/close",
            "post",
            app.close_poll(id, None).await.status().as_u16(),
        ),
        (
            "/api/polls/{id}",
            "delete",
            app.delete_poll(id, Some("wrong")).await.status().as_u16(),
        ),
        (
            "/api/polls/{id}/ws",
            "get",
            app.get(&format!("/api/polls/{id}/ws"))
                .await
                .status()
                .as_u16(),
        ),
        (
            "/api/polls/{id}/changes",
            "get",
            app.get(&format!("/api/polls/{id}/changes?since=x"))
                .await
                .status()
                .as_u16(),
        ),
    ];
    let seen: Vec<u16> = live.iter().map(|(_, _, s)| *s).collect();
    assert_eq!(seen, [200, 409, 422, 422, 404, 400, 401, 403, 400, 400]);
    for (path, method, status) in live {
        assert!(
            statuses(&doc, path, method).contains(&status),
            "{method} {path} answered {status}, which it does not document"
        );
    }
}

/// Only unsafe methods are refused as cross-site; a safe or unknown one
/// with a foreign `Origin` gets what routing says (405 here).
async fn safe_methods_with_a_foreign_origin_get_405_not_403(backend: Backend) {
    let app = spawn_app(&backend).await;
    for method in ["TRACE", "QUERY"] {
        let req = app
            .client
            .request(method.parse().unwrap(), app.url("/api/polls/lpl/votes"))
            .header("origin", "http://evil.example");
        assert_error(send(method, req).await, 405, "method_not_allowed").await;
    }
    let req = app
        .client
        .post(app.url("/api/polls/lpl/votes"))
        .header("origin", "http://evil.example")
        .json(&json!({"option": 0}));
    assert_error(send("POST", req).await, 403, "cross_site_request").await;
}

/// The fuzzer's finding: `timeout=9223372036854775808` answered 200 while
/// the document said `format: int64` (at most 2^63-1). The document now says
/// what the server reads — any integer from 0 to 2^64-1, `timeout` above 60
/// counting as 60 — and the server agrees at both ends of that range.
async fn long_poll_integers_are_documented_as_the_server_reads_them(backend: Backend) {
    let app = spawn_app(&backend).await;
    let doc = document(&app).await;
    let schema = &doc["components"]["schemas"]["NonNegativeInteger"];
    assert_eq!(
        schema,
        &json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
    );
    let params = doc["paths"]["/api/polls/{id}/changes"]["get"]["parameters"]
        .as_array()
        .unwrap();
    for name in ["since", "timeout"] {
        let p = params.iter().find(|p| p["name"] == name).expect(name);
        assert_eq!(
            p["schema"]["$ref"], "#/components/schemas/NonNegativeInteger",
            "{name}"
        );
    }
    let timeout = params.iter().find(|p| p["name"] == "timeout").unwrap();
    assert!(
        timeout["description"]
            .as_str()
            .unwrap()
            .contains("above 60 counts as 60"),
        "{timeout}"
    );
    // Documented as valid: answered (at once: `since` is absent).
    for t in ["9223372036854775808", &u64::MAX.to_string()] {
        let res = app
            .get(&format!("/api/polls/lpl/changes?timeout={t}"))
            .await;
        assert_eq!(res.status(), 200, "timeout={t}");
    }
    // Past the documented maximum: refused.
    let res = app
        .get("/api/polls/lpl/changes?timeout=18446744073709551616")
        .await;
    assert_error(res, 400, "bad_request").await;
}

/// A string is checked against a schema of `type` `string` with an optional
/// pattern or enum: the subset the event schema uses.
fn string_matches(schema: &Value, value: &str) -> bool {
    if let Some(allowed) = schema["enum"].as_array() {
        return allowed.contains(&json!(value));
    }
    match schema["pattern"].as_str() {
        Some("^[0-9]+$") => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
        Some(other) => panic!("unexpected pattern {other}"),
        None => true,
    }
}

/// The event schema names each event the stream sends — `results` with the
/// version as `id` and JSON results as data, and `deleted` — and every event
/// a live stream sends matches exactly one of its alternatives.
async fn the_event_stream_is_documented_event_by_event(backend: Backend) {
    let app = spawn_app(&backend).await;
    let doc = document(&app).await;
    let content = &doc["paths"]["/api/polls/{id}/events"]["get"]["responses"]["200"]["content"];
    assert_eq!(
        content["text/event-stream"]["schema"]["$ref"],
        "#/components/schemas/SseEvent"
    );
    let alternatives = doc["components"]["schemas"]["SseEvent"]["oneOf"]
        .as_array()
        .expect("oneOf")
        .clone();
    let matching = |ev: &eventsource_stream::Event| -> Vec<Value> {
        alternatives
            .iter()
            .filter(|alt| {
                let props = &alt["properties"];
                let fields = [("event", &ev.event), ("id", &ev.id), ("data", &ev.data)];
                let required = alt["required"].as_array().unwrap();
                fields.iter().all(|(name, value)| {
                    let schema = &props[*name];
                    if schema.is_null() {
                        return true;
                    }
                    if value.is_empty() {
                        return !required.contains(&json!(name));
                    }
                    string_matches(schema, value)
                        && (schema["contentMediaType"] != "application/json"
                            || serde_json::from_str::<Value>(value).is_ok())
                })
            })
            .cloned()
            .collect()
    };
    let (poll, token) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let mut sse = app.sse(id, None).await;
    let first = sse.next_event().await.expect("results");
    app.vote(id, 1, None).await;
    let second = sse.next_event().await.expect("results");
    assert_eq!(app.delete_poll(id, Some(&token)).await.status(), 204);
    let last = sse.next_event().await.expect("deleted");
    for (ev, name) in [
        (&first, "results"),
        (&second, "results"),
        (&last, "deleted"),
    ] {
        assert_eq!(ev.event, name);
        let m = matching(ev);
        assert_eq!(m.len(), 1, "{ev:?} matches {} alternatives", m.len());
        assert_eq!(m[0]["properties"]["event"]["enum"], json!([name]));
    }
}
