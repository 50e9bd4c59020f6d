//! The richer polls against [`PollModel`] on both stores: random settings
//! (multi-choice, change-your-vote, visibility, deadline), random choices
//! (invalid ones too), keyed retries with the same and another body, repeat
//! voters changing their vote, closes and reopens. Every vote must get
//! exactly the model's outcome (code, version, counts right after it), and
//! so must every close and reopen; the final state must be the model's.
//!
//! Votes of one group are sent together, each joining the store before the
//! next is sent: on Redis they share script calls (group commit), which
//! must count them in that arrival order, each with its own outcome.

use std::task::Poll;

use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::strategy::Union;
use tally::poll::{
    Choice, IdempotencyKey, PollId, Results, ResultsVisibility, VoteLimit, VoterId, now_ms,
};
use tally::store::{CreatePoll, Reopened, Store, Vote, VoteError};

use super::model::{Deadline, Expect, PollModel, Setup};

const VOTERS: u8 = 4;
const KEYS: u8 = 24;

/// One ballot as the test draws it.
#[derive(Debug, Clone)]
enum Ballot {
    /// `choice` as the client sends it: any order, maybe empty, repeated,
    /// too long or out of range.
    Vote {
        choice: Vec<u32>,
        voter: u8,
        key: Option<u8>,
    },
    /// The `back`-th latest keyed ballot again with its key: the same
    /// choice (listed in another order) or a changed one, by its voter or
    /// another.
    Retry {
        back: usize,
        same: bool,
        voter: Option<u8>,
    },
}

/// A step of a run: ballots sent together, or an admin's close or reopen.
#[derive(Debug, Clone)]
enum Step {
    Ballots(Vec<Ballot>),
    Close,
    Reopen,
}

fn setup() -> impl Strategy<Value = Setup> {
    let limit = prop_oneof![Just(VoteLimit::OnePerVoter), Just(VoteLimit::Unlimited)];
    let results = prop_oneof![
        Just(ResultsVisibility::Always),
        Just(ResultsVisibility::AfterVote),
        Just(ResultsVisibility::AfterClose),
    ];
    let deadline = prop_oneof![
        8 => Just(Deadline::None),
        3 => Just(Deadline::Later),
        1 => Just(Deadline::Passed),
    ];
    (
        2usize..=4,
        limit,
        any::<bool>(),
        results,
        deadline,
        any::<bool>(),
    )
        .prop_flat_map(|(options, limit, change, results, deadline, listed)| {
            (1..=options as u32).prop_map(move |max_choices| Setup {
                options,
                limit,
                max_choices,
                // allow_change is valid only on one-per-voter polls.
                allow_change: change && limit == VoteLimit::OnePerVoter,
                results,
                deadline,
                listed,
            })
        })
}

/// Mostly valid choices (so that voters repeat and change them), some
/// with too many options, some anything at all.
fn choice(setup: &Setup) -> BoxedStrategy<Vec<u32>> {
    let n = setup.options;
    let max = setup.max_choices as usize;
    let all: Vec<u32> = (0..n as u32).collect();
    let mut arms = vec![
        (6, subsequence(all.clone(), 1..=max).prop_shuffle().boxed()),
        (
            2,
            proptest::collection::vec(0..=n as u32, 0..=n + 1).boxed(),
        ),
    ];
    if max < n {
        arms.push((1, subsequence(all, max + 1..=n).prop_shuffle().boxed()));
    }
    Union::new_weighted(arms).boxed()
}

fn ballot(setup: &Setup) -> impl Strategy<Value = Ballot> + use<> {
    let vote = (choice(setup), 0..VOTERS, proptest::option::of(0..KEYS))
        .prop_map(|(choice, voter, key)| Ballot::Vote { choice, voter, key });
    let retry = (0usize..4, any::<bool>(), proptest::option::of(0..VOTERS))
        .prop_map(|(back, same, voter)| Ballot::Retry { back, same, voter });
    prop_oneof![4 => vote, 1 => retry]
}

