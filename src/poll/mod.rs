//! Domain types and their validation.
//!
//! Every value that reaches the store is built through a `parse` function
//! here, so an invalid poll id, question or idempotency key cannot exist past
//! the HTTP layer: Redis keys are only ever built from these checked values.

use std::fmt;
use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

pub mod kind;
pub mod ranking;
pub mod scale;
pub mod wordcloud;

pub use kind::{Kind, KindInput, KindName, Refusal};
pub use scale::Scale;
pub use wordcloud::Cloud;

/// Longest question, in Unicode scalar values.
pub const MAX_QUESTION_CHARS: usize = 300;
/// Longest option label, in Unicode scalar values.
pub const MAX_OPTION_CHARS: usize = 100;
/// Fewest options a poll may have.
pub const MIN_OPTIONS: usize = 2;
/// Most options a poll may have.
pub const MAX_OPTIONS: usize = 20;

/// Why a value was refused; the message is shown to the client as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// Checks the `[A-Za-z0-9_-]{1,max}` pattern shared by ids and keys.
fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A poll id: 1–32 chars of `[A-Za-z0-9_-]`, safe to put in a Redis key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PollId(String);

impl PollId {
    /// The only way to build an id from outside input.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if is_token(s, 32) {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid(
                "poll id must be 1-32 characters of A-Z, a-z, 0-9, _ and -",
            ))
        }
    }

    /// A fresh id of 10 random base62 characters (about 59 bits).
    pub fn generate() -> Self {
        Self(random_base62(10))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Lets maps keyed by id be searched with the id inside a `Results`.
impl std::borrow::Borrow<str> for PollId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PollId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn random_base62(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// How often one voter may vote on a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VoteLimit {
    /// One vote per `tally_voter` cookie.
    #[default]
    OnePerVoter,
    /// Anyone may vote any number of times.
    Unlimited,
}

impl VoteLimit {
    pub fn as_str(self) -> &'static str {
        match self {
            VoteLimit::OnePerVoter => "one_per_voter",
            VoteLimit::Unlimited => "unlimited",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "one_per_voter" => Ok(VoteLimit::OnePerVoter),
            "unlimited" => Ok(VoteLimit::Unlimited),
            _ => Err(invalid(
                "vote_limit must be \"one_per_voter\" or \"unlimited\"",
            )),
        }
    }
}

/// A validated poll, ready to be stored: trimmed text within the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPoll {
    pub question: String,
    pub options: Vec<String>,
    pub vote_limit: VoteLimit,
    /// The richer rules (multi-choice, changes, visibility, deadline,
    /// listing); [`PollSettings::default`] is the plain poll.
    pub settings: PollSettings,
    /// What the poll asks; with a scale, `options` holds its values.
    pub kind: Kind,
}

impl NewPoll {
    /// Validates a question and its options as the API documents them.
    pub fn parse(
        question: &str,
        options: &[String],
        vote_limit: VoteLimit,
    ) -> Result<Self, Invalid> {
        let question = parse_question(question)?;
        if options.len() < MIN_OPTIONS || options.len() > MAX_OPTIONS {
            return Err(invalid(format!(
                "a poll needs {MIN_OPTIONS} to {MAX_OPTIONS} options"
            )));
        }
        Ok(Self {
            question,
            options: parse_labels(options)?,
            vote_limit,
            settings: PollSettings::default(),
            kind: Kind::Choice,
        })
    }

    /// Validates a poll of any kind: the kind's own fields first, then the
    /// options it takes (none for word clouds and scales).
    pub fn parse_kind(
        question: &str,
        options: &[String],
        vote_limit: VoteLimit,
        kind: &KindInput,
    ) -> Result<Self, Invalid> {
        let kind = Kind::parse(kind, options.len())?;
        if kind == Kind::Choice {
            return Self::parse(question, options, vote_limit);
        }
        let question = parse_question(question)?;
        let labels = parse_labels(options)?;
        Ok(Self {
            question,
            options: kind.labels(&labels),
            vote_limit,
            settings: PollSettings::default(),
            kind,
        })
    }

