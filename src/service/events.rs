//! Events: creating a deck, moving through it, editing it, following it.
//!
//! # Why every state a reader can observe is valid
//!
//! On a Redis Cluster an event and each of its questions live in different
//! slots, so no single script can move the whole deck. A move is therefore
//! four small steps, each atomic on its own:
//!
//! 1. **begin** (the event's slot): compare-and-set `current` against the
//!    version the mover read; the new version `g` is the move's
//!    generation. The event notes the question left and the one entered
//!    as *dirty* (they may be open until the move finishes).
//! 2. **close** every dirty question but the new current one, fenced with
//!    `g` (each in its own slot).
//! 3. **open** the new current question, fenced with `g`.
//! 4. **finish** (the event's slot): if no later move began, only the
//!    current question is dirty now; announce the event to followers.
//!
//! A poll remembers the highest generation that fenced it and ignores
//! older ones, so a slow or repeated step of an older move never reopens a
//! question a newer move closed. A question opens only after every
//! question a previous move could have opened is closed (they are all in
//! its dirty set), so two questions are never open at once. A mover that
//! dies between steps leaves its questions dirty, and the next move —
//! from any instance, even a repeat of the same move, which changes no
//! version — closes and opens them again: the half-done move is finished.
//! Two hosts pressing "next" at once: one compare-and-set wins, the other
//! re-reads and steps once more from there.

use std::sync::Arc;
use std::time::Duration;

use super::{Following, Service, Transport, lock};
use crate::error::Error;
use crate::event::moves::Move;
use crate::event::view::{BoardJson, DeckJson, EventSnapshot, EventUpdate, View};
use crate::event::{
    EventChange, EventId, EventRecord, JoinCode, MAX_QUESTIONS, QuestionSummary, parse_title,
};
use crate::metrics::{self, FollowerGauge};
use crate::poll::{AdminToken, NewPoll, PollId, Results, Snapshot, now_ms};
use crate::store::CreatePoll;
use crate::store::events::{Cas, CreateEvent, DeckEdit, MoveStart};

/// Proof that a caller presented an event's admin token (only
/// [`Service::authorize_event`] makes one): the admin operations take it,
/// so a handler checks the token once, before it reads the body, and the
/// operation does not read it again.
#[derive(Debug)]
pub struct EventAdmin {
    id: EventId,
}

impl EventAdmin {
    pub fn event(&self) -> &EventId {
        &self.id
    }
}

/// A follower of an event: the composed state, under the follower cap.
pub type EventFollowing = Following<EventId, EventUpdate>;

/// Tries at a free join code before giving up (a million codes; a clash
/// is rare until very many events are live).
const CODE_TRIES: usize = 20;
/// Compare-and-set retries when other hosts change the event meanwhile.
const CAS_TRIES: usize = 8;
/// How long a new follower waits for this instance's first state.
const FIRST_STATE_WAIT: Duration = Duration::from_secs(5);

/// What the deck shows of a poll.
fn summary(id: &PollId, poll: &NewPoll) -> QuestionSummary {
    QuestionSummary {
        id: id.clone(),
        question: poll.question.clone(),
        kind: poll.kind.name().as_str().to_owned(),
    }
}

impl Service {
    /// Creates an event with its deck; every question starts closed (the
    /// event starts in the lobby).
    #[tracing::instrument(skip_all)]
    pub async fn create_event(
        &self,
        title: &str,
        questions: Vec<NewPoll>,
        qa_moderation: bool,
    ) -> Result<(EventRecord, AdminToken), Error> {
        let title = parse_title(title).map_err(|e| Error::Validation(format!("title: {e}")))?;
        if questions.len() > MAX_QUESTIONS {
            return Err(Error::Validation(format!(
                "questions: an event holds at most {MAX_QUESTIONS} questions"
            )));
        }
        let token = AdminToken::generate();
        let hash = AdminToken::sha256_hex(token.as_str());
        let id = EventId::generate();
        let deck = self.create_questions(&id, &hash, questions).await?;
        let mut code = JoinCode::generate();
        let mut claimed = false;
        for _ in 0..CODE_TRIES {
            if self.store.claim_code(&code, &id).await? {
                claimed = true;
                break;
            }
            code = JoinCode::generate();
        }
        if !claimed {
            return Err(Error::StoreUnavailable);
        }
        let spec = CreateEvent {
            id: id.clone(),
            title,
            code,
            admin_token_sha256: hash,
            deck,
            created_at_ms: now_ms(),
            qa_moderation,
        };
        if !self.store.create_event(&spec).await? {
            // 59 random bits: a clash is all but impossible; say so plainly.
            return Err(Error::StoreUnavailable);
        }
        tracing::info!(event = %id, code = %spec.code, "event created");
        let record = self.get_event(&id).await?;
        Ok((record, token))
    }