/// A poll's settings and `len` steps: ballots (`group` of them, weighted
/// `ballots` against one close and two reopens, so that a run spends most
/// of its votes on an open poll).
fn run_of(
    len: std::ops::Range<usize>,
    group: std::ops::RangeInclusive<usize>,
    ballots: u32,
) -> impl Strategy<Value = (Setup, Vec<Step>)> {
    setup().prop_flat_map(move |setup| {
        let step = prop_oneof![
            ballots => proptest::collection::vec(ballot(&setup), group.clone()).prop_map(Step::Ballots),
            1 => Just(Step::Close),
            2 => Just(Step::Reopen),
        ];
        (
            Just(setup.clone()),
            proptest::collection::vec(step, len.clone()),
        )
    })
}

/// One ballot made concrete.
#[derive(Debug, Clone)]
struct Cast {
    choice: Vec<u32>,
    voter: u8,
    key: Option<u8>,
}

/// A changed choice for a retry with another body.
fn changed(choice: &[u32], options: usize) -> Vec<u32> {
    match choice {
        [] => vec![0],
        [one] => vec![(one + 1) % (options as u32 + 1)],
        [_, rest @ ..] => rest.to_vec(),
    }
}

/// The poll under test and the voters and keys it is voted with.
struct Fixture {
    id: PollId,
    voters: Vec<VoterId>,
    keys: Vec<IdempotencyKey>,
}

impl Fixture {
    async fn create(store: &dyn Store, setup: &Setup) -> Self {
        let id = PollId::generate();
        let spec = CreatePoll {
            id: id.clone(),
            poll: setup.new_poll(now_ms()),
            admin_token_sha256: String::new(),
            initial_counts: vec![0; setup.options],
            created_at_ms: now_ms(),
        };
        store.create(&spec).await.unwrap().expect("fresh id");
        Self {
            id,
            voters: (0..VOTERS).map(|_| VoterId::generate()).collect(),
            keys: (0..KEYS)
                .map(|i| IdempotencyKey::parse(&format!("k{i}")).unwrap())
                .collect(),
        }
    }

    fn vote(&self, cast: &Cast, choice: Choice) -> Vote {
        Vote {
            poll: self.id.clone(),
            choice,
            voter: self.voters[cast.voter as usize].clone(),
            idempotency_key: cast.key.map(|k| self.keys[k as usize].clone()),
        }
    }
}

