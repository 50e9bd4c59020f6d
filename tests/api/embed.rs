//! Embedding: the two embed pages may be framed (by `TALLY_EMBED_ORIGINS`),
//! no other page may; the embed page gives a cross-site frame its own
//! partitioned voter cookie; oEmbed answers for poll and event links and
//! refuses the rest as the spec says.

use serde_json::{Value, json};

use crate::helpers::*;

fn csp(res: &reqwest::Response) -> String {
    res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn event_id(app: &TestApp) -> String {
    let body =
        json!({"title": "Embedded talk", "questions": [{"question": "Q?", "options": ["a", "b"]}]});
    let res = app.post_json("/api/events", &body).await;
    assert_eq!(res.status(), 201);
    json_of(res).await["event"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_embed_pages_may_be_framed_and_they_bring_a_partitioned_voter() {
    let app = spawn_app(&Backend::Memory).await;
    let (poll, _) = app.create_poll(&["yes", "no"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    let event = event_id(&app).await;
    for path in [
        format!("/polls/{id}/embed"),
        format!("/events/{event}/embed"),
    ] {
        let res = send("embed", reqwest::Client::new().get(app.url(&path))).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            csp(&res).contains("frame-ancestors *"),
            "{path}: {}",
            csp(&res)
        );
        let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
        for attr in ["SameSite=None", "Secure", "Partitioned", "HttpOnly"] {
            assert!(cookie.contains(attr), "{path}: {cookie}");
        }
        let html = res.text().await.unwrap();
        assert!(!html.contains("site-header"), "{path}: the card alone");
    }
    for path in [
        format!("/polls/{id}"),
        format!("/events/{event}"),
        "/".to_owned(),
    ] {
        let res = app.get(&path).await;
        assert!(
            csp(&res).contains("frame-ancestors 'none'"),
            "{path}: {}",
            csp(&res)
        );
    }
    // The pages announce their oEmbed.
    let html = app.get(&format!("/polls/{id}")).await.text().await.unwrap();
    assert!(html.contains("application/json+oembed"), "discovery link");
    let html = app
        .get(&format!("/events/{event}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("application/json+oembed"), "discovery link");
    // The manage pages offer the iframe to copy.
    let html = app
        .get(&format!("/polls/{id}/manage"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("embed-snippet") && html.contains(&format!("/polls/{id}/embed")));
    let html = app
        .get(&format!("/events/{event}/manage"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("embed-snippet") && html.contains(&format!("/events/{event}/embed")));
    // An embed of a poll that is gone says so.
    let res = app.get("/polls/gone123/embed").await;
    assert_eq!(res.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_origins_set_who_may_frame() {
    let app = spawn_app_with(&Backend::Memory, |c| {
        c.embed_origins = "https://course.example.edu https://*.blog.example".into()
    })
    .await;
    let res = app.get("/polls/lpl/embed").await;
    assert!(
        csp(&res).contains("frame-ancestors https://course.example.edu https://*.blog.example"),
        "{}",
        csp(&res)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oembed_answers_for_poll_and_event_links_and_refuses_the_rest() {
    let app = spawn_app(&Backend::Memory).await;
    let event = event_id(&app).await;
    let oembed =
        |url: String, extra: &str| format!("/oembed?url={}{extra}", url.replace(':', "%3A"));
    let res = app
        .get(&oembed(app.url("/polls/lpl"), "&format=json"))
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = json_of(res).await;
    assert_eq!(
        (v["version"].clone(), v["type"].clone()),
        (json!("1.0"), json!("rich"))
    );
    let html = v["html"].as_str().unwrap();
    assert!(
        html.starts_with("<iframe src=\"") && html.contains("/polls/lpl/embed"),
        "{html}"
    );
    assert_eq!(
        (v["width"].clone(), v["height"].clone()),
        (json!(480), json!(420))
    );
    let v = json_of(
        app.get(&oembed(
            app.url(&format!("/events/{event}")),
            "&maxwidth=300&maxheight=200",
        ))
        .await,
    )
    .await;
    assert!(
        v["html"]
            .as_str()
            .unwrap()
            .contains(&format!("/events/{event}/embed"))
    );
    assert_eq!(
        (v["width"].clone(), v["height"].clone()),
        (json!(300), json!(200)),
        "bounds honoured"
    );
    assert_eq!(v["title"], "Embedded talk");
    // Refusals.
    assert_error(
        app.get(&oembed(app.url("/polls/nope1"), "")).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.get(&oembed("https://elsewhere.example/polls/lpl".into(), ""))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.get(&oembed(app.url("/lab"), "")).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.get(&oembed(app.url("/polls/lpl"), "&format=xml")).await,
        501,
        "not_implemented",
    )
    .await;
    for bad in ["abc", "0", "-5"] {
        let res = app
            .get(&oembed(app.url("/polls/lpl"), &format!("&maxwidth={bad}")))
            .await;
        assert_error(res, 400, "bad_request").await;
    }
}
