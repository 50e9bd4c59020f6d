//! The cost floor of an HTTP request in axum on this machine, for
//! `scripts/bench-votes`: the same `POST /api/polls/{id}/votes` that tally
//! counts, answered by a handler that computes nothing. Measured beside
//! nginx's static `return 200` and tally itself, it splits tally's CPU per
//! vote into what the framework and the kernel cost before any of tally's
//! code runs, and what tally adds.
//!
//! With `same-reply`, the handler answers with the bytes tally answers a
//! vote with (a Set-Cookie, the results JSON of the demo poll), so the
//! kernel and hyper move as many bytes as for a real vote.
//!
//!   cargo run --release --example http_floor -- 127.0.0.1:18199 [same-reply]

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// What tally answers a vote on the demo poll with, minus the live numbers.
const RESULTS: &str = r#"{"results":{"id":"lpl","question":"LPL第一打野投票","vote_limit":"unlimited","closed":false,"version":2311566,"total":2312666,"options":[{"id":0,"label":"明凯","votes":300},{"id":1,"label":"厂长","votes":2311766},{"id":2,"label":"7酱","votes":600}],"max_choices":1,"allow_change":false,"results":"always","closes_at":null,"listed":true,"results_hidden":false}}"#;
const COOKIE: &str =
    "tally_voter=GsGYFC1v5JEizeGnKsHnNi; HttpOnly; SameSite=Lax; Path=/; Max-Age=31536000";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18199".to_owned());
    let same_reply = args.next().as_deref() == Some("same-reply");
    let router = if same_reply {
        Router::new().route(
            "/api/polls/{id}/votes",
            post(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::SET_COOKIE, COOKIE),
                        (header::CACHE_CONTROL, "no-cache"),
                        (header::HeaderName::from_static("x-tally-instance"), "vm"),
                    ],
                    RESULTS,
                )
                    .into_response()
            }),
        )
    } else {
        Router::new().route(
            "/api/polls/{id}/votes",
            post(|| async { ([(header::CONTENT_TYPE, "application/json")], "{}") }),
        )
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, router).await?;
    Ok(())
}
