//! The store: where polls and counts live.
//!
//! Two backends implement [`Store`]: [`memory::MemoryStore`] for a single
//! instance with nothing to set up, and [`redis::store::RedisStore`] for any number
//! of instances sharing one Redis. Everything above this trait (transports,
//! pages, the hub) is written once and works on both.

pub mod events;
pub mod group_commit;
pub mod memory;
pub mod qa;
pub mod redis;

use async_trait::async_trait;

use crate::event::EventId;
pub use crate::hub::Topic;
use crate::poll::{Choice, IdempotencyKey, Kind, NewPoll, PollId, Refusal, Results, VoterId};

pub use events::EventStore;
pub use qa::QaStore;

/// The store could not be reached in time; the request may be retried.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct Unavailable(pub String);

/// A poll to create, with the counts it starts from (zeros, or the demo's).
#[derive(Debug, Clone)]
pub struct CreatePoll {
    pub id: PollId,
    pub poll: NewPoll,
    /// Lowercase hex SHA-256 of the admin token; empty means no token works.
    pub admin_token_sha256: String,
    pub initial_counts: Vec<u64>,
    pub created_at_ms: u64,
}

/// What a poll remembers of one voter: enough for the `after_vote` rule,
/// and on `allow_change` polls the choice the voter may change, so their
/// page shows it on any device and after any reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoterRecord {
    /// No vote of theirs on record (or the poll keeps no voters).
    None,
    /// They have voted; the poll does not keep what they chose.
    Voted,
    /// They have voted and this is their choice now.
    Chose(Choice),
}

/// One vote as the store checks it.
#[derive(Debug, Clone)]
pub struct Vote {
    pub poll: PollId,
    /// The chosen options: one, or up to the poll's `max_choices`.
    pub choice: Choice,
    pub voter: VoterId,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// Why a vote was not counted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VoteError {
    #[error("poll not found")]
    PollNotFound,
    #[error("poll is closed")]
    PollClosed,
    #[error("option not found")]
    OptionNotFound,
    /// More options than the poll's `max_choices` (carried here).
    #[error("this poll takes at most {0} choices")]
    TooManyChoices(u32),
    #[error("this voter has already voted on this poll")]
    AlreadyVoted,
    #[error("idempotency key was already used for another option")]
    IdempotencyKeyReused,
    /// The vote does not fit the poll's kind (the message names the field).
    #[error("{0}")]
    Invalid(String),
    /// A new word-cloud entry past the poll's distinct entries cap.
    #[error("too many distinct entries")]
    TooManyEntries,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl VoteError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            VoteError::PollNotFound => "poll_not_found",
            VoteError::PollClosed => "poll_closed",
            VoteError::OptionNotFound => "option_not_found",
            VoteError::TooManyChoices(_) => "too_many_choices",
            VoteError::AlreadyVoted => "already_voted",
            VoteError::IdempotencyKeyReused => "idempotency_key_reused",
            VoteError::Invalid(_) => "validation_failed",
            VoteError::TooManyEntries => "too_many_entries",
            VoteError::Unavailable(_) => "store_unavailable",
        }
    }
}

impl VoteError {
    /// A vote that does not fit a poll of `kind` with `labels` labels.
    pub fn refused(refusal: Refusal, kind: &Kind, labels: usize, max_choices: u32) -> Self {
        match refusal {
            Refusal::OptionNotFound => VoteError::OptionNotFound,
            Refusal::TooManyChoices => VoteError::TooManyChoices(max_choices),
            other => VoteError::Invalid(other.message(kind, labels)),
        }
    }
}

/// What hiding or showing a word-cloud entry came to.
#[derive(Debug, Clone)]
pub enum Hidden {
    /// Done (or already so): the results as the host sees them.
    Done(Results),
    NotFound,
    /// The poll is not a word cloud.
    NotWordCloud,
    /// The host already hides the most entries a poll may hide.
    TooMany,
}

