//! Operational endpoints: liveness, readiness, Prometheus metrics.

use serde_json::json;

use crate::helpers::*;

both_backends!(
    healthz_and_readyz_answer_200,
    metrics_count_votes_followers_and_deliveries,
);

/// Liveness answers at once; readiness once the store answers and the
/// change feed has proven itself (on a cluster: every shard's heartbeat),
/// which takes a moment after start.
async fn healthz_and_readyz_answer_200(backend: Backend) {
    let app = spawn_app(&backend).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    within("readyz to answer 200", async {
        while app.get("/readyz").await.status() != 200 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// The value of a sample line `name{labels} value` in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

async fn metrics_count_votes_followers_and_deliveries(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (poll, _) = app.create_poll(&["a", "b"], "one_per_voter").await;
    let id = poll["id"].as_str().unwrap();
    let mut ws = app.ws(id).await;
    ws.next_results().await;
    let mut sse = app.sse(id, None).await;
    sse.next_results().await;
    assert_eq!(app.vote(id, 0, None).await.0, 200);
    assert_eq!(app.vote(id, 0, None).await.0, 409);
    let res = app
        .post_json(&format!("/api/polls/{id}/votes"), &json!({"option": 5}))
        .await;
    assert_eq!(res.status(), 422);
    ws.next_results().await;
    sse.next_results().await;
    app.get(&format!("/api/polls/{id}/changes?since=0")).await;

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = within("metrics body", res.text()).await.unwrap();
    // The recorder is process-wide (tests share it): check presence and
    // lower bounds, not exact values.
    let at_least_one = |series: &str| {
        let v = sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        assert!(v >= 1.0, "{series} = {v}");
    };
    at_least_one("tally_votes_accepted_total");
    at_least_one("tally_votes_rejected_total{reason=\"already_voted\"}");
    at_least_one("tally_votes_rejected_total{reason=\"option_not_found\"}");
    at_least_one("tally_followers{transport=\"ws\"}");
    at_least_one("tally_followers{transport=\"sse\"}");
    at_least_one("tally_deliveries_total{transport=\"ws\"}");
    at_least_one("tally_deliveries_total{transport=\"sse\"}");
    at_least_one("tally_deliveries_total{transport=\"longpoll\"}");
    assert!(
        text.contains("# TYPE tally_votes_accepted_total counter"),
        "{text}"
    );
    assert!(text.contains("# TYPE tally_followers gauge"), "{text}");
}