    /// Adds the optional rules of a create body, checked against this
    /// poll's options and vote limit and against the clock `now_ms`.
    pub fn with_settings(mut self, input: &SettingsInput, now_ms: u64) -> Result<Self, Invalid> {
        if self.kind != Kind::Choice && input.max_choices.is_some_and(|m| m != 1) {
            return Err(invalid("max_choices is only for kind \"choice\""));
        }
        let options = self.options.len().max(1);
        self.settings = PollSettings::parse(input, options, self.vote_limit, now_ms)?;
        Ok(self)
    }

    /// How many counts the store keeps for this poll.
    pub fn count_fields(&self) -> usize {
        self.kind.count_fields(self.options.len())
    }
}

/// A question: trimmed, 1–300 characters.
fn parse_question(question: &str) -> Result<String, Invalid> {
    let question = question.trim();
    let qlen = question.chars().count();
    if qlen == 0 {
        return Err(invalid("question must not be empty"));
    }
    if qlen > MAX_QUESTION_CHARS {
        return Err(invalid(format!(
            "question must be at most {MAX_QUESTION_CHARS} characters"
        )));
    }
    Ok(question.to_owned())
}

/// Option labels: each trimmed, 1–100 characters, distinct.
fn parse_labels(options: &[String]) -> Result<Vec<String>, Invalid> {
    let mut labels: Vec<String> = Vec::with_capacity(options.len());
    for (i, raw) in options.iter().enumerate() {
        let label = raw.trim();
        let len = label.chars().count();
        if len == 0 {
            return Err(invalid(format!("option {i} must not be empty")));
        }
        if len > MAX_OPTION_CHARS {
            return Err(invalid(format!(
                "option {i} must be at most {MAX_OPTION_CHARS} characters"
            )));
        }
        if labels.iter().any(|l| l == label) {
            return Err(invalid(format!("option {i} repeats an earlier option")));
        }
        labels.push(label.to_owned());
    }
    Ok(labels)
}

/// Who may see a poll's counts while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultsVisibility {
    /// Everyone, always.
    #[default]
    Always,
    /// A voter once they have voted (and everyone once the poll is closed).
    AfterVote,
    /// Everyone once the poll is closed.
    AfterClose,
}

impl ResultsVisibility {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultsVisibility::Always => "always",
            ResultsVisibility::AfterVote => "after_vote",
            ResultsVisibility::AfterClose => "after_close",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "always" => Ok(Self::Always),
            "after_vote" => Ok(Self::AfterVote),
            "after_close" => Ok(Self::AfterClose),
            _ => Err(invalid(
                "results must be \"always\", \"after_vote\" or \"after_close\"",
            )),
        }
    }
}

/// The longest a poll may stay open by `closes_at`: a year.
pub const MAX_CLOSES_AT_MS: u64 = 366 * 24 * 3600 * 1000;

/// The optional create fields as the client sent them, before checking.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct SettingsInput {
    /// How many options one vote may choose: 1 to the number of options
    /// (default 1).
    #[schema(minimum = 1, maximum = 20)]
    pub max_choices: Option<u32>,
    /// Whether a voter may change their vote; only with `one_per_voter`
    /// (default false).
    pub allow_change: Option<bool>,
    /// Who sees the counts while the poll runs (default `always`).
    pub results: Option<ResultsVisibility>,
    /// RFC 3339 instant, in the future and at most a year away, from which
    /// the poll is closed.
    #[schema(format = DateTime)]
    pub closes_at: Option<String>,
    /// Whether `GET /api/polls` and the home page list the poll (default
    /// false: reachable by its link only).
    pub listed: Option<bool>,
}

/// A poll's rules beyond its text, fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSettings {
    /// Most options one vote may choose (1 = single choice).
    pub max_choices: u32,
    /// A voter's new vote replaces their previous one (one_per_voter only).
    pub allow_change: bool,
    pub results: ResultsVisibility,
    /// Unix milliseconds from which votes are refused and the poll closes.
    pub closes_at_ms: Option<u64>,
    /// Listed by `GET /api/polls` and the home page.
    pub listed: bool,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            max_choices: 1,
            allow_change: false,
            results: ResultsVisibility::Always,
            closes_at_ms: None,
            listed: false,
        }
    }
}

