//! The transport lab in a real browser: on two instances sharing one Redis
//! behind a round-robin load balancer it follows a poll over all four
//! transports while casting votes, and what it measures is what the
//! transports really are — WebSocket and SSE live and nearly free of
//! requests, long polling live at a request per update, short polling late
//! — and agrees with the instances' own `/api/stats`. It also works by
//! keyboard, fits a phone and a desktop, and says why it cannot vote on a
//! poll that allows one vote per person.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use fantoccini::Locator;
use fantoccini::key::Key;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::driver::{Driver, Page, screenshot_dir};
use crate::helpers::{Backend, TestApp, WAIT, spawn_app_with, within};
use crate::lb::Balancer;
use crate::live::instance;
use crate::look::{DESKTOP, PHONE, at, check_layout, focus_ring};

/// The committed screenshot the README shows.
const README_SHOT: &str = "docs/screenshots/lab.png";

const TRANSPORTS: [&str; 4] = ["ws", "sse", "longpoll", "poll"];

/// One panel's figures, read from the hooks' `data-value`s.
#[derive(Debug, Deserialize)]
struct Panel {
    updates: f64,
    requests: f64,
    bytes: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    state: String,
    server: String,
}

const READ_PANELS: &str = r#"
const out = {};
document.querySelectorAll('[data-transport]').forEach(function (p) {
  const m = {};
  p.querySelectorAll('[data-metric]').forEach(function (e) {
    m[e.dataset.metric] = e.dataset.value === '' || e.dataset.value === undefined ? null : Number(e.dataset.value);
  });
  m.state = p.querySelector('[data-conn]').dataset.state;
  m.server = p.querySelector('[data-server]').textContent;
  out[p.dataset.transport] = m;
});
return out;
"#;

async fn panels(page: &Page) -> HashMap<String, Panel> {
    serde_json::from_value(page.js(READ_PANELS, vec![]).await).expect("panels")
}

/// The lab's own vote counters: sent, accepted, failed.
async fn votes(page: &Page) -> (u64, u64, u64) {
    let v = page
        .js(
            "const n = function (k) { return Number(document.querySelector('[data-lab-votes=' + k + ']').textContent.replace(/,/g, '')); }; \
             return [n('sent'), n('accepted'), n('failed')];",
            vec![],
        )
        .await;
    let n = |i: usize| v[i].as_u64().expect("a count");
    (n(0), n(1), n(2))
}

