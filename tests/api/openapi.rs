//! `GET /api/openapi.json`: the OpenAPI document is served, and what it
//! promises matches what a live instance answers for a few exchanges
//! (`scripts/schemathesis` checks the rest by fuzzing).

use serde_json::{Value, json};

use crate::helpers::*;

memory_only!(
    the_openapi_document_is_served_and_describes_every_route,
    documented_statuses_match_live_answers,
    safe_methods_with_a_foreign_origin_get_405_not_403,
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