    /// Creates each question as a closed poll of `event`, managed by the
    /// event's token.
    async fn create_questions(
        &self,
        event: &EventId,
        token_hash: &str,
        questions: Vec<NewPoll>,
    ) -> Result<Vec<QuestionSummary>, Error> {
        let mut deck = Vec::with_capacity(questions.len());
        for poll in questions {
            deck.push(self.create_question(event, token_hash, poll).await?);
        }
        Ok(deck)
    }

    async fn create_question(
        &self,
        event: &EventId,
        token_hash: &str,
        poll: NewPoll,
    ) -> Result<QuestionSummary, Error> {
        let spec = CreatePoll {
            id: PollId::generate(),
            initial_counts: vec![0; poll.options.len()],
            poll,
            admin_token_sha256: token_hash.to_owned(),
            created_at_ms: now_ms(),
        };
        if self.store.create(&spec).await?.is_none() {
            return Err(Error::StoreUnavailable);
        }
        // Generation 0: any move's fence outranks it.
        self.store.fence(&spec.id, event, false, 0).await?;
        Ok(summary(&spec.id, &spec.poll))
    }

    /// The event as stored.
    pub async fn get_event(&self, id: &EventId) -> Result<EventRecord, Error> {
        self.store.get_event(id).await?.ok_or(Error::EventNotFound)
    }

    /// The event's whole state for one caller, and how this caller sees
    /// it, read from the store (so a caller reads its own writes; followers
    /// get theirs from the composer, never from a read of their own).
    pub async fn event_state(
        &self,
        id: &EventId,
        admin: bool,
        voter: Option<&crate::poll::VoterId>,
    ) -> Result<(Arc<EventSnapshot>, View), Error> {
        self.state_for(id, admin, voter).await
    }

    /// The state as the host sees it (every admin route's answer).
    pub async fn fresh_event_state(&self, id: &EventId) -> Result<Arc<EventSnapshot>, Error> {
        Ok(self.state_for(id, true, None).await?.0)
    }

    async fn state_for(
        &self,
        id: &EventId,
        admin: bool,
        voter: Option<&crate::poll::VoterId>,
    ) -> Result<(Arc<EventSnapshot>, View), Error> {
        let record = self.get_event(id).await?;
        let now = match &record.current {
            Some(q) => self.store.get(q).await?.map(Snapshot::new),
            None => None,
        };
        let (deck, board) = (DeckJson::new(&record), BoardJson::new(&record));
        let state = EventSnapshot::new(Arc::new(record), now, deck, board);
        let now = state.now.clone();
        let voted = match (&now, voter) {
            (Some(s), Some(voter)) if crate::visibility::depends_on_vote(&s.results) => {
                let q = PollId::parse(&s.results.id).map_err(|_| Error::PollNotFound)?;
                self.has_voted(&q, voter).await?
            }
            _ => false,
        };
        let view = state.view_for(admin, voted);
        Ok((state, view))
    }

    /// The event a join code leads to.
    pub async fn join(&self, code: &JoinCode) -> Result<EventId, Error> {
        self.store
            .event_by_code(code)
            .await?
            .ok_or(Error::CodeNotFound)
    }

    /// Checks the event's admin token: unknown event first, then missing,
    /// then wrong.
    pub async fn authorize_event(
        &self,
        id: &EventId,
        token: Option<&str>,
    ) -> Result<EventAdmin, Error> {
        let stored = self.store.event_token_sha256(id).await?;
        super::check_token(stored.ok_or(Error::EventNotFound)?, token)?;
        Ok(EventAdmin { id: id.clone() })
    }

