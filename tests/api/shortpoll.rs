//! Short polling: `GET /api/polls/{id}` with the version as `ETag`.

use crate::helpers::*;

both_backends!(
    get_sends_the_version_as_etag_and_no_cache,
    if_none_match_with_the_current_version_is_304,
    short_poller_ends_on_the_exact_tallies_of_concurrent_votes,
);

async fn get_sends_the_version_as_etag_and_no_cache(backend: Backend) {
    let app = spawn_app(&backend).await;
    let res = app.get("/api/polls/lpl").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"0\"");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    app.vote("lpl", 1, None).await;
    let res = app.get("/api/polls/lpl").await;
    assert_eq!(res.headers()["etag"], "\"1\"");
    let body = json_of(res).await;
    assert_eq!(version(&body), 1);
    assert_eq!(counts(&body), vec![300, 201, 600]);
    for path in ["/api/polls", "/api/polls/lpl/changes?since=0&timeout=0"] {
        let res = app.get(path).await;
        assert_eq!(res.headers()["cache-control"], "no-cache", "{path}");
    }
}

async fn if_none_match_with_the_current_version_is_304(backend: Backend) {
    let app = spawn_app(&backend).await;
    let conditional = |tag: &'static str| {
        app.client
            .get(app.url("/api/polls/lpl"))
            .header("if-none-match", tag)
    };
    let res = send("304", conditional("\"0\"")).await;
    assert_eq!(res.status(), 304);
    assert!(res.headers().contains_key("x-tally-instance"));
    assert_eq!(res.headers()["etag"], "\"0\"");
    assert!(within("304 body", res.bytes()).await.unwrap().is_empty());
    app.vote("lpl", 0, None).await;
    let res = send("stale tag", conditional("\"0\"")).await;
    assert_eq!(res.status(), 200, "a stale tag gets the new results");
    assert_eq!(version(&json_of(res).await), 1);
    let res = send("list of tags", conditional("\"0\", \"1\"")).await;
    assert_eq!(res.status(), 304);
}

async fn short_poller_ends_on_the_exact_tallies_of_concurrent_votes(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b", "c"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    const K: usize = 100;
    let poller = {
        let (client, url) = (client(), app.url(&format!("/api/polls/{id}")));
        tokio::spawn(async move {
            let mut etag = String::from("\"0\"");
            let mut seen = vec![0u64];
            loop {
                let res = send(
                    "short poll",
                    client.get(&url).header("if-none-match", &etag),
                )
                .await;
                if res.status() == 304 {
                    tokio::task::yield_now().await;
                    continue;
                }
                assert_eq!(res.status(), 200);
                etag = res.headers()["etag"].to_str().unwrap().to_owned();
                let body = json_of(res).await;
                assert_eq!(etag, format!("\"{}\"", version(&body)));
                seen.push(version(&body));
                if version(&body) == K as u64 {
                    return (seen, body);
                }
            }
        })
    };
    let expected = cast_concurrent_votes(&app, &id, K, 3).await;
    let (seen, last) = within("short poller to reach the end", poller)
        .await
        .unwrap();
    assert_strictly_increasing(&seen);
    assert_eq!(counts(&last), expected);
    assert_eq!(total(&last), K as u64);
}
