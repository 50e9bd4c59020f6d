//! What a backend stores of events: the event record, its deck, its join
//! code, and the compare-and-set steps a move is made of.
//!
//! The steps are small on purpose. On a cluster an event and each of its
//! questions live in different slots, so no one script can move the whole
//! deck; the service ([`crate::service`]) strings these steps together so
//! that every state a reader can observe keeps at most one question open
//! (see [`EventStore::begin_move`] and [`super::Store::fence`]).

use async_trait::async_trait;

use super::Unavailable;
use crate::event::{EventId, EventRecord, JoinCode, QuestionSummary};
use crate::poll::PollId;

/// An event to create (its questions are created before, as polls).
#[derive(Debug, Clone)]
pub struct CreateEvent {
    pub id: EventId,
    pub title: String,
    pub code: JoinCode,
    pub admin_token_sha256: String,
    pub deck: Vec<QuestionSummary>,
    pub created_at_ms: u64,
    /// New Q&A questions wait for the host's approval.
    pub qa_moderation: bool,
}

/// The start of a move, as the event's own compare-and-set settled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveStart {
    /// The event now shows `current` at version `generation` (or already did:
    /// then `generation` is the unchanged version). Every question in `dirty` may
    /// still be open from an earlier move that did not finish: all but
    /// `current` must be closed (with `generation`) before `current` opens.
    Started {
        generation: u64,
        current: Option<PollId>,
        dirty: Vec<PollId>,
    },
    /// The event changed since it was read: read it again and retry.
    Stale,
    NotFound,
}

/// A change to the deck, applied only if the event is still at the version
/// it was read at.
#[derive(Debug, Clone)]
pub enum DeckEdit {
    Append(QuestionSummary),
    /// Puts `new` where `old` was (an edited question is a new poll).
    Replace {
        old: PollId,
        new: QuestionSummary,
    },
    Remove(PollId),
    /// The same questions in a new order.
    Reorder(Vec<PollId>),
}

/// The outcome of a compare-and-set on an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// Applied; the event's new version.
    Done(u64),
    Stale,
    NotFound,
}

/// The event half of a backend (polls are the other, [`super::Store`]).
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Claims `code` for `event` unless a live event holds it.
    async fn claim_code(&self, code: &JoinCode, event: &EventId) -> Result<bool, Unavailable>;

    /// The event a code leads to, if it is live.
    async fn event_by_code(&self, code: &JoinCode) -> Result<Option<EventId>, Unavailable>;

    /// Creates the event unless its id is taken (`false` then).
    async fn create_event(&self, event: &CreateEvent) -> Result<bool, Unavailable>;

    /// The event as stored, or `None`.
    async fn get_event(&self, id: &EventId) -> Result<Option<EventRecord>, Unavailable>;

    /// The stored admin token hash, or `None` for an unknown event.
    async fn event_token_sha256(&self, id: &EventId) -> Result<Option<String>, Unavailable>;

    /// Points the event at `target` if it is still at `expected_version`
    /// (the version rises unless it already pointed there), and notes the
    /// questions that may be open until the move finishes.
    async fn begin_move(
        &self,
        id: &EventId,
        expected_version: u64,
        target: Option<&PollId>,
    ) -> Result<MoveStart, Unavailable>;

    /// Marks the move of version `generation` done (only `current` can be open)
    /// and announces the event to its followers, if no later move began.
    async fn finish_move(&self, id: &EventId, generation: u64) -> Result<(), Unavailable>;

    /// Edits the deck if the event is at `expected_version`; a removed
    /// current question sends the event to the lobby.
    async fn edit_deck(
        &self,
        id: &EventId,
        expected_version: u64,
        edit: &DeckEdit,
    ) -> Result<Cas, Unavailable>;

    /// Shows or hides the current question's counts (no change, no new
    /// version, when already so).
    async fn set_results_shown(&self, id: &EventId, shown: bool) -> Result<Cas, Unavailable>;

    /// Renews the life of the event and its code (`TALLY_POLL_TTL` from
    /// now): a vote on a question keeps its event alive.
    async fn touch_event(&self, id: &EventId) -> Result<(), Unavailable>;

    /// Deletes the event record and its code, and tells followers; `false`
    /// when unknown. Its questions are deleted by the caller.
    async fn delete_event(&self, id: &EventId) -> Result<bool, Unavailable>;
}