    /// Whether `token` is the event's admin token.
    pub async fn is_event_admin(&self, id: &EventId, token: Option<&str>) -> Result<bool, Error> {
        match self.authorize_event(id, token).await {
            Ok(_) => Ok(true),
            Err(Error::Unauthorized | Error::Forbidden) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads the event again and hands it to this instance's followers at
    /// once (other instances hear it from the store's announcement).
    pub(super) async fn announce(&self, id: &EventId) -> Result<EventRecord, Error> {
        let record = self.get_event(id).await?;
        self.hubs
            .events
            .offer_event(id, EventChange::Record(Arc::new(record.clone())));
        Ok(record)
    }

    /// Moves the event (admin). See the module docs for the steps.
    #[tracing::instrument(skip_all, fields(event = %admin.id, ?mv))]
    pub async fn move_event(&self, admin: &EventAdmin, mv: Move) -> Result<EventRecord, Error> {
        let id = &admin.id;
        let outcome = self.try_move(id, mv).await;
        metrics::event_move(outcome.is_ok());
        outcome
    }

    async fn try_move(&self, id: &EventId, mv: Move) -> Result<EventRecord, Error> {
        for _ in 0..CAS_TRIES {
            let record = self.get_event(id).await?;
            let target = mv.target(&record).map_err(|e| Error::Validation(e.0))?;
            match self
                .store
                .begin_move(id, record.version, target.as_ref())
                .await?
            {
                MoveStart::Stale => continue,
                MoveStart::NotFound => return Err(Error::EventNotFound),
                MoveStart::Started {
                    generation,
                    current,
                    dirty,
                } => {
                    self.settle(id, generation, current.as_ref(), &dirty)
                        .await?;
                    return self.announce(id).await;
                }
            }
        }
        Err(Error::StoreUnavailable)
    }

    /// Steps 2–4 of a move: close the dirty questions, open the current
    /// one, finish.
    async fn settle(
        &self,
        id: &EventId,
        generation: u64,
        current: Option<&PollId>,
        dirty: &[PollId],
    ) -> Result<(), Error> {
        // Closed all at once: each is its own slot, and the open below
        // waits for every one.
        let closes: Vec<_> = dirty
            .iter()
            .filter(|q| Some(*q) != current)
            .map(|q| {
                let (store, q, id) = (Arc::clone(&self.store), q.clone(), id.clone());
                tokio::spawn(async move { store.fence(&q, &id, false, generation).await })
            })
            .collect();
        for close in closes {
            let closed = close.await.map_err(|_| Error::StoreUnavailable)??;
            if let Some(results) = closed {
                self.hub.offer(&Snapshot::new(results));
            }
        }
        if let Some(current) = current {
            self.fence(id, current, true, generation).await?;
        }
        self.store.finish_move(id, generation).await?;
        Ok(())
    }

    /// One fence step; its results reach this instance's followers at once.
    async fn fence(
        &self,
        event: &EventId,
        question: &PollId,
        open: bool,
        generation: u64,
    ) -> Result<(), Error> {
        if let Some(results) = self.store.fence(question, event, open, generation).await? {
            self.hub.offer(&Snapshot::new(results));
        }
        Ok(())
    }

    /// Opens or closes voting on the current question (admin; the
    /// presenter's Space key). The lobby has nothing to open.
    pub async fn set_voting(&self, admin: &EventAdmin, open: bool) -> Result<EventRecord, Error> {
        let id = &admin.id;
        let record = self.get_event(id).await?;
        let Some(current) = &record.current else {
            return Err(Error::Validation(
                "open: the event is in the lobby; move to a question first".into(),
            ));
        };
        self.fence(id, current, open, record.version).await?;
        Ok(record)
    }

    /// A plain reopen of an event's question: allowed for the current
    /// question only (fenced with the event's version), so the deck never
    /// has two open questions.
    pub(super) async fn reopen_question(
        &self,
        event: &EventId,
        id: &PollId,
    ) -> Result<Arc<Snapshot>, Error> {
        let record = self.get_event(event).await?;
        if record.current.as_ref() != Some(id) {
            return Err(Error::PollClosed);
        }
        let results = self
            .store
            .fence(id, event, true, record.version)
            .await?
            .ok_or(Error::PollNotFound)?;
        let snapshot = Snapshot::new(results);
        self.hub.offer(&snapshot);
        Ok(snapshot)
    }

    /// Shows or hides the current question's counts to the audience.
    pub async fn set_results_shown(
        &self,
        admin: &EventAdmin,
        shown: bool,
    ) -> Result<EventRecord, Error> {
        let id = &admin.id;
        match self.store.set_results_shown(id, shown).await? {
            Cas::NotFound => Err(Error::EventNotFound),
            _ => self.announce(id).await,
        }
    }

    /// Applies a deck edit, re-reading and retrying when another host
    /// changed the event meanwhile; `check` validates it against the
    /// event as read.
    async fn edit_deck(
        &self,
        id: &EventId,
        edit: &DeckEdit,
        check: impl Fn(&EventRecord) -> Result<(), Error>,
    ) -> Result<(), Error> {
        for _ in 0..CAS_TRIES {
            let record = self.get_event(id).await?;
            check(&record)?;
            match self.store.edit_deck(id, record.version, edit).await? {
                Cas::Done(_) => return Ok(()),
                Cas::Stale => continue,
                Cas::NotFound => return Err(Error::EventNotFound),
            }
        }
        Err(Error::StoreUnavailable)
    }

    /// Adds a question at the end of the deck (admin).
    pub async fn append_question(
        &self,
        admin: &EventAdmin,
        poll: NewPoll,
    ) -> Result<EventRecord, Error> {
        let id = &admin.id;
        let hash = self
            .store
            .event_token_sha256(id)
            .await?
            .ok_or(Error::EventNotFound)?;
        let full = |r: &EventRecord| {
            if r.deck.len() >= MAX_QUESTIONS {
                Err(Error::Validation(format!(
                    "questions: an event holds at most {MAX_QUESTIONS} questions"
                )))
            } else {
                Ok(())
            }
        };
        full(&self.get_event(id).await?)?;
        let q = self.create_question(id, &hash, poll).await?;
        let qid = q.id.clone();
        if let Err(e) = self.edit_deck(id, &DeckEdit::Append(q), full).await {
            let _ = self.store.delete(&qid).await;
            return Err(e);
        }
        self.announce(id).await
    }

    /// Replaces a question that has no votes yet (admin). The edited
    /// question is a new poll under a new id (instances cache a poll's
    /// text for its whole life); it keeps its place, and the screen
    /// follows it if it was on screen.
    pub async fn edit_question(
        &self,
        admin: &EventAdmin,
        qid: &PollId,
        poll: NewPoll,
    ) -> Result<EventRecord, Error> {
        let id = &admin.id;
        let record = self.get_event(id).await?;
        if !record.has_question(qid) {
            return Err(Error::PollNotFound);
        }
        // Close it first (with the event's version), so no vote can land
        // between the check below and the swap.
        let was_current = record.current.as_ref() == Some(qid);
        let old = self
            .store
            .fence(qid, id, false, record.version)
            .await?
            .ok_or(Error::PollNotFound)?;
        let reopen = |old: &Results| async move {
            if was_current {
                let _ = self.store.fence(qid, id, true, record.version).await;
            }
            let _ = old;
        };
        if old.total.unwrap_or(0) > 0 {
            reopen(&old).await;
            return Err(Error::HasVotes);
        }
        let hash = self
            .store
            .event_token_sha256(id)
            .await?
            .ok_or(Error::EventNotFound)?;
        let new = self.create_question(id, &hash, poll).await?;
        let new_id = new.id.clone();
        let edit = DeckEdit::Replace {
            old: qid.clone(),
            new,
        };
        if let Err(e) = self
            .edit_deck(id, &edit, |r| {
                if r.has_question(qid) {
                    Ok(())
                } else {
                    Err(Error::PollNotFound)
                }
            })
            .await
        {
            let _ = self.store.delete(&new_id).await;
            reopen(&old).await;
            return Err(e);
        }
        let record = self.get_event(id).await?;
        if record.current.as_ref() == Some(&new_id) {
            self.fence(id, &new_id, true, record.version).await?;
        }
        if self.store.delete(qid).await? {
            self.hub.offer_deleted(qid);
        }
        self.announce(id).await
    }

    /// Removes a question and its poll (admin). Deleting the current
    /// question sends the event to the lobby.
    pub async fn delete_question(
        &self,
        admin: &EventAdmin,
        qid: &PollId,
    ) -> Result<EventRecord, Error> {
        let id = &admin.id;
        self.edit_deck(id, &DeckEdit::Remove(qid.clone()), |r| {
            if r.has_question(qid) {
                Ok(())
            } else {
                Err(Error::PollNotFound)
            }
        })
        .await?;
        if self.store.delete(qid).await? {
            self.hub.offer_deleted(qid);
        }
        self.announce(id).await
    }

    /// Puts the deck in a new order (admin): the same questions, each
    /// once. The question on screen stays on screen.
    pub async fn reorder(
        &self,
        admin: &EventAdmin,
        order: Vec<PollId>,
    ) -> Result<EventRecord, Error> {
        let id = &admin.id;
        let check = |r: &EventRecord| {
            let mut given: Vec<&PollId> = order.iter().collect();
            let mut have: Vec<&PollId> = r.deck.iter().map(|q| &q.id).collect();
            given.sort();
            have.sort();
            if given == have {
                Ok(())
            } else {
                Err(Error::Validation(
                    "questions: give every question id of the deck exactly once".into(),
                ))
            }
        };
        self.edit_deck(id, &DeckEdit::Reorder(order.clone()), check)
            .await?;
        self.announce(id).await
    }

    /// Deletes the event, its code and every question (admin); followers
    /// are told.
    pub async fn delete_event(&self, admin: &EventAdmin) -> Result<(), Error> {
        let id = &admin.id;
        let record = self.get_event(id).await?;
        if !self.store.delete_event(id).await? {
            return Err(Error::EventNotFound);
        }
        self.hubs.events.offer_event(id, EventChange::Deleted);
        for q in &record.deck {
            if self.store.delete(&q.id).await.unwrap_or(false) {
                self.hub.offer_deleted(&q.id);
            }
        }
        tracing::info!(event = %id, "event deleted");
        Ok(())
    }

    /// Every question's results in deck order (admin), for the CSV.
    pub async fn event_results(&self, admin: &EventAdmin) -> Result<Vec<Results>, Error> {
        let id = &admin.id;
        let record = self.get_event(id).await?;
        let mut out = Vec::with_capacity(record.deck.len());
        for q in &record.deck {
            if let Some(r) = self.store.get(&q.id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Starts following an event: joins its room here, starting this
    /// instance's composer of it when first, and waits for the first
    /// state. Every later state comes from the composer: no store read per
    /// follower.
    pub async fn follow_event(
        &self,
        id: &EventId,
        transport: Transport,
    ) -> Result<EventFollowing, Error> {
        let permit = Arc::clone(&self.followers)
            .try_acquire_owned()
            .map_err(|_| Error::TooManyConnections)?;
        let (mut follower, first) = self.rooms.join(id);
        if first {
            self.start_composer(id);
        }
        let has_state = async {
            while follower.peek_value().is_none() {
                if follower.next().await.is_none() {
                    return false;
                }
            }
            true
        };
        match tokio::time::timeout(FIRST_STATE_WAIT, has_state).await {
            Ok(true) => {}
            Ok(false) => return Err(Error::ShuttingDown),
            Err(_) => return Err(Error::StoreUnavailable),
        }
        if matches!(follower.peek_value(), Some(EventUpdate::Deleted)) {
            return Err(Error::EventNotFound);
        }
        Ok(Following {
            follower,
            _permit: permit,
            _gauge: FollowerGauge::new(transport),
            deliveries: metrics::deliveries(transport),
            counted: self.stats.follower(transport),
            pace: self.pace,
            next_allowed: None,
        })
    }

    fn start_composer(&self, id: &EventId) {
        let token = tokio_util::sync::CancellationToken::new();
        if let Some(old) = lock(&self.composers).insert(id.clone(), token.clone()) {
            old.cancel();
        }
        let composer = super::compose::Composer {
            id: id.clone(),
            store: Arc::clone(&self.store),
            hubs: self.hubs.clone(),
            feed: self.feed.clone(),
            rooms: Arc::clone(&self.rooms),
        };
        tokio::spawn(composer.run(token));
    }
}
