//! Events on the embedded store: the same steps as on Redis, each under
//! one lock, so the service's move protocol runs unchanged on both.

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;

use super::MemoryStore;
use crate::event::{EventId, EventRecord, JoinCode};
use crate::poll::PollId;
use crate::store::Unavailable;
use crate::store::events::{Cas, CreateEvent, DeckEdit, EventStore, MoveStart};

/// One event as kept in memory.
struct Stored {
    record: EventRecord,
    admin_token_sha256: String,
    /// Questions a move may have left open (see [`MoveStart::Started`]).
    dirty: Vec<PollId>,
    expires: Option<Instant>,
    qa: super::qa::QaBoard,
}

/// Every event and join code of the instance.
#[derive(Default)]
pub struct Events {
    by_id: HashMap<EventId, Stored>,
    codes: HashMap<JoinCode, EventId>,
}

impl Events {
    /// The event `id` unless absent or expired (then dropped with its code).
    fn live(&mut self, id: &EventId, now: Instant) -> Option<&mut Stored> {
        if self
            .by_id
            .get(id)
            .is_some_and(|s| s.expires.is_some_and(|at| at <= now))
            && let Some(gone) = self.by_id.remove(id)
        {
            self.codes.remove(&gone.record.code);
        }
        self.by_id.get_mut(id)
    }
}

impl MemoryStore {
    /// Runs `f` on the live event's board (renewing the event's life when
    /// the board changed); `None` for an unknown event.
    pub(super) fn with_board<T>(
        &self,
        id: &EventId,
        f: impl FnOnce(&mut super::qa::QaBoard) -> T,
    ) -> Option<T> {
        let now = Instant::now();
        let expires = self.expiry(now);
        let mut events = self.events();
        let stored = events.live(id, now)?;
        let before = stored.qa.board().version;
        let out = f(&mut stored.qa);
        if stored.qa.board().version != before {
            stored.expires = expires;
        }
        Some(out)
    }

