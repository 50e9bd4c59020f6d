//! Every page checked by axe-core (WCAG 2.1 A and AA rules: the tags
//! wcag2a, wcag2aa, wcag21a, wcag21aa) in English and 简体中文 and in the
//! light and the dark colour scheme: home/create, the poll page on each
//! transport and of each kind, the presenter, manage, lab, embed and error
//! pages, `/join`, the event audience (lobby; on a question with the Q&A
//! tab open), presenter, manage and new pages and the event embed. A test
//! fails listing every violation: rule, impact, target selectors, page,
//! language and scheme.
//!
//! axe-core is pinned: `tests/browser/axe/fetch.sh` takes axe 4.10.2 out of
//! a PyPI wheel into `target/axe/` (it is not committed); the test runs that
//! script when the file is missing and checks the file's sha256 itself.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use fantoccini::wd::TimeoutConfiguration;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::driver::{Driver, Page};
use crate::helpers::{Backend, TestApp, WAIT, spawn_app, within_for};

/// sha256 of axe-core 4.10.2's `axe.min.js` (as `fetch.sh` pins it).
const AXE_SHA256: &str = "b511cd9dec01c76f4b2ad1723b66b6db37d4c2eb4ed199076e1829d9ee7b75e3";

/// The WCAG 2.1 A and AA rule sets, no fewer.
const TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// How long one axe run may take on a loaded machine.
const AXE_BOUND: Duration = Duration::from_secs(60);

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The source of the pinned axe-core, fetched on first use.
fn axe_source() -> &'static str {
    static AXE: OnceLock<String> = OnceLock::new();
    AXE.get_or_init(|| {
        let dir = target_dir().join("axe");
        let path = dir.join("axe.min.js");
        let pinned = |bytes: &[u8]| format!("{:x}", Sha256::digest(bytes)) == AXE_SHA256;
        let ok = std::fs::read(&path).is_ok_and(|b| pinned(&b));
        if !ok {
            let script =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/axe/fetch.sh");
            let status = std::process::Command::new(&script)
                .arg(&dir)
                .status()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            assert!(
                status.success(),
                "{} failed ({status}): it needs python3 with pip and PyPI",
                script.display()
            );
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            pinned(&bytes),
            "{} is not the pinned axe-core 4.10.2",
            path.display()
        );
        String::from_utf8(bytes).expect("axe.min.js is UTF-8")
    })
}

/// One page to audit: a name for the report, its path, and what a
/// visitor does on it before the audit (to reach a state: a notice, an
/// error, a tab).
struct Audit {
    name: String,
    path: String,
    steps: Vec<Step>,
}

