//! The question kinds that count (scale, ranking, word cloud) against a
//! plain model on both stores: random polls (one per voter or unlimited,
//! with and without allow_change, any results visibility), random ballots
//! by a few voters (valid ones that repeat and change, invalid ones, a vote
//! of another kind's shape), keyed retries with the same and another body,
//! closes and reopens. After every step the store's answer and a fresh read
//! must equal what the model computes from the ballots it counts:
//!
//! - scale: the count of each value, the mean, the median (an even count
//!   takes the mean of the two middle values), null with no votes;
//! - ranking: Borda points (n−1 for first … 0 for last), first places, the
//!   options ordered by points with ties in creation order;
//! - word cloud: the entries by votes (ties first seen first), `distinct`
//!   and `total`, where allow_change replaces all of a voter's entries.
//!
//! The model keeps the ballots themselves and recomputes every figure from
//! them, so it shares no counting code with the stores.

use std::collections::HashMap;

use proptest::prelude::*;
use tally::poll::{
    Choice, IdempotencyKey, KindInput, KindName, NewPoll, PollId, Results, ResultsVisibility,
    Scale, SettingsInput, VoteLimit, VoterId, now_ms,
};
use tally::store::{CreatePoll, Reopened, Store, Vote, VoteError, VoterRecord};

const VOTERS: u8 = 3;
const KEYS: u8 = 6;

/// Raw word-cloud entries and what each must count as once normalised.
const WORDS: &[(&str, &str)] = &[
    ("Rust", "rust"),
    (" rust! ", "rust"),
    ("ＲＵＳＴ", "rust"),
    ("Go", "go"),
    ("  go", "go"),
    ("北京  大学", "北京 大学"),
    ("Café", "café"),
    ("CAFE\u{301}", "café"),
    ("zig", "zig"),
    ("¿Qué?", "qué"),
    ("🎉", "🎉"),
    ("c++", "c++"),
];

/// The kind of the poll under test, with its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KindSetup {
    Scale { min: u32, max: u32 },
    Ranking { n: usize },
    Cloud { max_entries: u32 },
}

#[derive(Debug, Clone)]
struct Setup {
    kind: KindSetup,
    limit: VoteLimit,
    allow_change: bool,
    results: ResultsVisibility,
}

impl Setup {
    fn new_poll(&self, now_ms: u64) -> NewPoll {
        let (name, options, input) = match self.kind {
            KindSetup::Scale { min, max } => (
                KindName::Scale,
                Vec::new(),
                KindInput {
                    scale: Some(Scale {
                        min,
                        max,
                        min_label: Some("low".into()),
                        max_label: None,
                    }),
                    ..KindInput::default()
                },
            ),
            KindSetup::Ranking { n } => (
                KindName::Ranking,
                (0..n).map(|i| format!("o{i}")).collect(),
                KindInput::default(),
            ),
            KindSetup::Cloud { max_entries } => (
                KindName::Wordcloud,
                Vec::new(),
                KindInput {
                    max_entries: Some(max_entries),
                    ..KindInput::default()
                },
            ),
        };
        let input = KindInput {
            kind: Some(name),
            ..input
        };
        let settings = SettingsInput {
            allow_change: Some(self.allow_change),
            results: Some(self.results),
            ..SettingsInput::default()
        };
        NewPoll::parse_kind("q", &options, self.limit, &input)
            .and_then(|p| p.with_settings(&settings, now_ms))
            .expect("the strategy makes only valid polls")
    }

    fn records_voters(&self) -> bool {
        self.limit == VoteLimit::OnePerVoter || self.results == ResultsVisibility::AfterVote
    }
}

/// A ballot as the client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Raw {
    Value(u32),
    Ranking(Vec<u32>),
    /// Indexes into [`WORDS`].
    Entries(Vec<usize>),
    /// A vote of another kind's shape (`{"option":0}` on a scale, a value
    /// elsewhere).
    OtherShape,
}

/// A ballot made comparable: what the store must treat as the same vote.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Canon {
    Value(u32),
    Ranking(Vec<u32>),
    Entries(Vec<String>),
    OtherShape,
}

#[derive(Debug, Clone)]
enum Ballot {
    Vote {
        raw: Raw,
        voter: u8,
        key: Option<u8>,
    },
    /// The `back`-th latest keyed ballot again with its key, with the same
    /// body or `other`, by its voter or another.
    Retry {
        back: usize,
        other: Option<Raw>,
        voter: Option<u8>,
    },
}

