//! Audience Q&A above the store: post, upvote, moderate, page the board.
//! Each step is one atomic store call; its change reaches this instance's
//! followers at once and the others' through the event's channel.

use super::Service;
use crate::error::Error;
use crate::event::EventId;
use crate::event::qa::{Action, Item, NewQuestion};
use crate::poll::VoterId;
use crate::store::qa::QaRefusal;

impl From<QaRefusal> for Error {
    fn from(r: QaRefusal) -> Self {
        match r {
            QaRefusal::EventNotFound => Error::EventNotFound,
            QaRefusal::QuestionNotFound => Error::QuestionNotFound,
            QaRefusal::OwnQuestion => Error::OwnQuestion,
            QaRefusal::TooMany => Error::TooManyQuestions,
            QaRefusal::RateLimited(ms) => Error::RateLimited {
                what: "questions",
                retry_after_secs: ms.div_ceil(1000).max(1),
            },
        }
    }
}

impl Service {
    /// Posts a question from `voter` (pending on a moderated event).
    pub async fn qa_post(
        &self,
        event: &EventId,
        voter: &VoterId,
        question: &NewQuestion,
    ) -> Result<Item, Error> {
        let item = self.store.qa_post(event, voter, question).await??;
        self.announce(event).await?;
        Ok(item)
    }

    /// Upvotes (or takes back the upvote of) a public question.
    pub async fn qa_upvote(
        &self,
        event: &EventId,
        id: u32,
        voter: &VoterId,
        up: bool,
    ) -> Result<Item, Error> {
        let item = self.store.qa_upvote(event, id, voter, up).await??;
        self.announce(event).await?;
        Ok(item)
    }

    /// Approves, hides, answers or pins a question (admin).
    pub async fn qa_moderate(
        &self,
        admin: &super::events::EventAdmin,
        id: u32,
        action: Action,
    ) -> Result<Item, Error> {
        let event = admin.event();
        let item = self.store.qa_moderate(event, id, action).await??;
        self.announce(event).await?;
        Ok(item)
    }

    /// A page of the public board (pinned first) and how many there are.
    pub async fn qa_page(
        &self,
        event: &EventId,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Item>, u32), Error> {
        self.store
            .qa_page(event, offset, limit)
            .await?
            .ok_or(Error::EventNotFound)
    }

    /// The questions `voter` upvoted on this event's board.
    pub async fn qa_upvoted(&self, event: &EventId, voter: &VoterId) -> Result<Vec<u32>, Error> {
        Ok(self.store.qa_upvoted(event, voter).await?)
    }
}
