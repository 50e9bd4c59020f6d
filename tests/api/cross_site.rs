//! State-changing requests from another site are refused (403
//! `cross_site_request`) and change nothing; same-site and non-browser
//! requests go through.

use serde_json::json;

use crate::helpers::*;

both_backends!(
    vote_with_a_foreign_origin_is_refused_and_not_counted,
    cross_site_fetch_metadata_is_refused,
    create_close_and_delete_are_guarded_too,
    same_host_origin_is_allowed,
    requests_without_browser_headers_are_allowed,
    configured_allowed_origin_is_allowed,
    a_method_the_route_lacks_is_405_whatever_the_origin,
);

async fn vote_request(app: &TestApp, id: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/api/polls/{id}/votes")))
        .json(&json!({"option": 0}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send("vote", req).await
}

async fn vote_with_a_foreign_origin_is_refused_and_not_counted(backend: Backend) {
    let app = spawn_app(&backend).await;
    for origin in [
        "http://evil.example",
        "null",
        "https://127.0.0.1.evil.example",
        &format!("http://{}.evil.example", app.addr.ip()),
        &format!("http://127.0.0.1:{}", app.addr.port().wrapping_add(1)),
    ] {
        let res = vote_request(&app, "lpl", &[("origin", origin)]).await;
        assert_error(res, 403, "cross_site_request").await;
    }
    let demo = app.results("lpl").await;
    assert_eq!((total(&demo), version(&demo)), (1100, 0), "nothing counted");
}

async fn cross_site_fetch_metadata_is_refused(backend: Backend) {
    let app = spawn_app(&backend).await;
    let res = vote_request(&app, "lpl", &[("sec-fetch-site", "cross-site")]).await;
    assert_error(res, 403, "cross_site_request").await;
    assert_eq!(total(&app.results("lpl").await), 1100, "nothing counted");
    for site in ["same-origin", "none"] {
        let res = vote_request(&app, "lpl", &[("sec-fetch-site", site)]).await;
        assert_eq!(res.status(), 200, "Sec-Fetch-Site: {site}");
    }
}

async fn create_close_and_delete_are_guarded_too(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, token) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let evil = "http://evil.example";
    let create = app
        .client
        .post(app.url("/api/polls"))
        .header("origin", evil)
        .json(&json!({"question": "q", "options": ["a", "b"]}));
    assert_error(send("create", create).await, 403, "cross_site_request").await;
    let close = app
        .client
        .post(app.url(&format!("/api/polls/{id}/close")))
        .header("origin", evil)
        .bearer_auth(&token);
    assert_error(send("close", close).await, 403, "cross_site_request").await;
    let delete = app
        .client
        .delete(app.url(&format!("/api/polls/{id}")))
        .header("sec-fetch-site", "cross-site")
        .bearer_auth(&token);
    assert_error(send("delete", delete).await, 403, "cross_site_request").await;
    assert_eq!(
        app.results(id).await["closed"],
        false,
        "still open, still there"
    );
    let listed = json_of(app.get("/api/polls").await).await;
    assert_eq!(
        listed["polls"].as_array().unwrap().len(),
        2,
        "no poll created"
    );
    // Reading is not state-changing: a foreign origin may read.
    let res = send(
        "cross-site read",
        app.client
            .get(app.url(&format!("/api/polls/{id}")))
            .header("origin", evil),
    )
    .await;
    assert_eq!(res.status(), 200);
}

async fn same_host_origin_is_allowed(backend: Backend) {
    let app = spawn_app(&backend).await;
    let origin = same_origin(&app);
    let res = vote_request(
        &app,
        "lpl",
        &[("origin", &origin), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(total(&app.results("lpl").await), 1101);
}

async fn requests_without_browser_headers_are_allowed(backend: Backend) {
    let app = spawn_app(&backend).await;
    let res = vote_request(&app, "lpl", &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(total(&app.results("lpl").await), 1101);
}

async fn configured_allowed_origin_is_allowed(backend: Backend) {
    let app = spawn_app_with(&backend, |c| {
        c.allowed_origins = vec!["https://vote.example.com".into()];
    })
    .await;
    let res = vote_request(&app, "lpl", &[("origin", "https://vote.example.com")]).await;
    assert_eq!(res.status(), 200);
    let res = vote_request(&app, "lpl", &[("origin", "https://other.example.com")]).await;
    assert_error(res, 403, "cross_site_request").await;
    assert_eq!(total(&app.results("lpl").await), 1101);
}

/// A method a route does not have cannot change anything: it answers 405
/// even with a foreign or empty `Origin` (the fuzzer's finding: it was 403),
/// while the route's own state-changing method is still refused.
async fn a_method_the_route_lacks_is_405_whatever_the_origin(backend: Backend) {
    let app = spawn_app(&backend).await;
    let cases = [
        (reqwest::Method::PUT, "/api/polls"),
        (reqwest::Method::PUT, "/api/polls/lpl"),
        (reqwest::Method::PATCH, "/api/polls/lpl/close"),
        (reqwest::Method::POST, "/api/polls/lpl/events"),
        (reqwest::Method::DELETE, "/api/polls/lpl/votes"),
        (reqwest::Method::PUT, "/polls/lpl/vote"),
    ];
    for origin in ["", "http://evil.example", "null"] {
        for (method, path) in &cases {
            let req = app
                .client
                .request(method.clone(), app.url(path))
                .header("origin", origin)
                .header("sec-fetch-site", "cross-site");
            let res = send(path, req).await;
            assert_eq!(res.status(), 405, "{method} {path} with Origin {origin:?}");
            if path.starts_with("/api/") {
                assert_error(res, 405, "method_not_allowed").await;
            }
        }
        let res = vote_request(&app, "lpl", &[("origin", origin)]).await;
        assert_error(res, 403, "cross_site_request").await;
    }
    assert_eq!(total(&app.results("lpl").await), 1100, "nothing counted");
}
