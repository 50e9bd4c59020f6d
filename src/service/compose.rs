//! The composer: one task per event followed on this instance, which turns
//! the event's changes and its current question's changes into the whole
//! state every follower here receives.
//!
//! It is the one follower of the event's store-side topic (which the bus
//! subscribes) and of the current question's poll topic; on each change
//! of either it renders one [`EventSnapshot`] and offers it to the room.
//! So a move costs each instance one read of the event and one of the new
//! question, a vote costs none, whatever the number of followers here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::follow_poll;
use crate::event::view::{BoardJson, DeckJson, EventSnapshot, EventUpdate};
use crate::event::{EventChange, EventId, EventRecord};
use crate::hub::{Follower, Hub, Hubs, PollEvent, Topic};
use crate::poll::PollId;
use crate::store::{ChangeFeed, Store};

/// How long the composer gathers changes into one state. Short against
/// how fast a room can see anything, long against a move's few round
/// trips to the store.
const COALESCE: Duration = Duration::from_millis(10);
/// Pause before reading again when the store did not answer.
const RETRY: Duration = Duration::from_millis(250);
/// Longest gap between two renewals of the event's life while its current
/// question is voted on (far below any sensible `TALLY_POLL_TTL`).
const TOUCH_EVERY: Duration = Duration::from_secs(600);

pub(super) struct Composer {
    pub id: EventId,
    pub store: Arc<dyn Store>,
    pub hubs: Hubs,
    pub feed: Option<Arc<dyn ChangeFeed>>,
    pub rooms: Arc<Hub<EventId, EventUpdate>>,
}

impl Composer {
    /// Composes until `stop` (the last follower here left).
    pub async fn run(self, stop: CancellationToken) {
        tokio::select! {
            _ = self.compose() => {}
            _ = stop.cancelled() => {}
        }
    }

    /// Makes sure the event's topic holds its current record: subscribes
    /// first when this is its first follower here, then reads.
    async fn follow_event(&self) -> Follower<EventId, EventChange> {
        let (follower, first) = self.hubs.events.join(&self.id);
        if first && let Some(feed) = &self.feed {
            feed.subscribe(&Topic::Event(self.id.clone())).await;
        }
        let current = !first
            && follower.peek_value().is_some()
            && self.feed.as_ref().is_none_or(|f| f.is_live());
        if !current {
            self.read_event().await;
        }
        follower
    }

    /// Reads the event into its topic, retrying while the store is down.
    async fn read_event(&self) {
        loop {
            match self.store.get_event(&self.id).await {
                Ok(Some(record)) => {
                    return self
                        .hubs
                        .events
                        .offer_event(&self.id, EventChange::Record(Arc::new(record)));
                }
                Ok(None) => return self.hubs.events.offer_event(&self.id, EventChange::Deleted),
                Err(e) => {
                    tracing::debug!(event = %self.id, error = %e.0, "event read failed; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    async fn compose(&self) {
        let mut event = self.follow_event().await;
        // Every question of the deck stays followed (subscribed, current in
        // the hub) while the event is: a move then costs no subscription
        // and no read of the question it opens.
        let mut questions: HashMap<PollId, Follower> = HashMap::new();
        let mut deck: Option<Arc<DeckJson>> = None;
        let mut board: Option<Arc<BoardJson>> = None;
        let mut touched = tokio::time::Instant::now();
        loop {
            let record = match event.latest() {
                Some(EventChange::Record(record)) => record,
                Some(EventChange::Deleted) => {
                    self.rooms.offer_with(&self.id, |cur| {
                        let news = !matches!(cur, Some(EventUpdate::Deleted));
                        *cur = Some(EventUpdate::Deleted);
                        news
                    });
                    // Deletion is final: wait to be stopped.
                    return std::future::pending().await;
                }
                None => {
                    if event.next().await.is_none() {
                        return;
                    }
                    continue;
                }
            };
            questions.retain(|id, _| record.has_question(id));
            for q in &record.deck {
                if !questions.contains_key(&q.id)
                    && let Some(f) = self.follow_question(&q.id).await
                {
                    questions.insert(q.id.clone(), f);
                }
            }
            let current = record.current.as_ref();
            let deck_json = match &deck {
                Some(d) if d.matches(&record) => Arc::clone(d),
                _ => DeckJson::new(&record),
            };
            deck = Some(Arc::clone(&deck_json));
            let board_json = match &board {
                Some(b) if b.matches(&record) => Arc::clone(b),
                _ => BoardJson::new(&record),
            };
            board = Some(Arc::clone(&board_json));
            self.offer(
                &record,
                current.and_then(|q| questions.get_mut(q)),
                deck_json,
                board_json,
            );
            tokio::select! {
                next = event.next() => if next.is_none() { return },
                next = next_results(current.and_then(|q| questions.get_mut(q))) => {
                    if next.is_none() {
                        return;
                    }
                    if touched.elapsed() >= TOUCH_EVERY {
                        // Votes keep the event alive as long as its questions.
                        touched = tokio::time::Instant::now();
                        let _ = self.store.touch_event(&self.id).await;
                    }
                },
            }
            // A move is several changes in a row (the question left closes,
            // the new one opens, the event points at it): wait a moment so
            // followers get one state for all of them, not one each.
            tokio::time::sleep(COALESCE).await;
        }
    }

    async fn follow_question(&self, id: &PollId) -> Option<Follower> {
        loop {
            match follow_poll(&self.store, &self.hubs.polls, self.feed.as_ref(), id).await {
                Ok(f) => return Some(f),
                Err(crate::error::Error::StoreUnavailable) => tokio::time::sleep(RETRY).await,
                Err(_) => return None,
            }
        }
    }

    /// Renders the state and offers it to the room, if newer.
    fn offer(
        &self,
        record: &Arc<EventRecord>,
        question: Option<&mut Follower>,
        deck: Arc<DeckJson>,
        board: Arc<BoardJson>,
    ) {
        let now = question.and_then(|f| match f.latest() {
            Some(PollEvent::Results(s)) => Some(s),
            _ => None,
        });
        let state = EventSnapshot::new(Arc::clone(record), now, deck, board);
        self.rooms.offer_with(&self.id, |cur| {
            let newer = match cur {
                Some(EventUpdate::Deleted) => false,
                Some(EventUpdate::State(old)) => state.cursor.is_after(&old.cursor),
                None => true,
            };
            if newer {
                *cur = Some(EventUpdate::State(Arc::clone(&state)));
            }
            newer
        });
    }
}

/// The next change of the current question (never, in the lobby).
async fn next_results(question: Option<&mut Follower>) -> Option<PollEvent> {
    match question {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}
