//! A poll embedded in another site: a page served from `localhost` frames
//! the poll's embed page from `127.0.0.1` (another site to the browser), a
//! vote inside the frame counts, and the frame's partitioned cookie keeps
//! the voter one voter: after a reload of the host page, a second vote on
//! the one-per-voter poll is refused.

use axum::response::Html;
use axum::routing::get;
use serde_json::Value;

use crate::driver::Driver;
use crate::helpers::{Backend, WAIT, spawn_app, spawn_app_with};

/// Serves `html` at `/` of a free port; its address with `localhost`.
async fn host_page(html: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new().route("/", get(move || async move { Html(html) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://localhost:{port}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_inside_a_cross_site_frame_counts_once_per_voter() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let (poll, _) = app.create_poll(&["Tea", "Coffee"], "one_per_voter").await;
    let id = poll["id"].as_str().expect("id").to_owned();
    let embed = app.url(&format!("/polls/{id}/embed"));
    assert!(embed.starts_with("http://127.0.0.1:"), "{embed}");
    let host = host_page(format!(
        "<!doctype html><title>A course page</title><h1>Week 3</h1>\
         <iframe src=\"{embed}\" width=\"480\" height=\"420\" title=\"poll\"></iframe>"
    ))
    .await;

    let page = driver.page().await;
    page.goto(&host).await;
    page.client.enter_frame(0).await.expect("enter the frame");
    page.wait_for("[data-option='1'] button.vote").await;
    page.click("[data-option='1'] button.vote").await;
    page.wait_until(
        "the vote to show in the frame",
        WAIT,
        "const v = document.querySelector(\"[data-option='1'] [data-votes]\"); \
         return v !== null && /^1\\b/.test(v.textContent);",
        vec![],
    )
    .await;
    let results: Value = reqwest::get(app.url(&format!("/api/polls/{id}")))
        .await
        .expect("results")
        .json()
        .await
        .expect("json");
    assert_eq!(results["total"], 1);

    // The same voter, after a reload of the host page: one vote is all.
    page.client
        .enter_parent_frame()
        .await
        .expect("leave the frame");
    page.goto(&host).await;
    page.client.enter_frame(0).await.expect("enter the frame");
    page.wait_for("[data-option='0'] button.vote").await;
    page.click("[data-option='0'] button.vote").await;
    page.wait_until(
        "the second vote to be refused",
        WAIT,
        "const n = document.querySelector('[data-notices]'); \
         return n !== null && n.textContent.trim().length > 0;",
        vec![],
    )
    .await;
    let results: Value = reqwest::get(app.url(&format!("/api/polls/{id}")))
        .await
        .expect("results")
        .json()
        .await
        .expect("json");
    assert_eq!(results["total"], 1, "the partitioned cookie kept the voter");
    page.close().await;
}

/// With `TALLY_EMBED_ORIGINS` naming other sites only, the browser refuses
/// to show the embed page in this site's frame: no poll inside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_not_in_embed_origins_cannot_frame_the_poll() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app_with(&Backend::Memory, |c| {
        c.embed_origins = "https://course.example.edu".into()
    })
    .await;
    let embed = app.url("/polls/lpl/embed");
    let host = host_page(format!(
        "<!doctype html><title>Another site</title>\
         <iframe src=\"{embed}\" width=\"480\" height=\"420\" title=\"poll\"></iframe>"
    ))
    .await;
    let page = driver.page().await;
    page.goto(&host).await;
    // A frame the browser refused holds its error page, never the poll.
    page.client.enter_frame(0).await.expect("enter the frame");
    let inside = page
        .js(
            "return document.querySelector('[data-poll]') === null \
             && !document.body.textContent.includes('LPL')",
            vec![],
        )
        .await;
    assert_eq!(
        inside,
        Value::Bool(true),
        "the poll must not render in a refused frame"
    );
    page.close().await;
}
