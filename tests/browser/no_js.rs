//! A browser with JavaScript switched off: the forms alone create a poll
//! and vote, with the same rules as the API.

use serde_json::json;

use crate::driver::Driver;
use crate::helpers::{Backend, counts, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_the_forms_create_and_vote() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let page = driver.page_without_js().await;

    page.goto(&app.url("/")).await;
    let script_ran = page
        .js(
            "return !document.documentElement.classList.contains('no-js')",
            vec![],
        )
        .await;
    assert_eq!(script_ran, json!(false), "JavaScript is really off");

    // "+ Add option" is a submit button: the server adds the field.
    page.type_into("#question", "Tea or coffee?").await;
    page.type_into("#option-1", "Tea").await;
    page.type_into("#option-2", "Coffee").await;
    page.click("[data-add-option]").await;
    page.wait_for("#option-4").await;
    let typed = page
        .js(
            "return [document.getElementById('question').value, \
               document.getElementById('option-1').value, document.activeElement.id]",
            vec![],
        )
        .await;
    assert_eq!(
        typed,
        json!(["Tea or coffee?", "Tea", "option-4"]),
        "kept and focused"
    );
    page.type_into("#option-4", "Water").await;
    page.click(".create-form .actions button.primary").await;
    page.wait_for("#created-title").await;

    page.click("a.button.primary").await;
    page.wait_for("#poll").await;
    let id = page
        .js(
            "return document.getElementById('poll').dataset.poll",
            vec![],
        )
        .await;
    let id = id.as_str().unwrap().to_owned();
    let labels: Vec<String> = page.rows().await.into_iter().map(|r| r.label).collect();
    assert_eq!(
        labels,
        ["Tea", "Coffee", "Water"],
        "the blank field was skipped"
    );
    let hidden = page
        .js(
            "return Array.from(document.querySelectorAll('.js-only'), \
               function (e) { return getComputedStyle(e).display; })",
            vec![],
        )
        .await;
    assert!(
        hidden.as_array().unwrap().iter().all(|d| d == "none"),
        "controls that need the script are hidden: {hidden}"
    );
    assert!(
        page.text("main")
            .await
            .contains("JavaScript is off: voting still works")
    );

    page.vote_for(1).await;
    page.wait_text(
        "[data-notices] .notice",
        "Your vote was counted.",
        crate::helpers::WAIT,
    )
    .await;
    page.assert_shows(&[0, 1, 0], 1).await;
    assert_eq!(page.marked().await, [1], "the visitor's choice is marked");
    assert_eq!(counts(&app.results(&id).await), [0, 1, 0]);

    // One vote per person: the second is refused, and nothing changes.
    page.vote_for(0).await;
    page.wait_text(
        "[data-notices] .notice",
        "You have already voted on this poll.",
        crate::helpers::WAIT,
    )
    .await;
    page.assert_shows(&[0, 1, 0], 1).await;
    assert_eq!(counts(&app.results(&id).await), [0, 1, 0]);
    page.close().await;
}