/// What reopening a poll came to.
#[derive(Debug, Clone)]
pub enum Reopened {
    /// Open (again, or still): its results.
    Open(Results),
    /// Its `closes_at` has passed: it stays closed.
    PastClosesAt,
    /// An event's question: only the event opens it (by a move).
    InEvent(EventId),
    NotFound,
}

/// Brings changes made on other instances into this instance's hub.
/// The Redis bus implements it; the embedded store needs none.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Makes sure changes of `id` reach the hub from now on. Returns once
    /// the subscription is confirmed (or could not be made right now; the
    /// feed then subscribes again when it reconnects).
    async fn subscribe(&self, topic: &Topic);

    /// Whether changes from other instances are arriving right now.
    fn is_live(&self) -> bool;
}

/// What every backend provides. Each method is atomic on its own: no reader
/// ever sees a half-created poll or a count without its version bump.
#[async_trait]
pub trait Store: EventStore + QaStore + Send + Sync + 'static {
    /// Creates the poll unless its id is taken; `Ok(None)` when it was.
    async fn create(&self, poll: &CreatePoll) -> Result<Option<Results>, Unavailable>;

    /// The current results, or `None` for an unknown poll. A poll past its
    /// `closes_at` is closed by this read (once; any later read finds it
    /// closed), so every instance may perform the close.
    async fn get(&self, id: &PollId) -> Result<Option<Results>, Unavailable>;

    /// The newest listed polls first (created with `listed`, and the demo
    /// poll), closed ones included.
    async fn list(&self, limit: usize) -> Result<Vec<Results>, Unavailable>;

    /// Counts a vote (or replays the outcome of an earlier one with the same
    /// idempotency key) and returns the results right after it.
    async fn vote(&self, vote: &Vote) -> Result<Results, VoteError>;

    /// The stored admin token hash, or `None` for an unknown poll.
    async fn admin_token_sha256(&self, id: &PollId) -> Result<Option<String>, Unavailable>;

    /// Closes the poll (a no-op when already closed); `None` when unknown.
    async fn close(&self, id: &PollId) -> Result<Option<Results>, Unavailable>;

    /// Opens a closed poll again unless its `closes_at` has passed; a no-op
    /// on an open poll.
    async fn reopen(&self, id: &PollId) -> Result<Reopened, Unavailable>;

    /// What the poll has on record of `voter`'s vote. Recorded for
    /// one-per-voter polls and for `after_vote` polls, the choice itself
    /// only for `allow_change` polls; [`VoterRecord::None`] otherwise.
    async fn voter_record(&self, id: &PollId, voter: &VoterId) -> Result<VoterRecord, Unavailable>;

    /// Deletes the poll and tells its followers; `false` when unknown.
    async fn delete(&self, id: &PollId) -> Result<bool, Unavailable>;

    /// Opens (`open`) or closes an event's question on behalf of the event
    /// move or toggle of generation `generation` (the event's version), unless a
    /// later one has already fenced it: the poll remembers the highest
    /// generation applied, so a slow or repeated step of an older move can
    /// never reopen a question a newer move closed. Notes `event` on the
    /// poll, so its plain reopen is refused ([`Reopened::InEvent`]).
    /// `None` for an unknown poll.
    async fn fence(
        &self,
        id: &PollId,
        event: &EventId,
        open: bool,
        generation: u64,
    ) -> Result<Option<Results>, Unavailable>;

    /// Hides a word-cloud entry (normalised `text`) from everyone but the
    /// host, or shows it again; it keeps counting either way. A change
    /// raises the version and reaches followers; a no-op changes nothing.
    async fn set_hidden(
        &self,
        id: &PollId,
        text: &str,
        hidden: bool,
    ) -> Result<Hidden, Unavailable>;

    /// Whether the store answers right now (for `/readyz`).
    async fn ping(&self) -> Result<(), Unavailable>;
}
