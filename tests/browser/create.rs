//! Creating a poll through the `/` form: the created page with its link and
//! admin token, then the poll itself.

use serde_json::json;

use crate::driver::Driver;
use crate::helpers::{Backend, WAIT, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_form_creates_a_poll_and_leads_to_it() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let page = driver.page().await;
    page.goto(&app.url("/")).await;

    page.type_into("#question", "Where shall we eat?").await;
    page.type_into("#option-1", "Noodles").await;
    page.type_into("#option-2", "Dumplings").await;
    page.type_into("#option-3", "Pizza").await;
    // "+ Add option" adds a field in place (no round trip) and focuses it.
    page.click("[data-add-option]").await;
    page.wait_for("#option-4").await;
    let focused = page.js("return document.activeElement.id", vec![]).await;
    assert_eq!(focused, "option-4", "the new field has the focus");
    page.type_into("#option-4", "Salad").await;
    // Removing one renumbers the rest.
    page.click("[data-option-row]:nth-child(3) [data-remove-option]")
        .await;
    let placeholders = page
        .js(
            "return Array.from(document.querySelectorAll('[data-option-row] input'), \
               function (e) { return e.id + '=' + e.value; })",
            vec![],
        )
        .await;
    assert_eq!(
        placeholders,
        json!(["option-1=Noodles", "option-2=Dumplings", "option-3=Salad"])
    );
    page.click("input[name=vote_limit][value=unlimited]").await;
    page.click(".create-form .actions button.primary").await;

    page.wait_for("#created-title").await;
    assert_eq!(page.text("#created-title").await, "Where shall we eat?");
    let link = page
        .js("return document.getElementById('poll-url').value", vec![])
        .await;
    let link = link.as_str().expect("the link is shown").to_owned();
    let id = link
        .strip_prefix(&app.url("/polls/"))
        .unwrap_or_else(|| panic!("the link {link} points at this site's poll page"));
    assert!(
        id.len() == 10 && id.chars().all(|c| c.is_ascii_alphanumeric()),
        "a generated id: {id}"
    );
    let token = page
        .js(
            "return document.getElementById('admin-token').value",
            vec![],
        )
        .await;
    assert!(
        token.as_str().is_some_and(|t| t.len() >= 22),
        "the admin token is shown: {token}"
    );

    page.click("a.button.primary").await;
    page.wait_for("#poll").await;
    assert_eq!(
        page.url().await,
        link,
        "\"Open the poll\" opens the shared link"
    );
    assert_eq!(page.text("#poll-question").await, "Where shall we eat?");
    let labels: Vec<String> = page.rows().await.into_iter().map(|r| r.label).collect();
    assert_eq!(labels, ["Noodles", "Dumplings", "Salad"]);
    assert!(page.text(".poll-meta").await.contains("Unlimited votes"));

    page.wait_live().await;
    page.vote_for(2).await;
    page.wait_counts(&[0, 0, 1], WAIT).await;
    page.assert_shows(&[0, 0, 1], 1).await;
    assert_eq!(page.marked().await, [2], "the visitor's choice is marked");
    page.wait_text(
        "[data-notices] .notice.ok",
        "Your vote for “Salad” was counted.",
        WAIT,
    )
    .await;
    let stored = app.results(id).await;
    assert_eq!(stored["vote_limit"], "unlimited");
    assert_eq!(stored["options"][2]["votes"], 1);
    page.close().await;
}