impl PollSettings {
    /// Checks each field; every message names the field it refuses.
    pub fn parse(
        input: &SettingsInput,
        options: usize,
        vote_limit: VoteLimit,
        now_ms: u64,
    ) -> Result<Self, Invalid> {
        let max_choices = input.max_choices.unwrap_or(1);
        if max_choices < 1 || max_choices as usize > options {
            return Err(invalid(format!(
                "max_choices must be from 1 to the number of options ({options})"
            )));
        }
        let allow_change = input.allow_change.unwrap_or(false);
        if allow_change && vote_limit != VoteLimit::OnePerVoter {
            return Err(invalid(
                "allow_change is only allowed with vote_limit \"one_per_voter\"",
            ));
        }
        let closes_at_ms = match input.closes_at.as_deref() {
            None => None,
            Some(text) => {
                let at = parse_rfc3339_ms(text).ok_or_else(|| {
                    invalid(
                        "closes_at must be an RFC 3339 date and time, e.g. 2030-01-01T12:00:00Z",
                    )
                })?;
                if at <= now_ms {
                    return Err(invalid("closes_at must be in the future"));
                }
                if at - now_ms > MAX_CLOSES_AT_MS {
                    return Err(invalid("closes_at must be at most a year away"));
                }
                Some(at)
            }
        };
        Ok(Self {
            max_choices,
            allow_change,
            results: input.results.unwrap_or_default(),
            closes_at_ms,
            listed: input.listed.unwrap_or(false),
        })
    }

    /// Whether the poll's deadline has passed at `now_ms`.
    pub fn is_past_close(&self, now_ms: u64) -> bool {
        self.closes_at_ms.is_some_and(|at| now_ms >= at)
    }
}

/// An RFC 3339 instant as unix milliseconds; `None` when unparsable or
/// before 1970.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Unix milliseconds as RFC 3339 in UTC, e.g. `2030-01-01T12:00:00Z`.
pub fn format_rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// What one vote says, in the shape of its poll's kind. Options are kept
/// sorted, so the same choice always has the same form (and the same
/// idempotency record); a ranking keeps its order; word-cloud entries are
/// normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Choice(Ballot);

/// The shapes a vote takes, one per kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ballot {
    /// `{"option":N}` / `{"options":[…]}`: distinct, ascending.
    Options(Vec<u32>),
    /// `{"value":N}` on a scale.
    Value(u32),
    /// `{"ranking":[…]}`: option indexes, first to last.
    Ranking(Vec<u32>),
    /// `{"entries":[…]}`: normalised, distinct.
    Entries(Vec<String>),
}

impl Choice {
    /// A single-option vote (`{"option":N}`).
    pub fn one(option: u32) -> Self {
        Self(Ballot::Options(vec![option]))
    }

