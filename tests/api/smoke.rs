use crate::helpers::*;

#[tokio::test]
async fn demo_poll_is_served_on_both_backends() {
    for backend in [Backend::Memory, Backend::redis().await] {
        let app = spawn_app(&backend).await;
        let res = within("get demo", app.client.get(app.url("/api/polls/lpl")).send())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().contains_key("x-tally-instance"));
        let v: serde_json::Value = res.json().await.unwrap();
        assert_eq!(total(&v), 1100);
        assert_eq!(counts(&v), vec![300, 200, 600]);
    }
}