    fn events(&self) -> std::sync::MutexGuard<'_, Events> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Adds `ids` to `dirty`, once each.
fn note_dirty(dirty: &mut Vec<PollId>, ids: impl IntoIterator<Item = PollId>) {
    for id in ids {
        if !dirty.contains(&id) {
            dirty.push(id);
        }
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn claim_code(&self, code: &JoinCode, event: &EventId) -> Result<bool, Unavailable> {
        let now = Instant::now();
        let mut events = self.events();
        if let Some(holder) = events.codes.get(code).cloned()
            && events.live(&holder, now).is_some()
        {
            return Ok(false);
        }
        events.codes.insert(code.clone(), event.clone());
        Ok(true)
    }

    async fn event_by_code(&self, code: &JoinCode) -> Result<Option<EventId>, Unavailable> {
        let now = Instant::now();
        let mut events = self.events();
        let Some(id) = events.codes.get(code).cloned() else {
            return Ok(None);
        };
        Ok(events.live(&id, now).map(|_| id))
    }

    async fn create_event(&self, e: &CreateEvent) -> Result<bool, Unavailable> {
        let now = Instant::now();
        let expires = self.expiry(now);
        let mut events = self.events();
        if events.live(&e.id, now).is_some() {
            return Ok(false);
        }
        let record = EventRecord {
            id: e.id.clone(),
            title: e.title.clone(),
            code: e.code.clone(),
            created_at_ms: e.created_at_ms,
            version: 0,
            deck: e.deck.clone(),
            current: None,
            results_shown: true,
            qa: Default::default(),
        };
        events.by_id.insert(
            e.id.clone(),
            Stored {
                record,
                admin_token_sha256: e.admin_token_sha256.clone(),
                dirty: Vec::new(),
                expires,
                qa: super::qa::QaBoard::new(e.qa_moderation),
            },
        );
        Ok(true)
    }

    async fn get_event(&self, id: &EventId) -> Result<Option<EventRecord>, Unavailable> {
        Ok(self.events().live(id, Instant::now()).map(|s| EventRecord {
            qa: s.qa.board(),
            ..s.record.clone()
        }))
    }

    async fn event_token_sha256(&self, id: &EventId) -> Result<Option<String>, Unavailable> {
        Ok(self
            .events()
            .live(id, Instant::now())
            .map(|s| s.admin_token_sha256.clone()))
    }

    async fn begin_move(
        &self,
        id: &EventId,
        expected_version: u64,
        target: Option<&PollId>,
    ) -> Result<MoveStart, Unavailable> {
        let now = Instant::now();
        let expires = self.expiry(now);
        let mut events = self.events();
        let Some(s) = events.live(id, now) else {
            return Ok(MoveStart::NotFound);
        };
        if s.record.version != expected_version {
            return Ok(MoveStart::Stale);
        }
        if s.record.current.as_ref() != target {
            let left = s.record.current.take();
            note_dirty(&mut s.dirty, left.into_iter().chain(target.cloned()));
            s.record.current = target.cloned();
            s.record.version += 1;
        }
        s.expires = expires;
        Ok(MoveStart::Started {
            generation: s.record.version,
            current: s.record.current.clone(),
            dirty: s.dirty.clone(),
        })
    }

    async fn finish_move(&self, id: &EventId, generation: u64) -> Result<(), Unavailable> {
        let mut events = self.events();
        if let Some(s) = events.live(id, Instant::now())
            && s.record.version == generation
        {
            s.dirty = s.record.current.iter().cloned().collect();
        }
        Ok(())
    }

    async fn edit_deck(
        &self,
        id: &EventId,
        expected_version: u64,
        edit: &DeckEdit,
    ) -> Result<Cas, Unavailable> {
        let now = Instant::now();
        let expires = self.expiry(now);
        let mut events = self.events();
        let Some(s) = events.live(id, now) else {
            return Ok(Cas::NotFound);
        };
        if s.record.version != expected_version {
            return Ok(Cas::Stale);
        }
        let deck = &mut s.record.deck;
        match edit {
            DeckEdit::Append(q) => deck.push(q.clone()),
            DeckEdit::Replace { old, new } => {
                let Some(at) = deck.iter().position(|q| &q.id == old) else {
                    return Ok(Cas::Stale);
                };
                deck[at] = new.clone();
                if s.record.current.as_ref() == Some(old) {
                    s.record.current = Some(new.id.clone());
                }
            }
            DeckEdit::Remove(gone) => {
                deck.retain(|q| &q.id != gone);
                if s.record.current.as_ref() == Some(gone) {
                    s.record.current = None;
                }
                s.dirty.retain(|q| q != gone);
            }
            DeckEdit::Reorder(order) => {
                let mut by_id: HashMap<&PollId, _> = deck.iter().map(|q| (&q.id, q)).collect();
                let Some(reordered) = order
                    .iter()
                    .map(|id| by_id.remove(id).cloned())
                    .collect::<Option<Vec<_>>>()
                else {
                    return Ok(Cas::Stale);
                };
                if !by_id.is_empty() {
                    return Ok(Cas::Stale);
                }
                *deck = reordered;
            }
        }
        s.record.version += 1;
        s.expires = expires;
        Ok(Cas::Done(s.record.version))
    }

    async fn set_results_shown(&self, id: &EventId, shown: bool) -> Result<Cas, Unavailable> {
        let now = Instant::now();
        let expires = self.expiry(now);
        let mut events = self.events();
        let Some(s) = events.live(id, now) else {
            return Ok(Cas::NotFound);
        };
        if s.record.results_shown != shown {
            s.record.results_shown = shown;
            s.record.version += 1;
        }
        s.expires = expires;
        Ok(Cas::Done(s.record.version))
    }

    async fn touch_event(&self, id: &EventId) -> Result<(), Unavailable> {
        let now = Instant::now();
        let expires = self.expiry(now);
        if let Some(s) = self.events().live(id, now) {
            s.expires = expires;
        }
        Ok(())
    }

    async fn delete_event(&self, id: &EventId) -> Result<bool, Unavailable> {
        let mut events = self.events();
        if events.live(id, Instant::now()).is_none() {
            return Ok(false);
        }
        if let Some(gone) = events.by_id.remove(id) {
            events.codes.remove(&gone.record.code);
        }
        Ok(true)
    }
}
