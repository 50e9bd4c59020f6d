//! Audience Q&A in a real browser: a question posted on instance A's
//! audience page shows on instance B's audience page and presenter (Q), an
//! upvote from another page reorders the board live, markup in a question
//! or a name stays text, and on a moderated event a question waits on the
//! host's manage page until it is approved.

use std::time::Duration;

use serde_json::{Value, json};

use crate::driver::{Driver, Page};
use crate::helpers::{Backend, TestApp, WAIT, spawn_app};

/// How soon a board change must show on a following page.
const LIVE: Duration = Duration::from_secs(3);

const XSS_TEXT: &str = "Is <script>alert(1)</script> <img src=x onerror=alert(1)> safe?";
const XSS_NAME: &str = "<img src=x onerror=alert(1)>";

async fn create_event(app: &TestApp, moderation: bool) -> (String, String) {
    let res = app
        .client
        .post(app.url("/api/events"))
        .json(&json!({"title": "Q&A talk", "qa_moderation": moderation,
            "questions": [{"question": "Coffee?", "options": ["Yes", "No"]}]}))
        .send()
        .await
        .expect("create event");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    (
        body["event"]["id"].as_str().expect("id").to_owned(),
        body["admin_token"].as_str().expect("token").to_owned(),
    )
}

async fn moderate(app: &TestApp, id: &str, token: &str, qid: u64, action: &str) {
    let res = app
        .client
        .post(app.url(&format!("/api/events/{id}/qa/{qid}/{action}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("moderate");
    assert_eq!(res.status(), 200, "{action}");
}

/// Opens `url`, waits for the live connection and makes any alert a
/// recorded failure instead of a dialog.
async fn open(page: &Page, url: &str) {
    page.goto(url).await;
    page.wait_until(
        "the event connection to be live",
        WAIT,
        "return document.querySelector('[data-conn]').dataset.state === 'live'",
        vec![],
    )
    .await;
    page.js(
        "window.__alerts = 0; window.alert = function () { window.__alerts++; };",
        vec![],
    )
    .await;
}

/// The board's question texts, top to bottom.
async fn board(page: &Page) -> Vec<String> {
    let v = page
        .js(
            "return Array.from(document.querySelectorAll('[data-qa-board] .qa-text'), e => e.textContent)",
            vec![],
        )
        .await;
    serde_json::from_value(v).expect("texts")
}

/// Waits until the board's texts are `expected`, in order.
async fn wait_board(page: &Page, expected: &[&str], what: &str) {
    page.wait_until(
        what,
        LIVE,
        "const texts = Array.from(document.querySelectorAll('[data-qa-board] .qa-text'), e => e.textContent); \
         return JSON.stringify(texts) === JSON.stringify(arguments[0]);",
        vec![json!(expected)],
    )
    .await;
}

async fn post(page: &Page, text: &str, name: &str) {
    page.click("#tab-qa").await;
    page.type_into("#qa-text", text).await;
    if !name.is_empty() {
        page.type_into("#qa-name", name).await;
    }
    page.click("[data-qa-ask]").await;
    page.wait_until(
        "the question to be posted",
        WAIT,
        "return document.getElementById('qa-text').value === ''",
        vec![],
    )
    .await;
}

/// Nothing a question carried became markup or ran.
async fn assert_inert(page: &Page) {
    let v = page
        .js(
            "return [document.querySelectorAll('[data-qa] img, [data-qa] script').length, window.__alerts]",
            vec![],
        )
        .await;
    assert_eq!(
        v,
        json!([0, 0]),
        "markup in a question became elements or ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_travel_between_instances_reorder_live_and_stay_text() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let backend = Backend::redis().await;
    let a = spawn_app(&backend).await;
    let b = spawn_app(&backend).await;
    let (id, token) = create_event(&a, false).await;

    let asker = driver.page().await;
    open(&asker, &a.url(&format!("/events/{id}"))).await;
    let reader = driver.page().await;
    open(&reader, &b.url(&format!("/events/{id}?transport=sse"))).await;
    let other = driver.page().await;
    open(&other, &b.url(&format!("/events/{id}?transport=longpoll"))).await;
    let screen = driver.page().await;
    screen.viewport(1920, 1080, 1.0, false).await;
    open(&screen, &b.url(&format!("/events/{id}/present"))).await;

    // The tab is reachable by keyboard: → from the poll tab selects Q&A.
    reader
        .js("document.getElementById('tab-poll').focus()", vec![])
        .await;
    reader.press(fantoccini::key::Key::Right).await;
    reader
        .wait_until(
            "the Q&A tab to be selected by the arrow key",
            WAIT,
            "return document.activeElement.id === 'tab-qa' && !document.getElementById('panel-qa').hidden \
             && document.getElementById('panel-poll').hidden",
            vec![],
        )
        .await;

    // An empty question is refused next to the field.
    asker.click("#tab-qa").await;
    asker.click("[data-qa-ask]").await;
    asker.wait_for("#qa-text-error:not([hidden])").await;
    assert_eq!(
        asker.text("#qa-text-error").await,
        "Write your question first."
    );

    // Posted on A, shown on B (audience, verbatim) and on B's presenter.
    asker.type_into("#qa-text", XSS_TEXT).await;
    assert_eq!(
        asker.text("[data-qa-count]").await,
        format!("{} / 280", XSS_TEXT.chars().count())
    );
    asker.type_into("#qa-name", XSS_NAME).await;
    asker.click("[data-qa-ask]").await;
    wait_board(&reader, &[XSS_TEXT], "the question on B's audience page").await;
    assert_eq!(reader.text("[data-qa-board] .qa-name").await, XSS_NAME);
    wait_board(&asker, &[XSS_TEXT], "the question on the asker's page").await;
    // Q (WebDriver's key actions name only the special keys).
    screen
        .js(
            "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'q', bubbles: true}))",
            vec![],
        )
        .await;
    wait_board(&screen, &[XSS_TEXT], "the question on B's presenter").await;

    // One's own question cannot be upvoted; a second post within 10 s waits.
    let own = asker
        .js(
            "const b = document.querySelector('[data-qa-board] .qa-up'); \
             return [b.disabled, b.closest('li').classList.contains('mine')]",
            vec![],
        )
        .await;
    assert_eq!(own, json!([true, true]));
    asker.type_into("#qa-text", "Too soon?").await;
    asker.click("[data-qa-ask]").await;
    asker
        .wait_until(
            "the wait to show",
            WAIT,
            "const e = document.querySelector('[data-qa-error=form]'); \
             return !e.hidden && /ask the next one in \\d+ s/.test(e.textContent)",
            vec![],
        )
        .await;

    // A second question from another page; then the asker upvotes it and
    // it goes first everywhere.
    post(&other, "Second question", "").await;
    let both = [XSS_TEXT, "Second question"];
    wait_board(&reader, &both, "both questions, oldest first").await;
    wait_board(&screen, &both, "both questions on the presenter").await;
    let second = "[data-qa-board] li:nth-child(2) button.qa-up";
    asker.wait_for(second).await;
    asker.click(second).await;
    let reordered = ["Second question", XSS_TEXT];
    wait_board(&reader, &reordered, "the upvoted question first on B").await;
    wait_board(
        &screen,
        &reordered,
        "the upvoted question first on the presenter",
    )
    .await;
    wait_board(&asker, &reordered, "the upvoted question first on A").await;
    asker
        .wait_until(
            "the upvote to be marked",
            WAIT,
            "const b = document.querySelector('[data-qa-board] li:first-child button.qa-up'); \
             return b.getAttribute('aria-pressed') === 'true' && b.textContent.includes('1')",
            vec![],
        )
        .await;

    // The host pins the XSS one and answers the other: pinned first,
    // highlighted, answered ones marked.
    let items = a
        .client
        .get(a.url(&format!("/api/events/{id}/qa")))
        .send()
        .await
        .expect("qa")
        .json::<Value>()
        .await
        .expect("json");
    let id_of = |text: &str| {
        items["questions"]
            .as_array()
            .expect("questions")
            .iter()
            .find(|q| q["text"] == text)
            .and_then(|q| q["id"].as_u64())
            .expect("question id")
    };
    moderate(&a, &id, &token, id_of(XSS_TEXT), "pin").await;
    wait_board(
        &screen,
        &[XSS_TEXT, "Second question"],
        "the pinned question first",
    )
    .await;
    screen
        .wait_until(
            "the pinned question highlighted",
            LIVE,
            "return document.querySelector('[data-qa-board] li:first-child').classList.contains('pinned')",
            vec![],
        )
        .await;
    moderate(&a, &id, &token, id_of("Second question"), "answer").await;
    reader
        .wait_until(
            "the answered question marked",
            LIVE,
            "const li = document.querySelector('[data-qa-board] li:last-child'); \
             return li.classList.contains('answered') && /Answered/.test(li.textContent)",
            vec![],
        )
        .await;
    for page in [&asker, &reader, &other, &screen] {
        assert_inert(page).await;
    }
    assert_eq!(board(&reader).await, both);

    screen.move_pointer_away().await;
    screen.screenshot("event-qa-present.png").await;
    reader.viewport(420, 900, 1.0, false).await;
    reader.move_pointer_away().await;
    reader.screenshot("event-qa-audience.png").await;
    for page in [asker, reader, other, screen] {
        page.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderated_question_waits_on_the_manage_page_until_approved() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;

    // Created from the page with "moderate new questions" ticked (the
    // fields filled by script: the create form has its own tests).
    let host = driver.page().await;
    host.goto(&app.url("/events/new")).await;
    host.js(
        "document.getElementById('event-title-input').value = 'Moderated'; \
         document.querySelector('[data-new-question] [data-q-text]').value = 'Tea?'; \
         document.querySelector('[data-new-question] [data-q-options]').value = 'Yes\\nNo';",
        vec![],
    )
    .await;
    host.click("[data-qa-moderation]").await;
    host.click("[data-new-form] button[type=submit]").await;
    host.wait_for("[data-created]:not([hidden])").await;
    let links = host
        .js(
            "return [document.getElementById('manage-url').value, \
               document.querySelector('[data-created-audience]').getAttribute('href')]",
            vec![],
        )
        .await;
    let manage = links[0].as_str().expect("manage url").to_owned();
    let id = links[1]
        .as_str()
        .and_then(|p| p.strip_prefix("/events/"))
        .expect("event id")
        .to_owned();
    open(&host, &manage).await;
    host.wait_text(
        "[data-qa-moderation]",
        "New questions wait for your approval.",
        WAIT,
    )
    .await;

    let asker = driver.page().await;
    open(&asker, &app.url(&format!("/events/{id}"))).await;
    let guest = driver.page().await;
    open(&guest, &app.url(&format!("/events/{id}#qa"))).await;

    post(&asker, "Held <b>back</b>?", "Ann").await;
    post(&guest, "Second one", "").await;
    // The asker sees their own, waiting; the guest sees only their own.
    asker
        .wait_until(
            "one's own pending question, waiting",
            WAIT,
            "const li = document.querySelector('[data-qa-board] li'); \
             return li !== null && li.querySelector('.qa-text').textContent === 'Held <b>back</b>?' \
               && /Waiting for approval/.test(li.textContent)",
            vec![],
        )
        .await;
    wait_board(&guest, &["Second one"], "the guest's own question only").await;
    // The host sees both, held.
    host.wait_until(
        "two held questions on the manage page",
        LIVE,
        "return document.querySelectorAll('[data-qa-held] li').length === 2",
        vec![],
    )
    .await;
    // A reload keeps one's own waiting question (localStorage).
    open(&asker, &app.url(&format!("/events/{id}"))).await;
    wait_board(
        &asker,
        &["Held <b>back</b>?"],
        "the waiting question after a reload",
    )
    .await;

    // Approved by keyboard: focus the button, press Enter.
    host.js(
        "Array.from(document.querySelectorAll('[data-qa-held] li')) \
           .find(li => li.textContent.includes('Held <b>back</b>?')) \
           .querySelector('button[data-qa-act=approve]').focus()",
        vec![],
    )
    .await;
    host.press(fantoccini::key::Key::Enter).await;
    wait_board(
        &guest,
        &["Second one", "Held <b>back</b>?"],
        "the approved question for everyone",
    )
    .await;
    wait_board(
        &host,
        &["Held <b>back</b>?"],
        "the approved question on the host's board",
    )
    .await;
    asker
        .wait_until(
            "the asker's question no longer waiting",
            LIVE,
            "const li = document.querySelector('[data-qa-board] li'); \
             return li !== null && !/Waiting/.test(li.textContent) && li.classList.contains('mine')",
            vec![],
        )
        .await;
    // Focus stayed on a button of the same question.
    let focused = host
        .js("return document.activeElement.dataset.qaId || null", vec![])
        .await;
    assert!(focused.is_string(), "focus kept after approving: {focused}");
    // Pinned by mouse.
    host.click("[data-qa-board] button[data-qa-act=pin]").await;
    host.wait_until(
        "the pin",
        LIVE,
        "const b = document.querySelector('[data-qa-board] button[data-qa-act=pin]'); \
         return b.getAttribute('aria-pressed') === 'true' && b.closest('li').classList.contains('pinned')",
        vec![],
    )
    .await;
    for page in [&host, &asker, &guest] {
        assert_inert(page).await;
    }
    host.move_pointer_away().await;
    host.js(
        "document.querySelector('[data-qa]').scrollIntoView({block: 'start'})",
        vec![],
    )
    .await;
    host.screenshot("event-qa-manage.png").await;

    // Hidden by mouse: off the guest's board.
    host.click("[data-qa-board] button[data-qa-act=hide]").await;
    wait_board(&guest, &["Second one"], "the hidden question gone").await;
    for page in [host, asker, guest] {
        page.close().await;
    }
}
