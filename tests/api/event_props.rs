//! Events under random concurrent load, against a model: batches of moves,
//! votes and deck edits fired at once from two instances (one in memory)
//! never leave two questions open, the one open question is always the one
//! on screen, and every question's counts equal the votes the API accepted
//! for it. Seeded, so a failure names the seed that reproduces it.
//!
//! A SIGKILLed mover: a half-done move (the event moved, its questions not
//! yet fenced) is finished by the next move from another instance, whether
//! the half-move is made by hand through the store or by a real `tally`
//! process killed while it moves.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::events::admin;
use crate::helpers::*;
use crate::process::TallyProcess;

both_backends!(random_moves_votes_and_edits_keep_one_open_question_and_exact_counts);

/// Seeds tried per backend; each runs `STEPS` concurrent batches.
const SEEDS: [u64; 3] = [7, 1_234, 98_765];
const STEPS: usize = 25;

async fn create_event(app: &TestApp, n: usize) -> (Value, String) {
    let questions: Vec<Value> = (0..n)
        .map(|i| json!({"question": format!("Q{i}"), "options": ["a", "b", "c"], "vote_limit": "unlimited"}))
        .collect();
    let res = app
        .post_json(
            "/api/events",
            &json!({"title": "props", "questions": questions}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let v = json_of(res).await;
    (
        v["event"].clone(),
        v["admin_token"].as_str().unwrap().to_owned(),
    )
}

/// One random operation, and what it did to the model.
enum Done {
    Nothing,
    /// A vote the API accepted: question id, option.
    Counted(String, usize),
}

async fn random_op(
    app: &TestApp,
    id: &str,
    token: &str,
    deck: &[String],
    pick: u32,
    arg: usize,
) -> Done {
    let path = format!("/api/events/{id}/move");
    match pick {
        0..=3 => {
            let body = match arg % 4 {
                0 => json!({"step": "next"}),
                1 => json!({"step": "prev"}),
                2 => json!({"to": null}),
                _ => json!({"to": arg % deck.len().max(1)}),
            };
            let res = admin(app, reqwest::Method::POST, &path, token, Some(body)).await;
            assert!(
                res.status() == 200 || res.status() == 422,
                "move: {}",
                res.status()
            );
            Done::Nothing
        }
        4..=8 if !deck.is_empty() => {
            let q = &deck[arg % deck.len()];
            let option = arg % 3;
            let res = app
                .post_json(&format!("/api/polls/{q}/votes"), &json!({"option": option}))
                .await;
            match res.status().as_u16() {
                200 => Done::Counted(q.clone(), option),
                409 | 404 => Done::Nothing,
                other => panic!("vote answered {other}"),
            }
        }
        9 => {
            let q = json!({"question": "appended", "options": ["a", "b", "c"], "vote_limit": "unlimited"});
            let res = admin(
                app,
                reqwest::Method::POST,
                &format!("/api/events/{id}/questions"),
                token,
                Some(q),
            )
            .await;
            assert_eq!(res.status(), 200);
            Done::Nothing
        }
        10 if deck.len() > 1 => {
            let mut order: Vec<&String> = deck.iter().collect();
            order.rotate_left(arg % deck.len());
            let res = admin(
                app,
                reqwest::Method::PUT,
                &format!("/api/events/{id}/order"),
                token,
                Some(json!({"questions": order})),
            )
            .await;
            // A concurrent append or delete makes this order stale: 422.
            assert!(res.status() == 200 || res.status() == 422);
            Done::Nothing
        }
        _ => Done::Nothing,
    }
}

async fn random_moves_votes_and_edits_keep_one_open_question_and_exact_counts(backend: Backend) {
    let a_owned = spawn_app(&backend).await;
    let a = &a_owned;
    let b_owned;
    let b = if matches!(backend, Backend::Memory) {
        a
    } else {
        b_owned = spawn_app(&backend).await;
        &b_owned
    };
    for seed in SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let (event, token) = create_event(a, 4).await;
        let id = event["id"].as_str().unwrap().to_owned();
        let mut model: HashMap<(String, usize), u64> = HashMap::new();
        for step in 0..STEPS {
            let state = json_of(a.get(&format!("/api/events/{id}")).await).await;
            let deck: Vec<String> = state["questions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| q["id"].as_str().unwrap().to_owned())
                .collect();
            let batch: Vec<(bool, u32, usize)> = (0..rng.random_range(1..=5))
                .map(|_| {
                    (
                        rng.random_bool(0.5),
                        rng.random_range(0..11),
                        rng.random_range(0..1000),
                    )
                })
                .collect();
            let ops = batch.iter().map(|&(on_a, pick, arg)| {
                let app = if on_a { a } else { b };
                random_op(app, &id, &token, &deck, pick, arg)
            });
            for done in join_all(ops).await {
                if let Done::Counted(q, option) = done {
                    *model.entry((q, option)).or_default() += 1;
                }
            }
            check_invariants(a, &id, seed, step).await;
        }
        // Every question's counts are exactly the accepted votes.
        let state = json_of(a.get(&format!("/api/events/{id}")).await).await;
        for q in state["questions"].as_array().unwrap() {
            let q = q["id"].as_str().unwrap();
            let counts = counts(&a.results(q).await);
            for (option, count) in counts.iter().enumerate() {
                let expected = model.get(&(q.to_owned(), option)).copied().unwrap_or(0);
                assert_eq!(
                    *count, expected,
                    "seed {seed}: question {q} option {option}"
                );
            }
        }
    }
}

/// At most one open question, and it is the one on screen.
async fn check_invariants(app: &TestApp, id: &str, seed: u64, step: usize) {
    let state = json_of(app.get(&format!("/api/events/{id}")).await).await;
    let mut open = Vec::new();
    for (i, q) in state["questions"].as_array().unwrap().iter().enumerate() {
        if app.results(q["id"].as_str().unwrap()).await["closed"] == false {
            open.push(i);
        }
    }
    let expected: Vec<usize> = state["current"]
        .as_u64()
        .map(|c| c as usize)
        .into_iter()
        .collect();
    assert_eq!(
        open, expected,
        "seed {seed} step {step}: open questions vs the one on screen"
    );
}

/// A move begun by a mover that then died (the event points at a new
/// question; nothing fenced): a move from another instance finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_done_move_is_finished_by_the_next_one() {
    let backend = Backend::redis().await;
    let app = spawn_app(&backend).await;
    let (event, token) = create_event(&app, 3).await;
    let id = event["id"].as_str().unwrap();
    let deck: Vec<String> = event["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap().to_owned())
        .collect();
    admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/events/{id}/move"),
        &token,
        Some(json!({"to": 0})),
    )
    .await;
    // The dead mover: begin (event → question 1), then nothing.
    let shutdown = tally::shutdown::Shutdown::new();
    let (store, _feed) =
        tally::store::redis::connect(&backend.config(), tally::hub::Hubs::default(), &shutdown)
            .await
            .unwrap();
    let eid = tally::event::EventId::parse(id).unwrap();
    let q1 = tally::poll::PollId::parse(&deck[1]).unwrap();
    let start = store.begin_move(&eid, 1, Some(&q1)).await.unwrap();
    assert!(matches!(
        start,
        tally::store::events::MoveStart::Started { .. }
    ));
    // Mid-way a reader sees question 1 on screen and question 0 still
    // open: the state the next move must repair.
    assert_eq!(app.results(&deck[0]).await["closed"], false);
    // Repeating the same move from an instance finishes it.
    let s = json_of(
        admin(
            &app,
            reqwest::Method::POST,
            &format!("/api/events/{id}/move"),
            &token,
            Some(json!({"to": 1})),
        )
        .await,
    )
    .await;
    assert_eq!(s["current"], 1);
    assert_eq!(s["now"]["closed"], false);
    assert_eq!(app.results(&deck[0]).await["closed"], true);
    assert_eq!(app.results(&deck[2]).await["closed"], true);
    shutdown.trigger();
}

/// A real `tally` process SIGKILLed while it moves the event over and over:
/// whatever step it died at, one move from another instance leaves exactly
/// the question on screen open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mover_killed_mid_move_leaves_a_state_the_next_move_repairs() {
    let backend = Backend::redis().await;
    let Backend::Redis(redis) = &backend else {
        unreachable!()
    };
    let app = spawn_app(&backend).await;
    let (event, token) = create_event(&app, 6).await;
    let id = event["id"].as_str().unwrap().to_owned();
    for round in 0..3u64 {
        let mut mover = TallyProcess::start(&[("TALLY_REDIS_URL", redis.url())]).await;
        let (url, tok, eid) = (
            mover.url(&format!("/api/events/{id}/move")),
            token.clone(),
            id.clone(),
        );
        let client = client();
        let hammer = tokio::spawn(async move {
            for i in 0u64.. {
                let body = json!({"to": ((i * 7 + round) % 6)});
                let _ = client
                    .post(&url)
                    .header("authorization", format!("Bearer {tok}"))
                    .json(&body)
                    .send()
                    .await;
            }
        });
        // Kill it while it moves: once it has made a few moves of this
        // round (and so is in the middle of the next), never before.
        let started = state_version(&app, &eid).await;
        within("the mover to be moving", async {
            while state_version(&app, &eid).await < started + 3 + round {
                tokio::task::yield_now().await;
            }
        })
        .await;
        mover.signal("KILL");
        mover.wait_exit(Duration::from_secs(5)).await;
        hammer.abort();
        let s = json_of(
            admin(
                &app,
                reqwest::Method::POST,
                &format!("/api/events/{id}/move"),
                &token,
                Some(json!({"step": "next"})),
            )
            .await,
        )
        .await;
        let current = s["current"].as_u64().expect("on a question") as usize;
        let mut open = Vec::new();
        for (i, q) in s["questions"].as_array().unwrap().iter().enumerate() {
            if app.results(q["id"].as_str().unwrap()).await["closed"] == false {
                open.push(i);
            }
        }
        assert_eq!(
            open,
            vec![current],
            "round {round}: after the kill and one move"
        );
    }
}

/// The event's version, read through the in-process instance.
async fn state_version(app: &TestApp, id: &str) -> u64 {
    json_of(app.get(&format!("/api/events/{id}")).await).await["version"]
        .as_u64()
        .expect("version")
}
