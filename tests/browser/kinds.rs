//! Question kinds in a real browser: each kind created from the home
//! page's form, voted on from the poll page and seen live on a second page
//! over another transport; a ranking put in order by keyboard alone; a word
//! hidden by the host leaving the audience's cloud; and the event audience
//! page and presenter drawing and taking each kind.

use fantoccini::key::Key;
use serde_json::{Value, json};

use crate::driver::{Driver, Page};
use crate::helpers::{Backend, TestApp, WAIT, spawn_app};

/// The browser and one instance on the embedded store; `None` when the
/// browser tests are skipped.
async fn start() -> Option<(Driver, TestApp)> {
    let driver = Driver::start().await?;
    Some((driver, spawn_app(&Backend::Memory).await))
}

/// Waits until `body` (a script) answers truthy; returns the answer.
async fn until(page: &Page, what: &str, body: &str) -> Value {
    page.wait_until(what, WAIT, body, vec![]).await
}

/// The words of the cloud on `page` with their size classes, in order.
async fn cloud(page: &Page) -> Vec<(String, String)> {
    let v = page
        .js(
            "return Array.from(document.querySelectorAll('[data-cloud] .word'), function (w) { \
               return [w.firstChild.textContent.trim(), (w.className.match(/size-\\d/) || [''])[0]]; })",
            vec![],
        )
        .await;
    serde_json::from_value(v).expect("words")
}

/// Creates a poll from the home page's form (open, its kind's own fields
/// filled) with `kind` picked; returns (id, admin token), the page on the
/// new poll's page.
async fn create_from_form(page: &Page, kind: &str, question: &str) -> (String, String) {
    page.click(&format!("input[name=kind][value={kind}]")).await;
    page.type_into("#question", question).await;
    page.click("input[name=vote_limit][value=unlimited]").await;
    // The fields of the other kinds are hidden; this one's are shown.
    let shown = page
        .js(
            "return Array.from(document.querySelectorAll('[data-kind-only]'), \
               function (el) { return [el.dataset.kindOnly, !el.hidden]; })",
            vec![],
        )
        .await;
    for pair in shown.as_array().expect("fields") {
        let (only, visible) = (pair[0].as_str().unwrap(), pair[1].as_bool().unwrap());
        assert_eq!(
            only.split(' ').any(|k| k == kind),
            visible,
            "{only} for {kind}"
        );
    }
    created(page).await
}

async fn created(page: &Page) -> (String, String) {
    page.click(".create-form .actions button.primary").await;
    page.wait_for("#created-title").await;
    let token = page
        .js(
            "return document.getElementById('admin-token').value",
            vec![],
        )
        .await;
    page.click("a.button.primary").await;
    page.wait_for("#poll").await;
    page.wait_live().await;
    let id = page
        .js(
            "return document.getElementById('poll').dataset.poll",
            vec![],
        )
        .await;
    (
        id.as_str().unwrap().to_owned(),
        token.as_str().unwrap().to_owned(),
    )
}

