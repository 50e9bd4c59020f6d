//! Property tests of the vote logic, run on both stores: any sequence of
//! votes, retries with idempotency keys and closes keeps the tallies equal
//! to the distinct accepted votes, and versions strictly increasing. The
//! richer polls (multi-choice, change-your-vote, reopen, deadlines) are
//! checked against a model of their own in `store_props/richer.rs`, the
//! question kinds (scale, ranking, word cloud) in `store_props/kinds.rs`.

#[path = "api/helpers.rs"]
#[allow(unused_imports, unused_macros)]
mod helpers;
#[path = "store_props/kinds.rs"]
mod kinds;
#[path = "store_props/model.rs"]
mod model;
#[path = "store_props/qa.rs"]
mod qa;
#[path = "store_props/richer.rs"]
mod richer;

use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use tally::config::Config;

use tally::poll::{IdempotencyKey, NewPoll, PollId, Results, VoteLimit, VoterId};
use tally::shutdown::Shutdown;
use tally::store::memory::MemoryStore;
use tally::store::{CreatePoll, Store, Vote, VoteError};

const OPTIONS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// Vote for `option` (may be out of range) as `voter`, maybe with a key.
    Vote {
        option: u32,
        voter: u8,
        key: Option<u8>,
    },
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0..OPTIONS as u32 + 1, 0u8..4, proptest::option::of(0u8..6))
            .prop_map(|(option, voter, key)| Op::Vote { option, voter, key }),
        1 => Just(Op::Close),
    ]
}

