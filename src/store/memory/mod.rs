//! The embedded store: one instance, counts in process memory.
//!
//! A single mutex guards all polls. A vote holds it for a few hash lookups
//! and one `Results` build, so contention stays far below what one instance
//! can push through HTTP; nothing here awaits while holding it. Group commit
//! would buy nothing here: there is no round trip to share.
//!
//! Polls idle for `TALLY_POLL_TTL` are gone, as on Redis: a lookup treats
//! an expired poll as absent (and drops it), and creates sweep the rest.

mod cloud;
pub mod events;
pub mod qa;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use cloud::CloudState;
use events::Events;

use super::{CreatePoll, Hidden, Reopened, Store, Unavailable, Vote, VoteError, VoterRecord};
use crate::event::EventId;
use crate::poll::{
    Choice, IdempotencyKey, Kind, PollId, PollText, Results, ResultsVisibility, VoteLimit, VoterId,
    now_ms,
};

/// A poll as kept in memory.
struct Record {
    text: PollText,
    closed: bool,
    version: u64,
    counts: Vec<u64>,
    /// Creation order, to list newest first even within one millisecond.
    seq: u64,
    admin_token_sha256: String,
    /// Voter → their current choice: kept for one-per-voter polls (the
    /// rule, and what a change replaces) and `after_vote` ones (who sees).
    voters: HashMap<String, Choice>,
    /// Idempotency key → the outcome of the vote made with it.
    idempotency: HashMap<String, FirstOutcome>,
    /// Table size at which expired records are next swept (doubles, so
    /// sweeping stays amortised O(1) per vote).
    sweep_at: usize,
    /// When the poll expires unless a vote, close or reopen comes first.
    expires: Option<Instant>,
    /// The event this poll is a question of, once a move has fenced it.
    event: Option<EventId>,
    /// The highest event generation that opened or closed it.
    generation: u64,
    /// A word cloud's entries (`None` for other kinds).
    cloud: Option<CloudState>,
}

/// What an idempotency key replays: the counts and version right after its
/// vote (the poll's text never changes, so it is not copied per record).
struct FirstOutcome {
    choice: Choice,
    version: u64,
    counts: Box<[u64]>,
    expires: Instant,
}

/// Fewest records before expired ones are swept.
const MIN_SWEEP: usize = 1024;

impl Record {
    fn results(&self, id: &PollId) -> Results {
        self.results_with(id, self.closed, self.version, &self.counts)
    }

    /// A word cloud's entries are always the current ones: a replayed
    /// outcome keeps its version and total, not a copy of its top entries.
    fn results_with(&self, id: &PollId, closed: bool, version: u64, counts: &[u64]) -> Results {
        let results = self.text.results(id, version, closed, counts);
        match &self.cloud {
            Some(cloud) => results.with_cloud(std::sync::Arc::new(cloud.cloud())),
            None => results,
        }
    }

    /// The count changes `choice` makes on this poll, or why it does not fit.
    fn deltas(&self, choice: &Choice) -> Result<Vec<(usize, i64)>, VoteError> {
        let (kind, labels) = (&self.text.kind, self.text.labels.len());
        let max_choices = self.text.settings.max_choices;
        kind.deltas(choice, labels, max_choices)
            .map_err(|r| VoteError::refused(r, kind, labels, max_choices))
    }

    /// Adds `sign` times `choice`'s changes to the counts (and entries).
    fn apply(&mut self, choice: &Choice, deltas: &[(usize, i64)], sign: i64) {
        for &(field, delta) in deltas {
            self.counts[field] = self.counts[field].saturating_add_signed(sign * delta);
        }
        if let Some(cloud) = &mut self.cloud {
            for entry in choice.entry_texts() {
                cloud.add(entry, sign);
            }
        }
    }
}