async fn vote_notice(page: &Page, label: &str) {
    page.wait_text(
        "[data-notices] .notice.ok",
        &format!("Your vote for “{label}” was counted."),
        WAIT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_cloud_grows_live_and_a_word_the_host_hides_leaves_the_audience() {
    let Some((driver, app)) = start().await else {
        return;
    };
    let voter = driver.page().await;
    voter.goto(&app.url("/")).await;
    voter.click("input[name=kind][value=wordcloud]").await;
    voter
        .js("document.getElementById('max_entries').value = '2'", vec![])
        .await;
    let (id, token) = create_from_form(&voter, "wordcloud", "One word for <today>?").await;
    let results = app.results(&id).await;
    assert_eq!(results["kind"], "wordcloud");
    assert_eq!(results["max_entries"], 2);

    let watcher = driver.page().await;
    watcher
        .goto(&app.url(&format!("/polls/{id}?transport=sse")))
        .await;
    watcher.wait_live().await;
    assert_eq!(watcher.text("[data-cloud]").await, "No words yet.");

    // Entries are normalised by the server and drawn as text; one vote
    // carries up to max_entries of them.
    voter.type_into("[data-entry]", "  Hello!  ").await;
    voter
        .type_into(
            ".entry-fields label:nth-child(2) [data-entry]",
            "<b>bold</b>",
        )
        .await;
    voter.press(Key::Enter).await;
    vote_notice(&voter, "Hello!, <b>bold</b>").await;
    assert_eq!(
        voter
            .js(
                "return document.querySelector('[data-entry]').value",
                vec![]
            )
            .await,
        "",
        "the field is cleared for the next word"
    );
    voter.type_into("[data-entry]", "hello").await;
    voter.click("[data-send-vote]").await;
    vote_notice(&voter, "hello").await;
    until(
        &watcher,
        "the cloud to show both words, hello larger",
        "const w = Array.from(document.querySelectorAll('[data-cloud] .word')); \
         return w.length === 2 && w[0].firstChild.textContent === 'hello';",
    )
    .await;
    assert_eq!(
        cloud(&watcher).await,
        [
            ("hello".to_owned(), "size-5".to_owned()),
            ("<b>bold</b>".to_owned(), "size-3".to_owned())
        ]
    );
    assert_eq!(watcher.text("[data-total]").await, "3 votes");

    // The host hides "hello" on the manage page: it leaves the audience's
    // cloud live, stays on the host's list as hidden, and comes back.
    let host = driver.page().await;
    host.goto(&app.url(&format!("/polls/{id}/manage#token={token}")))
        .await;
    until(
        &host,
        "the host's list of words",
        "return document.querySelectorAll('[data-entry-list] .entry-row').length === 2",
    )
    .await;
    host.click("[data-entry-list] .entry-row:first-child [data-entry-toggle]")
        .await;
    host.wait_text(
        "[data-notices] .notice.ok",
        "“hello” is hidden from the audience.",
        WAIT,
    )
    .await;
    until(
        &host,
        "hello marked hidden on the host's list",
        "const r = document.querySelector('[data-entry-list] .entry-row.is-hidden'); \
         return r !== null && r.querySelector('.entry-text').textContent === 'hello' \
           && r.querySelector('[data-entry-toggle]').textContent === 'Show';",
    )
    .await;
    until(
        &watcher,
        "hello to leave the audience's cloud",
        "const w = Array.from(document.querySelectorAll('[data-cloud] .word')); \
         return w.length === 1 && w[0].firstChild.textContent === '<b>bold</b>';",
    )
    .await;
    let fresh = driver.page().await;
    fresh
        .goto(&app.url(&format!("/polls/{id}?transport=longpoll")))
        .await;
    fresh.wait_live().await;
    assert_eq!(
        cloud(&fresh).await,
        [("<b>bold</b>".to_owned(), "size-5".to_owned())]
    );
    host.click("[data-entry-list] .entry-row.is-hidden [data-entry-toggle]")
        .await;
    until(
        &watcher,
        "hello back in the audience's cloud",
        "return document.querySelectorAll('[data-cloud] .word').length === 2",
    )
    .await;
    watcher.screenshot("kinds-wordcloud").await;
    host.screenshot("kinds-manage-wordcloud").await;
    for page in [voter, watcher, host, fresh] {
        page.close().await;
    }
}

/// Two instances on one Redis: a word typed on instance A's poll page
/// reaches the cloud of a page on instance B (and one typed on B reaches
/// A), normalised by the server on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_submitted_on_instance_a_appears_in_instance_b_cloud() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let backend = Backend::redis().await;
    let a = spawn_app(&backend).await;
    let b = spawn_app(&backend).await;
    let res = a
        .post_json(
            "/api/polls",
            &json!({"question": "One word for Redis?", "kind": "wordcloud",
                "vote_limit": "unlimited"}),
        )
        .await;
    assert_eq!(res.status(), 201, "create on A");
    let created: Value = res.json().await.expect("json");
    let id = created["poll"]["id"].as_str().expect("id").to_owned();

    let on_a = driver.page().await;
    on_a.goto(&a.url(&format!("/polls/{id}"))).await;
    on_a.wait_live().await;
    let on_b = driver.page().await;
    on_b.goto(&b.url(&format!("/polls/{id}?transport=sse")))
        .await;
    on_b.wait_live().await;
    assert_eq!(on_b.text("[data-transport-used]").await, "sse");
    assert_eq!(on_b.text("[data-cloud]").await, "No words yet.");

    // Fullwidth letters and edge punctuation: counted as "rust".
    on_a.type_into("[data-entry]", "Ｒｕｓｔ!").await;
    on_a.press(Key::Enter).await;
    vote_notice(&on_a, "Ｒｕｓｔ!").await;
    until(
        &on_b,
        "the word from A in B's cloud",
        "const w = Array.from(document.querySelectorAll('[data-cloud] .word')); \
         return w.length === 1 && w[0].firstChild.textContent === 'rust';",
    )
    .await;
    assert_eq!(on_b.text("[data-total]").await, "1 vote");

    // And back: a CJK entry from B, kept whole, joins A's cloud after rust.
    on_b.type_into("[data-entry]", "北京  大学").await;
    on_b.click("[data-send-vote]").await;
    vote_notice(&on_b, "北京  大学").await;
    until(
        &on_a,
        "the word from B in A's cloud",
        "return Array.from(document.querySelectorAll('[data-cloud] .word'), \
           function (w) { return w.firstChild.textContent; }).join('|') === 'rust|北京 大学';",
    )
    .await;
    assert_eq!(b.results(&id).await["distinct"], 2);
    // A fuller room for the picture: more words through the API on A.
    let room = [
        ("fast", 6),
        ("rust", 4),
        ("simple", 3),
        ("缓存", 3),
        ("pub/sub", 2),
        ("atomic", 2),
        ("lua", 1),
        ("streams", 1),
        ("持久化", 1),
    ];
    for (word, times) in room {
        for _ in 0..times {
            let res = a
                .post_json(
                    &format!("/api/polls/{id}/votes"),
                    &json!({"entries": [word]}),
                )
                .await;
            assert_eq!(res.status(), 200, "vote {word}");
        }
    }
    until(
        &on_b,
        "the room's words in B's cloud, fast first",
        "const w = Array.from(document.querySelectorAll('[data-cloud] .word')); \
         return w.length === 10 && w[0].firstChild.textContent === 'fast';",
    )
    .await;
    on_b.screenshot("kinds-wordcloud-two-instances.png").await;
    for page in [on_a, on_b] {
        page.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_vote_by_keyboard_moves_the_mean_and_median_on_another_page() {
    let Some((driver, app)) = start().await else {
        return;
    };
    let voter = driver.page_in("zh-CN").await;
    voter.goto(&app.url("/")).await;
    voter.click("input[name=kind][value=scale]").await;
    voter
        .js(
            "document.getElementById('scale_min').value = '0'; \
             document.getElementById('scale_max').value = '10';",
            vec![],
        )
        .await;
    voter.type_into("#min_label", "一点也不").await;
    voter.type_into("#max_label", "非常").await;
    voter.type_into("#question", "你有多确定？").await;
    voter.click("input[name=vote_limit][value=unlimited]").await;
    voter.screenshot("kinds-create-scale-zh").await;
    let (id, _) = created(&voter).await;
    let results = app.results(&id).await;
    assert_eq!(results["kind"], "scale");
    assert_eq!(results["scale"]["min"], 0);
    assert_eq!(results["scale"]["max"], 10);
    assert_eq!(results["scale"]["min_label"], "一点也不");
    assert_eq!(voter.text(".scale-ends").await, "一点也不 非常");

    let watcher = driver.page().await;
    watcher
        .goto(&app.url(&format!("/polls/{id}?transport=longpoll")))
        .await;
    watcher.wait_live().await;
    assert_eq!(watcher.text("[data-mean]").await, "–");

    // By keyboard alone: focus the value's button, press Enter.
    for value in [8, 3] {
        voter
            .js(
                "document.querySelector('button[name=value][value=\"' + arguments[0] + '\"]').focus()",
                vec![json!(value)],
            )
            .await;
        voter.press(Key::Enter).await;
        voter
            .wait_text(
                "[data-notices] .notice.ok",
                &format!("你投给“{value}”的票已计入。"),
                WAIT,
            )
            .await;
    }
    watcher.wait_text("[data-mean]", "5.5", WAIT).await;
    watcher.wait_text("[data-median]", "5.5", WAIT).await;
    let counts = app.results(&id).await;
    assert_eq!(counts["options"][8]["votes"], 1);
    assert_eq!(counts["options"][3]["votes"], 1);
    assert_eq!(counts["mean"], 5.5);
    watcher.screenshot("kinds-scale").await;
    voter.close().await;
    watcher.close().await;
}

/// The ranking input's options, top first.
async fn rank_order(page: &Page) -> Vec<String> {
    let v = page
        .js(
            "return Array.from(document.querySelectorAll('[data-ranking] .rank-name'), \
               function (n) { return n.textContent.trim(); })",
            vec![],
        )
        .await;
    serde_json::from_value(v).expect("names")
}

/// The result rows' labels, top first.
async fn result_order(page: &Page, root: &str) -> Vec<String> {
    let v = page
        .js(
            "return Array.from(document.querySelectorAll(arguments[0] + ' .result .result-label'), \
               function (n) { return n.textContent.trim(); })",
            vec![json!(root)],
        )
        .await;
    serde_json::from_value(v).expect("labels")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ranking_put_in_order_by_keyboard_resorts_the_results_elsewhere() {
    let Some((driver, app)) = start().await else {
        return;
    };
    let voter = driver.page().await;
    voter.goto(&app.url("/")).await;
    voter.click("input[name=kind][value=ranking]").await;
    voter.type_into("#option-1", "Tea").await;
    voter.type_into("#option-2", "Coffee").await;
    voter.type_into("#option-3", "Water").await;
    let (id, _) = create_from_form(&voter, "ranking", "Best drink?").await;
    assert_eq!(app.results(&id).await["kind"], "ranking");
    assert_eq!(rank_order(&voter).await, ["Tea", "Coffee", "Water"]);

    let watcher = driver.page().await;
    watcher
        .goto(&app.url(&format!("/polls/{id}?transport=poll")))
        .await;
    watcher.wait_live().await;

    // Keyboard alone: Water's "move up" twice (focus stays on it), then
    // Tea's "move down" once: Water, Coffee, Tea.
    voter
        .js(
            "document.querySelector('[data-rank-option=\"2\"] [data-rank-move=up]').focus()",
            vec![],
        )
        .await;
    voter.press(Key::Enter).await;
    voter.press(Key::Enter).await;
    assert_eq!(rank_order(&voter).await, ["Water", "Tea", "Coffee"]);
    let focused = voter
        .js(
            "const a = document.activeElement; \
             return a.closest('[data-rank-option]').dataset.rankOption + ':' + a.dataset.rankMove",
            vec![],
        )
        .await;
    assert_eq!(
        focused, "2:down",
        "at the top, focus moves to its other button"
    );
    voter
        .js(
            "document.querySelector('[data-rank-option=\"0\"] [data-rank-move=down]').focus()",
            vec![],
        )
        .await;
    voter.press(Key::Enter).await;
    assert_eq!(rank_order(&voter).await, ["Water", "Coffee", "Tea"]);
    assert_eq!(
        voter.text("[data-rank-option=\"2\"] .rank-place").await,
        "1"
    );
    // Tab leads on from the list to the send button.
    for _ in 0..3 {
        let on_send = voter
            .js(
                "return document.activeElement.hasAttribute('data-send-vote')",
                vec![],
            )
            .await;
        if on_send == true {
            break;
        }
        voter.press(Key::Tab).await;
    }
    voter.press(Key::Enter).await;
    vote_notice(&voter, "Water > Coffee > Tea").await;

    let results = app.results(&id).await;
    let points: Vec<(String, u64, u64)> = results["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["label"].as_str().unwrap().to_owned(),
                o["points"].as_u64().unwrap(),
                o["first"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        points,
        [
            ("Water".to_owned(), 2, 1),
            ("Coffee".to_owned(), 1, 0),
            ("Tea".to_owned(), 0, 0)
        ]
    );
    // Short polling brings the new order and the points within its 2 s.
    until(
        &watcher,
        "the results re-sorted by points",
        "return Array.from(document.querySelectorAll('#poll .result .result-label'), \
           function (n) { return n.textContent.trim(); }).join() === 'Water,Coffee,Tea'",
    )
    .await;
    assert_eq!(
        result_order(&watcher, "#poll").await,
        ["Water", "Coffee", "Tea"]
    );
    assert_eq!(
        watcher.text("#poll [data-option=\"2\"] [data-votes]").await,
        "2 points"
    );
    assert_eq!(
        watcher.text("#poll [data-option=\"2\"] [data-first]").await,
        "1× first"
    );
    watcher.screenshot("kinds-ranking").await;

    // Dragging works too (HTML5 drag and drop, events as the browser sends
    // them): Water dropped on Tea's upper half goes first; the places and
    // the no-JS place fields follow.
    let dragged = watcher
        .js(
            "const list = document.querySelector('[data-ranking]'); \
             const item = function (o) { return Array.from(list.children).find(function (li) { \
               return li.dataset.rankOption === String(o); }); }; \
             const dt = new DataTransfer(); \
             const fire = function (el, type, y) { \
               el.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt, clientY: y})); }; \
             const tea = item(0).getBoundingClientRect(); \
             fire(item(2), 'dragstart', 0); \
             fire(item(0), 'dragover', tea.top + 2); \
             fire(item(0), 'drop', tea.top + 2); \
             fire(item(2), 'dragend', 0); \
             return Array.from(list.querySelectorAll('[data-rank-option]'), function (li) { \
               return li.querySelector('.rank-name').textContent + ' ' \
                 + li.querySelector('.rank-place').textContent + ' ' + li.querySelector('select').value; });",
            vec![],
        )
        .await;
    assert_eq!(dragged, json!(["Water 1 1", "Tea 2 2", "Coffee 3 3"]));

    // The presenter draws it alike.
    let present = driver.page().await;
    present
        .goto(&app.url(&format!("/polls/{id}/present")))
        .await;
    present.wait_live().await;
    assert_eq!(
        result_order(&present, "#present").await,
        ["Water", "Coffee", "Tea"]
    );
    for page in [voter, watcher, present] {
        page.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_audience_votes_on_each_kind_and_the_presenter_draws_it() {
    let Some((driver, app)) = start().await else {
        return;
    };
    let deck = json!([
        {"question": "One word?", "kind": "wordcloud", "vote_limit": "unlimited"},
        {"question": "How sure?", "kind": "scale", "scale": {"min": 1, "max": 5, "min_label": "Not", "max_label": "Very"}},
        {"question": "Order these", "kind": "ranking", "options": ["Red", "Green", "Blue"]},
    ]);
    let res = app
        .client
        .post(app.url("/api/events"))
        .json(&json!({"title": "Kinds", "questions": deck}))
        .send()
        .await
        .expect("create event");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    let token = body["admin_token"].as_str().unwrap().to_owned();
    let id = body["event"]["id"].as_str().unwrap().to_owned();
    let admin = |path: &'static str, body: Value| {
        let (app, id, token) = (&app, id.clone(), token.clone());
        async move {
            let res = app
                .client
                .post(app.url(&format!("/api/events/{id}{path}")))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("admin");
            assert_eq!(res.status(), 200, "{path}");
        }
    };
    admin("/results", json!({"shown": true})).await;
    admin("/move", json!({"to": 0})).await;

    let audience = driver.page().await;
    audience
        .goto(&app.url(&format!("/events/{id}?transport=sse")))
        .await;
    let present = driver.page().await;
    present
        .goto(&app.url(&format!("/events/{id}/present")))
        .await;
    for page in [&audience, &present] {
        until(
            page,
            "the event live",
            "return document.querySelector('[data-conn]').dataset.state === 'live'",
        )
        .await;
    }

    // Word cloud.
    audience.wait_for("[data-kind-input] [data-entry]").await;
    audience
        .type_into("[data-kind-input] [data-entry]", "Sunny")
        .await;
    audience.press(Key::Enter).await;
    vote_notice(&audience, "Sunny").await;
    until(
        &present,
        "the word on the presenter's cloud",
        "const w = document.querySelector('[data-cloud] .word'); \
         return w !== null && w.firstChild.textContent === 'sunny';",
    )
    .await;
    present.screenshot("kinds-event-wordcloud").await;

    // Scale.
    admin("/move", json!({"step": "next"})).await;
    audience
        .wait_for("#event [data-option=\"4\"] button[name=value]")
        .await;
    audience
        .click("#event [data-option=\"4\"] button[name=value]")
        .await;
    vote_notice(&audience, "4").await;
    present.wait_text("[data-mean]", "4.0", WAIT).await;
    assert_eq!(
        present.text("[data-scale-stats] .scale-ends").await,
        "Not Very"
    );

    // Ranking, by keyboard: Blue up twice.
    admin("/move", json!({"step": "next"})).await;
    audience
        .wait_for("[data-kind-input] [data-rank-option=\"2\"]")
        .await;
    audience
        .js(
            "document.querySelector('[data-rank-option=\"2\"] [data-rank-move=up]').focus()",
            vec![],
        )
        .await;
    audience.press(Key::Enter).await;
    audience.press(Key::Enter).await;
    assert_eq!(rank_order(&audience).await, ["Blue", "Red", "Green"]);
    audience.click("[data-send-vote]").await;
    vote_notice(&audience, "Blue > Red > Green").await;
    until(
        &present,
        "the presenter's rows re-sorted by points",
        "return Array.from(document.querySelectorAll('[data-options] .result-label'), \
           function (n) { return n.textContent; }).join() === 'Blue,Red,Green'",
    )
    .await;
    assert_eq!(
        present
            .text("[data-options] [data-option=\"2\"] [data-votes]")
            .await,
        "2 points"
    );
    present.screenshot("kinds-event-ranking").await;
    audience.close().await;
    present.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_choice_poll_is_still_the_default_kind_and_votes_as_before() {
    let Some((driver, app)) = start().await else {
        return;
    };
    let voter = driver.page().await;
    voter.goto(&app.url("/")).await;
    let picked = voter
        .js(
            "return document.querySelector('input[name=kind]:checked').value",
            vec![],
        )
        .await;
    assert_eq!(picked, "choice");
    voter.type_into("#option-1", "Yes").await;
    voter.type_into("#option-2", "No").await;
    let (id, _) = create_from_form(&voter, "choice", "Still fine?").await;
    assert_eq!(app.results(&id).await["kind"], "choice");
    let watcher = driver.page().await;
    watcher
        .goto(&app.url(&format!("/polls/{id}?transport=ws")))
        .await;
    watcher.wait_live().await;
    voter.vote_for(1).await;
    vote_notice(&voter, "No").await;
    assert_eq!(voter.marked().await, [1]);
    watcher.wait_counts(&[0, 1], WAIT).await;
    voter.close().await;
    watcher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_the_create_form_makes_each_kind() {
    let Some((driver, app)) = start().await else {
        return;
    };
    let page = driver.page_without_js().await;
    // (kind, what else to fill in, what the poll must then say)
    let cases: [(&str, &str, &str); 3] = [
        (
            "wordcloud",
            "document.getElementById('max_entries').value = '3'",
            "max_entries",
        ),
        (
            "scale",
            "document.getElementById('scale_max').value = '7'; \
             document.getElementById('max_label').value = 'Sure'",
            "scale",
        ),
        (
            "ranking",
            "document.getElementById('option-1').value = 'A'; \
             document.getElementById('option-2').value = 'B'",
            "options",
        ),
    ];
    for (kind, fill, field) in cases {
        page.goto(&app.url("/")).await;
        // Every kind's fields are there without the script; the server
        // reads only the picked kind's (options typed for a word cloud
        // would be refused by the API, so none is typed here).
        page.click(&format!("input[name=kind][value={kind}]")).await;
        page.type_into("#question", "Q?").await;
        page.js(fill, vec![]).await;
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
        let results = app.results(id.as_str().unwrap()).await;
        assert_eq!(results["kind"], kind);
        match field {
            "max_entries" => assert_eq!(results["max_entries"], 3),
            "scale" => {
                assert_eq!(results["scale"]["max"], 7);
                assert_eq!(results["scale"]["max_label"], "Sure");
            }
            _ => assert_eq!(results["options"].as_array().unwrap().len(), 2),
        }
    }
    page.close().await;
}