#[derive(Debug, Clone)]
enum Step {
    Ballot(Ballot),
    Close,
    Reopen,
}

fn setup() -> impl Strategy<Value = Setup> {
    let kind = prop_oneof![
        (0u32..=1, 2u32..=10).prop_map(|(min, max)| KindSetup::Scale { min, max }),
        (2usize..=5).prop_map(|n| KindSetup::Ranking { n }),
        (1u32..=3).prop_map(|max_entries| KindSetup::Cloud { max_entries }),
    ];
    let limit = prop_oneof![Just(VoteLimit::OnePerVoter), Just(VoteLimit::Unlimited)];
    let results = prop_oneof![
        Just(ResultsVisibility::Always),
        Just(ResultsVisibility::AfterVote),
        Just(ResultsVisibility::AfterClose),
    ];
    (kind, limit, any::<bool>(), results).prop_map(|(kind, limit, change, results)| Setup {
        kind,
        limit,
        // allow_change is valid only on one-per-voter polls; most runs use it.
        allow_change: limit == VoteLimit::OnePerVoter && change,
        results,
    })
}

/// Mostly valid ballots of the poll's kind (few values, so voters repeat
/// and change them), some invalid, a few of another shape.
fn raw(kind: KindSetup) -> BoxedStrategy<Raw> {
    let valid = match kind {
        KindSetup::Scale { min, max } => prop_oneof![
            8 => (min..=max.min(min + 3)).prop_map(Raw::Value),
            2 => (min..=max).prop_map(Raw::Value),
            1 => (0..=max + 1).prop_map(Raw::Value),
        ]
        .boxed(),
        KindSetup::Ranking { n } => {
            let all: Vec<u32> = (0..n as u32).collect();
            prop_oneof![
                8 => Just(all).prop_shuffle().prop_map(Raw::Ranking),
                2 => proptest::collection::vec(0..=n as u32, 0..=n + 1).prop_map(Raw::Ranking),
            ]
            .boxed()
        }
        KindSetup::Cloud { .. } => prop_oneof![
            8 => proptest::collection::vec(0..6usize, 1..=2).prop_map(Raw::Entries),
            3 => proptest::collection::vec(0..WORDS.len(), 0..=4).prop_map(Raw::Entries),
        ]
        .boxed(),
    };
    prop_oneof![20 => valid, 1 => Just(Raw::OtherShape)].boxed()
}

fn step(kind: KindSetup) -> impl Strategy<Value = Step> {
    let vote = (raw(kind), 0..VOTERS, proptest::option::of(0..KEYS))
        .prop_map(|(raw, voter, key)| Ballot::Vote { raw, voter, key });
    let retry = (
        0usize..4,
        proptest::option::of(raw(kind)),
        proptest::option::of(0..VOTERS),
    )
        .prop_map(|(back, other, voter)| Ballot::Retry { back, other, voter });
    prop_oneof![
        30 => vote.prop_map(Step::Ballot),
        8 => retry.prop_map(Step::Ballot),
        1 => Just(Step::Close),
        2 => Just(Step::Reopen),
    ]
}

fn run_of(len: std::ops::Range<usize>) -> impl Strategy<Value = (Setup, Vec<Step>)> {
    setup().prop_flat_map(move |setup| {
        let steps = proptest::collection::vec(step(setup.kind), len.clone());
        (Just(setup), steps)
    })
}

/// One option's line: id, label, votes, points, first.
type Line = (u32, String, Option<u64>, Option<u64>, Option<u64>);

/// The results as the test compares them (floats compare exactly: the
/// model computes them the way the contract defines them, from integers).
#[derive(Debug, Clone, PartialEq)]
struct View {
    version: u64,
    closed: bool,
    total: Option<u64>,
    /// In the order results list them.
    options: Vec<Line>,
    mean: Option<Option<f64>>,
    median: Option<Option<f64>>,
    entries: Option<Vec<(String, u64)>>,
    distinct: Option<u32>,
}

