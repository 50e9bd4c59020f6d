//! The instance behind an open page stops: through the load balancer the
//! page reconnects to the other instance, says so while it does, and ends
//! on the right numbers after more votes.

use serde_json::json;

use crate::driver::Driver;
use crate::helpers::{Backend, WAIT, counts};
use crate::lb::Balancer;
use crate::live::instance;

/// `reconnects`: whether the page must show `reconnecting` on the way (a
/// stream that breaks does; HTTP polling just asks the next instance).
async fn page_outlives_its_instance(transport: &str, reconnects: bool) {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let backend = Backend::redis().await;
    let mut first = instance(&backend, "first").await;
    let second = instance(&backend, "second").await;
    let lb = Balancer::start(&first, &second).await;
    let (poll, _) = second
        .create_poll(&["Red", "Green", "Blue"], "unlimited")
        .await;
    let id = poll["id"].as_str().unwrap().to_owned();

    let page = driver.page().await;
    page.goto(&lb.url(&format!("/polls/{id}?transport={transport}")))
        .await;
    page.wait_live().await;
    assert_eq!(page.text("[data-instance]").await, "first");
    page.vote_for(0).await;
    page.wait_counts(&[1, 0, 0], WAIT).await;

    page.record_conn_states().await;
    first.stop().await;
    if reconnects {
        page.wait_until(
            "the page to say it is reconnecting",
            WAIT,
            "return window.__connStates.indexOf('reconnecting') >= 0",
            vec![],
        )
        .await;
        page.wait_until(
            "the page to be live again",
            WAIT,
            "const s = window.__connStates; \
             return s[s.length - 1] === 'live' && s.indexOf('reconnecting') >= 0;",
            vec![],
        )
        .await;
    }
    if transport != "poll" {
        // Short polling keeps no connection; the others now follow here.
        second.wait_followed(&id, true).await;
    }

    // More votes: two from the page (through the balancer), one elsewhere.
    page.vote_for(1).await;
    page.wait_counts(&[1, 1, 0], WAIT).await;
    page.vote_for(2).await;
    page.wait_counts(&[1, 1, 1], WAIT).await;
    let (status, _) = second.vote(&id, 2, None).await;
    assert_eq!(status, 200);
    page.wait_counts(&[1, 1, 2], WAIT).await;
    page.assert_shows(&[1, 1, 2], 4).await;
    assert_eq!(counts(&second.results(&id).await), [1, 1, 2]);
    let states = page.conn_states().await;
    eprintln!("{transport}: connection states after the instance stopped: {states:?}");
    if reconnects {
        let texts = page.conn_texts().await;
        assert!(
            texts.iter().any(|t| t.starts_with("reconnecting")),
            "the page said it was reconnecting: {texts:?}"
        );
    }
    assert_eq!(
        page.conn_state().await,
        "live",
        "ends live: {}",
        json!(states)
    );
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_page_reconnects_through_the_other_instance() {
    page_outlives_its_instance("ws", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_page_reconnects_through_the_other_instance() {
    page_outlives_its_instance("sse", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_polling_page_carries_on_through_the_other_instance() {
    page_outlives_its_instance("longpoll", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_polling_page_carries_on_through_the_other_instance() {
    page_outlives_its_instance("poll", false).await;
}
