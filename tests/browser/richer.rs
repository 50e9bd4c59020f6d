//! Richer polls on the pages: the create form's settings, several choices
//! ticked up to `max_choices`, the voter's choice shown after the vote and
//! on reload, changed when allowed, and counts hidden until the close.

use serde_json::json;

use crate::driver::{Driver, Page};
use crate::helpers::{Backend, WAIT, spawn_app};

async fn tick(page: &Page, option: u32) {
    page.click(&format!("#poll [data-option=\"{option}\"] [data-pick]"))
        .await;
}

async fn ticked(page: &Page) -> serde_json::Value {
    page.js(
        "return Array.from(document.querySelectorAll('#poll [data-pick]'), \
           function (b) { return [b.checked, b.disabled]; })",
        vec![],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_choice_poll_hides_counts_until_close_and_lets_voters_change() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let page = driver.page().await;
    page.goto(&app.url("/")).await;
    page.type_into("#question", "Which days?").await;
    page.type_into("#option-1", "Mon").await;
    page.type_into("#option-2", "Tue").await;
    page.type_into("#option-3", "Wed").await;
    page.click(".more-settings summary").await;
    page.js("document.getElementById('max_choices').value = ''", vec![])
        .await;
    page.type_into("#max_choices", "2").await;
    page.click("input[name=allow_change]").await;
    page.click("input[name=results][value=after_close]").await;
    page.click("input[name=listed]").await;
    page.click(".create-form .actions button.primary").await;
    page.wait_for("#created-title").await;
    let token = page
        .js(
            "return document.getElementById('admin-token').value",
            vec![],
        )
        .await;
    let token = token.as_str().unwrap().to_owned();
    page.click("a.button.primary").await;
    page.wait_for("#poll").await;
    page.wait_live().await;
    let id = page
        .js(
            "return document.getElementById('poll').dataset.poll",
            vec![],
        )
        .await;
    let id = id.as_str().unwrap().to_owned();
    let settings = app.results(&id).await;
    assert_eq!(settings["max_choices"], 2);
    assert_eq!(settings["allow_change"], true);
    assert_eq!(settings["results"], "after_close");
    assert_eq!(settings["listed"], true);
    assert_eq!(settings["total"], json!(null), "hidden from the API too");

    assert_eq!(
        page.text("[data-hidden-note]").await,
        "Results are hidden until the poll closes."
    );
    assert_eq!(page.text("[data-total]").await, "hidden");
    assert_eq!(page.text("[data-choose-up-to]").await, "Choose up to 2");

    // Two ticks use up the choices: the third box cannot be ticked.
    tick(&page, 0).await;
    tick(&page, 1).await;
    assert_eq!(
        ticked(&page).await,
        json!([[true, false], [true, false], [false, true]])
    );
    page.click("[data-send-vote]").await;
    page.wait_text(
        "[data-notices] .notice.ok",
        "Your vote for “Mon, Tue” was counted.",
        WAIT,
    )
    .await;
    assert_eq!(page.marked().await, [0, 1]);
    assert_eq!(page.text("[data-send-vote]").await, "Change my vote");
    assert_eq!(page.text("[data-total]").await, "hidden", "still hidden");

    // On reload the page still shows what this visitor chose.
    page.goto(&app.url(&format!("/polls/{id}"))).await;
    page.wait_live().await;
    assert_eq!(page.marked().await, [0, 1]);
    assert_eq!(page.text("[data-send-vote]").await, "Change my vote");

    // Changing the vote replaces it.
    tick(&page, 0).await;
    tick(&page, 1).await;
    tick(&page, 2).await;
    page.click("[data-send-vote]").await;
    page.wait_text(
        "[data-notices] .notice.ok",
        "Your vote for “Wed” was counted.",
        WAIT,
    )
    .await;
    assert_eq!(page.marked().await, [2]);

    // The host closes it: the counts arrive live, the note goes.
    let res = app.close_poll(&id, Some(&token)).await;
    assert_eq!(res.status(), 200);
    page.wait_counts(&[0, 0, 1], WAIT).await;
    page.wait_text("[data-total]", "1 vote", WAIT).await;
    let note_hidden = page
        .js(
            "return document.querySelector('[data-hidden-note]').hidden",
            vec![],
        )
        .await;
    assert_eq!(note_hidden, json!(true));
    page.close().await;
}