impl View {
    fn of(r: &Results) -> Self {
        let stat = |s: &Option<Box<serde_json::Value>>| s.as_deref().map(|v| v.as_f64());
        Self {
            version: r.version,
            closed: r.closed,
            total: r.total,
            options: r
                .options
                .iter()
                .map(|o| (o.id, o.label.clone(), o.votes, o.points, o.first))
                .collect(),
            mean: stat(&r.mean),
            median: stat(&r.median),
            entries: r.entries.as_ref().map(|e| {
                e.iter()
                    .inspect(|e| assert!(!e.hidden, "nothing is hidden in this test"))
                    .map(|e| (e.text.clone(), e.votes))
                    .collect()
            }),
            distinct: r.distinct,
        }
    }
}

/// What the model says one vote must get.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Not a ballot: refused before any store sees it.
    Invalid,
    Counted(View),
    /// The voter's current ballot again (allow_change): nothing changed.
    Unchanged(View),
    Replayed(View),
    Refused(&'static str),
    /// 422 `validation_failed` whose message starts with this.
    Unfit(&'static str),
}

/// A key's first answer: the ballot and the results it got.
#[derive(Debug, Clone)]
struct First {
    canon: Canon,
    view: View,
}

/// One poll as the contract defines it, kept as its counted ballots.
struct Model {
    setup: Setup,
    version: u64,
    closed: bool,
    /// Every ballot that counts now (a changed vote replaces its slot).
    ballots: Vec<Canon>,
    /// Voter → (slot of their ballot, that ballot), where voters are kept.
    voters: HashMap<u8, (Option<usize>, Canon)>,
    keys: HashMap<u8, First>,
    /// Word-cloud entries in the order they were first counted.
    first_seen: Vec<String>,
}

impl Model {
    fn new(setup: &Setup) -> Self {
        Self {
            setup: setup.clone(),
            version: 0,
            closed: false,
            ballots: Vec::new(),
            voters: HashMap::new(),
            keys: HashMap::new(),
            first_seen: Vec::new(),
        }
    }

    /// The ballot the store must see, or `None` where building it fails.
    fn canon(&self, raw: &Raw) -> Option<Canon> {
        Some(match raw {
            Raw::Value(v) => Canon::Value(*v),
            Raw::Ranking(order) => {
                let mut sorted = order.clone();
                sorted.sort_unstable();
                if sorted.windows(2).any(|w| w[0] == w[1]) {
                    return None;
                }
                Canon::Ranking(order.clone())
            }
            Raw::Entries(words) => {
                if words.is_empty() || words.len() > 3 {
                    return None;
                }
                let mut entries: Vec<String> = Vec::new();
                for &w in words {
                    let entry = WORDS[w].1.to_owned();
                    if !entries.contains(&entry) {
                        entries.push(entry);
                    }
                }
                Canon::Entries(entries)
            }
            Raw::OtherShape => Canon::OtherShape,
        })
    }

    /// Why `canon` does not fit the poll, as the 422 message begins.
    fn unfit(&self, canon: &Canon) -> Option<&'static str> {
        match (self.setup.kind, canon) {
            (KindSetup::Scale { min, max }, Canon::Value(v)) => {
                (!(min..=max).contains(v)).then_some("value must be")
            }
            (KindSetup::Ranking { n }, Canon::Ranking(order)) => {
                let permutation = order.len() == n && order.iter().all(|&o| (o as usize) < n);
                (!permutation).then_some("ranking must")
            }
            (KindSetup::Cloud { max_entries }, Canon::Entries(e)) => {
                (e.len() > max_entries as usize).then_some("entries:")
            }
            _ => Some("this poll is a"),
        }
    }

    /// One vote; checks in the store's order: closed (where only a retry
    /// of an earlier vote replays), the ballot fits, key, voter rule.
    fn vote(&mut self, raw: &Raw, voter: u8, key: Option<u8>) -> Expect {
        let Some(canon) = self.canon(raw) else {
            return Expect::Invalid;
        };
        let first = key.and_then(|k| self.keys.get(&k));
        if self.closed {
            return match first {
                Some(f) if f.canon == canon => Expect::Replayed(self.replay(f)),
                _ => Expect::Refused("poll_closed"),
            };
        }
        if let Some(message) = self.unfit(&canon) {
            return Expect::Unfit(message);
        }
        if let Some(f) = first {
            return if f.canon == canon {
                Expect::Replayed(self.replay(f))
            } else {
                Expect::Refused("idempotency_key_reused")
            };
        }
        let one_per_voter = self.setup.limit == VoteLimit::OnePerVoter;
        let mut slot = None;
        if self.setup.records_voters() {
            match self.voters.get(&voter) {
                Some(_) if one_per_voter && !self.setup.allow_change => {
                    return Expect::Refused("already_voted");
                }
                Some((_, current)) if one_per_voter && *current == canon => {
                    let view = self.view();
                    self.remember(key, canon, &view);
                    return Expect::Unchanged(view);
                }
                Some((s, _)) if one_per_voter => slot = *s,
                _ => {}
            }
        }
        // A changed vote replaces the voter's ballot, all of it at once.
        let slot = match slot {
            Some(s) => {
                self.ballots[s] = canon.clone();
                s
            }
            None => {
                self.ballots.push(canon.clone());
                self.ballots.len() - 1
            }
        };
        if self.setup.records_voters() {
            self.voters.insert(voter, (Some(slot), canon.clone()));
        }
        if let Canon::Entries(entries) = &canon {
            for e in entries {
                if !self.first_seen.contains(e) {
                    self.first_seen.push(e.clone());
                }
            }
        }
        self.version += 1;
        let view = self.view();
        self.remember(key, canon, &view);
        Expect::Counted(view)
    }

    fn remember(&mut self, key: Option<u8>, canon: Canon, view: &View) {
        if let Some(k) = key {
            let view = view.clone();
            self.keys.insert(k, First { canon, view });
        }
    }

    /// A key's first answer again: its version and counts, an open poll;
    /// a word cloud's entries (and `distinct`) are the current ones.
    fn replay(&self, first: &First) -> View {
        let mut view = first.view.clone();
        if matches!(self.setup.kind, KindSetup::Cloud { .. }) {
            let now = self.view();
            view.entries = now.entries;
            view.distinct = now.distinct;
        }
        view
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.version += 1;
        }
    }

    fn reopen(&mut self) {
        if self.closed {
            self.closed = false;
            self.version += 1;
        }
    }

    /// The results now, computed from the counted ballots alone.
    fn view(&self) -> View {
        let mut view = View {
            version: self.version,
            closed: self.closed,
            total: None,
            options: Vec::new(),
            mean: None,
            median: None,
            entries: None,
            distinct: None,
        };
        match self.setup.kind {
            KindSetup::Scale { min, max } => {
                let mut values: Vec<u32> = self
                    .ballots
                    .iter()
                    .map(|b| match b {
                        Canon::Value(v) => *v,
                        other => panic!("a scale counted {other:?}"),
                    })
                    .collect();
                values.sort_unstable();
                view.options = (min..=max)
                    .map(|v| {
                        let votes = values.iter().filter(|&&x| x == v).count() as u64;
                        (v, v.to_string(), Some(votes), None, None)
                    })
                    .collect();
                let n = values.len();
                view.total = Some(n as u64);
                let sum: u64 = values.iter().map(|&v| u64::from(v)).sum();
                let median = match n {
                    0 => None,
                    n if n % 2 == 1 => Some(f64::from(values[n / 2])),
                    n => Some(f64::from(values[n / 2 - 1] + values[n / 2]) / 2.0),
                };
                view.mean = Some((n > 0).then(|| sum as f64 / n as f64));
                view.median = Some(median);
            }
            KindSetup::Ranking { n } => {
                let mut points = vec![0u64; n];
                let mut first = vec![0u64; n];
                for b in &self.ballots {
                    let Canon::Ranking(order) = b else {
                        panic!("a ranking counted {b:?}");
                    };
                    for (rank, &o) in order.iter().enumerate() {
                        points[o as usize] += (n - 1 - rank) as u64;
                    }
                    first[order[0] as usize] += 1;
                }
                let mut ids: Vec<usize> = (0..n).collect();
                ids.sort_by(|&a, &b| points[b].cmp(&points[a]).then(a.cmp(&b)));
                view.options = ids
                    .into_iter()
                    .map(|i| {
                        let p = Some(points[i]);
                        (i as u32, format!("o{i}"), p, p, Some(first[i]))
                    })
                    .collect();
                view.total = Some(self.ballots.len() as u64);
            }
            KindSetup::Cloud { .. } => {
                let mut votes: HashMap<&str, u64> = HashMap::new();
                for b in &self.ballots {
                    let Canon::Entries(entries) = b else {
                        panic!("a word cloud counted {b:?}");
                    };
                    for e in entries {
                        *votes.entry(e).or_default() += 1;
                    }
                }
                // first_seen lists entries first seen first: a stable sort
                // by votes keeps that order among equal votes.
                let mut entries: Vec<(String, u64)> = self
                    .first_seen
                    .iter()
                    .map(|e| (e.clone(), votes.get(e.as_str()).copied().unwrap_or(0)))
                    .filter(|(_, v)| *v > 0)
                    .collect();
                entries.sort_by_key(|(_, v)| std::cmp::Reverse(*v));
                entries.truncate(50);
                view.total = Some(votes.values().sum());
                view.distinct = Some(votes.values().filter(|&&v| v > 0).count() as u32);
                view.entries = Some(entries);
            }
        }
        view
    }

    fn voter_record(&self, voter: u8) -> VoterRecord {
        match self.voters.get(&voter) {
            None => VoterRecord::None,
            Some((_, canon)) if self.setup.allow_change => VoterRecord::Chose(choice_of(canon)),
            Some(_) => VoterRecord::Voted,
        }
    }
}