impl Record {
    fn is_live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }

    /// Closes the poll once its `closes_at` has passed (the same close as
    /// an admin's: version +1). True when it is closed now.
    fn close_if_due(&mut self, wall_ms: u64) -> bool {
        if !self.closed && self.text.settings.is_past_close(wall_ms) {
            self.closed = true;
            self.version += 1;
        }
        self.closed
    }

    /// Keeps the poll's state now as the outcome of the vote made with
    /// `key`, replayed until `expires`; expired outcomes are swept
    /// (amortised).
    fn remember(&mut self, key: &IdempotencyKey, choice: &Choice, expires: Instant) {
        let now = Instant::now();
        if self.idempotency.len() >= self.sweep_at {
            self.idempotency.retain(|_, first| first.expires > now);
            self.sweep_at = (self.idempotency.len() * 2).max(MIN_SWEEP);
        }
        let first = FirstOutcome {
            choice: choice.clone(),
            version: self.version,
            counts: self.counts.clone().into_boxed_slice(),
            expires,
        };
        self.idempotency.insert(key.as_str().to_owned(), first);
    }

    /// What a vote with `key` gets when the key has an outcome on record:
    /// its replay for the same choice, else `idempotency_key_reused`.
    fn replay(
        &self,
        id: &PollId,
        key: &IdempotencyKey,
        choice: &Choice,
        now: Instant,
    ) -> Option<Result<Results, VoteError>> {
        let first = self
            .idempotency
            .get(key.as_str())
            .filter(|f| f.expires > now)?;
        Some(if first.choice == *choice {
            // A vote only counts on an open poll: its outcome was open.
            Ok(self.results_with(id, false, first.version, &first.counts))
        } else {
            Err(VoteError::IdempotencyKeyReused)
        })
    }

    /// Whether votes of this poll are remembered per voter.
    fn records_voters(&self) -> bool {
        self.text.vote_limit == VoteLimit::OnePerVoter
            || self.text.settings.results == ResultsVisibility::AfterVote
    }
}

#[derive(Default)]
struct Polls {
    by_id: HashMap<PollId, Record>,
    next_seq: u64,
    /// Poll count at which expired polls are next swept (amortised).
    sweep_at: usize,
}

impl Polls {
    /// The poll `id` unless it is absent or expired (then it is dropped).
    fn live(&mut self, id: &PollId, now: Instant) -> Option<&mut Record> {
        if self.by_id.get(id).is_some_and(|r| !r.is_live(now)) {
            self.by_id.remove(id);
        }
        self.by_id.get_mut(id)
    }
}

/// The in-memory backend; nothing persists past the process.
pub struct MemoryStore {
    polls: Mutex<Polls>,
    /// Events and join codes (see [`events`]).
    events: Mutex<Events>,
    /// Idle life of a poll; `None` keeps polls forever.
    poll_ttl: Option<Duration>,
    idempotency_ttl: Duration,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store with the default bounds (polls idle 30 days, keys 24 h).
    pub fn new() -> Self {
        Self::with_ttls(
            Duration::from_secs(30 * 24 * 3600),
            Duration::from_secs(24 * 3600),
        )
    }

    /// A store whose idle polls expire after `poll_ttl` (zero: never) and
    /// whose idempotency keys replay for `idempotency_ttl`.
    pub fn with_ttls(poll_ttl: Duration, idempotency_ttl: Duration) -> Self {
        Self {
            polls: Mutex::new(Polls::default()),
            events: Mutex::default(),
            poll_ttl: (!poll_ttl.is_zero()).then_some(poll_ttl),
            idempotency_ttl,
        }
    }

    /// When something touched now expires (`None`: never).
    fn expiry(&self, now: Instant) -> Option<Instant> {
        self.poll_ttl.map(|ttl| now + ttl)
    }