/// What the model expects of one vote.
#[derive(Debug, PartialEq)]
enum Expect {
    Counted,
    Replayed(u64),
    Refused(&'static str),
}

#[derive(Default)]
struct Model {
    counts: [u64; OPTIONS],
    version: u64,
    closed: bool,
    voters: HashSet<u8>,
    keys: HashMap<u8, (u32, u64)>,
}

impl Model {
    fn vote(&mut self, limit: VoteLimit, option: u32, voter: u8, key: Option<u8>) -> Expect {
        if self.closed {
            // A retry of a vote counted before the close still replays it.
            return match key.and_then(|k| self.keys.get(&k)) {
                Some(&(first, version)) if first == option => Expect::Replayed(version),
                _ => Expect::Refused("poll_closed"),
            };
        }
        if option as usize >= OPTIONS {
            return Expect::Refused("option_not_found");
        }
        if let Some(k) = key
            && let Some(&(first, version)) = self.keys.get(&k)
        {
            return if first == option {
                Expect::Replayed(version)
            } else {
                Expect::Refused("idempotency_key_reused")
            };
        }
        if limit == VoteLimit::OnePerVoter && !self.voters.insert(voter) {
            return Expect::Refused("already_voted");
        }
        self.counts[option as usize] += 1;
        self.version += 1;
        if let Some(k) = key {
            self.keys.insert(k, (option, self.version));
        }
        Expect::Counted
    }
}

/// A fresh poll of OPTIONS options, four voters and six keys to vote with.
async fn fresh_poll(
    store: &dyn Store,
    limit: VoteLimit,
) -> (PollId, Vec<VoterId>, Vec<IdempotencyKey>) {
    let id = PollId::generate();
    let labels: Vec<String> = (0..OPTIONS).map(|i| format!("o{i}")).collect();
    let spec = CreatePoll {
        id: id.clone(),
        poll: NewPoll::parse("q", &labels, limit).unwrap(),
        admin_token_sha256: String::new(),
        initial_counts: vec![0; OPTIONS],
        created_at_ms: 1,
    };
    store.create(&spec).await.unwrap().expect("fresh id");
    let voters = (0..4).map(|_| VoterId::generate()).collect();
    let keys = (0..6)
        .map(|i| IdempotencyKey::parse(&format!("k{i}")).unwrap())
        .collect();
    (id, voters, keys)
}

async fn run_sequence(store: &dyn Store, limit: VoteLimit, ops: &[Op]) {
    let (id, voters, keys) = fresh_poll(store, limit).await;
    let mut model = Model::default();
    let mut last_version = 0;
    for op in ops {
        match op {
            Op::Close => {
                let r = store.close(&id).await.unwrap().unwrap();
                if !model.closed {
                    model.closed = true;
                    model.version += 1;
                }
                assert_eq!(r.version, model.version);
            }
            Op::Vote { option, voter, key } => {
                let vote = Vote {
                    poll: id.clone(),
                    choice: tally::poll::Choice::one(*option),
                    voter: voters[*voter as usize].clone(),
                    idempotency_key: key.map(|k| keys[k as usize].clone()),
                };
                let expected = model.vote(limit, *option, *voter, *key);
                let got: Result<Results, VoteError> = store.vote(&vote).await;
                match (&expected, &got) {
                    (Expect::Counted, Ok(r)) => {
                        assert!(r.version > last_version, "version must increase");
                        assert_eq!(r.version, model.version);
                        last_version = r.version;
                    }
                    (Expect::Replayed(v), Ok(r)) => assert_eq!(r.version, *v, "replay"),
                    (Expect::Refused(code), Err(e)) => assert_eq!(e.reason(), *code),
                    _ => panic!("expected {expected:?}, got {got:?}"),
                }
            }
        }
    }
    let results = store.get(&id).await.unwrap().unwrap();
    let counts: Vec<u64> = results
        .options
        .iter()
        .map(|o| o.votes.unwrap_or(0))
        .collect();
    assert_eq!(
        counts,
        model.counts.to_vec(),
        "tallies = distinct accepted votes"
    );
    assert_eq!(results.total, Some(model.counts.iter().sum::<u64>()));
    assert_eq!(results.version, model.version);
    assert_eq!(results.closed, model.closed);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn limit() -> impl Strategy<Value = VoteLimit> {
    prop_oneof![Just(VoteLimit::OnePerVoter), Just(VoteLimit::Unlimited)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn memory_store_keeps_tallies_equal_to_accepted_votes(
        limit in limit(),
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        let store = MemoryStore::new();
        runtime().block_on(run_sequence(&store, limit, &ops));
    }
}

/// A Redis store on a private `redis-server`, for the property tests.
async fn redis_store() -> (
    std::sync::Arc<helpers::TestRedis>,
    std::sync::Arc<dyn Store>,
    Shutdown,
) {
    let redis = helpers::TestRedis::start().await;
    let mut config = Config::for_tests();
    config.redis_url = Some(redis.url());
    let shutdown = Shutdown::new();
    let (store, _feed) =
        tally::store::redis::connect(&config, tally::hub::Hubs::default(), &shutdown)
            .await
            .expect("redis store connects");
    (redis, store, shutdown)
}

/// Runs `cases` cases of `strategy` on one Redis store over a private
/// `redis-server` (each case votes on a fresh poll), on a runtime of
/// `workers` threads; stops the server at the end and returns how many
/// EVALSHA calls it served.
fn on_redis<S: Strategy>(
    cases: u32,
    workers: usize,
    strategy: &S,
    case: impl Fn(&tokio::runtime::Runtime, &dyn Store, S::Value),
) -> u64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let (redis, store, shutdown) = rt.block_on(redis_store());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    let result = runner.run(strategy, |value| {
        case(&rt, store.as_ref(), value);
        Ok(())
    });
    let calls = rt.block_on(evalsha_calls(&redis));
    shutdown.trigger();
    drop(redis);
    if let Err(e) = result {
        panic!("{e}");
    }
    calls
}

/// The same property on the Redis store.
#[test]
fn redis_store_keeps_tallies_equal_to_accepted_votes() {
    let strategy = (limit(), proptest::collection::vec(op(), 0..60));
    on_redis(64, 1, &strategy, |rt, store, (limit, ops)| {
        rt.block_on(run_sequence(store, limit, &ops));
    });
}

/// One step of a concurrent run: a group of votes sent at once (so that
/// on Redis they share script calls), or a close between groups.
#[derive(Debug, Clone)]
enum Step {
    Votes(Vec<(u32, u8, Option<u8>)>),
    Close,
}

fn step() -> impl Strategy<Value = Step> {
    let vote = (0..OPTIONS as u32 + 1, 0u8..4, proptest::option::of(0u8..6));
    prop_oneof![
        12 => proptest::collection::vec(vote, 1..24).prop_map(Step::Votes),
        1 => Just(Step::Close),
    ]
}

/// Runs groups of concurrent votes and checks every outcome against a model
/// taken in the only order the store can have used: that of the versions it
/// gave. Counted votes must have exactly the next versions and the counts
/// right after each one; every refusal and replay must be what the state
/// after the group explains (voters and keys only ever grow).
async fn run_concurrent(store: &dyn Store, limit: VoteLimit, steps: &[Step]) {
    let (id, voters, keys) = fresh_poll(store, limit).await;
    let mut model = Model::default();
    for step in steps {
        let group = match step {
            Step::Close => {
                let r = store.close(&id).await.unwrap().unwrap();
                if !model.closed {
                    model.closed = true;
                    model.version += 1;
                }
                assert_eq!(r.version, model.version);
                continue;
            }
            Step::Votes(group) => group,
        };
        let votes: Vec<Vote> = group
            .iter()
            .map(|&(option, voter, key)| Vote {
                poll: id.clone(),
                choice: tally::poll::Choice::one(option),
                voter: voters[voter as usize].clone(),
                idempotency_key: key.map(|k| keys[k as usize].clone()),
            })
            .collect();
        let outcomes = futures_util::future::join_all(votes.iter().map(|v| store.vote(v))).await;
        let before = model.version;
        let mut counted: Vec<(u64, usize)> = outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Ok(r) if r.version > before => Some((r.version, i)),
                _ => None,
            })
            .collect();
        // A replay of a key first used in this same group answers that
        // vote's version: one vote per version was counted, the rest of
        // that version are replays (checked below like any other).
        counted.sort_unstable();
        counted.dedup_by_key(|(version, _)| *version);
        for (version, i) in &counted {
            let (option, voter, key) = group[*i];
            assert_eq!(
                model.vote(limit, option, voter, key),
                Expect::Counted,
                "vote {i}"
            );
            assert_eq!(
                *version, model.version,
                "counted votes take the next versions"
            );
            let r = outcomes[*i].as_ref().unwrap();
            let counts: Vec<u64> = r.options.iter().map(|o| o.votes.unwrap_or(0)).collect();
            assert_eq!(counts, model.counts.to_vec(), "counts right after vote {i}");
        }
        for (i, outcome) in outcomes.iter().enumerate() {
            if counted.iter().any(|&(_, c)| c == i) {
                continue;
            }
            let (option, voter, key) = group[i];
            let first = key.and_then(|k| model.keys.get(&k).copied());
            match outcome {
                Ok(r) => {
                    let (first_option, version) = first.expect("a replay has a first outcome");
                    assert_eq!(first_option, option, "replay of vote {i}");
                    assert_eq!(r.version, version, "a replay answers its first version");
                }
                Err(e) => {
                    let voted = limit == VoteLimit::OnePerVoter && model.voters.contains(&voter);
                    // A key first used in this group may not have existed
                    // yet when this vote was checked.
                    let in_group = first.is_some_and(|(_, v)| v > before);
                    let allowed: Vec<&str> = if model.closed {
                        vec!["poll_closed"]
                    } else if option as usize >= OPTIONS {
                        vec!["option_not_found"]
                    } else if let Some((o, _)) = first.filter(|_| !in_group) {
                        if o == option {
                            vec![]
                        } else {
                            vec!["idempotency_key_reused"]
                        }
                    } else {
                        let mut codes = Vec::new();
                        if first.is_some_and(|(o, _)| o != option) {
                            codes.push("idempotency_key_reused");
                        }
                        if voted {
                            codes.push("already_voted");
                        }
                        codes
                    };
                    assert!(
                        allowed.contains(&e.reason()),
                        "vote {i} refused with {} where only {allowed:?} can be explained",
                        e.reason()
                    );
                }
            }
        }
    }
    let results = store.get(&id).await.unwrap().unwrap();
    let counts: Vec<u64> = results
        .options
        .iter()
        .map(|o| o.votes.unwrap_or(0))
        .collect();
    assert_eq!(
        counts,
        model.counts.to_vec(),
        "tallies = distinct accepted votes"
    );
    assert_eq!(results.version, model.version);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn memory_store_concurrent_votes_match_the_model(
        limit in limit(),
        steps in proptest::collection::vec(step(), 0..12),
    ) {
        let store = MemoryStore::new();
        runtime().block_on(run_concurrent(&store, limit, &steps));
    }
}