/// The store's form of a ballot the model has accepted as one.
fn choice_of(canon: &Canon) -> Choice {
    match canon {
        Canon::Value(v) => Choice::value(*v),
        Canon::Ranking(order) => Choice::ranking(order).expect("no option twice"),
        Canon::Entries(e) => Choice::entries(e).expect("normalised entries"),
        Canon::OtherShape => Choice::one(0),
    }
}

/// Builds the vote the client would send (through the same constructors
/// the API uses), or `None` where they refuse it.
fn choice_for(kind: KindSetup, raw: &Raw) -> Option<Choice> {
    match raw {
        Raw::Value(v) => Some(Choice::value(*v)),
        Raw::Ranking(order) => Choice::ranking(order).ok(),
        Raw::Entries(words) => {
            let raw: Vec<String> = words.iter().map(|&w| WORDS[w].0.to_owned()).collect();
            Choice::entries(&raw).ok()
        }
        Raw::OtherShape => Some(match kind {
            KindSetup::Scale { .. } => Choice::one(0),
            _ => Choice::value(1),
        }),
    }
}

/// One run: the poll, its voters and keys, the model, the keyed ballots.
struct Run<'a> {
    store: &'a dyn Store,
    id: PollId,
    voters: Vec<VoterId>,
    keys: Vec<IdempotencyKey>,
    model: Model,
    keyed: Vec<(Raw, u8, u8)>,
    last: u64,
}

