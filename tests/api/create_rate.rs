//! `TALLY_CREATE_RATE`: polls per minute per client address (default 10).
//! The 11th poll in a minute from one address gets 429 `rate_limited` with
//! `Retry-After` and creates nothing, on the API and the create form alike;
//! another address (behind a trusted proxy) keeps its own allowance.

use serde_json::{Value, json};

use crate::helpers::*;

both_backends!(
    the_eleventh_poll_in_a_minute_is_429_and_creates_nothing,
    the_create_form_shares_the_allowance_and_says_when_to_retry,
);

/// The default rate (10; `config.rs` tests that it is the default), with
/// 127.0.0.1 (the test client) as a trusted proxy, so `X-Forwarded-For`
/// names the client.
async fn limited_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |c| {
        c.create_rate = 10;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
}

async fn create_as(app: &TestApp, client_ip: &str, question: &str) -> reqwest::Response {
    let body = json!({"question": question, "options": ["a", "b"], "listed": true});
    send(
        "create",
        app.client
            .post(app.url("/api/polls"))
            .header("x-forwarded-for", client_ip)
            .json(&body),
    )
    .await
}

/// Every poll id the store lists (the demo included).
async fn listed(app: &TestApp) -> Vec<String> {
    let list = json_of(app.get("/api/polls?limit=100").await).await;
    list["polls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

/// On Redis (one server or the cluster: `KEYS` goes to every master), every
/// key of a poll under this backend's prefix: how "creates nothing" is
/// checked there.
async fn redis_poll_keys(backend: &Backend) -> Option<Vec<String>> {
    let prefix = backend.key_prefix()?;
    let mut conn = backend.store_conn().await?;
    let mut keys: Vec<String> = within(
        "KEYS",
        ::redis::cmd("KEYS")
            .arg(format!("{prefix}:poll:*"))
            .query_async(&mut conn),
    )
    .await
    .expect("KEYS");
    keys.sort();
    Some(keys)
}

async fn the_eleventh_poll_in_a_minute_is_429_and_creates_nothing(backend: Backend) {
    let app = limited_app(&backend).await;
    for i in 0..10 {
        let res = create_as(&app, "198.51.100.1", &format!("Poll {i}")).await;
        assert_eq!(res.status(), 201, "poll {i} of the allowance");
    }
    let before = (listed(&app).await, redis_poll_keys(&backend).await);
    if let Some(keys) = &before.1 {
        assert!(!keys.is_empty(), "KEYS sees the ten polls' keys");
    }
    let res = create_as(&app, "198.51.100.1", "One too many").await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=6).contains(&retry),
        "Retry-After {retry}: one poll every 6 s"
    );
    assert_error(res, 429, "rate_limited").await;
    let after = (listed(&app).await, redis_poll_keys(&backend).await);
    assert_eq!(before, after, "the refused create wrote nothing");
    assert_eq!(before.0.len(), 11, "ten polls and the demo");

    // Invalid input is still 422 (and takes nothing from the allowance).
    let res = send(
        "invalid create",
        app.client
            .post(app.url("/api/polls"))
            .header("x-forwarded-for", "198.51.100.1")
            .json(&json!({"question": "", "options": ["a"]})),
    )
    .await;
    assert_error(res, 422, "validation_failed").await;

    // Another address has its own allowance.
    let res = create_as(&app, "198.51.100.2", "Someone else").await;
    assert_eq!(res.status(), 201, "another client is unaffected");
}

async fn form_create(app: &TestApp, client_ip: &str) -> reqwest::Response {
    send(
        "form create",
        app.client
            .post(app.url("/polls"))
            .header("x-forwarded-for", client_ip)
            .form(&[
                ("question", "From the form"),
                ("option", "yes"),
                ("option", "no"),
            ]),
    )
    .await
}

async fn the_create_form_shares_the_allowance_and_says_when_to_retry(backend: Backend) {
    let app = limited_app(&backend).await;
    for i in 0..5 {
        assert_eq!(
            create_as(&app, "203.0.113.5", &format!("API {i}"))
                .await
                .status(),
            201
        );
        assert_eq!(form_create(&app, "203.0.113.5").await.status(), 201);
    }
    let before = listed(&app).await;
    let res = form_create(&app, "203.0.113.5").await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let page = within("page", res.text()).await.unwrap();
    assert!(page.contains("try again in"), "the form says why");
    assert!(
        page.contains("From the form"),
        "the form comes back as typed"
    );
    assert_eq!(listed(&app).await, before, "nothing created");
    let res = create_as(&app, "203.0.113.5", "API again").await;
    assert_error(res, 429, "rate_limited").await;
    assert_eq!(form_create(&app, "203.0.113.6").await.status(), 201);
}

/// `TALLY_CREATE_RATE=0` turns the limit off.
#[tokio::test]
async fn a_create_rate_of_zero_is_no_limit() {
    let app = spawn_app_with(&Backend::Memory, |c| c.create_rate = 0).await;
    for i in 0..25 {
        let res = create_as(&app, "198.51.100.1", &format!("Poll {i}")).await;
        assert_eq!(res.status(), 201);
    }
    let list: Value = json_of(app.get("/api/polls?limit=100").await).await;
    assert_eq!(list["polls"].as_array().unwrap().len(), 26);
}
