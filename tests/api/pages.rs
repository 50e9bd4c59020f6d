//! The HTML pages as a browser meets them: rendered, escaped, under a strict
//! CSP, and usable without JavaScript (form create and form vote).

use reqwest::header::{HeaderMap, LOCATION};
use serde_json::Value;

use crate::helpers::*;

/// A fetched page: status, headers and body text.
struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    fn is_html(&self) -> bool {
        self.header("content-type").starts_with("text/html")
    }

    fn sets_voter_cookie(&self) -> bool {
        self.headers
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().is_ok_and(|c| c.starts_with("tally_voter=")))
    }
}

async fn read(res: reqwest::Response) -> Page {
    Page {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: within("page body", res.text()).await.expect("body"),
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Page {
    read(
        within("GET page", client.get(url).send())
            .await
            .expect("GET"),
    )
    .await
}

async fn post_form(client: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Page {
    let res = within("POST form", client.post(url).form(form).send())
        .await
        .expect("POST");
    read(res).await
}

async fn results(app: &TestApp, id: &str) -> Value {
    let res = within(
        "GET results",
        app.client.get(app.url(&format!("/api/polls/{id}"))).send(),
    )
    .await
    .expect("GET results");
    assert_eq!(res.status(), 200);
    res.json().await.expect("results json")
}

async fn poll_count(app: &TestApp) -> usize {
    let res = within(
        "list polls",
        app.client.get(app.url("/api/polls?limit=100")).send(),
    )
    .await
    .expect("list");
    let v: Value = res.json().await.expect("json");
    v["polls"].as_array().expect("polls").len()
}

/// The value of the `value="…"` attribute of the element with this id.
fn input_value<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &html[at..];
    let start = rest.find("value=\"").expect("value attribute") + 7;
    let len = rest[start..].find('"').expect("closing quote");
    &rest[start..start + len]
}

#[tokio::test]
async fn home_page_renders_and_lists_the_demo_poll() {
    let app = spawn_app(&Backend::Memory).await;
    let page = get(&client(), &app.url("/")).await;
    assert_eq!(page.status, 200);
    assert!(page.is_html());
    assert!(page.body.contains("<html lang=\"en\""));
    assert!(page.body.contains("action=\"/polls\""), "create form");
    assert!(page.body.contains("href=\"/polls/lpl\""), "demo poll link");
    assert!(page.body.contains("LPL第一打野投票"));
    assert!(page.body.contains("1,100 votes"));
    assert!(
        page.sets_voter_cookie(),
        "first page view sets the voter cookie"
    );
}

#[tokio::test]
async fn poll_page_shows_results_transport_version_and_instance() {
    let app = spawn_app_with(&Backend::Memory, |c| {
        c.instance_id = Some("page-instance-7".into())
    })
    .await;
    let page = get(&client(), &app.url("/polls/lpl?transport=sse")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-transport=\"sse\""));
    assert!(page.body.contains("<dd data-transport-used>sse</dd>"));
    assert!(page.body.contains("<dd data-version>0</dd>"));
    assert!(page.body.contains("page-instance-7"));
    for text in [
        "明凯",
        "厂长",
        "7酱",
        "600 votes",
        "54.5%",
        "aria-valuenow=\"54.5\"",
    ] {
        assert!(page.body.contains(text), "missing {text}");
    }
    assert!(
        page.body.contains("class=\"bar-fill w-55\""),
        "bar width class"
    );
    assert!(page.sets_voter_cookie());

    let page = get(&client(), &app.url("/polls/lpl?transport=pigeon")).await;
    assert!(
        page.body.contains("data-transport=\"ws\""),
        "unknown transport → ws"
    );
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_no_inline_script_or_style() {
    let app = spawn_app(&Backend::Memory).await;
    for path in ["/", "/polls/lpl", "/polls/lpl/lab", "/polls/missing"] {
        let page = get(&app.client, &app.url(path)).await;
        let csp = page.header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(page.header("x-content-type-options"), "nosniff");
        assert_eq!(page.header("referrer-policy"), "same-origin");
        for tag in page.body.split("<script").skip(1) {
            assert!(
                tag.trim_start().starts_with("src="),
                "{path}: inline script"
            );
        }
        assert!(
            !page.body.contains(" style="),
            "{path}: inline style attribute"
        );
    }
}

#[tokio::test]
async fn user_text_is_escaped_on_every_page() {
    let app = spawn_app(&Backend::Memory).await;
    let body = serde_json::json!({
        "question": "<script>alert(1)</script>",
        "options": ["<script>alert(2)</script>", "\"><img src=x onerror=alert(3)>"],
        "listed": true,
    });
    let res = within(
        "create",
        app.client.post(app.url("/api/polls")).json(&body).send(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let id = created["poll"]["id"].as_str().unwrap();

    for path in [
        format!("/polls/{id}"),
        format!("/polls/{id}/lab"),
        "/".to_owned(),
    ] {
        let page = get(&app.client, &app.url(&path)).await;
        assert_eq!(page.status, 200);
        assert!(!page.body.contains("<script>alert"), "{path}: raw script");
        assert!(!page.body.contains("<img src=x"), "{path}: raw img");
        assert!(
            page.body
                .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: shown as text"
        );
    }
    let page = get(&app.client, &app.url(&format!("/polls/{id}"))).await;
    assert!(page.body.contains("&#34;&#62;&#60;img src=x"));
}

#[tokio::test]
async fn form_vote_counts_redirects_to_the_page_and_sets_the_cookie() {
    let app = spawn_app(&Backend::Memory).await;
    let browser = client();
    let res = within(
        "form vote",
        browser
            .post(app.url("/polls/lpl/vote"))
            .form(&[("option", "1"), ("transport", "longpoll")])
            .send(),
    )
    .await
    .unwrap();
    let page = read(res).await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.header("location"),
        "/polls/lpl?transport=longpoll&notice=voted&choice=1"
    );
    assert!(page.sets_voter_cookie(), "a vote without a cookie gets one");
    assert_eq!(counts(&results(&app, "lpl").await), vec![300, 201, 600]);

    let page = get(&browser, &app.url(page.header("location"))).await;
    assert!(page.body.contains("Your vote was counted."));
    assert!(
        page.body
            .contains("class=\"result chosen\" data-option=\"1\"")
    );
    assert!(page.body.contains("201 votes"));
}

#[tokio::test]
async fn one_per_voter_form_vote_twice_counts_once_and_says_so() {
    let app = spawn_app(&Backend::Memory).await;
    let (poll, _) = app.create_poll(&["a", "b"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    let browser = client();
    let url = app.url(&format!("/polls/{id}/vote"));

    let first = post_form(&browser, &url, &[("option", "0")]).await;
    assert_eq!(first.status, 303);
    let second = post_form(&browser, &url, &[("option", "1")]).await;
    assert_eq!(second.status, 303);
    let location = second.header("location");
    assert_eq!(location, format!("/polls/{id}?notice=already_voted"));
    let page = get(&browser, &app.url(location)).await;
    assert!(page.body.contains("You have already voted on this poll."));

    let r = results(&app, id).await;
    assert_eq!(total(&r), 1);
    assert_eq!(counts(&r), vec![1, 0]);
}

/// The form vote's idempotency key on a poll page.
fn form_key(html: &str) -> String {
    let start = html
        .find("name=\"key\" value=\"")
        .expect("the vote form carries a key")
        + 18;
    let len = html[start..].find('"').expect("closing quote");
    html[start..start + len].to_owned()
}

#[tokio::test]
async fn a_resubmitted_form_vote_counts_once_and_the_next_page_votes_again() {
    let app = spawn_app(&Backend::Memory).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let browser = client();
    let url = app.url(&format!("/polls/{id}/vote"));
    let key = form_key(&get(&browser, &app.url(&format!("/polls/{id}"))).await.body);

    // A double click, or the form sent again after a lost reply.
    let mut landed = String::new();
    for _ in 0..2 {
        let sent = post_form(&browser, &url, &[("option", "0"), ("key", &key)]).await;
        assert_eq!(sent.status, 303);
        landed = sent.header("location").to_owned();
        assert_eq!(landed, format!("/polls/{id}?notice=voted&choice=0"));
    }
    assert_eq!(counts(&results(&app, id).await), vec![1, 0]);

    // The same page's key with another choice is refused and says why.
    let other = post_form(&browser, &url, &[("option", "1"), ("key", &key)]).await;
    assert_eq!(other.status, 303);
    let location = other.header("location");
    assert_eq!(
        location,
        format!("/polls/{id}?notice=idempotency_key_reused")
    );
    let page = get(&browser, &app.url(location)).await;
    assert!(page.body.contains("This page already sent a vote."));
    assert_eq!(counts(&results(&app, id).await), vec![1, 0]);

    // The page the vote led to has a key of its own: a second vote counts.
    let next_key = form_key(&get(&browser, &app.url(&landed)).await.body);
    assert_ne!(next_key, key);
    let sent = post_form(&browser, &url, &[("option", "0"), ("key", &next_key)]).await;
    assert_eq!(sent.status, 303);
    assert_eq!(counts(&results(&app, id).await), vec![2, 0]);

    // A malformed key is a 400 page and counts nothing.
    let bad = post_form(&browser, &url, &[("option", "0"), ("key", "not a key!")]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.is_html());
    assert!(bad.body.contains("idempotency key must be"));
    assert_eq!(counts(&results(&app, id).await), vec![2, 0]);
}

#[tokio::test]
async fn cross_site_form_vote_is_refused_with_html_and_counts_nothing() {
    let app = spawn_app(&Backend::Memory).await;
    let attempts = [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ];
    for (name, value) in attempts {
        let res = within(
            "cross-site vote",
            client()
                .post(app.url("/polls/lpl/vote"))
                .header(name, value)
                .form(&[("option", "0")])
                .send(),
        )
        .await
        .unwrap();
        let page = read(res).await;
        assert_eq!(page.status, 403, "{name}");
        assert!(page.is_html(), "{name}");
        assert!(
            page.body.contains("this form came from another site"),
            "{name}"
        );
        assert!(!page.sets_voter_cookie());
    }
    // In the visitor's language, like every page.
    let res = within(
        "cross-site vote in Chinese",
        client()
            .post(app.url("/polls/lpl/vote"))
            .header("origin", "http://evil.example")
            .header("accept-language", "zh-CN,zh;q=0.9")
            .form(&[("option", "0")])
            .send(),
    )
    .await
    .unwrap();
    let page = read(res).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("<html lang=\"zh-CN\""), "{}", page.body);
    assert!(page.body.contains("此表单来自其他网站"), "{}", page.body);
    assert_eq!(total(&results(&app, "lpl").await), 1100);

    // The same form from the site itself goes through.
    let own = format!("http://{}", app.addr);
    let res = within(
        "same-site vote",
        client()
            .post(app.url("/polls/lpl/vote"))
            .header("origin", own)
            .form(&[("option", "0")])
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(total(&results(&app, "lpl").await), 1101);
}

#[tokio::test]
async fn create_form_without_javascript_creates_the_poll_and_shows_its_token_once() {
    let app = spawn_app(&Backend::Memory).await;
    let browser = client();
    let form = [
        ("question", "  Best 茶? "),
        ("option", "Green"),
        ("option", ""),
        ("option", "Oolong"),
        ("vote_limit", "unlimited"),
    ];
    let page = post_form(&browser, &app.url("/polls"), &form).await;
    assert_eq!(page.status, 201);
    assert!(page.is_html());
    assert_eq!(page.header("cache-control"), "no-store");
    let location = page.header("location").to_owned();
    let id = location.strip_prefix("/polls/").expect("poll location");
    let token = input_value(&page.body, "admin-token");
    assert_eq!(token.len(), 32, "128-bit hex token");
    assert!(!location.contains(token), "token never in a URL");
    assert!(page.body.contains("Keep this token"));
    assert!(input_value(&page.body, "poll-url").ends_with(&location));

    let r = results(&app, id).await;
    assert_eq!(r["question"], "Best 茶?");
    assert_eq!(r["vote_limit"], "unlimited");
    let labels: Vec<&str> = r["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Green", "Oolong"], "blank fields are skipped");

    // The token shown is the poll's admin token.
    let res = within(
        "close with shown token",
        app.client
            .post(app.url(&format!("/api/polls/{id}/close")))
            .bearer_auth(token)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn bad_create_form_shows_the_error_and_creates_nothing() {
    let app = spawn_app(&Backend::Memory).await;
    let before = poll_count(&app).await;
    let form = [
        ("question", "Only one?"),
        ("option", "lonely"),
        ("option", " "),
    ];
    let page = post_form(&client(), &app.url("/polls"), &form).await;
    assert_eq!(page.status, 422);
    assert!(page.is_html());
    assert!(page.body.contains("role=\"alert\""));
    assert!(page.body.contains("A poll needs 2 to 20 options"));
    assert!(page.body.contains(">Only one?</textarea>"), "form kept");
    assert!(page.body.contains("value=\"lonely\""), "options kept");
    assert!(!page.body.contains("admin-token"));
    assert_eq!(poll_count(&app).await, before, "nothing created");
}

#[tokio::test]
async fn add_and_remove_option_buttons_work_without_javascript() {
    let app = spawn_app(&Backend::Memory).await;
    let before = poll_count(&app).await;
    let fields = |extra: (&'static str, &'static str)| {
        [
            ("question", "Q"),
            ("option", "a"),
            ("option", "b"),
            ("option", "c"),
            extra,
        ]
    };
    let page = post_form(&client(), &app.url("/polls"), &fields(("action", "add"))).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body.matches("name=\"option\"").count(), 4);
    assert!(page.body.contains("id=\"option-4\""));

    let page = post_form(&client(), &app.url("/polls"), &fields(("remove", "1"))).await;
    assert_eq!(page.body.matches("name=\"option\"").count(), 2);
    assert!(
        !page.body.contains("value=\"b\""),
        "the second option is gone"
    );
    assert!(page.body.contains("value=\"c\""));
    assert_eq!(poll_count(&app).await, before, "nothing created");
}

#[tokio::test]
async fn form_votes_on_closed_or_unknown_polls_are_refused() {
    let app = spawn_app(&Backend::Memory).await;
    let (poll, token) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let res = within(
        "close",
        app.client
            .post(app.url(&format!("/api/polls/{id}/close")))
            .bearer_auth(&token)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);

    let browser = client();
    let page = post_form(
        &browser,
        &app.url(&format!("/polls/{id}/vote")),
        &[("option", "0")],
    )
    .await;
    assert_eq!(page.status, 303);
    let page = get(&browser, &app.url(page.header("location"))).await;
    assert!(
        page.body
            .contains("This poll is closed; your vote was not counted.")
    );
    assert!(page.body.contains(">Closed</span>"));
    assert_eq!(
        page.body.matches(" disabled>").count(),
        2,
        "vote buttons off"
    );
    assert_eq!(total(&results(&app, id).await), 0);

    let page = post_form(&browser, &app.url("/polls/nope/vote"), &[("option", "0")]).await;
    assert_eq!(page.status, 404);
    assert!(page.is_html());
}

#[tokio::test]
async fn unknown_poll_page_is_a_404_page() {
    let app = spawn_app(&Backend::Memory).await;
    for path in [
        "/polls/does-not-exist",
        "/polls/bad%20id",
        "/polls/does-not-exist/lab",
    ] {
        let page = get(&app.client, &app.url(path)).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(page.is_html(), "{path}");
        assert!(page.body.contains("Poll not found"), "{path}");
    }
}

#[tokio::test]
async fn static_files_are_served_with_their_types_and_cached_by_version() {
    let app = spawn_app(&Backend::Memory).await;
    let home = get(&app.client, &app.url("/")).await;
    for (name, content_type) in [
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let marker = format!("/static/{name}?v=");
        let at = home.body.find(&marker).expect("linked from the page");
        let rest = &home.body[at..];
        let linked = &rest[..rest.find('"').unwrap()];

        let res = read(
            within("static", app.client.get(app.url(linked)).send())
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(res.status, 200, "{name}");
        assert!(
            res.header("content-type").starts_with(content_type),
            "{name}"
        );
        assert!(res.header("cache-control").contains("immutable"), "{name}");
        assert_eq!(res.header("x-content-type-options"), "nosniff");
        assert!(!res.body.is_empty());

        let etag = res.header("etag").to_owned();
        let plain = app.url(&format!("/static/{name}"));
        let again = within(
            "revalidate",
            app.client.get(&plain).header("if-none-match", &etag).send(),
        )
        .await
        .unwrap();
        assert_eq!(again.status(), 304, "{name}");
        let unpinned = get(&app.client, &plain).await;
        assert_eq!(unpinned.header("cache-control"), "public, no-cache");
    }
    let missing = get(&app.client, &app.url("/static/nope.js")).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn form_vote_redirect_keeps_only_a_known_transport() {
    // The 303 carries `transport` back only when it names a transport.
    let app = spawn_app(&Backend::Memory).await;
    let page = post_form(
        &client(),
        &app.url("/polls/lpl/vote"),
        &[("option", "2"), ("transport", "javascript:alert(1)")],
    )
    .await;
    assert_eq!(page.status, 303);
    assert_eq!(page.headers[LOCATION], "/polls/lpl?notice=voted&choice=2");
}

#[tokio::test]
async fn the_lab_is_linked_from_home_and_poll_pages_and_carries_its_hooks() {
    let app = spawn_app(&Backend::Memory).await;
    let home = get(&app.client, &app.url("/")).await;
    assert!(
        home.body.contains("href=\"/polls/lpl/lab\""),
        "home links the demo poll's lab"
    );
    let (poll, _) = app.create_poll(&["a", "b"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    for poll_id in ["lpl", id] {
        let page = get(&app.client, &app.url(&format!("/polls/{poll_id}"))).await;
        assert!(
            page.body
                .contains(&format!("href=\"/polls/{poll_id}/lab\"")),
            "/polls/{poll_id} links its lab"
        );
    }

    let lab = get(&app.client, &app.url("/polls/lpl/lab")).await;
    assert_eq!(lab.status, 200);
    assert!(lab.is_html());
    for hook in [
        "data-transport=\"ws\"",
        "data-transport=\"sse\"",
        "data-transport=\"longpoll\"",
        "data-transport=\"poll\"",
        "data-metric=\"updates\"",
        "data-metric=\"p50\"",
        "data-metric=\"p99\"",
        "data-metric=\"requests\"",
        "data-metric=\"bytes\"",
        "data-lab-rate",
        "data-lab-start",
        "data-lab-stop",
        "data-can-vote=\"true\"",
    ] {
        assert!(lab.body.contains(hook), "lab lacks {hook}");
    }
    assert_eq!(lab.body.matches("data-metric=\"updates\"").count(), 4);
    assert!(
        !lab.body.contains("id=\"lab-why\""),
        "the demo poll takes votes"
    );

    // A one-per-voter poll: the rate control is off, and the page says why.
    let lab = get(&app.client, &app.url(&format!("/polls/{id}/lab"))).await;
    assert_eq!(lab.status, 200);
    assert!(lab.body.contains("data-can-vote=\"false\""));
    assert!(lab.body.contains("one vote per person"));
    assert!(
        lab.body.contains("href=\"/polls/lpl/lab\""),
        "points to the demo lab"
    );

    // A closed poll: no votes either, and the page says so.
    let (closed, token) = app.create_poll(&["x", "y"], "unlimited").await;
    let closed = closed["id"].as_str().unwrap();
    assert_eq!(app.close_poll(closed, Some(&token)).await.status(), 200);
    let lab = get(&app.client, &app.url(&format!("/polls/{closed}/lab"))).await;
    assert!(lab.body.contains("data-can-vote=\"false\""));
    assert!(lab.body.contains("This poll is closed"));

    // Its script is served like app.js: own file, pinned by content tag.
    let marker = "/static/lab.js?v=";
    let at = lab.body.find(marker).expect("lab.js linked");
    let linked = &lab.body[at..at + lab.body[at..].find('"').unwrap()];
    let script = get(&app.client, &app.url(linked)).await;
    assert_eq!(script.status, 200);
    assert!(script.header("content-type").starts_with("text/javascript"));
    assert!(script.header("cache-control").contains("immutable"));
    assert!(script.body.contains("data-lab-chart"));
}