/// The batching Redis store against the same model: groups of concurrent
/// votes share script calls (group commit), yet each keeps its own outcome.
/// Also checks that batches really formed: fewer EVALSHA calls than votes.
#[test]
fn redis_store_batched_votes_match_the_model() {
    let strategy = (limit(), proptest::collection::vec(step(), 0..12));
    let votes = std::sync::atomic::AtomicU64::new(0);
    let calls = on_redis(48, 2, &strategy, |rt, store, (limit, steps)| {
        let n: usize = steps
            .iter()
            .map(|s| match s {
                Step::Votes(g) => g.len(),
                Step::Close => 0,
            })
            .sum();
        votes.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(run_concurrent(store, limit, &steps));
    });
    let votes = votes.into_inner();
    assert!(
        calls < votes,
        "{votes} concurrent votes took {calls} script calls: no batch formed"
    );
}

/// How many EVALSHA calls Redis has served (`INFO commandstats`).
async fn evalsha_calls(redis: &helpers::TestRedis) -> u64 {
    let mut conn = redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO commandstats");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The Q&A board against its model, on the embedded store.
    #[test]
    fn memory_qa_board_follows_the_model(
        moderation in any::<bool>(),
        ops in proptest::collection::vec(qa::op(), 0..40),
    ) {
        let store = MemoryStore::new();
        runtime().block_on(qa::run(&store, moderation, &ops));
    }
}

/// The same on the Redis store (`event.lua`).
#[test]
fn redis_qa_board_follows_the_model() {
    let strategy = (any::<bool>(), proptest::collection::vec(qa::op(), 0..40));
    on_redis(64, 1, &strategy, |rt, store, (moderation, ops)| {
        rt.block_on(qa::run(store, moderation, &ops));
    });
}