    /// The options of `{"options":[…]}`: 1 to [`MAX_OPTIONS`] distinct
    /// indexes. Whether they exist and fit the poll's `max_choices` is the
    /// store's check.
    pub fn parse(options: &[u32]) -> Result<Self, Invalid> {
        if options.is_empty() {
            return Err(invalid("options must name at least one option"));
        }
        if options.len() > MAX_OPTIONS {
            return Err(invalid(format!(
                "options must name at most {MAX_OPTIONS} options"
            )));
        }
        let mut sorted = options.to_vec();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("options must not repeat an option"));
        }
        Ok(Self(Ballot::Options(sorted)))
    }

    /// A scale vote (`{"value":N}`); the store checks the poll's bounds.
    pub fn value(value: u32) -> Self {
        Self(Ballot::Value(value))
    }

    /// A ranking vote (`{"ranking":[…]}`): no option twice, at most
    /// [`ranking::MAX_OPTIONS`]; the store checks it is every option.
    pub fn ranking(order: &[u32]) -> Result<Self, Invalid> {
        if order.len() > ranking::MAX_OPTIONS {
            return Err(invalid(format!(
                "ranking must list at most {} options",
                ranking::MAX_OPTIONS
            )));
        }
        let mut sorted = order.to_vec();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("ranking must not list an option twice"));
        }
        Ok(Self(Ballot::Ranking(order.to_vec())))
    }

    /// A word-cloud vote (`{"entries":[…]}`), each entry normalised.
    pub fn entries(raw: &[String]) -> Result<Self, Invalid> {
        wordcloud::normalise_all(raw).map(|e| Self(Ballot::Entries(e)))
    }

    /// The vote's shape and content.
    pub fn ballot(&self) -> &Ballot {
        &self.0
    }

    /// The chosen option indexes (ascending), or a ranking's order; empty
    /// for a value or entries.
    pub fn options(&self) -> &[u32] {
        match &self.0 {
            Ballot::Options(o) | Ballot::Ranking(o) => o,
            _ => &[],
        }
    }

    /// The normalised entries of a word-cloud vote (else empty).
    pub fn entry_texts(&self) -> &[String] {
        match &self.0 {
            Ballot::Entries(e) => e,
            _ => &[],
        }
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Ballot::Options(o) | Ballot::Ranking(o) => o.len(),
            Ballot::Value(_) => 1,
            Ballot::Entries(e) => e.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The choice as stored in Redis: options joined by `+` (`0+2`), a
    /// value `v3`, a ranking `r2+0+1`, entries `e` then the entries joined
    /// by a line feed (normalised entries hold no line break).
    pub fn encode(&self) -> String {
        let join = |o: &[u32]| o.iter().map(u32::to_string).collect::<Vec<_>>().join("+");
        match &self.0 {
            Ballot::Options(o) => join(o),
            Ballot::Value(v) => format!("v{v}"),
            Ballot::Ranking(o) => format!("r{}", join(o)),
            Ballot::Entries(e) => format!("e{}", e.join("\n")),
        }
    }

    /// Reads [`Self::encode`]'s form back.
    pub fn decode(text: &str) -> Option<Self> {
        let list = |t: &str| -> Option<Vec<u32>> { t.split('+').map(|p| p.parse().ok()).collect() };
        match text.as_bytes().first()? {
            b'v' => text[1..].parse().ok().map(Self::value),
            b'r' => Self::ranking(&list(&text[1..])?).ok(),
            b'e' => Some(Self(Ballot::Entries(
                text[1..].split('\n').map(str::to_owned).collect(),
            ))),
            _ => Self::parse(&list(text)?).ok(),
        }
    }
}

