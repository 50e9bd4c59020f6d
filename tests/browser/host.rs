//! The host's pages in a real browser: the manage page reached from the
//! created page (token in the fragment only), closing a poll while a
//! voter's page shows it closed live, a wrong token changing nothing (with
//! and without JavaScript), and the presenter view following votes live.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::driver::{Driver, Page, screenshot_dir};
use crate::helpers::{Backend, TestApp, WAIT, spawn_app};
use crate::live::open_poll;

/// How soon a change must show on a page following over a pushing transport.
const PUSH_BOUND: Duration = Duration::from_secs(1);

/// Creates a poll through the home form and returns its id and the manage
/// link the created page shows.
async fn create_through_the_form(page: &Page, app: &TestApp) -> (String, String) {
    page.goto(&app.url("/")).await;
    page.type_into("#question", "Lunch?").await;
    page.type_into("#option-1", "Noodles").await;
    page.type_into("#option-2", "Rice").await;
    page.click(".create-form .actions button.primary").await;
    page.wait_for("#created-title").await;
    let manage = page
        .js("return document.getElementById('manage-url').value", vec![])
        .await;
    let manage = manage.as_str().expect("a manage link").to_owned();
    let link = page
        .js("return document.getElementById('poll-url').value", vec![])
        .await;
    let id = link
        .as_str()
        .and_then(|l| l.rsplit('/').next())
        .expect("poll link")
        .to_owned();
    (id, manage)
}