impl<'a> Run<'a> {
    async fn start(store: &'a dyn Store, setup: &Setup) -> Self {
        let id = PollId::generate();
        let poll = setup.new_poll(now_ms());
        let spec = CreatePoll {
            id: id.clone(),
            initial_counts: vec![0; poll.count_fields()],
            poll,
            admin_token_sha256: String::new(),
            created_at_ms: now_ms(),
        };
        let created = store.create(&spec).await.unwrap().expect("fresh id");
        let model = Model::new(setup);
        assert_eq!(View::of(&created), model.view(), "created");
        Self {
            store,
            id,
            voters: (0..VOTERS).map(|_| VoterId::generate()).collect(),
            keys: (0..KEYS)
                .map(|i| IdempotencyKey::parse(&format!("k{i}")).unwrap())
                .collect(),
            model,
            keyed: Vec::new(),
            last: 0,
        }
    }

    /// The settings results carry, whatever the counts.
    fn check_settings(&self, r: &Results, what: &str) {
        let setup = &self.model.setup;
        let name = match setup.kind {
            KindSetup::Scale { .. } => KindName::Scale,
            KindSetup::Ranking { .. } => KindName::Ranking,
            KindSetup::Cloud { .. } => KindName::Wordcloud,
        };
        assert_eq!(r.kind, name, "{what}: kind");
        assert_eq!(r.allow_change, setup.allow_change, "{what}: allow_change");
        assert_eq!(r.vote_limit, setup.limit, "{what}: vote_limit");
        assert!(!r.results_hidden, "{what}: a store never hides counts");
        if let KindSetup::Cloud { max_entries } = setup.kind {
            assert_eq!(
                r.max_entries,
                Some(max_entries as u8),
                "{what}: max_entries"
            );
        }
    }

    fn advanced(&mut self, version: u64, what: &str) {
        assert!(
            version > self.last,
            "{what}: version {version} after {}",
            self.last
        );
        self.last = version;
    }

