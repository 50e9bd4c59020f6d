//! The event pages in a real browser: audience pages on instance B switch
//! question live on every transport after moves made on instance A; the
//! presenter is driven by →/← and PageDown/PageUp (and R, Q); the manage
//! page builds the deck by keyboard and mouse; `/join` leads to the event.

use std::time::Duration;

use fantoccini::key::Key;
use serde_json::{Value, json};

use crate::driver::{Driver, Page};
use crate::helpers::{Backend, TestApp, WAIT, spawn_app};

/// How soon a move must show on a following page: a bound against a page
/// that never switches, wide enough for a loaded CI box (the switch
/// latency itself is measured by `scripts/bench-events`, not here). Short
/// polling asks every 2 s, so its bound is wider.
const SWITCH_BOUND: Duration = Duration::from_secs(5);
const POLL_BOUND: Duration = Duration::from_secs(8);

/// Creates an event of `questions` (two options each) on `app`; returns
/// its state and admin token.
async fn create_event(app: &TestApp, questions: &[&str]) -> (Value, String) {
    let deck: Vec<Value> = questions
        .iter()
        .map(|q| json!({"question": q, "options": ["Yes", "No"]}))
        .collect();
    let res = app
        .client
        .post(app.url("/api/events"))
        .json(&json!({"title": "Talk <b>&</b>", "questions": deck}))
        .send()
        .await
        .expect("create event");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    let token = body["admin_token"].as_str().expect("token").to_owned();
    (body["event"].clone(), token)
}

/// An admin request; returns the state it answers.
async fn admin(app: &TestApp, id: &str, token: &str, path: &str, body: Value) -> Value {
    let res = app
        .client
        .post(app.url(&format!("/api/events/{id}{path}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("admin request");
    assert_eq!(res.status(), 200, "{path} {body}");
    res.json().await.expect("state")
}

async fn state(app: &TestApp, id: &str) -> Value {
    app.client
        .get(app.url(&format!("/api/events/{id}")))
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("json")
}

/// A letter key on the presenter (WebDriver's key actions name only the
/// special keys; the page listens on the document either way).
async fn type_letter(page: &Page, key: &str) {
    page.js(
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: arguments[0], bubbles: true}))",
        vec![json!(key)],
    )
    .await;
}

async fn wait_live(page: &Page) {
    page.wait_until(
        "the event connection to be live",
        WAIT,
        "return document.querySelector('[data-conn]').dataset.state === 'live'",
        vec![],
    )
    .await;
}