/// Sends every vote before awaiting any, each polled once in order, so
/// each has joined the store (for Redis: its poll's group-commit queue)
/// before the next is sent: their arrival order is their index order.
async fn cast_in_order(store: &dyn Store, votes: &[Vote]) -> Vec<Result<Results, VoteError>> {
    let mut pending: Vec<_> = votes.iter().map(|v| store.vote(v)).collect();
    let mut outcomes: Vec<Option<Result<Results, VoteError>>> =
        votes.iter().map(|_| None).collect();
    let all = std::future::poll_fn(|cx| {
        for (fut, outcome) in pending.iter_mut().zip(outcomes.iter_mut()) {
            if outcome.is_none()
                && let Poll::Ready(o) = fut.as_mut().poll(cx)
            {
                *outcome = Some(o);
            }
        }
        if outcomes.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    super::helpers::within("a group of votes", all).await;
    outcomes.into_iter().map(Option::unwrap).collect()
}

/// One run's model and what it has seen so far.
struct Run {
    model: PollModel,
    /// Keyed ballots sent, oldest first (what a retry repeats).
    keyed: Vec<Cast>,
    /// The newest version any counting answer carried.
    last: u64,
    /// Votes handed to the store.
    sent: u64,
}

impl Run {
    fn new(setup: &Setup) -> Self {
        Self {
            model: PollModel::new(setup),
            keyed: Vec::new(),
            last: 0,
            sent: 0,
        }
    }

    fn resolve(&mut self, ballot: &Ballot) -> Option<Cast> {
        let cast = match ballot {
            Ballot::Vote { choice, voter, key } => Cast {
                choice: choice.clone(),
                voter: *voter,
                key: *key,
            },
            Ballot::Retry { back, same, voter } => {
                let earlier = self
                    .keyed
                    .iter()
                    .rev()
                    .nth(*back % self.keyed.len().max(1))?;
                let choice = if *same {
                    earlier.choice.iter().rev().copied().collect()
                } else {
                    changed(&earlier.choice, self.model.setup.options)
                };
                Cast {
                    choice,
                    voter: voter.unwrap_or(earlier.voter),
                    key: earlier.key,
                }
            }
        };
        if cast.key.is_some() {
            self.keyed.push(cast.clone());
        }
        Some(cast)
    }

    /// Checks results against the model's state and the poll's settings.
    fn check(&self, r: &Results, version: u64, closed: bool, counts: &[u64], what: &str) {
        let setup = &self.model.setup;
        assert_eq!(r.version, version, "{what}: version");
        assert_eq!(r.closed, closed, "{what}: closed");
        assert_eq!(r.counts(), counts, "{what}: counts");
        assert_eq!(r.total, Some(counts.iter().sum()), "{what}: total");
        assert!(!r.results_hidden, "{what}: a store never hides counts");
        assert_eq!(r.max_choices, setup.max_choices, "{what}");
        assert_eq!(r.allow_change, setup.allow_change, "{what}");
        assert_eq!(r.results, setup.results, "{what}");
        assert_eq!(r.listed, setup.listed, "{what}");
        assert_eq!(
            r.closes_at.is_some(),
            setup.deadline != Deadline::None,
            "{what}"
        );
    }

    /// A version that announces a change must be above every one before.
    fn advanced(&mut self, version: u64, what: &str) {
        assert!(
            version > self.last,
            "{what}: version {version} after {}",
            self.last
        );
        self.last = version;
    }

    /// Sends one group of ballots (invalid choices stop at
    /// `Choice::parse`) and checks each outcome against the model.
    async fn ballots(&mut self, store: &dyn Store, poll: &Fixture, ballots: &[Ballot]) {
        let casts: Vec<Cast> = ballots.iter().filter_map(|b| self.resolve(b)).collect();
        // The model in arrival order: the order the store must count in.
        let expects: Vec<Expect> = casts
            .iter()
            .map(|c| self.model.vote(&c.choice, c.voter, c.key))
            .collect();
        let mut votes = Vec::new();
        for (cast, expect) in casts.iter().zip(&expects) {
            match Choice::parse(&cast.choice) {
                Ok(choice) => votes.push(poll.vote(cast, choice)),
                Err(_) => assert_eq!(*expect, Expect::Invalid, "{cast:?} is a choice"),
            }
        }
        self.sent += votes.len() as u64;
        let mut outcomes = cast_in_order(store, &votes).await.into_iter();
        for (i, (cast, expect)) in casts.iter().zip(&expects).enumerate() {
            if *expect == Expect::Invalid {
                continue;
            }
            let got = outcomes.next().expect("one outcome per vote");
            let what =
                format!("ballot {i} of the group, {cast:?}: expected {expect:?}, got {got:?}");
            match (expect, &got) {
                (Expect::Counted { version, counts }, Ok(r)) => {
                    self.check(r, *version, false, counts, &what);
                    self.advanced(r.version, &what);
                }
                (
                    Expect::Unchanged { version, counts } | Expect::Replayed { version, counts },
                    Ok(r),
                ) => self.check(r, *version, false, counts, &what),
                (Expect::Refused(code), Err(e)) => {
                    assert_eq!(e.reason(), *code, "{what}");
                    if let VoteError::TooManyChoices(max) = e {
                        assert_eq!(*max, self.model.setup.max_choices, "{what}");
                    }
                }
                _ => panic!("{what}"),
            }
        }
    }

    /// An admin's close: the model's version and counts, closed.
    async fn close(&mut self, store: &dyn Store, poll: &Fixture) {
        let before = self.model.version;
        self.model.close();
        let r = store
            .close(&poll.id)
            .await
            .unwrap()
            .expect("the poll exists");
        self.check(&r, self.model.version, true, &self.model.counts, "close");
        if self.model.version > before {
            self.advanced(r.version, "close");
        }
    }

    /// An admin's reopen: open again, or refused past the deadline.
    async fn reopen(&mut self, store: &dyn Store, poll: &Fixture) {
        let before = self.model.version;
        let opens = self.model.reopen();
        match store.reopen(&poll.id).await.unwrap() {
            Reopened::Open(r) if opens => {
                self.check(&r, self.model.version, false, &self.model.counts, "reopen");
                if self.model.version > before {
                    self.advanced(r.version, "reopen");
                }
            }
            Reopened::PastClosesAt if !opens => {}
            other => panic!("reopen: the model opens: {opens}, the store said {other:?}"),
        }
    }

    /// The final state, read back, and who the store says has voted.
    async fn finish(&mut self, store: &dyn Store, poll: &Fixture) {
        self.model.close_if_due();
        let r = store.get(&poll.id).await.unwrap().expect("the poll exists");
        let m = &self.model;
        self.check(&r, m.version, m.closed, &m.counts, "final read");
        for (i, voter) in poll.voters.iter().enumerate() {
            assert_eq!(
                store.voter_record(&poll.id, voter).await.unwrap(),
                self.model.voter_record(i as u8),
                "what the store has on record of voter {i}"
            );
        }
    }
}

/// Runs `steps` on a fresh poll of `setup`; returns the votes sent.
async fn run(store: &dyn Store, setup: &Setup, steps: &[Step]) -> u64 {
    let poll = Fixture::create(store, setup).await;
    let mut run = Run::new(setup);
    for step in steps {
        match step {
            Step::Ballots(ballots) => run.ballots(store, &poll, ballots).await,
            Step::Close => run.close(store, &poll).await,
            Step::Reopen => run.reopen(store, &poll).await,
        }
    }
    run.finish(store, &poll).await;
    run.sent
}

/// One ballot per step: each vote answered before the next is sent.
fn one_by_one() -> impl Strategy<Value = (Setup, Vec<Step>)> {
    run_of(0..60, 1..=1, 24)
}

/// Groups of up to 24 ballots sent together.
fn in_groups() -> impl Strategy<Value = (Setup, Vec<Step>)> {
    run_of(0..12, 1..=24, 8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn memory_store_richer_polls_match_the_model((setup, steps) in one_by_one()) {
        let store = tally::store::memory::MemoryStore::new();
        super::runtime().block_on(run(&store, &setup, &steps));
    }

    #[test]
    fn memory_store_richer_groups_match_the_model((setup, steps) in in_groups()) {
        let store = tally::store::memory::MemoryStore::new();
        super::runtime().block_on(run(&store, &setup, &steps));
    }
}

#[test]
fn redis_store_richer_polls_match_the_model() {
    super::on_redis(128, 1, &one_by_one(), |rt, store, (setup, steps)| {
        rt.block_on(run(store, &setup, &steps));
    });
}

/// Groups share script calls (group commit), yet each vote keeps exactly
/// the model's outcome; and batches really formed: fewer EVALSHA calls
/// than votes.
#[test]
fn redis_store_richer_groups_match_the_model() {
    let votes = std::sync::atomic::AtomicU64::new(0);
    let calls = super::on_redis(96, 2, &in_groups(), |rt, store, (setup, steps)| {
        let sent = rt.block_on(run(store, &setup, &steps));
        votes.fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
    });
    let votes = votes.into_inner();
    assert!(
        calls < votes,
        "{votes} votes sent in groups took {calls} script calls: no batch formed"
    );
}