enum Step {
    /// Clicks the element matching this selector.
    Click(&'static str),
    /// Types into the field matching this selector.
    Type(&'static str, &'static str),
    /// Waits for an element matching this selector.
    Wait(&'static str),
}

fn audit(name: impl Into<String>, path: impl Into<String>) -> Audit {
    Audit {
        name: name.into(),
        path: path.into(),
        steps: Vec::new(),
    }
}

impl Audit {
    fn then(mut self, steps: impl IntoIterator<Item = Step>) -> Self {
        self.steps.extend(steps);
        self
    }
}

/// Waits until the page has loaded and, where it has a connection
/// indicator, has connected (or is idle, as the lab is).
async fn settle(page: &Page, what: &str) {
    page.wait_until(
        &format!("{what} to be ready"),
        WAIT,
        "if (document.readyState !== 'complete') return false; \
         const c = document.querySelector('[data-conn]'); \
         return c === null || c.dataset.state !== 'connecting';",
        vec![],
    )
    .await;
    // Live renders settle within a frame or two: wait for two frames.
    page.js(
        "window.__frames = 0; requestAnimationFrame(function () { \
           requestAnimationFrame(function () { window.__frames = 2; }); }); return true;",
        vec![],
    )
    .await;
    page.wait_until("two frames", WAIT, "return window.__frames === 2", vec![])
        .await;
}

/// Runs axe on the page; returns its violations.
async fn run_axe(page: &Page) -> Vec<Value> {
    let injected = page
        .js("return typeof window.axe !== 'undefined'", vec![])
        .await;
    if injected != json!(true) {
        // Evaluated by the driver, so the page's CSP does not apply.
        page.js(&format!("{};\nreturn true;", axe_source()), vec![])
            .await;
    }
    let script = "const done = arguments[arguments.length - 1]; \
        axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']}) \
          .then(r => done(JSON.stringify(r.violations.map(v => ({ \
             id: v.id, impact: v.impact, help: v.help, \
             nodes: v.nodes.map(n => ({target: n.target, summary: n.failureSummary})) }))))) \
          .catch(e => done('error: ' + e));";
    let answer = within_for(
        AXE_BOUND,
        "axe to run",
        page.client.execute_async(script, vec![json!(TAGS)]),
    )
    .await
    .unwrap_or_else(|e| panic!("axe.run: {e}"));
    let text = answer.as_str().expect("axe answers text");
    assert!(!text.starts_with("error: "), "axe.run failed: {text}");
    serde_json::from_str(text).expect("axe violations")
}

/// Audits `audits` in `lang` under `scheme` on `app`; appends every
/// violation to `report`.
async fn audit_all(
    driver: &Driver,
    app: &TestApp,
    audits: &[Audit],
    lang: &str,
    scheme: &str,
    report: &mut String,
) -> usize {
    let page = driver.page_in(lang).await;
    page.color_scheme(scheme).await;
    within_for(
        WAIT,
        "script timeout",
        page.client
            .update_timeouts(TimeoutConfiguration::new(Some(AXE_BOUND), None, None)),
    )
    .await
    .expect("set the script timeout");
    let mut count = 0;
    for a in audits {
        page.goto(&app.url(&a.path)).await;
        settle(&page, &a.name).await;
        let html_lang = page
            .js("return document.documentElement.lang", vec![])
            .await;
        assert_eq!(html_lang, json!(lang), "{} in {lang}", a.name);
        for step in &a.steps {
            match *step {
                Step::Click(css) => page.click(css).await,
                Step::Type(css, text) => page.type_into(css, text).await,
                Step::Wait(css) => page.wait_for(css).await,
            }
        }
        if !a.steps.is_empty() {
            settle(&page, &a.name).await;
        }
        let matches = page
            .js(
                "return matchMedia('(prefers-color-scheme: ' + arguments[0] + ')').matches",
                vec![json!(scheme)],
            )
            .await;
        assert_eq!(matches, json!(true), "{scheme} scheme emulated");
        for v in run_axe(&page).await {
            count += 1;
            let _ = writeln!(
                report,
                "- {} [{}] on {} ({}, {lang}, {scheme}): {}",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                a.name,
                a.path,
                v["help"].as_str().unwrap_or(""),
            );
            for n in v["nodes"].as_array().into_iter().flatten() {
                let summary = n["summary"].as_str().unwrap_or("").replace('\n', " ");
                let _ = writeln!(report, "    {} — {summary}", n["target"]);
            }
        }
    }
    page.close().await;
    count
}

/// The harness is not vacuous: axe, as injected and run here, reports a
/// planted image without alt text and a pale text in each scheme.
async fn assert_axe_sees_planted_violations(driver: &Driver, app: &TestApp) {
    let page = driver.page().await;
    for scheme in ["light", "dark"] {
        page.color_scheme(scheme).await;
        page.goto(&app.url("/")).await;
        settle(&page, "home").await;
        page.js(
            "const img = document.createElement('img'); img.src = '/static/icon.svg'; \
             const p = document.createElement('p'); p.textContent = 'pale'; \
             p.style.color = '#bbbbbb'; p.style.background = '#ffffff'; \
             document.querySelector('main').append(img, p); return true;",
            vec![],
        )
        .await;
        let ids: Vec<String> = run_axe(&page)
            .await
            .iter()
            .filter_map(|v| v["id"].as_str().map(str::to_owned))
            .collect();
        for rule in ["image-alt", "color-contrast"] {
            assert!(
                ids.iter().any(|id| id == rule),
                "{scheme}: {rule} not reported: {ids:?}"
            );
        }
    }
    page.close().await;
}

/// Audits `audits` in both languages and both schemes; fails listing
/// every violation.
async fn assert_accessible(driver: &Driver, app: &TestApp, audits: &[Audit]) {
    let mut report = String::new();
    let mut count = 0;
    for lang in ["en", "zh-CN"] {
        for scheme in ["light", "dark"] {
            count += audit_all(driver, app, audits, lang, scheme, &mut report).await;
        }
    }
    assert!(count == 0, "{count} axe violations:\n{report}");
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> Value {
    let mut req = app.client.post(app.url(path)).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!((200..300).contains(&status), "{path}: {status} {body}");
    body
}

/// Creates an open, unlimited poll of `body` (the kind's fields) with a
/// few votes; returns its id and admin token.
async fn poll_with_votes(app: &TestApp, mut body: Value, votes: &[Value]) -> (String, String) {
    body["vote_limit"] = json!("unlimited");
    let created = post(app, "/api/polls", None, body).await;
    let id = created["poll"]["id"].as_str().expect("id").to_owned();
    let token = created["admin_token"].as_str().expect("token").to_owned();
    for v in votes {
        post(app, &format!("/api/polls/{id}/votes"), None, v.clone()).await;
    }
    (id, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_poll_page_passes_axe_in_both_languages_and_schemes() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    axe_source();
    let app = spawn_app(&Backend::Memory).await;
    let (choice, token) = poll_with_votes(
        &app,
        json!({"question": "Tea or coffee?", "options": ["Tea", "Coffee", "Water"]}),
        &[
            json!({"option": 0}),
            json!({"option": 1}),
            json!({"option": 0}),
        ],
    )
    .await;
    let (cloud, _) = poll_with_votes(
        &app,
        json!({"question": "One word?", "kind": "wordcloud"}),
        &[json!({"entries": ["redis"]}), json!({"entries": ["rust"]})],
    )
    .await;
    let (scale, _) = poll_with_votes(
        &app,
        json!({"question": "How sure?", "kind": "scale",
               "scale": {"min": 1, "max": 5, "min_label": "Not", "max_label": "Very"}}),
        &[json!({"value": 4}), json!({"value": 2})],
    )
    .await;
    let (ranking, _) = poll_with_votes(
        &app,
        json!({"question": "Order these", "kind": "ranking", "options": ["Red", "Green", "Blue"]}),
        &[json!({"ranking": [2, 0, 1]})],
    )
    .await;

    let mut audits = vec![
        audit("home (create)", "/"),
        audit("created", "/").then([
            Step::Type("#question", "Lunch?"),
            Step::Type("#option-1", "Soup"),
            Step::Type("#option-2", "Salad"),
            Step::Click(".create-form .actions button.primary"),
            Step::Wait("#created-title"),
        ]),
        audit("choice poll (voted)", format!("/polls/{choice}")).then([
            Step::Click("[data-option='0'] button.vote"),
            Step::Wait("[data-notices] .notice"),
        ]),
    ];
    for t in ["ws", "sse", "longpoll", "poll"] {
        audits.push(audit(
            format!("choice poll ({t})"),
            format!("/polls/{choice}?transport={t}"),
        ));
    }
    for (kind, id) in [
        ("wordcloud", &cloud),
        ("scale", &scale),
        ("ranking", &ranking),
    ] {
        audits.push(audit(format!("{kind} poll"), format!("/polls/{id}")));
    }
    for (kind, id) in [
        ("choice", &choice),
        ("wordcloud", &cloud),
        ("scale", &scale),
        ("ranking", &ranking),
    ] {
        audits.push(audit(
            format!("{kind} presenter"),
            format!("/polls/{id}/present"),
        ));
    }
    audits.push(audit(
        "manage",
        format!("/polls/{choice}/manage#token={token}"),
    ));
    audits.push(audit("lab", format!("/polls/{choice}/lab")));
    audits.push(audit("poll embed", format!("/polls/{choice}/embed")));
    audits.push(audit("error (unknown poll)", "/polls/no-such-poll"));

    assert_axe_sees_planted_violations(&driver, &app).await;

    assert_accessible(&driver, &app, &audits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_page_passes_axe_in_both_languages_and_schemes() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    axe_source();
    let app = spawn_app(&Backend::Memory).await;
    let deck = json!([
        {"question": "Coffee?", "options": ["Yes", "No"]},
        {"question": "One word?", "kind": "wordcloud"},
    ]);
    let created = post(
        &app,
        "/api/events",
        None,
        json!({"title": "A talk", "questions": deck}),
    )
    .await;
    let lobby = created["event"]["id"].as_str().expect("id").to_owned();
    let created = post(
        &app,
        "/api/events",
        None,
        json!({"title": "Another talk", "questions": deck}),
    )
    .await;
    let live = created["event"]["id"].as_str().expect("id").to_owned();
    let token = created["admin_token"].as_str().expect("token").to_owned();
    let admin = |path: &str| format!("/api/events/{live}{path}");
    post(
        &app,
        &admin("/results"),
        Some(&token),
        json!({"shown": true}),
    )
    .await;
    post(&app, &admin("/move"), Some(&token), json!({"to": 0})).await;
    post(
        &app,
        &admin("/qa"),
        None,
        json!({"text": "Why Redis?", "name": "Ada"}),
    )
    .await;

    let mut audits = vec![
        audit("join", "/join"),
        audit("new event", "/events/new"),
        audit("event audience (lobby)", format!("/events/{lobby}")),
        audit("event audience (question)", format!("/events/{live}")),
        audit("event audience (Q&A tab)", format!("/events/{live}")).then([
            Step::Click("#tab-qa"),
            Step::Wait("#panel-qa:not([hidden]) [data-qa-board] li"),
        ]),
        audit(
            "event audience (Q&A, empty question)",
            format!("/events/{live}"),
        )
        .then([
            Step::Click("#tab-qa"),
            Step::Click("[data-qa-ask]"),
            Step::Wait("#qa-text-error:not([hidden])"),
        ]),
        audit("event audience (voted)", format!("/events/{live}")).then([
            Step::Click("#tab-poll"),
            Step::Wait("[data-options] button.vote"),
            Step::Click("[data-options] button.vote"),
            Step::Wait("[data-options] .result.chosen"),
        ]),
        audit("event presenter", format!("/events/{live}/present")),
        audit(
            "event presenter (lobby)",
            format!("/events/{lobby}/present"),
        ),
        audit(
            "event manage",
            format!("/events/{live}/manage#token={token}"),
        ),
        audit("event embed", format!("/events/{live}/embed")),
        audit("error (unknown event)", "/events/no-such-event"),
    ];
    audits.push(audit("join (a bad code)", "/join?code=12"));
    assert_accessible(&driver, &app, &audits).await;
}

/// Every element (and its `::before`/`::after`) that moves: a transition
/// longer than 0s or an animation, as `selector: what`.
const MOVING: &str = "const out = []; \
    document.querySelectorAll('*').forEach(function (e) { \
      [null, '::before', '::after'].forEach(function (pseudo) { \
        const cs = getComputedStyle(e, pseudo); \
        const t = cs.transitionDuration.split(',').some(d => parseFloat(d) > 0); \
        const a = cs.animationName !== 'none' && cs.animationName !== ''; \
        if (t || a) out.push(e.tagName.toLowerCase() + '.' + e.className + (pseudo || '') + ': ' + \
          (t ? 'transition ' + cs.transitionDuration : 'animation ' + cs.animationName)); \
      }); \
    }); \
    return out;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduced_motion_stops_the_bar_transitions_and_the_pulse() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let (id, _) = poll_with_votes(
        &app,
        json!({"question": "Tea or coffee?", "options": ["Tea", "Coffee"]}),
        &[json!({"option": 0})],
    )
    .await;
    let page = driver.page().await;
    // Without the preference, the bars glide (the test sees motion).
    page.emulate_media(&[("prefers-reduced-motion", "no-preference")])
        .await;
    page.goto(&app.url(&format!("/polls/{id}"))).await;
    settle(&page, "the poll page").await;
    let moving = page.js(MOVING, vec![]).await;
    let moving: Vec<String> = serde_json::from_value(moving).expect("list");
    assert!(
        moving.iter().any(|m| m.contains("bar-fill")),
        "the bars move without the preference: {moving:?}"
    );
    // With it, nothing moves, in either scheme, the connecting pulse included.
    for scheme in ["light", "dark"] {
        page.emulate_media(&[
            ("prefers-reduced-motion", "reduce"),
            ("prefers-color-scheme", scheme),
        ])
        .await;
        page.js(
            "document.querySelector('[data-conn]').dataset.state = 'connecting'; return true;",
            vec![],
        )
        .await;
        let moving = page.js(MOVING, vec![]).await;
        assert_eq!(moving, json!([]), "{scheme}: still moving under reduce");
    }
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_results_are_announced_at_a_calm_pace_under_20_votes_a_second() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let (id, _) = poll_with_votes(
        &app,
        json!({"question": "Tea or coffee?", "options": ["Tea", "Coffee"]}),
        &[],
    )
    .await;
    let page = driver.page().await;
    page.goto(&app.url(&format!("/polls/{id}"))).await;
    settle(&page, "the poll page").await;
    page.js(
        "const r = document.querySelector('[data-live-summary][aria-live=polite]'); \
         window.__changes = 0; \
         new MutationObserver(function (records) { window.__changes += records.length; }) \
           .observe(r, {childList: true, characterData: true, subtree: true}); \
         return true;",
        vec![],
    )
    .await;
    // 20 votes a second for 6 seconds, through the API.
    let votes = 120;
    let mut every = tokio::time::interval(Duration::from_millis(50));
    for i in 0..votes {
        every.tick().await;
        post(
            &app,
            &format!("/api/polls/{id}/votes"),
            None,
            json!({"option": i % 2}),
        )
        .await;
    }
    // The last change is said too, within one announcement's pause.
    page.wait_until(
        "the final total to be announced",
        Duration::from_secs(8),
        "return document.querySelector('[data-live-summary]').textContent.startsWith('120 ')",
        vec![],
    )
    .await;
    let changes = page.js("return window.__changes", vec![]).await;
    let changes = changes.as_u64().expect("count");
    assert!(
        (1..=4).contains(&changes),
        "{changes} live-region changes for {votes} votes in 6 s"
    );
    page.close().await;
}

/// The event audience page announces its question's results as calmly as
/// a poll page: under 20 votes a second, a few announcements, the last one
/// the final total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_question_is_announced_at_a_calm_pace_too() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let created = post(
        &app,
        "/api/events",
        None,
        json!({"title": "Calm", "questions": [{"question": "Tea or coffee?", "options": ["Tea", "Coffee"], "vote_limit": "unlimited"}]}),
    )
    .await;
    let id = created["event"]["id"].as_str().expect("id").to_owned();
    let token = created["admin_token"].as_str().expect("token").to_owned();
    let moved = post(
        &app,
        &format!("/api/events/{id}/move"),
        Some(&token),
        json!({"to": 0}),
    )
    .await;
    let question = moved["now"]["id"].as_str().expect("question").to_owned();
    let page = driver.page().await;
    page.goto(&app.url(&format!("/events/{id}"))).await;
    settle(&page, "the audience page").await;
    page.js(
        "const r = document.querySelector('[data-live-summary][aria-live=polite]'); \
         window.__changes = 0; \
         new MutationObserver(function (records) { window.__changes += records.length; }) \
           .observe(r, {childList: true, characterData: true, subtree: true}); \
         return true;",
        vec![],
    )
    .await;
    let votes = 120;
    let mut every = tokio::time::interval(Duration::from_millis(50));
    for i in 0..votes {
        every.tick().await;
        post(
            &app,
            &format!("/api/polls/{question}/votes"),
            None,
            json!({"option": i % 2}),
        )
        .await;
    }
    page.wait_until(
        "the final total to be announced",
        Duration::from_secs(8),
        "return document.querySelector('[data-live-summary]').textContent.startsWith('120 ')",
        vec![],
    )
    .await;
    let changes = page
        .js("return window.__changes", vec![])
        .await
        .as_u64()
        .expect("count");
    assert!(
        (1..=4).contains(&changes),
        "{changes} live-region changes for {votes} votes in 6 s"
    );
    page.close().await;
}
