//! An event's Q&A board on the embedded store: every question in memory,
//! the board order computed from [`crate::event::qa::board_key`], the same
//! rules as `event.lua` applies on Redis.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use async_trait::async_trait;

use super::MemoryStore;
use crate::event::EventId;
use crate::event::qa::{
    Action, Board, Item, MAX_QUESTIONS, NewQuestion, POST_GAP_MS, Status, TOP, board_key,
};
use crate::poll::VoterId;
use crate::store::Unavailable;
use crate::store::qa::{QaRefusal, QaStore};

/// One event's questions, upvotes and pin.
#[derive(Debug, Default)]
pub struct QaBoard {
    pub moderation: bool,
    version: u64,
    items: Vec<Item>,
    /// The voter who posted each question (index = id - 1).
    authors: Vec<String>,
    ups: HashSet<(u32, String)>,
    last_post: HashMap<String, Instant>,
    pin: Option<u32>,
}

impl QaBoard {
    /// An empty board; `moderation` holds new questions for approval.
    pub fn new(moderation: bool) -> Self {
        Self {
            moderation,
            ..Self::default()
        }
    }

    fn item(&self, id: u32) -> Option<&Item> {
        id.checked_sub(1).and_then(|i| self.items.get(i as usize))
    }

    fn changed(&mut self, id: u32) -> Item {
        self.version += 1;
        self.snapshot(id)
    }

    fn snapshot(&self, id: u32) -> Item {
        let mut item = self.item(id).expect("known id").clone();
        item.pinned = self.pin == Some(id);
        item
    }

    /// Public questions in board order, the pinned one first.
    fn ordered(&self) -> Vec<Item> {
        let mut public: Vec<Item> = self
            .items
            .iter()
            .filter(|i| i.status.is_public() && Some(i.id) != self.pin)
            .cloned()
            .collect();
        public.sort_by_key(board_key);
        if let Some(pin) = self.pin {
            public.insert(0, self.snapshot(pin));
        }
        public
    }

    /// The board as followers see it (the host's `held` included).
    pub fn board(&self) -> Board {
        let ordered = self.ordered();
        let public = ordered.len() as u32;
        let mut top = ordered;
        let pinned = self.pin.map(|_| top.remove(0));
        top.truncate(TOP);
        Board {
            version: self.version,
            pinned,
            top,
            public,
            held: self
                .items
                .iter()
                .filter(|i| !i.status.is_public())
                .take(TOP)
                .cloned()
                .collect(),
            moderation: self.moderation,
        }
    }

    pub fn post(
        &mut self,
        voter: &VoterId,
        q: &NewQuestion,
        now: Instant,
    ) -> Result<Item, QaRefusal> {
        if let Some(at) = self.last_post.get(voter.as_str()) {
            let since = now.duration_since(*at).as_millis() as u64;
            if since < POST_GAP_MS {
                return Err(QaRefusal::RateLimited(POST_GAP_MS - since));
            }
        }
        if self.items.len() as u32 >= MAX_QUESTIONS {
            return Err(QaRefusal::TooMany);
        }
        let id = self.items.len() as u32 + 1;
        self.items.push(Item {
            id,
            text: q.text.clone(),
            name: q.name.clone(),
            votes: 0,
            status: if self.moderation {
                Status::Pending
            } else {
                Status::Open
            },
            pinned: false,
        });
        self.authors.push(voter.as_str().to_owned());
        self.last_post.insert(voter.as_str().to_owned(), now);
        Ok(self.changed(id))
    }

    pub fn upvote(&mut self, id: u32, voter: &VoterId, up: bool) -> Result<Item, QaRefusal> {
        match self.item(id) {
            Some(item) if item.status.is_public() => {}
            _ => return Err(QaRefusal::QuestionNotFound),
        }
        if self.authors[id as usize - 1] == voter.as_str() {
            return Err(QaRefusal::OwnQuestion);
        }
        let key = (id, voter.as_str().to_owned());
        let changed = if up {
            self.ups.insert(key)
        } else {
            self.ups.remove(&key)
        };
        if !changed {
            return Ok(self.snapshot(id));
        }
        let item = &mut self.items[id as usize - 1];
        item.votes = if up { item.votes + 1 } else { item.votes - 1 };
        Ok(self.changed(id))
    }

    pub fn moderate(&mut self, id: u32, action: Action) -> Result<Item, QaRefusal> {
        let Some(item) = self.item(id) else {
            return Err(QaRefusal::QuestionNotFound);
        };
        let before = (item.status, self.pin);
        let status = match (action, item.status) {
            (Action::Approve, Status::Pending | Status::Hidden) => Status::Open,
            (Action::Hide, _) => Status::Hidden,
            (Action::Answer, _) => Status::Answered,
            // Pinning shows a question that waited, and only a public one.
            (Action::Pin, Status::Pending) => Status::Open,
            (Action::Pin, Status::Hidden) => return Err(QaRefusal::QuestionNotFound),
            (_, s) => s,
        };
        self.items[id as usize - 1].status = status;
        match action {
            Action::Pin => self.pin = if self.pin == Some(id) { None } else { Some(id) },
            Action::Hide if self.pin == Some(id) => self.pin = None,
            _ => {}
        }
        if (status, self.pin) == before {
            return Ok(self.snapshot(id));
        }
        Ok(self.changed(id))
    }

    pub fn page(&self, offset: usize, limit: usize) -> (Vec<Item>, u32) {
        let ordered = self.ordered();
        let total = ordered.len() as u32;
        (
            ordered.into_iter().skip(offset).take(limit).collect(),
            total,
        )
    }

    pub fn upvoted(&self, voter: &VoterId) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .ups
            .iter()
            .filter(|(_, v)| v == voter.as_str())
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[async_trait]
impl QaStore for MemoryStore {
    async fn qa_post(
        &self,
        event: &EventId,
        voter: &VoterId,
        question: &NewQuestion,
    ) -> Result<Result<Item, QaRefusal>, Unavailable> {
        let now = Instant::now();
        Ok(self
            .with_board(event, |board| board.post(voter, question, now))
            .unwrap_or(Err(QaRefusal::EventNotFound)))
    }

    async fn qa_upvote(
        &self,
        event: &EventId,
        id: u32,
        voter: &VoterId,
        up: bool,
    ) -> Result<Result<Item, QaRefusal>, Unavailable> {
        Ok(self
            .with_board(event, |board| board.upvote(id, voter, up))
            .unwrap_or(Err(QaRefusal::EventNotFound)))
    }

    async fn qa_moderate(
        &self,
        event: &EventId,
        id: u32,
        action: Action,
    ) -> Result<Result<Item, QaRefusal>, Unavailable> {
        Ok(self
            .with_board(event, |board| board.moderate(id, action))
            .unwrap_or(Err(QaRefusal::EventNotFound)))
    }

    async fn qa_page(
        &self,
        event: &EventId,
        offset: usize,
        limit: usize,
    ) -> Result<Option<(Vec<Item>, u32)>, Unavailable> {
        Ok(self.with_board(event, |board| board.page(offset, limit)))
    }

    async fn qa_upvoted(&self, event: &EventId, voter: &VoterId) -> Result<Vec<u32>, Unavailable> {
        Ok(self
            .with_board(event, |board| board.upvoted(voter))
            .unwrap_or_default())
    }
}