/// Reads `#token=…` from a manage link.
fn token_of(manage: &str) -> &str {
    manage
        .split_once("#token=")
        .expect("token in the fragment")
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_closes_from_the_manage_page_and_the_voter_sees_it_live() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let host = driver.page().await;
    let (id, manage) = create_through_the_form(&host, &app).await;
    assert!(
        manage.starts_with(&app.url(&format!("/polls/{id}/manage#token="))),
        "the token travels in the fragment: {manage}"
    );

    // The server sees the manage page's address without the token, and
    // answers it private and referrer-free.
    let res = reqwest::get(app.url(&format!("/polls/{id}/manage")))
        .await
        .expect("manage page");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    assert_eq!(res.headers()["cache-control"], "no-store");

    let voter = driver.page().await;
    open_poll(&voter, &app, &id, "ws").await;

    host.click("[data-manage-link]").await;
    host.wait_for("#manage").await;
    host.wait_live().await;
    let hidden = host
        .js(
            "return document.querySelector('[data-token-field]').hidden",
            vec![],
        )
        .await;
    assert_eq!(hidden, json!(true), "the token came with the link");
    assert!(
        host.url()
            .await
            .ends_with(&format!("#token={}", token_of(&manage)))
    );

    // A vote shows on the manage page's live bars.
    app.vote(&id, 1, None).await;
    host.wait_counts_in("#manage", &[0, 1], WAIT).await;
    host.viewport(1920, 1080, 1.0, false).await;
    host.move_pointer_away().await;
    host.screenshot("manage-1920.png").await;
    if std::env::var("TALLY_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::copy(
            screenshot_dir().join("manage-1920.png"),
            docs.join("manage.png"),
        )
        .expect("copy the README screenshot");
    }
    host.viewport(1280, 900, 1.0, false).await;

    voter
        .js(
            "const b = document.querySelector('[data-state-badge]'); window.__closedAt = null; \
             new MutationObserver(function () { if (b.textContent === 'Closed') window.__closedAt = Date.now(); }) \
               .observe(b, {childList: true, characterData: true, subtree: true});",
            vec![],
        )
        .await;
    host.watch_for_click().await;
    host.click("[data-manage=close]").await;
    host.wait_text("[data-notices] .notice.ok", "The poll is closed.", WAIT)
        .await;
    voter
        .wait_text(
            "[data-state-badge]",
            "Closed",
            PUSH_BOUND + Duration::from_secs(2),
        )
        .await;
    let closed_at = voter.js("return window.__closedAt", vec![]).await;
    let millis = closed_at.as_f64().expect("seen") - host.clicked_at().await;
    assert!(
        millis <= PUSH_BOUND.as_millis() as f64,
        "the voter saw the close {millis} ms after the click"
    );
    let disabled = voter
        .js(
            "return Array.from(document.querySelectorAll('#poll button[name=option]')).every(function (b) { return b.disabled; })",
            vec![],
        )
        .await;
    assert_eq!(disabled, json!(true), "the voter can no longer vote");
    assert_eq!(app.results(&id).await["closed"], true);
    let close_disabled = host
        .js(
            "return document.querySelector('[data-manage=close]').disabled",
            vec![],
        )
        .await;
    assert_eq!(
        close_disabled,
        json!(true),
        "close is done; reopen is offered"
    );

    // Delete asks first; cancelling keeps the poll.
    host.click("[data-manage=delete]").await;
    host.wait_until(
        "the confirmation",
        WAIT,
        "return document.querySelector('[data-delete-dialog]').open",
        vec![],
    )
    .await;
    host.click("[data-delete-dialog] button[value=cancel]")
        .await;
    assert_eq!(app.results(&id).await["closed"], true, "still there");
    host.click("[data-manage=delete]").await;
    host.click("[data-delete-yes]").await;
    voter.wait_text("[data-state-badge]", "Deleted", WAIT).await;
    let res = reqwest::get(app.url(&format!("/api/polls/{id}")))
        .await
        .expect("get");
    assert_eq!(res.status(), 404, "deleted");
    host.close().await;
    voter.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_on_the_manage_page_changes_nothing() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let (poll, token) = app.create_poll(&["A", "B"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    app.vote(&id, 0, None).await;

    // With the script: the fragment's token is sent as a bearer, refused.
    let page = driver.page().await;
    page.goto(&app.url(&format!("/polls/{id}/manage#token=not-the-token")))
        .await;
    page.wait_live().await;
    for action in ["close", "delete"] {
        page.click(&format!("[data-manage={action}]")).await;
        if action == "delete" {
            page.click("[data-delete-yes]").await;
        }
        page.wait_text(
            "[data-notices] .notice.warn",
            "That is not this poll's admin token. Nothing was changed.",
            WAIT,
        )
        .await;
        page.js(
            "document.querySelector('[data-notices]').replaceChildren()",
            vec![],
        )
        .await;
    }
    let after = app.results(&id).await;
    assert_eq!(after["closed"], false);
    assert_eq!(after["version"], 1, "nothing changed");
    page.close().await;

    // Without it: the form posts the token in its body.
    let page = driver.page_without_js().await;
    page.goto(&app.url(&format!("/polls/{id}/manage"))).await;
    page.type_into("#admin-token", "not-the-token").await;
    page.click("[data-manage=close]").await;
    page.wait_text(
        "[data-notices] .notice.warn",
        "That is not this poll's admin token. Nothing was changed.",
        WAIT,
    )
    .await;
    assert_eq!(app.results(&id).await["closed"], false);
    let kept = page
        .js(
            "return document.getElementById('admin-token').value",
            vec![],
        )
        .await;
    assert_eq!(kept, json!(""), "a wrong token is not written back");
    // Delete needs the box ticked, even with the right token.
    page.type_into("#admin-token", &token).await;
    page.click("[data-manage=delete]").await;
    page.wait_text(
        "[data-notices] .notice.warn",
        "Tick the box to confirm the deletion. Nothing was changed.",
        WAIT,
    )
    .await;
    assert_eq!(app.results(&id).await["version"], 1);
    // The right token closes it.
    page.click("[data-manage=close]").await;
    page.wait_text("[data-notices] .notice.ok", "The poll is closed.", WAIT)
        .await;
    assert_eq!(app.results(&id).await["closed"], true);
    page.close().await;
}

/// The presenter view at `width`×`height` fits the screen without scrolling.
async fn fits(page: &Page, what: &str) {
    let overflow = page
        .js(
            "const d = document.documentElement; \
             return [d.scrollWidth - innerWidth, d.scrollHeight - innerHeight]",
            vec![],
        )
        .await;
    let [w, h] = [overflow[0].as_i64().unwrap(), overflow[1].as_i64().unwrap()];
    assert!(w <= 0, "{what}: {w}px wider than the screen");
    assert!(h <= 0, "{what}: {h}px taller than the screen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presenter_view_follows_votes_live_full_screen_and_on_a_phone() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let page = driver.page().await;
    page.viewport(1920, 1080, 1.0, false).await;
    page.goto(&app.url("/polls/lpl/present")).await;
    page.wait_live().await;
    assert_eq!(page.text("#present-question").await, "LPL第一打野投票");
    assert_eq!(page.text("[data-total]").await, "1,100 votes");
    let join = page
        .js(
            "return document.querySelector('[data-join-link]').href",
            vec![],
        )
        .await;
    assert_eq!(join, json!(app.url("/polls/lpl")));
    let qr = page
        .js(
            "const i = document.querySelector('.present-qr'); \
             return [i.complete && i.naturalWidth > 0, Math.round(i.getBoundingClientRect().width)]",
            vec![],
        )
        .await;
    assert_eq!(qr[0], json!(true), "the QR code loaded");
    assert!(
        qr[1].as_i64() >= Some(300),
        "the QR code is big on a projector: {qr}"
    );
    let size = page
        .js(
            "return parseFloat(getComputedStyle(document.getElementById('present-question')).fontSize)",
            vec![],
        )
        .await;
    assert!(
        size.as_f64() >= Some(60.0),
        "the question in large type: {size}px"
    );
    fits(&page, "1920×1080").await;

    let sent = std::time::Instant::now();
    app.vote("lpl", 2, None).await;
    page.wait_text(
        "[data-total]",
        "1,101 votes",
        PUSH_BOUND + Duration::from_secs(2),
    )
    .await;
    assert!(sent.elapsed() < PUSH_BOUND + Duration::from_secs(1));
    page.wait_counts_in("#present", &[300, 200, 601], WAIT)
        .await;

    page.move_pointer_away().await;
    page.screenshot("present-1920-light.png").await;
    // The toggle turns it dark (and says so in the root's theme).
    page.click("[data-theme-toggle]").await;
    let dark = page
        .js(
            "return [document.documentElement.dataset.theme, getComputedStyle(document.body).backgroundColor]",
            vec![],
        )
        .await;
    assert_eq!(dark[0], "dark");
    assert_eq!(dark[1], "rgb(17, 19, 24)", "a dark background");
    page.move_pointer_away().await;
    page.screenshot("present-1920-dark.png").await;
    page.click("[data-theme-toggle]").await;

    crate::look::at(&page, &crate::look::PHONE).await;
    page.goto(&app.url("/polls/lpl/present")).await;
    page.wait_live().await;
    crate::look::check_layout(&page, "present, phone").await;
    page.screenshot("present-phone.png").await;

    if std::env::var("TALLY_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::copy(
            screenshot_dir().join("present-1920-dark.png"),
            docs.join("present.png"),
        )
        .expect("copy the README screenshot");
    }
    page.close().await;
}
