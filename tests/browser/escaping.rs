//! A poll whose question and options are HTML and script: every page shows
//! them as text, and nothing of them runs — neither from the server's
//! templates nor from the script's live updates.

use serde_json::{Value, json};

use crate::driver::{Driver, Page};
use crate::helpers::{Backend, WAIT, spawn_app};

const QUESTION: &str = r#"<img src=x onerror="window.__xss='question'">Best <b>pick</b>? </h1><script>window.__xss='h1'</script>"#;
const OPTIONS: [&str; 3] = [
    r#"<script>window.__xss='option'</script>"#,
    r#"<img src=x onerror=window.__xss=1>"#,
    r#""quoted" & 'single' <!-- comment"#,
];

/// Asserts no payload ran and none became an element: no flag set, and no
/// image, script or bold element anywhere in the page's main content.
async fn assert_inert(page: &Page, where_: &str) {
    let state = page
        .js(
            "return { flag: window.__xss === undefined ? null : String(window.__xss), \
               elements: document.querySelectorAll('main img, main script, main b').length }",
            vec![],
        )
        .await;
    assert_eq!(
        state,
        json!({"flag": null, "elements": 0}),
        "{where_}: payload is inert"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_and_script_in_polls_show_as_text_and_never_run() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let created = app
        .post_json(
            "/api/polls",
            &json!({"question": QUESTION, "options": OPTIONS, "vote_limit": "unlimited", "listed": true}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.expect("json");
    let id = body["poll"]["id"].as_str().unwrap().to_owned();
    let page = driver.page().await;

    // The poll page, rendered by the server.
    page.goto(&app.url(&format!("/polls/{id}"))).await;
    page.wait_live().await;
    assert_inert(&page, "poll page").await;
    assert_eq!(page.text("#poll-question").await, QUESTION.trim());
    let labels: Vec<String> = page.rows().await.into_iter().map(|r| r.label).collect();
    assert_eq!(labels, OPTIONS);
    let title = page.js("return document.title", vec![]).await;
    assert_eq!(title, format!("{} · tally", QUESTION.trim()));

    // Live updates and notices, written by the script.
    page.vote_for(0).await;
    page.wait_counts(&[1, 0, 0], WAIT).await;
    page.wait_text(
        "[data-notices] .notice.ok",
        &format!("Your vote for “{}” was counted.", OPTIONS[0]),
        WAIT,
    )
    .await;
    page.assert_shows(&[1, 0, 0], 1).await;
    assert_inert(&page, "poll page after a live update").await;

    // The list of recent polls on the home page.
    page.goto(&app.url("/")).await;
    let listed = page
        .js(
            "return Array.from(document.querySelectorAll('.poll-link-question'), \
               function (e) { return e.textContent; })",
            vec![],
        )
        .await;
    assert!(
        listed.as_array().unwrap().contains(&json!(QUESTION.trim())),
        "the home page lists the question as text: {listed}"
    );
    assert_inert(&page, "home page").await;

    // The same payload through the create form, and the page it leads to.
    page.type_into("#question", QUESTION).await;
    for (i, option) in OPTIONS.iter().enumerate() {
        page.type_into(&format!("#option-{}", i + 1), option).await;
    }
    page.click(".create-form .actions button.primary").await;
    page.wait_for("#created-title").await;
    assert_eq!(page.text("#created-title").await, QUESTION.trim());
    assert_inert(&page, "created page").await;
    page.close().await;
}
