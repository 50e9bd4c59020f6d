//! What a backend stores of an event's Q&A board. Every post, upvote and
//! moderation is one atomic step on the event's own keys (one hash tag on a
//! cluster), which also raises the board's version and announces it.

use async_trait::async_trait;

use super::Unavailable;
use crate::event::EventId;
use crate::event::qa::{Action, Item, NewQuestion};
use crate::poll::VoterId;

/// Why a Q&A step was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QaRefusal {
    EventNotFound,
    /// No such question, or one the caller may not see (pending, hidden).
    QuestionNotFound,
    /// Upvoting one's own question.
    OwnQuestion,
    /// The voter posted less than 10 s ago; retry after this many ms.
    RateLimited(u64),
    /// The board holds its 2,000 questions.
    TooMany,
}

/// The Q&A half of a backend.
#[async_trait]
pub trait QaStore: Send + Sync + 'static {
    /// Posts a question as `voter` (pending on a moderated event).
    async fn qa_post(
        &self,
        event: &EventId,
        voter: &VoterId,
        question: &NewQuestion,
    ) -> Result<Result<Item, QaRefusal>, Unavailable>;

    /// Adds (`up`) or takes back `voter`'s upvote; repeating it changes
    /// nothing.
    async fn qa_upvote(
        &self,
        event: &EventId,
        id: u32,
        voter: &VoterId,
        up: bool,
    ) -> Result<Result<Item, QaRefusal>, Unavailable>;

    /// The host's approve, hide, answer or pin (toggle).
    async fn qa_moderate(
        &self,
        event: &EventId,
        id: u32,
        action: Action,
    ) -> Result<Result<Item, QaRefusal>, Unavailable>;

    /// Public questions in board order (the pinned one first), from
    /// `offset`, at most `limit`; and how many there are. `None`: no event.
    async fn qa_page(
        &self,
        event: &EventId,
        offset: usize,
        limit: usize,
    ) -> Result<Option<(Vec<Item>, u32)>, Unavailable>;

    /// The ids of the questions `voter` has upvoted.
    async fn qa_upvoted(&self, event: &EventId, voter: &VoterId) -> Result<Vec<u32>, Unavailable>;
}