    async fn ballot(&mut self, ballot: &Ballot) {
        let (raw, voter, key) = match ballot {
            Ballot::Vote { raw, voter, key } => (raw.clone(), *voter, *key),
            Ballot::Retry { back, other, voter } => {
                let Some((raw, by, key)) =
                    self.keyed.iter().rev().nth(back % self.keyed.len().max(1))
                else {
                    return;
                };
                let raw = other.clone().unwrap_or_else(|| raw.clone());
                (raw, voter.unwrap_or(*by), Some(*key))
            }
        };
        if let Some(k) = key {
            self.keyed.push((raw.clone(), voter, k));
        }
        let expect = self.model.vote(&raw, voter, key);
        let Some(choice) = choice_for(self.model.setup.kind, &raw) else {
            assert_eq!(expect, Expect::Invalid, "{raw:?} builds a ballot");
            return;
        };
        let vote = Vote {
            poll: self.id.clone(),
            choice,
            voter: self.voters[voter as usize].clone(),
            idempotency_key: key.map(|k| self.keys[k as usize].clone()),
        };
        let got = super::helpers::within("a vote", self.store.vote(&vote)).await;
        let what =
            format!("{raw:?} by voter {voter} key {key:?}: expected {expect:?}, got {got:?}");
        match (&expect, &got) {
            (Expect::Counted(view), Ok(r)) => {
                self.check_settings(r, &what);
                assert_eq!(View::of(r), *view, "{what}");
                self.advanced(r.version, &what);
            }
            (Expect::Unchanged(view) | Expect::Replayed(view), Ok(r)) => {
                self.check_settings(r, &what);
                assert_eq!(View::of(r), *view, "{what}");
            }
            (Expect::Refused(code), Err(e)) => assert_eq!(e.reason(), *code, "{what}"),
            (Expect::Unfit(start), Err(VoteError::Invalid(message))) => {
                assert!(message.starts_with(start), "{what}");
            }
            _ => panic!("{what}"),
        }
    }

    async fn close(&mut self) {
        let before = self.model.version;
        self.model.close();
        let r = self.store.close(&self.id).await.unwrap().expect("the poll");
        self.check_settings(&r, "close");
        assert_eq!(View::of(&r), self.model.view(), "close");
        if self.model.version > before {
            self.advanced(r.version, "close");
        }
    }

    async fn reopen(&mut self) {
        let before = self.model.version;
        self.model.reopen();
        match self.store.reopen(&self.id).await.unwrap() {
            Reopened::Open(r) => {
                self.check_settings(&r, "reopen");
                assert_eq!(View::of(&r), self.model.view(), "reopen");
                if self.model.version > before {
                    self.advanced(r.version, "reopen");
                }
            }
            other => panic!("reopen: {other:?}"),
        }
    }

    /// A fresh read equals the model now (on Redis, the `read` operation
    /// and the word cloud's top read back, not a vote's reply).
    async fn read(&self, what: &str) {
        let r = self.store.get(&self.id).await.unwrap().expect("the poll");
        self.check_settings(&r, what);
        assert_eq!(View::of(&r), self.model.view(), "read after {what}");
    }

    async fn finish(&self) {
        for (i, voter) in self.voters.iter().enumerate() {
            assert_eq!(
                self.store.voter_record(&self.id, voter).await.unwrap(),
                self.model.voter_record(i as u8),
                "what the store has on record of voter {i}"
            );
        }
    }
}

async fn run(store: &dyn Store, setup: &Setup, steps: &[Step]) {
    let mut run = Run::start(store, setup).await;
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Ballot(ballot) => run.ballot(ballot).await,
            Step::Close => run.close().await,
            Step::Reopen => run.reopen().await,
        }
        run.read(&format!("step {i} {step:?}")).await;
    }
    run.finish().await;
}

fn runs() -> impl Strategy<Value = (Setup, Vec<Step>)> {
    run_of(0..50)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn memory_store_kinds_match_the_model((setup, steps) in runs()) {
        let store = tally::store::memory::MemoryStore::new();
        super::runtime().block_on(run(&store, &setup, &steps));
    }
}

#[test]
fn redis_store_kinds_match_the_model() {
    super::on_redis(128, 1, &runs(), |rt, store, (setup, steps)| {
        rt.block_on(run(store, &setup, &steps));
    });
}