async fn lab_state(page: &Page) -> String {
    page.js(
        "return document.getElementById('lab').dataset.labState",
        vec![],
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

async fn wait_state(page: &Page, state: &str, bound: Duration) {
    page.wait_until(
        &format!("the lab to be {state}"),
        bound,
        "return document.getElementById('lab').dataset.labState === arguments[0]",
        vec![json!(state)],
    )
    .await;
}

/// Waits until the lab has sent `n` votes (its own count).
async fn wait_votes_sent(page: &Page, n: u64, bound: Duration) {
    page.wait_until(
        &format!("{n} votes sent"),
        bound,
        "return Number(document.querySelector('[data-lab-votes=sent]').textContent.replace(/,/g, '')) >= arguments[0]",
        vec![json!(n)],
    )
    .await;
}

/// Waits until every panel has received at least one update.
async fn wait_every_panel_updated(page: &Page, bound: Duration) {
    page.wait_until(
        "every panel to show an update",
        bound,
        "return Array.from(document.querySelectorAll('[data-transport] [data-metric=updates]')).every(function (e) { return Number(e.dataset.value) > 0; })",
        vec![],
    )
    .await;
}

/// Types `rate` into the votes-per-second field, as a person would.
async fn set_rate(page: &Page, rate: &str) {
    let field = within(
        "find the rate field",
        page.client.find(Locator::Css("[data-lab-rate]")),
    )
    .await
    .expect("rate field");
    within("clear the rate field", field.clear())
        .await
        .expect("clear");
    within("type the rate", field.send_keys(rate))
        .await
        .expect("type");
}

async fn stats(app: &TestApp) -> Value {
    let res = within(
        "GET /api/stats",
        app.client.get(app.url("/api/stats")).send(),
    )
    .await
    .expect("stats request");
    assert_eq!(res.status(), 200);
    res.json().await.expect("stats JSON")
}

/// What instances counted between two readings, summed over them.
fn summed(before: &[Value], after: &[Value], pick: impl Fn(&Value) -> u64) -> u64 {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| pick(a) - pick(b))
        .sum()
}

/// Waits until no instance counts an open follower of `transports` (the
/// page closed them); fails with the last counts.
async fn wait_no_followers(apps: &[&TestApp], transports: &[&str]) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut counts = Vec::new();
        for app in apps {
            counts.push(stats(app).await);
        }
        let open: u64 = counts
            .iter()
            .flat_map(|s| {
                transports
                    .iter()
                    .map(move |t| s["transports"][t]["followers"].as_u64().unwrap())
            })
            .sum();
        if open == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "followers still counted open after {WAIT:?}: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_on_a_redis_pair_shows_each_transport_as_it_is_and_agrees_with_the_servers() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let backend = Backend::redis().await;
    let (a, b) = (instance(&backend, "a").await, instance(&backend, "b").await);
    let lb = Balancer::start_round_robin(&a, &b).await;
    let (poll, _) = a.create_poll(&["Red", "Green", "Blue"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let before = [stats(&a).await, stats(&b).await];

    let page = driver.page().await;
    page.goto(&lb.url(&format!("/polls/{id}/lab"))).await;
    assert_eq!(lab_state(&page).await, "idle");
    set_rate(&page, "10").await;
    page.click("[data-lab-start]").await;
    wait_state(&page, "running", WAIT).await;
    // 10 votes a second for 5 seconds, by the page's own count.
    wait_votes_sent(&page, 50, Duration::from_secs(15)).await;
    page.click("[data-lab-stop]").await;
    wait_state(&page, "stopped", Duration::from_secs(15)).await;
    page.screenshot("lab-redis-pair.png").await;

    let p = panels(&page).await;
    let (sent, accepted, failed) = votes(&page).await;
    eprintln!("lab on a Redis pair: votes {sent} sent, {accepted} accepted, {failed} failed");
    for t in TRANSPORTS {
        let m = &p[t];
        eprintln!(
            "  {t}: {} updates, {} requests, {} bytes, p50 {:?} ms, p99 {:?} ms",
            m.updates, m.requests, m.bytes, m.p50, m.p99
        );
        assert!(m.updates > 0.0, "{t} received no update: {m:?}");
        assert!(m.bytes > 0.0, "{t} counted no bytes: {m:?}");
        assert!(
            m.p50.is_some() && m.p99.is_some(),
            "{t} has latencies: {m:?}"
        );
        assert!(m.p50 <= m.p99, "{t}: p50 above p99: {m:?}");
        assert_eq!(m.state, "ended", "{t} closed on stop");
        assert!(
            m.server.starts_with("Server ("),
            "{t} shows the server's figures: {m:?}"
        );
    }
    // The stop click reaches the page a WebDriver round trip or two after
    // the 50th vote.
    assert!((50..=60).contains(&sent), "about 10/s for 5 s: {sent}");
    assert_eq!((accepted, failed), (sent, 0), "every vote accepted");

    // Pushes are live; short polling waits for its next question.
    let (ws, sse, lp, short) = (&p["ws"], &p["sse"], &p["longpoll"], &p["poll"]);
    assert!(
        ws.p50 < short.p50,
        "WebSocket p50 {:?} vs short polling {:?}",
        ws.p50,
        short.p50
    );
    assert!(
        sse.p50 < short.p50,
        "SSE p50 {:?} vs short polling {:?}",
        sse.p50,
        short.p50
    );
    // Requests per update: about none for the streams, at least one for
    // long polling — and each long-poll update carries a response's headers.
    for m in [ws, sse] {
        assert!(
            m.updates >= 40.0,
            "a stream sees (nearly) every vote: {m:?}"
        );
        assert!(
            m.requests / m.updates < 0.1,
            "requests per update ≈ 0: {m:?}"
        );
    }
    assert!(
        lp.requests >= lp.updates,
        "long polling: a request per update: {lp:?}"
    );
    assert!(
        lp.bytes / lp.updates > ws.bytes / ws.updates,
        "a long-poll update costs more bytes than a WebSocket frame"
    );
    assert!(
        short.requests > short.updates,
        "short polling asks more often than things change"
    );

    // The instances' own counts agree, within what the page could miss (an
    // answer in flight when it closed its followers).
    let ab = [&a, &b];
    wait_no_followers(&ab, &TRANSPORTS).await;
    let after = [stats(&a).await, stats(&b).await];
    let votes_by = |i: usize| {
        after[i]["votes_accepted"].as_u64().unwrap() - before[i]["votes_accepted"].as_u64().unwrap()
    };
    assert_eq!(votes_by(0) + votes_by(1), accepted, "votes accepted");
    assert!(
        votes_by(0) > 0 && votes_by(1) > 0,
        "both instances took votes: {} and {}",
        votes_by(0),
        votes_by(1)
    );
    for t in ["ws", "sse", "longpoll", "poll"] {
        let delivered = summed(&before, &after, |s| {
            s["transports"][t]["deliveries"].as_u64().unwrap()
        });
        let seen = p[t].updates as u64;
        eprintln!("  {t}: servers delivered {delivered}, the page received {seen}");
        assert!(
            (seen..=seen + 2).contains(&delivered),
            "{t}: servers delivered {delivered}, the page received {seen}"
        );
    }
    let asked = summed(&before, &after, |s| {
        let poll = &s["transports"]["poll"];
        poll["deliveries"].as_u64().unwrap() + poll["not_modified"].as_u64().unwrap()
    });
    let requests = short.requests as u64;
    assert!(
        (requests.saturating_sub(1)..=requests).contains(&asked),
        "short polls: servers answered {asked}, the page sent {requests}"
    );
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_runs_by_keyboard_fits_phone_and_desktop_and_is_photographed() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app_with(&Backend::Memory, |c| c.instance_id = Some("app-1".into())).await;
    let page = driver.page().await;
    at(&page, &DESKTOP).await;
    page.goto(&app.url("/polls/lpl/lab")).await;
    check_layout(&page, "lab, desktop, idle").await;

    // Tab to the rate field (every stop with a visible ring), raise it by
    // one, and Enter starts.
    let mut ring = focus_ring(&page).await;
    for _ in 0..30 {
        page.press(Key::Tab).await;
        ring = focus_ring(&page).await;
        assert_eq!(ring["visible"], true, "focus is visible: {ring}");
        let on_rate = page
            .js(
                "return document.activeElement.matches('[data-lab-rate]')",
                vec![],
            )
            .await;
        if on_rate == json!(true) {
            break;
        }
    }
    assert_eq!(ring["tag"], "input", "Tab reaches the rate field: {ring}");
    page.press(Key::Up).await;
    let rate = page
        .js(
            "return document.querySelector('[data-lab-rate]').value",
            vec![],
        )
        .await;
    assert_eq!(rate, json!("11"), "arrow up raises the rate");
    page.press(Key::Enter).await;
    wait_state(&page, "running", WAIT).await;
    let on_stop = page
        .js(
            "return document.activeElement.matches('[data-lab-stop]')",
            vec![],
        )
        .await;
    assert_eq!(on_stop, json!(true), "focus moves to Stop once running");
    wait_votes_sent(&page, 40, Duration::from_secs(15)).await;
    wait_every_panel_updated(&page, Duration::from_secs(5)).await;
    page.press(Key::Enter).await;
    wait_state(&page, "stopped", Duration::from_secs(15)).await;
    let on_start = page
        .js(
            "return document.activeElement.matches('[data-lab-start]')",
            vec![],
        )
        .await;
    assert_eq!(on_start, json!(true), "focus returns to Start");
    let p = panels(&page).await;
    for t in TRANSPORTS {
        assert!(p[t].updates > 0.0 && p[t].p50.is_some(), "{t}: {:?}", p[t]);
    }

    check_layout(&page, "lab, desktop, after a run").await;
    page.move_pointer_away().await;
    let desktop = page.screenshot("lab-desktop.png").await;
    // The README's picture: the whole lab at 1280 px wide.
    page.viewport(1280, 1640, 1.0, false).await;
    page.js("window.scrollTo(0, 0)", vec![]).await;
    let full = page.screenshot("lab-desktop-full.png").await;

    at(&page, &PHONE).await;
    page.goto(&app.url("/polls/lpl/lab")).await;
    page.click("[data-lab-start]").await;
    wait_every_panel_updated(&page, Duration::from_secs(10)).await;
    page.click("[data-lab-stop]").await;
    wait_state(&page, "stopped", Duration::from_secs(15)).await;
    check_layout(&page, &format!("lab, {}", PHONE.name)).await;
    let phone = page.screenshot("lab-phone.png").await;
    eprintln!("screenshots: {desktop:?} {full:?} {phone:?}");
    if std::env::var("TALLY_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join(README_SHOT);
        std::fs::create_dir_all(readme.parent().unwrap()).expect("docs/screenshots");
        std::fs::copy(screenshot_dir().join("lab-desktop-full.png"), &readme)
            .expect("copy the README screenshot");
    }
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_one_vote_poll_the_lab_says_why_it_cannot_vote_and_still_follows() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app_with(&Backend::Memory, |_| {}).await;
    let (poll, _) = app.create_poll(&["Yes", "No"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    let page = driver.page().await;
    page.goto(&app.url(&format!("/polls/{id}/lab"))).await;
    let disabled = page
        .js(
            "return document.querySelector('[data-lab-rate]').disabled",
            vec![],
        )
        .await;
    assert_eq!(disabled, json!(true), "no rate to choose");
    let why = page.text("#lab-why").await;
    assert!(why.contains("one vote per person"), "{why}");
    assert!(why.contains("Try the lab on the demo poll"), "{why}");

    page.click("[data-lab-start]").await;
    wait_state(&page, "running", WAIT).await;
    page.wait_until(
        "every follower to be live",
        WAIT,
        "return Array.from(document.querySelectorAll('[data-transport] [data-conn]')).every(function (e) { return e.dataset.state === 'live'; })",
        vec![],
    )
    .await;
    // Someone else votes: every transport shows it (short polling within
    // its 2 s), though the lab cast nothing and so times nothing.
    assert_eq!(app.vote(id, 1, None).await.0, 200);
    page.wait_until(
        "the other voter's vote on every panel",
        Duration::from_secs(5),
        "return Array.from(document.querySelectorAll('[data-transport]')).every(function (p) { \
           const u = Number(p.querySelector('[data-metric=updates]').dataset.value); \
           return p.dataset.transport === 'ws' || p.dataset.transport === 'sse' ? u >= 2 : u >= 1; })",
        vec![],
    )
    .await;
    page.click("[data-lab-stop]").await;
    wait_state(&page, "stopped", Duration::from_secs(10)).await;
    assert_eq!(votes(&page).await, (0, 0, 0), "the lab cast no vote");
    let p = panels(&page).await;
    for t in TRANSPORTS {
        assert_eq!(
            p[t].p50, None,
            "{t}: no latency without the lab's own votes"
        );
    }
    page.close().await;
}

/// The lab votes in the poll's own kind: on a word cloud, a scale and a
/// ranking its votes are accepted and every transport follows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_votes_on_every_kind() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app_with(&Backend::Memory, |_| {}).await;
    for body in [
        json!({"question": "One word?", "kind": "wordcloud", "vote_limit": "unlimited"}),
        json!({"question": "How sure?", "kind": "scale", "scale": {"min": 1, "max": 5}, "vote_limit": "unlimited"}),
        json!({"question": "Order?", "kind": "ranking", "options": ["a", "b", "c"], "vote_limit": "unlimited"}),
    ] {
        let res = app
            .client
            .post(app.url("/api/polls"))
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(res.status(), 201);
        let poll: serde_json::Value = res.json().await.expect("json");
        let id = poll["poll"]["id"].as_str().expect("id").to_owned();
        let page = driver.page().await;
        page.goto(&app.url(&format!("/polls/{id}/lab"))).await;
        page.click("[data-lab-start]").await;
        wait_state(&page, "running", WAIT).await;
        let total = page
            .wait_until(
                "the lab's votes to be counted",
                Duration::from_secs(8),
                "return fetch(location.pathname.replace('/lab', '').replace('/polls/', '/api/polls/'))\
                   .then(function (r) { return r.json(); }).then(function (r) { return r.total >= 3 ? r.total : 0; })",
                vec![],
            )
            .await;
        assert!(total.as_u64().unwrap_or(0) >= 3, "{body}: {total}");
        page.close().await;
    }
}