    /// Applies the voter rule: records `choice` as `voter`'s and returns
    /// the choice it replaces (allow_change), or refuses a second vote.
    fn replace_choice(
        &self,
        record: &mut Record,
        voter: &VoterId,
        choice: &Choice,
    ) -> Result<Option<Choice>, VoteError> {
        if !record.records_voters() {
            return Ok(None);
        }
        let one_per_voter = record.text.vote_limit == VoteLimit::OnePerVoter;
        match record.voters.get_mut(voter.as_str()) {
            Some(_) if one_per_voter && !record.text.settings.allow_change => {
                Err(VoteError::AlreadyVoted)
            }
            Some(current) if one_per_voter => Ok(Some(std::mem::replace(current, choice.clone()))),
            Some(current) => {
                // Unlimited after_vote: only remembered as having voted.
                *current = choice.clone();
                Ok(None)
            }
            None => {
                record
                    .voters
                    .insert(voter.as_str().to_owned(), choice.clone());
                Ok(None)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Polls> {
        // A panic while holding the lock cannot leave a record half-updated
        // (every mutation is a few infallible assignments), so poisoning is
        // safe to ignore.
        self.polls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(&self, c: &CreatePoll) -> Result<Option<Results>, Unavailable> {
        let mut polls = self.lock();
        let now = Instant::now();
        if polls.live(&c.id, now).is_some() {
            return Ok(None);
        }
        if polls.by_id.len() >= polls.sweep_at {
            polls.by_id.retain(|_, r| r.is_live(now));
            polls.sweep_at = (polls.by_id.len() * 2).max(MIN_SWEEP);
        }
        polls.next_seq += 1;
        let mut counts = c.initial_counts.clone();
        counts.resize(c.poll.count_fields(), 0);
        let record = Record {
            text: PollText::of(&c.poll, c.created_at_ms),
            closed: false,
            version: 0,
            counts,
            seq: polls.next_seq,
            admin_token_sha256: c.admin_token_sha256.clone(),
            voters: Default::default(),
            idempotency: HashMap::new(),
            sweep_at: MIN_SWEEP,
            expires: self.expiry(now),
            event: None,
            generation: 0,
            cloud: matches!(c.poll.kind, Kind::WordCloud { .. }).then(CloudState::default),
        };
        let results = record.results(&c.id);
        polls.by_id.insert(c.id.clone(), record);
        Ok(Some(results))
    }

    async fn get(&self, id: &PollId) -> Result<Option<Results>, Unavailable> {
        Ok(self.lock().live(id, Instant::now()).map(|r| {
            r.close_if_due(now_ms());
            r.results(id)
        }))
    }

    async fn list(&self, limit: usize) -> Result<Vec<Results>, Unavailable> {
        let polls = self.lock();
        let now = Instant::now();
        let mut all: Vec<(&PollId, &Record)> = polls
            .by_id
            .iter()
            .filter(|(_, r)| r.is_live(now) && r.text.settings.listed)
            .collect();
        all.sort_by_key(|(_, r)| std::cmp::Reverse((r.text.created_at_ms, r.seq)));
        Ok(all
            .into_iter()
            .take(limit)
            .map(|(id, r)| r.results(id))
            .collect())
    }

    async fn vote(&self, v: &Vote) -> Result<Results, VoteError> {
        let now = Instant::now();
        let expires = self.expiry(now);
        let mut polls = self.lock();
        let record = polls.live(&v.poll, now).ok_or(VoteError::PollNotFound)?;
        // Same order as the Redis script: poll, closed (flag or deadline),
        // options, key, voter. A retry of a vote counted before the close
        // still replays its outcome: the vote was acknowledged once.
        if record.close_if_due(now_ms()) {
            return match &v.idempotency_key {
                Some(key) => record
                    .replay(&v.poll, key, &v.choice, now)
                    .filter(Result::is_ok)
                    .unwrap_or(Err(VoteError::PollClosed)),
                None => Err(VoteError::PollClosed),
            };
        }
        let deltas = record.deltas(&v.choice)?;
        if let Some(key) = &v.idempotency_key
            && let Some(outcome) = record.replay(&v.poll, key, &v.choice, now)
        {
            return outcome;
        }
        if record
            .cloud
            .as_ref()
            .is_some_and(|c| c.would_overflow(v.choice.entry_texts()))
        {
            return Err(VoteError::TooManyEntries);
        }
        let previous = self.replace_choice(record, &v.voter, &v.choice)?;
        if previous.as_ref() == Some(&v.choice) {
            // The same choice again: nothing changes, but the key keeps
            // this answer, as in the Redis script.
            if let Some(key) = &v.idempotency_key {
                record.remember(key, &v.choice, now + self.idempotency_ttl);
            }
            return Ok(record.results(&v.poll));
        }
        if let Some(previous) = &previous {
            // Recorded by this poll, so it fits it.
            let old = record.deltas(previous)?;
            record.apply(previous, &old, -1);
        }
        record.apply(&v.choice, &deltas, 1);
        record.version += 1;
        record.expires = expires;
        if let Some(key) = &v.idempotency_key {
            record.remember(key, &v.choice, now + self.idempotency_ttl);
        }
        Ok(record.results(&v.poll))
    }

    async fn reopen(&self, id: &PollId) -> Result<Reopened, Unavailable> {
        let now = Instant::now();
        let expires = self.expiry(now);
        let mut polls = self.lock();
        let Some(record) = polls.live(id, now) else {
            return Ok(Reopened::NotFound);
        };
        if let Some(event) = &record.event {
            return Ok(Reopened::InEvent(event.clone()));
        }
        if record.close_if_due(now_ms()) && record.text.settings.is_past_close(now_ms()) {
            return Ok(Reopened::PastClosesAt);
        }
        if record.closed {
            record.closed = false;
            record.version += 1;
            record.expires = expires;
        }
        Ok(Reopened::Open(record.results(id)))
    }

    async fn voter_record(&self, id: &PollId, voter: &VoterId) -> Result<VoterRecord, Unavailable> {
        let mut polls = self.lock();
        let Some(record) = polls.live(id, Instant::now()) else {
            return Ok(VoterRecord::None);
        };
        // Like Redis, only a poll whose votes may change keeps the choice.
        Ok(match record.voters.get(voter.as_str()) {
            None => VoterRecord::None,
            Some(choice) if record.text.settings.allow_change => VoterRecord::Chose(choice.clone()),
            Some(_) => VoterRecord::Voted,
        })
    }

    async fn admin_token_sha256(&self, id: &PollId) -> Result<Option<String>, Unavailable> {
        Ok(self
            .lock()
            .live(id, Instant::now())
            .map(|r| r.admin_token_sha256.clone()))
    }

    async fn close(&self, id: &PollId) -> Result<Option<Results>, Unavailable> {
        let now = Instant::now();
        let expires = self.expiry(now);
        let mut polls = self.lock();
        let Some(record) = polls.live(id, now) else {
            return Ok(None);
        };
        if !record.close_if_due(now_ms()) {
            record.closed = true;
            record.version += 1;
            record.expires = expires;
        }
        Ok(Some(record.results(id)))
    }

    async fn delete(&self, id: &PollId) -> Result<bool, Unavailable> {
        let mut polls = self.lock();
        let live = polls.live(id, Instant::now()).is_some();
        polls.by_id.remove(id);
        Ok(live)
    }

    async fn fence(
        &self,
        id: &PollId,
        event: &EventId,
        open: bool,
        generation: u64,
    ) -> Result<Option<Results>, Unavailable> {
        let now = Instant::now();
        let expires = self.expiry(now);
        let mut polls = self.lock();
        let Some(record) = polls.live(id, now) else {
            return Ok(None);
        };
        record.event = Some(event.clone());
        if generation >= record.generation {
            record.generation = generation;
            // A question past its closes_at stays closed.
            let open = open && !record.text.settings.is_past_close(now_ms());
            if record.closed == open {
                record.closed = !open;
                record.version += 1;
            }
            record.expires = expires;
        }
        Ok(Some(record.results(id)))
    }

    async fn set_hidden(
        &self,
        id: &PollId,
        text: &str,
        hidden: bool,
    ) -> Result<Hidden, Unavailable> {
        let now = Instant::now();
        let mut polls = self.lock();
        let Some(record) = polls.live(id, now) else {
            return Ok(Hidden::NotFound);
        };
        let Some(cloud) = &mut record.cloud else {
            return Ok(Hidden::NotWordCloud);
        };
        match cloud.set_hidden(text, hidden) {
            None => return Ok(Hidden::TooMany),
            Some(true) => record.version += 1,
            Some(false) => {}
        }
        Ok(Hidden::Done(record.results(id)))
    }

    async fn ping(&self) -> Result<(), Unavailable> {
        Ok(())
    }
}