/// An idempotency key (`Idempotency-Key` header or WebSocket `request_id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A fresh key of 22 random base62 characters (about 131 bits): the
    /// poll page puts one in its vote form, so a resubmitted form counts once.
    pub fn generate() -> Self {
        Self(random_base62(22))
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if is_token(s, 64) {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid(
                "idempotency key must be 1-64 characters of A-Z, a-z, 0-9, _ and -",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who is voting: the random `tally_voter` cookie value. Not a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VoterId(String);

impl VoterId {
    /// Accepts a cookie value of the shape this service hands out.
    pub fn parse(s: &str) -> Option<Self> {
        is_token(s, 64).then(|| Self(s.to_owned()))
    }

    pub fn generate() -> Self {
        Self(random_base62(22))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A poll's admin token: 128 random bits, shown once, stored only hashed.
pub struct AdminToken(String);

impl AdminToken {
    pub fn generate() -> Self {
        let bytes: [u8; 16] = rand::rng().random();
        Self(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lowercase hex SHA-256 that the store keeps instead of the token.
    pub fn sha256_hex(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    /// Compares a presented token with a stored hash in constant time.
    /// An empty stored hash (the demo poll without a configured token)
    /// matches nothing.
    pub fn matches(presented: &str, stored_sha256_hex: &str) -> bool {
        if stored_sha256_hex.is_empty() {
            return false;
        }
        let hash = Self::sha256_hex(presented);
        hash.as_bytes().ct_eq(stored_sha256_hex.as_bytes()).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// The wall clock in unix milliseconds: creation times and TTL renewals.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a poll was created with and never changes: its text and rules.
/// Instances cache it per poll (checked against `created_at_ms`, so a
/// deleted and re-created id is never confused) and render [`Results`]
/// from it and the counts, so the store only ever handles numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollText {
    pub question: String,
    pub labels: Vec<String>,
    pub vote_limit: VoteLimit,
    /// Unix milliseconds; tells apart two polls that had the same id.
    pub created_at_ms: u64,
    pub settings: PollSettings,
    pub kind: Kind,
}

impl PollText {
    /// The text a poll is created with.
    pub fn of(poll: &NewPoll, created_at_ms: u64) -> Self {
        Self {
            question: poll.question.clone(),
            labels: poll.options.clone(),
            vote_limit: poll.vote_limit,
            created_at_ms,
            settings: poll.settings,
            kind: poll.kind.clone(),
        }
    }

    /// The results of this poll at one state. A word cloud's entries come
    /// with [`Results::with_cloud`].
    pub fn results(&self, id: &PollId, version: u64, closed: bool, counts: &[u64]) -> Results {
        let mut results = Results::new(
            id,
            &self.question,
            self.vote_limit,
            closed,
            version,
            &self.labels,
            counts,
        );
        results.set_settings(&self.settings);
        results.kind = self.kind.name();
        match &self.kind {
            Kind::Choice => {}
            Kind::Scale(s) => {
                for option in &mut results.options {
                    option.id += s.min;
                }
                let stats = scale::stats(s.min, counts);
                let stat =
                    |m: Option<f64>| Some(Box::new(m.map_or(serde_json::Value::Null, Into::into)));
                results.mean = stat(stats.map(|(m, _)| m));
                results.median = stat(stats.map(|(_, m)| m));
                results.scale = Some(Box::new(s.clone()));
            }
            Kind::Ranking => {
                let n = self.labels.len();
                let at = |i: usize| counts.get(i).copied().unwrap_or(0);
                let points: Vec<u64> = (0..n).map(at).collect();
                results.options = ranking::order_by_points(&points)
                    .into_iter()
                    .map(|i| OptionResult {
                        id: i as u32,
                        label: self.labels[i].clone(),
                        votes: Some(points[i]),
                        points: Some(points[i]),
                        first: Some(at(n + i)),
                    })
                    .collect();
                results.total = Some((n..2 * n).map(at).sum());
            }
            Kind::WordCloud { max_entries } => {
                results.max_entries = u8::try_from(*max_entries).ok();
                results.total = Some(counts.first().copied().unwrap_or(0));
                results.entries = Some(Vec::new());
                results.distinct = Some(0);
            }
        }
        results
    }
}

/// One option's line in the results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OptionResult {
    /// The option's 0-based index: what a vote names.
    #[schema(maximum = 19)]
    pub id: u32,
    #[schema(min_length = 1, max_length = 100)]
    pub label: String,
    /// `null` while the results are hidden from this client. A ranking's
    /// option carries its points here.
    pub votes: Option<u64>,
    /// Ranking only: Borda points (n−1 for each first place … 0 for last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<u64>,
    /// Ranking only: how many ranked this option first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<u64>,
}

/// One word-cloud entry in the results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EntryResult {
    /// The normalised entry.
    #[schema(min_length = 1, max_length = 30)]
    pub text: String,
    pub votes: u64,
    /// Hidden by the host: only the host's results carry it (as `true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// The results object: what every transport sends and every page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "lpl", "question": "LPL第一打野投票", "vote_limit": "unlimited",
    "closed": false, "version": 17, "total": 1117, "options": [
        {"id": 0, "label": "明凯", "votes": 317}, {"id": 1, "label": "厂长", "votes": 200},
        {"id": 2, "label": "7酱", "votes": 600}]}))]
pub struct Results {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 300)]
    pub question: String,
    pub vote_limit: VoteLimit,
    pub closed: bool,
    /// +1 on every accepted vote and on close; the only ordering clients need.
    pub version: u64,
    /// The sum of every option's votes (a multi-choice vote adds one per
    /// chosen option); `null` while the results are hidden from this client.
    pub total: Option<u64>,
    /// The options (a scale's values, a ranking's by points; none for a word
    /// cloud).
    #[schema(max_items = 20)]
    pub options: Vec<OptionResult>,
    /// Most options one vote may choose.
    #[schema(minimum = 1, maximum = 20)]
    pub max_choices: u32,
    /// Whether a voter may replace their vote.
    pub allow_change: bool,
    /// Who sees the counts while the poll runs.
    pub results: ResultsVisibility,
    /// When the poll closes by itself (RFC 3339, UTC), or `null`.
    #[schema(format = DateTime)]
    pub closes_at: Option<String>,
    /// Whether the poll is listed by `GET /api/polls`.
    pub listed: bool,
    /// True when the counts are withheld from this client: `total` and
    /// every option's `votes` are then `null`.
    pub results_hidden: bool,
    /// What the poll asks (default `choice`).
    #[serde(default)]
    pub kind: KindName,
    /// Word cloud: entries one vote may carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 3)]
    pub max_entries: Option<u8>,
    /// Word cloud: the 50 most voted entries (ties: first seen first);
    /// empty while the results are hidden from this client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 50)]
    pub entries: Option<Vec<EntryResult>>,
    /// Word cloud: how many distinct entries have votes (absent while the
    /// results are hidden).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<u32>,
    /// Scale: its bounds and end labels. (Boxed, like the fields below, so
    /// the results of a choice poll stay small where they are moved.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Scale>)]
    pub scale: Option<Box<Scale>>,
    /// Scale: the mean value, `null` with no votes (or hidden results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub mean: Option<Box<serde_json::Value>>,
    /// Scale: the median value (the mean of the two middle ones for an even
    /// count), `null` with no votes (or hidden results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub median: Option<Box<serde_json::Value>>,
    /// Word cloud: what the store read, hidden entries included, so the
    /// public view can be derived; never serialised.
    #[serde(skip)]
    #[schema(ignore)]
    pub cloud: Option<Arc<Cloud>>,
}

impl Results {
    /// Builds results from labels and counts, deriving the total.
    pub fn new(
        id: &PollId,
        question: &str,
        vote_limit: VoteLimit,
        closed: bool,
        version: u64,
        labels: &[String],
        counts: &[u64],
    ) -> Self {
        let options: Vec<OptionResult> = labels
            .iter()
            .zip(counts.iter().copied().chain(std::iter::repeat(0)))
            .enumerate()
            .map(|(i, (label, votes))| OptionResult {
                id: i as u32,
                label: label.clone(),
                votes: Some(votes),
                points: None,
                first: None,
            })
            .collect();
        Self {
            id: id.to_string(),
            question: question.to_owned(),
            vote_limit,
            closed,
            version,
            total: Some(options.iter().filter_map(|o| o.votes).sum()),
            options,
            max_choices: 1,
            allow_change: false,
            results: ResultsVisibility::Always,
            closes_at: None,
            listed: false,
            results_hidden: false,
            kind: KindName::Choice,
            max_entries: None,
            entries: None,
            distinct: None,
            scale: None,
            mean: None,
            median: None,
            cloud: None,
        }
    }

    /// Adds a word cloud's entries as its host sees them (hidden ones
    /// marked); [`Self::public`] derives everyone else's view.
    pub fn with_cloud(mut self, cloud: Arc<Cloud>) -> Self {
        self.entries = Some(
            cloud
                .entries(true)
                .map(|(text, votes, hidden)| EntryResult {
                    text: text.to_owned(),
                    votes,
                    hidden,
                })
                .collect(),
        );
        self.distinct = Some(clamp_u32(cloud.distinct));
        self.cloud = Some(cloud);
        self
    }

    /// The results as everyone but the host sees them: a word cloud's
    /// hidden entries left out of the entries, `distinct` and `total` (the
    /// top fills up from the next visible ones). Other kinds: unchanged.
    pub fn public(&self) -> Self {
        let mut public = self.clone();
        let Some(cloud) = public.cloud.take() else {
            return public;
        };
        if let Some(entries) = &mut public.entries {
            *entries = cloud
                .entries(false)
                .map(|(text, votes, _)| EntryResult {
                    text: text.to_owned(),
                    votes,
                    hidden: false,
                })
                .collect();
        }
        public.distinct = Some(clamp_u32(
            cloud.distinct.saturating_sub(cloud.hidden_distinct),
        ));
        public.total = public.total.map(|t| t.saturating_sub(cloud.hidden_votes));
        public
    }

    /// Carries a poll's rules into its results.
    pub fn set_settings(&mut self, settings: &PollSettings) {
        self.max_choices = settings.max_choices;
        self.allow_change = settings.allow_change;
        self.results = settings.results;
        self.closes_at = settings.closes_at_ms.map(format_rfc3339);
        self.listed = settings.listed;
    }

    /// The same results with the counts withheld: what a client who may
    /// not see them yet gets (the version still tells it something changed).
    pub fn hidden(&self) -> Self {
        let mut hidden = self.clone();
        hidden.total = None;
        for option in &mut hidden.options {
            option.votes = None;
            option.points = None;
            option.first = None;
        }
        // A ranking's order would tell the standings: creation order.
        hidden.options.sort_by_key(|o| o.id);
        if hidden.entries.is_some() {
            hidden.entries = Some(Vec::new());
            hidden.distinct = None;
            hidden.cloud = None;
        }
        if hidden.mean.is_some() {
            hidden.mean = Some(Box::new(serde_json::Value::Null));
            hidden.median = Some(Box::new(serde_json::Value::Null));
        }
        hidden.results_hidden = true;
        hidden
    }

    /// When the poll closes by itself, in unix milliseconds.
    pub fn closes_at_ms(&self) -> Option<u64> {
        self.closes_at.as_deref().and_then(parse_rfc3339_ms)
    }

    /// Each option's count (0 where hidden), in option order.
    pub fn counts(&self) -> Vec<u64> {
        self.options.iter().map(|o| o.votes.unwrap_or(0)).collect()
    }
}

/// A count that fits `u32` by the store's bounds (at most 5,000 distinct
/// entries), saturating rather than wrapping if it ever did not.
fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Results serialised once and shared by every follower of an instance:
/// fan-out copies an `Arc`, never re-encodes JSON per client.
#[derive(Debug)]
pub struct Snapshot {
    pub results: Results,
    json: String,
    ws_frame: OnceLock<Utf8Bytes>,
    sse_event: OnceLock<Bytes>,
    json_body: OnceLock<Bytes>,
    /// The same version with the counts withheld, rendered once (on first
    /// need) and shared by every follower who may not see counts.
    hidden: OnceLock<Arc<Snapshot>>,
    /// A word cloud's view for everyone but the host, rendered once.
    public: OnceLock<Arc<Snapshot>>,
}

impl Snapshot {
    pub fn new(results: Results) -> Arc<Self> {
        let json = serde_json::to_string(&results).expect("results always serialise");
        Arc::new(Self {
            results,
            json,
            ws_frame: OnceLock::new(),
            sse_event: OnceLock::new(),
            json_body: OnceLock::new(),
            hidden: OnceLock::new(),
            public: OnceLock::new(),
        })
    }

    /// This version with the counts withheld (itself when already hidden).
    pub fn hidden(self: &Arc<Self>) -> Arc<Snapshot> {
        if self.results.results_hidden {
            return Arc::clone(self);
        }
        Arc::clone(
            self.hidden
                .get_or_init(|| Snapshot::new(self.results.hidden())),
        )
    }

    /// Everyone's view but the host's: this one, or (a word cloud with
    /// hidden entries) the one without them, rendered once.
    pub fn public_view(self: &Arc<Self>) -> Arc<Snapshot> {
        if self.results.cloud.is_none() {
            return Arc::clone(self);
        }
        Arc::clone(
            self.public
                .get_or_init(|| Snapshot::new(self.results.public())),
        )
    }

    pub fn version(&self) -> u64 {
        self.results.version
    }

    /// The results as JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The WebSocket push: `{"type":"results", …Results}`, built once and
    /// shared (cloning `Utf8Bytes` bumps a reference count).
    pub fn ws_frame(&self) -> Utf8Bytes {
        self.ws_frame
            .get_or_init(|| format!("{{\"type\":\"results\",{}", &self.json[1..]).into())
            .clone()
    }

    /// The results JSON as a response body, copied once and then shared by
    /// every long poll that answers with this version.
    pub fn json_body(&self) -> Bytes {
        self.json_body
            .get_or_init(|| Bytes::copy_from_slice(self.json.as_bytes()))
            .clone()
    }

    /// The whole SSE event, `event: results`, `id: <version>` and the JSON
    /// as its one data line, built once and shared by every stream (compact
    /// JSON has no newline, so one `data:` line carries it all).
    pub fn sse_event(&self) -> Bytes {
        self.sse_event
            .get_or_init(|| {
                format!(
                    "event: results\nid: {}\ndata: {}\n\n",
                    self.version(),
                    self.json
                )
                .into()
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn poll_id_accepts_pattern_and_rejects_everything_else() {
        assert!(PollId::parse("lpl").is_ok());
        assert!(PollId::parse("a-B_9").is_ok());
        assert!(PollId::parse(&"x".repeat(32)).is_ok());
        for bad in ["", "a b", "a:b", "{x}", "*", "é", &"x".repeat(33)] {
            assert!(PollId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn generated_ids_are_ten_base62_chars() {
        let id = PollId::generate();
        assert_eq!(id.as_str().len(), 10);
        assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(id, PollId::generate());
    }

    #[test]
    fn lengths_count_unicode_scalar_values() {
        let q = "票".repeat(300);
        assert!(NewPoll::parse(&q, &opts(&["a", "b"]), VoteLimit::Unlimited).is_ok());
        let q = "票".repeat(301);
        assert!(NewPoll::parse(&q, &opts(&["a", "b"]), VoteLimit::Unlimited).is_err());
        let o = "明".repeat(100);
        assert!(NewPoll::parse("q", &[o.clone(), "b".into()], VoteLimit::Unlimited).is_ok());
        let o = "明".repeat(101);
        assert!(NewPoll::parse("q", &[o, "b".into()], VoteLimit::Unlimited).is_err());
    }

    #[test]
    fn text_is_trimmed_and_must_not_be_blank_or_repeated() {
        let p = NewPoll::parse("  q ", &opts(&[" a", "b "]), VoteLimit::OnePerVoter).unwrap();
        assert_eq!(p.question, "q");
        assert_eq!(p.options, vec!["a", "b"]);
        assert!(NewPoll::parse("   ", &opts(&["a", "b"]), VoteLimit::Unlimited).is_err());
        assert!(NewPoll::parse("q", &opts(&["a", " "]), VoteLimit::Unlimited).is_err());
        assert!(NewPoll::parse("q", &opts(&["a", " a "]), VoteLimit::Unlimited).is_err());
    }

    #[test]
    fn option_count_is_two_to_twenty() {
        assert!(NewPoll::parse("q", &opts(&["a"]), VoteLimit::Unlimited).is_err());
        let twenty: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        assert!(NewPoll::parse("q", &twenty, VoteLimit::Unlimited).is_ok());
        let many: Vec<String> = (0..21).map(|i| i.to_string()).collect();
        assert!(NewPoll::parse("q", &many, VoteLimit::Unlimited).is_err());
    }

    #[test]
    fn idempotency_key_pattern() {
        assert!(IdempotencyKey::parse("abc-123_X").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(64)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(65)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("a b").is_err());
        let fresh = IdempotencyKey::generate();
        assert!(IdempotencyKey::parse(fresh.as_str()).is_ok());
        assert_ne!(fresh.as_str(), IdempotencyKey::generate().as_str());
    }

    #[test]
    fn admin_token_matches_only_its_own_hash() {
        let t = AdminToken::generate();
        assert_eq!(t.as_str().len(), 32);
        let h = AdminToken::sha256_hex(t.as_str());
        assert!(AdminToken::matches(t.as_str(), &h));
        assert!(!AdminToken::matches("nope", &h));
        assert!(!AdminToken::matches("", ""));
    }

    #[test]
    fn ws_frame_and_sse_event_carry_the_results() {
        let id = PollId::parse("p").unwrap();
        let r = Results::new(
            &id,
            "q",
            VoteLimit::Unlimited,
            false,
            3,
            &opts(&["a", "b"]),
            &[1, 2],
        );
        assert_eq!(r.total, Some(3));
        let s = Snapshot::new(r.clone());
        let v: serde_json::Value = serde_json::from_str(s.ws_frame().as_str()).unwrap();
        let event = String::from_utf8(s.sse_event().to_vec()).unwrap();
        assert_eq!(
            event,
            format!("event: results\nid: 3\ndata: {}\n\n", s.json())
        );
        assert_eq!(v["type"], "results");
        assert_eq!(v["version"], 3);
        assert_eq!(serde_json::from_str::<Results>(s.json()).unwrap(), r);
    }
}