/// Waits until the page shows `question` (or the lobby, for `None`).
async fn wait_question(page: &Page, question: Option<&str>, bound: Duration) {
    page.wait_until(
        &format!("the page to show {question:?}"),
        bound,
        "const q = document.querySelector('[data-question]'); \
         const lobby = document.querySelector('[data-lobby]'); \
         if (arguments[0] === null) return !lobby.hidden && q.hidden; \
         return !q.hidden && lobby.hidden && \
           document.querySelector('[data-question-text]').textContent === arguments[0];",
        vec![json!(question)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_pages_on_b_switch_question_live_on_every_transport() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let backend = Backend::redis().await;
    let a = spawn_app(&backend).await;
    let b = spawn_app(&backend).await;
    let (event, token) = create_event(&a, &["First?", "Second?", "Third?"]).await;
    let id = event["id"].as_str().expect("id").to_owned();

    let mut pages = Vec::new();
    for transport in ["ws", "sse", "longpoll", "poll"] {
        let page = driver.page().await;
        page.goto(&b.url(&format!("/events/{id}?transport={transport}")))
            .await;
        wait_live(&page).await;
        assert_eq!(page.text("[data-transport-used]").await, transport);
        wait_question(&page, None, WAIT).await;
        assert_eq!(page.text("[data-event-title]").await, "Talk <b>&</b>");
        if transport == "ws" {
            page.screenshot("event-audience-lobby.png").await;
        }
        pages.push((transport, page));
    }

    let steps: [(Value, Option<&str>); 4] = [
        (json!({"step": "next"}), Some("First?")),
        (json!({"step": "next"}), Some("Second?")),
        (json!({"to": 2}), Some("Third?")),
        (json!({"to": null}), None),
    ];
    for (body, shown) in steps {
        admin(&a, &id, &token, "/move", body).await;
        for (transport, page) in &pages {
            let bound = if *transport == "poll" {
                POLL_BOUND
            } else {
                SWITCH_BOUND
            };
            wait_question(page, shown, bound).await;
        }
    }

    // A vote from the page on the question on screen counts, without a reload.
    admin(&a, &id, &token, "/move", json!({"to": 0})).await;
    let (_, voter) = &pages[0];
    wait_question(voter, Some("First?"), SWITCH_BOUND).await;
    voter.click("[data-options] button.vote").await;
    voter
        .wait_until(
            "the vote to be counted on screen",
            WAIT,
            "const c = document.querySelector('[data-options] .result.chosen'); \
             const v = document.querySelector('[data-options] [data-votes]'); \
             return c !== null && /^1\\b/.test(v.textContent);",
            vec![],
        )
        .await;
    voter.screenshot("event-audience.png").await;
    let now = state(&a, &id).await;
    assert_eq!(now["now"]["total"], 1, "{now}");
    for (_, page) in pages {
        page.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presenter_is_driven_by_its_keys() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let (event, token) = create_event(&app, &["One?", "Two?"]).await;
    let id = event["id"].as_str().expect("id").to_owned();
    let code = event["code"].as_str().expect("code").to_owned();

    let res = reqwest::get(app.url(&format!("/events/{id}/present")))
        .await
        .expect("presenter");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let qr = reqwest::get(app.url(&format!("/events/{id}/qr.svg")))
        .await
        .expect("qr");
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    let svg = qr.bytes().await.expect("svg");
    assert_eq!(
        crate::languages::decode_qr(&svg),
        app.url(&format!("/j/{code}")),
        "the QR code leads to the join link"
    );

    let page = driver.page().await;
    page.viewport(1920, 1080, 1.0, false).await;
    page.goto(&app.url(&format!("/events/{id}/present#token={token}")))
        .await;
    wait_live(&page).await;
    wait_question(&page, None, WAIT).await;
    assert_eq!(page.text("[data-event-code]").await.replace(' ', ""), code);

    page.screenshot("event-present-lobby.png").await;
    page.press(Key::Right).await;
    wait_question(&page, Some("One?"), SWITCH_BOUND).await;
    page.screenshot("event-present.png").await;
    page.press(Key::PageDown).await;
    wait_question(&page, Some("Two?"), SWITCH_BOUND).await;
    page.press(Key::PageUp).await;
    wait_question(&page, Some("One?"), SWITCH_BOUND).await;
    // `prev` on the first question changes nothing: count the page's
    // answered moves, press ←, and look once its answer is in.
    let version = state(&app, &id).await["version"].clone();
    page.js(
        "window.__moves = 0; const f = window.fetch; \
         window.fetch = function (url) { return f.apply(this, arguments).then(function (r) { \
           if (String(url).endsWith('/move')) window.__moves++; return r; }); }; return true;",
        vec![],
    )
    .await;
    page.press(Key::Left).await;
    page.wait_until(
        "the ← move to be answered",
        WAIT,
        "return window.__moves >= 1",
        vec![],
    )
    .await;
    wait_question(&page, Some("One?"), SWITCH_BOUND).await;
    let now = state(&app, &id).await;
    assert_eq!(now["current"], 0);
    assert_eq!(
        now["version"], version,
        "a move at the start changes nothing"
    );

    // R hides the results, Space closes voting, Q shows the Q&A panel.
    type_letter(&page, "r").await;
    page.wait_until(
        "results to be hidden",
        WAIT,
        "return !document.querySelector('[data-hidden-note]').hidden",
        vec![],
    )
    .await;
    assert_eq!(state(&app, &id).await["results_shown"], false);
    page.press(Key::Space).await;
    page.wait_until(
        "voting to close",
        WAIT,
        "return !document.querySelector('[data-state-badge]').classList.contains('open')",
        vec![],
    )
    .await;
    type_letter(&page, "q").await;
    page.wait_until(
        "the Q&A panel to show",
        WAIT,
        "return !document.querySelector('[data-qa-panel]').hidden",
        vec![],
    )
    .await;

    // A move made elsewhere shows too.
    admin(&app, &id, &token, "/move", json!({"to": 1})).await;
    wait_question(&page, Some("Two?"), SWITCH_BOUND).await;
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_builds_and_drives_the_deck_and_the_room_joins_by_code() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;

    // Create from the page.
    let host = driver.page().await;
    host.goto(&app.url("/events/new")).await;
    host.type_into("#event-title-input", "Town hall").await;
    host.type_into("[data-new-question] [data-q-text]", "Coffee?")
        .await;
    host.type_into("[data-new-question] [data-q-options]", "Yes\nNo")
        .await;
    host.click("[data-new-form] button[type=submit]").await;
    host.wait_until(
        "the created card",
        WAIT,
        "return !document.querySelector('[data-created]').hidden",
        vec![],
    )
    .await;
    let manage = host
        .js("return document.getElementById('manage-url').value", vec![])
        .await;
    let manage = manage.as_str().expect("manage url").to_owned();
    assert!(manage.contains("/manage#token="), "{manage}");
    let id = manage
        .split("/events/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("event id")
        .to_owned();
    let code = host.text("[data-created-code]").await;

    // Build the deck on the manage page.
    host.goto(&manage).await;
    wait_live(&host).await;
    host.type_into("[data-add-form] [data-q-text]", "Tea?")
        .await;
    host.type_into("[data-add-form] [data-q-options]", "Green\nBlack")
        .await;
    host.click("[data-add-form] button[type=submit]").await;
    host.wait_until(
        "two questions in the deck",
        WAIT,
        "return document.querySelectorAll('[data-deck] > li').length === 2",
        vec![],
    )
    .await;
    // Move "Tea?" up, then drive.
    host.click("[data-deck] > li:nth-child(2) button[data-act=up]")
        .await;
    host.wait_until(
        "Tea? first",
        WAIT,
        "return document.querySelector('[data-deck] > li .event-deck-text').textContent === 'Tea?'",
        vec![],
    )
    .await;
    host.click("button[data-act=next]:not([data-qid])").await;
    host.wait_until(
        "Tea? on screen",
        WAIT,
        "return /Tea\\?/.test(document.querySelector('[data-status]').textContent)",
        vec![],
    )
    .await;

    host.screenshot("event-manage.png").await;

    // The room joins with the code (spaces ignored) and sees it.
    let guest = driver.page().await;
    guest.goto(&app.url("/join")).await;
    guest.type_into("#join-code", "12 34").await;
    guest.click(".join-form button[type=submit]").await;
    guest.wait_for("#join-error").await;
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    guest
        .js("document.getElementById('join-code').value = ''", vec![])
        .await;
    guest.type_into("#join-code", &spaced).await;
    guest.click(".join-form button[type=submit]").await;
    guest.wait_for("[data-event-page=audience]").await;
    assert!(guest.url().await.ends_with(&format!("/events/{id}")));
    wait_question(&guest, Some("Tea?"), WAIT).await;

    // Editing before the first vote, then deleting.
    host.click("[data-deck] > li:nth-child(2) button[data-act=edit]")
        .await;
    host.wait_for("[data-edit-form]").await;
    host.js(
        "document.querySelector('[data-edit-form] [data-q-text]').value = ''",
        vec![],
    )
    .await;
    host.type_into("[data-edit-form] [data-q-text]", "Coffee or not?")
        .await;
    host.click("[data-edit-form] button[type=submit]").await;
    host.wait_until(
        "the edited question",
        WAIT,
        "return Array.from(document.querySelectorAll('.event-deck-text')).some(e => e.textContent === 'Coffee or not?')",
        vec![],
    )
    .await;
    host.click("[data-deck] > li:nth-child(2) button[data-act=remove]")
        .await;
    host.click("[data-confirm-dialog] button[value=yes]").await;
    host.wait_until(
        "one question left",
        WAIT,
        "return document.querySelectorAll('[data-deck] > li').length === 1",
        vec![],
    )
    .await;
    assert_eq!(
        state(&app, &id).await["questions"]
            .as_array()
            .expect("deck")
            .len(),
        1
    );
    host.close().await;
    guest.close().await;
}
