//! Property tests of the vote logic, run on both stores: any sequence of
//! votes, retries with idempotency keys and closes keeps the tallies equal
//! to the distinct accepted votes, and versions strictly increasing.

#[path = "api/helpers.rs"]
#[allow(unused_imports, unused_macros)]
mod helpers;

use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use tally::config::Config;
use tally::hub::Hub;
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
            return Expect::Refused("poll_closed");
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

async fn run_sequence(store: &dyn Store, limit: VoteLimit, ops: &[Op]) {
    let id = PollId::generate();
    let labels: Vec<String> = (0..OPTIONS).map(|i| format!("o{i}")).collect();
    let poll = NewPoll::parse("q", &labels, limit).unwrap();
    let spec = CreatePoll {
        id: id.clone(),
        poll,
        admin_token_sha256: String::new(),
        initial_counts: vec![0; OPTIONS],
        created_at_ms: 1,
    };
    store.create(&spec).await.unwrap().expect("fresh id");
    let voters: Vec<VoterId> = (0..4).map(|_| VoterId::generate()).collect();
    let keys: Vec<IdempotencyKey> = (0..6)
        .map(|i| IdempotencyKey::parse(&format!("k{i}")).unwrap())
        .collect();
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
                    option: *option,
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
    let counts: Vec<u64> = results.options.iter().map(|o| o.votes).collect();
    assert_eq!(
        counts,
        model.counts.to_vec(),
        "tallies = distinct accepted votes"
    );
    assert_eq!(results.total, model.counts.iter().sum::<u64>());
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

/// The same property on the Redis store: one private `redis-server` for
/// all cases (each case votes on a fresh poll), stopped when the test ends.
#[test]
fn redis_store_keeps_tallies_equal_to_accepted_votes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (redis, store, shutdown) = rt.block_on(async {
        let redis = helpers::TestRedis::start().await;
        let mut config = Config::for_tests();
        config.redis_url = Some(redis.url());
        let shutdown = Shutdown::new();
        let (store, _feed) = tally::store::redis::connect(&config, Hub::new(), &shutdown)
            .await
            .expect("redis store connects");
        (redis, store, shutdown)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    let strategy = (limit(), proptest::collection::vec(op(), 0..60));
    let result = runner.run(&strategy, |(limit, ops)| {
        rt.block_on(run_sequence(store.as_ref(), limit, &ops));
        Ok(())
    });
    shutdown.trigger();
    drop(redis);
    if let Err(e) = result {
        panic!("{e}");
    }
}
