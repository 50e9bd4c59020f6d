//! Two browsers on two instances that share one Redis: a click in one page
//! moves the bars and numbers in the other, over every transport.

use std::time::Duration;

use crate::driver::{Driver, Page};
use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until_ready};

/// How soon a vote must show on the other page over a pushing transport.
const PUSH_BOUND: Duration = Duration::from_secs(1);

/// Short polling asks every 2 s (`POLL_EVERY_MS` in app.js), plus slack.
const POLL_BOUND: Duration = Duration::from_secs(3);

/// An instance named `name` (shown as "Served by") on `backend`.
pub async fn instance(backend: &Backend, name: &str) -> TestApp {
    let app = spawn_app_with(backend, |c| c.instance_id = Some(name.to_owned())).await;
    wait_until_ready(&app).await;
    app
}

/// Opens `/polls/{id}?transport=…` on `app` and waits until it is live
/// over that transport.
pub async fn open_poll(page: &Page, app: &TestApp, id: &str, transport: &str) {
    page.goto(&app.url(&format!("/polls/{id}?transport={transport}")))
        .await;
    page.wait_live().await;
    assert_eq!(
        page.text("[data-transport-used]").await,
        transport,
        "the page follows over the transport it was asked for"
    );
}

/// Clicks the vote button of `option` in `from` and waits until `to` shows
/// `counts`; returns the time from the click to the change on screen, as
/// the two pages' own clocks measured it (so without WebDriver's overhead),
/// asserting it is within `bound`.
async fn click_to_bars(
    from: &Page,
    to: &Page,
    option: u32,
    counts: &[u64],
    bound: Duration,
) -> Duration {
    to.watch_for_votes(option, counts[option as usize]).await;
    from.watch_for_click().await;
    from.vote_for(option).await;
    // The outer wait includes WebDriver's round trips; the measure does not.
    to.wait_counts(counts, bound + Duration::from_secs(2)).await;
    let millis = to.seen_at().await - from.clicked_at().await;
    let latency = Duration::from_secs_f64(millis.max(0.0) / 1000.0);
    assert!(
        latency <= bound,
        "the other page showed the vote after {latency:?}, not within {bound:?}"
    );
    latency
}

async fn votes_cross_instances(transport: &str, bound: Duration) {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let backend = Backend::redis().await;
    let (a, b) = (instance(&backend, "a").await, instance(&backend, "b").await);
    let (poll, _) = a.create_poll(&["Red", "Green", "Blue"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();

    let (one, two) = (driver.page().await, driver.page().await);
    open_poll(&one, &a, id, transport).await;
    open_poll(&two, &b, id, transport).await;
    assert_eq!(one.text("[data-instance]").await, "a");
    assert_eq!(two.text("[data-instance]").await, "b");
    two.assert_shows(&[0, 0, 0], 0).await;

    let first = click_to_bars(&one, &two, 1, &[0, 1, 0], bound).await;
    two.assert_shows(&[0, 1, 0], 1).await;
    one.wait_counts(&[0, 1, 0], bound).await;
    assert_eq!(one.marked().await, [1], "the voter's choice is marked");
    assert!(
        two.marked().await.is_empty(),
        "the other visitor chose nothing"
    );

    let second = click_to_bars(&two, &one, 2, &[0, 1, 1], bound).await;
    one.assert_shows(&[0, 1, 1], 2).await;
    assert_eq!(two.marked().await, [2]);
    eprintln!("{transport}: click on one instance to bars on the other: {first:?}, {second:?}");

    one.close().await;
    two.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_updates_the_other_instance_over_websocket() {
    votes_cross_instances("ws", PUSH_BOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_updates_the_other_instance_over_sse() {
    votes_cross_instances("sse", PUSH_BOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_updates_the_other_instance_over_long_polling() {
    votes_cross_instances("longpoll", PUSH_BOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_updates_the_other_instance_over_short_polling() {
    votes_cross_instances("poll", POLL_BOUND).await;
}
