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
}

impl NewPoll {
    /// Validates a question and its options as the API documents them.
    pub fn parse(
        question: &str,
        options: &[String],
        vote_limit: VoteLimit,
    ) -> Result<Self, Invalid> {
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
        if options.len() < MIN_OPTIONS || options.len() > MAX_OPTIONS {
            return Err(invalid(format!(
                "a poll needs {MIN_OPTIONS} to {MAX_OPTIONS} options"
            )));
        }
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
        Ok(Self {
            question: question.to_owned(),
            options: labels,
            vote_limit,
        })
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
}

impl PollText {
    /// The results of this poll at one state.
    pub fn results(&self, id: &PollId, version: u64, closed: bool, counts: &[u64]) -> Results {
        Results::new(
            id,
            &self.question,
            self.vote_limit,
            closed,
            version,
            &self.labels,
            counts,
        )
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
    pub votes: u64,
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
    /// The sum of every option's votes.
    pub total: u64,
    #[schema(min_items = 2, max_items = 20)]
    pub options: Vec<OptionResult>,
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
                votes,
            })
            .collect();
        Self {
            id: id.to_string(),
            question: question.to_owned(),
            vote_limit,
            closed,
            version,
            total: options.iter().map(|o| o.votes).sum(),
            options,
        }
    }
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
        })
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
        assert_eq!(r.total, 3);
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
