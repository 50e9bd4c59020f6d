//! The domain operations, above the store and the hub and below HTTP.
//!
//! Handlers of every transport call these and only map the outcome to their
//! wire format, so a vote made over HTTP, WebSocket or the HTML form follows
//! the same rules and updates the same followers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::Error;
mod compose;
mod events;
mod qa;

pub use events::{EventAdmin, EventFollowing};

use std::hash::Hash;

use crate::event::EventId;
use crate::event::view::EventUpdate;
use crate::hub::{Follower, Hub, Hubs, PollEvent, Topic};
use crate::metrics::{self, FollowerGauge, VoteOutcome};
use crate::poll::{
    AdminToken, Choice, NewPoll, PollId, Results, Snapshot, VoteLimit, VoterId, now_ms,
};
use crate::stats::{FollowerStats, Stats};
use crate::store::{ChangeFeed, CreatePoll, Hidden, Reopened, Store, Vote, VoterRecord};
use crate::visibility::{self, Viewer};

pub use crate::transport::Transport;

/// A follower plus what it holds while it follows: its place under the
/// follower cap and its metrics gauge. Of a poll by default; of an event
/// ([`EventFollowing`]) the same way.
pub struct Following<K = PollId, V = PollEvent>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub follower: Follower<K, V>,
    _permit: OwnedSemaphorePermit,
    _gauge: FollowerGauge,
    deliveries: ::metrics::Counter,
    counted: FollowerStats,
    /// Shortest time between two updates to this follower, when paced.
    pace: Option<Duration>,
    /// When the next update may go out (paced followers only).
    next_allowed: Option<Instant>,
}

impl<K, V> Following<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Counts one update sent to this follower and starts its pacing gap.
    pub fn delivered(&mut self) {
        self.deliveries.increment(1);
        self.counted.delivered();
        self.next_allowed = self.pace.map(|gap| Instant::now() + gap);
    }

    /// Waits for an event newer than the last one read — no sooner than
    /// the pacing allows, so a hot poll sends a paced follower at most one
    /// update per gap, always the newest. Cancel-safe: the deadline lives
    /// in `self`, and the watch wait is itself cancel-safe.
    pub async fn next(&mut self) -> Option<V> {
        if let Some(at) = self.next_allowed {
            tokio::time::sleep_until(at).await;
        }
        self.follower.next().await
    }
}

/// The demo poll's id.
pub const DEMO_POLL_ID: &str = "lpl";

/// Everything an instance does, independent of the wire.
pub struct Service {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    /// Both hubs (the poll hub is `hub`), as the bus feeds them.
    hubs: Hubs,
    /// Composed event states, one channel per followed event; fed by
    /// this instance's composer of that event.
    rooms: Arc<Hub<EventId, EventUpdate>>,
    /// The running composer of each followed event.
    composers: Arc<
        std::sync::Mutex<std::collections::HashMap<EventId, tokio_util::sync::CancellationToken>>,
    >,
    feed: Option<Arc<dyn ChangeFeed>>,
    followers: Arc<Semaphore>,
    /// Shortest gap between two updates to one follower; `None` sends
    /// every version to a follower that keeps up.
    pace: Option<Duration>,
    /// This instance's own counts, for `GET /api/stats`.
    stats: Arc<Stats>,
    /// Polls whose `closes_at` timer runs on this instance (one each).
    close_timers: Arc<std::sync::Mutex<std::collections::HashSet<PollId>>>,
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        hubs: Hubs,
        feed: Option<Arc<dyn ChangeFeed>>,
        max_followers: usize,
        max_updates_per_second: u32,
    ) -> Self {
        let rooms: Arc<Hub<EventId, EventUpdate>> = Hub::new();
        let composers: Arc<
            std::sync::Mutex<
                std::collections::HashMap<EventId, tokio_util::sync::CancellationToken>,
            >,
        > = Arc::default();
        {
            // The last follower of an event here stops its composer (unless
            // one joined again meanwhile).
            let (rooms_weak, composers) = (Arc::downgrade(&rooms), Arc::clone(&composers));
            rooms.set_unfollow_notifier(move |id: EventId| {
                let mut running = lock(&composers);
                if rooms_weak.upgrade().is_none_or(|r| !r.is_followed(&id))
                    && let Some(token) = running.remove(&id)
                {
                    token.cancel();
                }
            });
        }
        Self {
            store,
            hub: Arc::clone(&hubs.polls),
            hubs,
            rooms,
            composers,
            feed,
            followers: Arc::new(Semaphore::new(max_followers)),
            pace: (max_updates_per_second > 0)
                .then(|| Duration::from_secs_f64(1.0 / f64::from(max_updates_per_second))),
            stats: Stats::new(),
            close_timers: Arc::default(),
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// This instance's followers, deliveries and votes, as counted so far.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Creates a poll under a fresh id and returns it with its admin token.
    #[tracing::instrument(skip_all)]
    pub async fn create(&self, poll: NewPoll) -> Result<(Results, AdminToken), Error> {
        let token = AdminToken::generate();
        let initial_counts = vec![0; poll.options.len()];
        let mut spec = CreatePoll {
            id: PollId::generate(),
            poll,
            admin_token_sha256: AdminToken::sha256_hex(token.as_str()),
            initial_counts,
            created_at_ms: now_ms(),
        };
        // 59 random bits make a collision all but impossible; retry anyway.
        for _ in 0..3 {
            if let Some(results) = self.store.create(&spec).await? {
                tracing::info!(poll = %spec.id, "poll created");
                return Ok((results, token));
            }
            spec.id = PollId::generate();
        }
        Err(Error::StoreUnavailable)
    }

    /// Creates the demo poll `lpl` unless it exists (several instances may
    /// race here; the store's create-if-absent settles it).
    pub async fn ensure_demo(&self, admin_token: Option<&str>) -> Result<(), Error> {
        let mut poll = NewPoll::parse(
            "LPL第一打野投票",
            &["明凯".to_owned(), "厂长".to_owned(), "7酱".to_owned()],
            VoteLimit::Unlimited,
        )
        .map_err(|e| Error::Validation(e.0))?;
        poll.settings.listed = true;
        let spec = CreatePoll {
            id: PollId::parse(DEMO_POLL_ID).expect("valid id"),
            poll,
            admin_token_sha256: admin_token.map(AdminToken::sha256_hex).unwrap_or_default(),
            initial_counts: vec![300, 200, 600],
            created_at_ms: now_ms(),
        };
        if self.store.create(&spec).await?.is_some() {
            tracing::info!("demo poll created");
        }
        Ok(())
    }

    pub async fn get(&self, id: &PollId) -> Result<Results, Error> {
        self.store.get(id).await?.ok_or(Error::PollNotFound)
    }

    pub async fn list(&self, limit: usize) -> Result<Vec<Results>, Error> {
        Ok(self.store.list(limit).await?)
    }

    /// Counts a vote, tells local followers at once, and returns the
    /// results right after it, serialised once for every consumer.
    #[tracing::instrument(level = "debug", skip_all, fields(poll = %vote.poll))]
    pub async fn vote(&self, vote: Vote) -> Result<Arc<Snapshot>, Error> {
        let started = Instant::now();
        match self.store.vote(&vote).await {
            Ok(results) => {
                metrics::vote_done(VoteOutcome::Accepted, started.elapsed());
                metrics::vote_accepted();
                self.stats.vote_accepted();
                let snapshot = Snapshot::new(results);
                self.hub.offer(&snapshot);
                Ok(snapshot)
            }
            Err(e) => {
                metrics::vote_rejected(e.reason());
                let e = Error::from(e);
                let outcome = if e.status().is_server_error() {
                    VoteOutcome::Failed
                } else {
                    VoteOutcome::Refused
                };
                metrics::vote_done(outcome, started.elapsed());
                Err(e)
            }
        }
    }

    /// Checks the admin token: unknown poll first, then missing, then wrong.
    async fn authorize(&self, id: &PollId, token: Option<&str>) -> Result<(), Error> {
        let stored = self.store.admin_token_sha256(id).await?;
        check_token(stored.ok_or(Error::PollNotFound)?, token)
    }

    #[tracing::instrument(skip_all, fields(poll = %id))]
    pub async fn close(&self, id: &PollId, token: Option<&str>) -> Result<Arc<Snapshot>, Error> {
        self.authorize(id, token).await?;
        let results = self.store.close(id).await?.ok_or(Error::PollNotFound)?;
        let snapshot = Snapshot::new(results);
        self.hub.offer(&snapshot);
        Ok(snapshot)
    }

    /// Opens a closed poll again (admin). Past its `closes_at` it stays
    /// closed: 422 `validation_failed` naming `closes_at`, nothing changes.
    #[tracing::instrument(skip_all, fields(poll = %id))]
    pub async fn reopen(&self, id: &PollId, token: Option<&str>) -> Result<Arc<Snapshot>, Error> {
        self.authorize(id, token).await?;
        let results = match self.store.reopen(id).await? {
            Reopened::Open(results) => results,
            Reopened::PastClosesAt => {
                return Err(Error::Validation(
                    "closes_at has passed: this poll cannot be reopened".into(),
                ));
            }
            Reopened::InEvent(event) => return self.reopen_question(&event, id).await,
            Reopened::NotFound => return Err(Error::PollNotFound),
        };
        let snapshot = Snapshot::new(results);
        self.hub.offer(&snapshot);
        Ok(snapshot)
    }

    /// Hides a word-cloud entry from everyone but the host, or shows it
    /// again (admin); followers get the change.
    #[tracing::instrument(skip_all, fields(poll = %id))]
    pub async fn set_hidden(
        &self,
        id: &PollId,
        token: Option<&str>,
        text: &str,
        hidden: bool,
    ) -> Result<Arc<Snapshot>, Error> {
        self.authorize(id, token).await?;
        let results = match self.store.set_hidden(id, text, hidden).await? {
            Hidden::Done(results) => results,
            Hidden::NotFound => return Err(Error::PollNotFound),
            Hidden::NotWordCloud => {
                return Err(Error::Validation(
                    "text: only a word cloud's entries can be hidden".into(),
                ));
            }
            Hidden::TooMany => return Err(Error::TooManyEntries),
        };
        let snapshot = Snapshot::new(results);
        self.hub.offer(&snapshot);
        Ok(snapshot)
    }

    /// Whether `voter` has voted on `id` (one-per-voter and `after_vote`
    /// polls keep a record; others answer false).
    pub async fn has_voted(&self, id: &PollId, voter: &VoterId) -> Result<bool, Error> {
        Ok(self.store.voter_record(id, voter).await? != VoterRecord::None)
    }

    /// `voter`'s current choice on a poll that lets them change it, so the
    /// page can show it wherever they open it; `None` on other polls.
    pub async fn choice_of(
        &self,
        results: &Results,
        voter: &VoterId,
    ) -> Result<Option<Choice>, Error> {
        if !results.allow_change {
            return Ok(None);
        }
        let id = PollId::parse(&results.id).map_err(|_| Error::PollNotFound)?;
        Ok(match self.store.voter_record(&id, voter).await? {
            VoterRecord::Chose(choice) => Some(choice),
            _ => None,
        })
    }

    /// Whether `token` is the poll's admin token; a wrong or missing one is
    /// simply not the host (reading results never fails on it).
    pub async fn is_admin(&self, id: &PollId, token: Option<&str>) -> Result<bool, Error> {
        match self.authorize(id, token).await {
            Ok(()) => Ok(true),
            Err(Error::Unauthorized | Error::Forbidden) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Who is asking for `results`: the host (by `token`), a voter who has
    /// voted (by `voter`), or neither. Looks the store up only when the
    /// answer can change what they see.
    pub async fn viewer(
        &self,
        results: &Results,
        token: Option<&str>,
        voter: Option<&VoterId>,
    ) -> Result<Viewer, Error> {
        let mut viewer = Viewer::anonymous();
        // A word cloud's host sees its hidden entries even when counts are
        // public.
        if results.results == crate::poll::ResultsVisibility::Always && results.cloud.is_none() {
            return Ok(viewer);
        }
        let id = PollId::parse(&results.id).map_err(|_| Error::PollNotFound)?;
        if token.is_some() {
            viewer.admin = self.is_admin(&id, token).await?;
        }
        // Asked even of a closed poll: a reopened one hides again.
        if !viewer.admin
            && visibility::depends_on_vote(results)
            && let Some(voter) = voter
        {
            viewer.voted = self.has_voted(&id, voter).await?;
        }
        Ok(viewer)
    }

    /// [`Self::viewer`] for a follower, from the results its hub holds.
    pub async fn follower_viewer(
        &self,
        following: &Following,
        token: Option<&str>,
        voter: Option<&VoterId>,
    ) -> Result<Viewer, Error> {
        match following.follower.peek() {
            Some(snapshot) => self.viewer(&snapshot.results, token, voter).await,
            None => Ok(Viewer::anonymous()),
        }
    }

    /// Closes `id` at its `closes_at` even when no vote comes: this
    /// instance reads the poll at that instant (the read performs the
    /// idempotent close, on Redis by Redis's clock) and hands the closed
    /// results to its followers. One timer per poll and instance; it
    /// retries briefly when the store's clock is a little behind.
    fn schedule_close(&self, results: &Results) {
        let Some(at_ms) = results.closes_at_ms() else {
            return;
        };
        if results.closed {
            return;
        }
        let Ok(id) = PollId::parse(&results.id) else {
            return;
        };
        if !lock(&self.close_timers).insert(id.clone()) {
            return;
        }
        let (store, hub, timers) = (
            Arc::clone(&self.store),
            Arc::clone(&self.hub),
            Arc::clone(&self.close_timers),
        );
        tokio::spawn(async move {
            let wait = Duration::from_millis(at_ms.saturating_sub(now_ms()));
            tokio::time::sleep(wait).await;
            for _ in 0..50 {
                if !hub.is_followed(&id) {
                    break;
                }
                match store.get(&id).await {
                    Ok(Some(results)) => {
                        let closed = results.closed;
                        hub.offer(&Snapshot::new(results));
                        if closed {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(poll = %id, error = %e.0, "close at closes_at: retrying")
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            lock(&timers).remove(&id);
        });
    }

    #[tracing::instrument(skip_all, fields(poll = %id))]
    pub async fn delete(&self, id: &PollId, token: Option<&str>) -> Result<(), Error> {
        self.authorize(id, token).await?;
        if !self.store.delete(id).await? {
            return Err(Error::PollNotFound);
        }
        self.hub.offer_deleted(id);
        tracing::info!(poll = %id, "poll deleted");
        Ok(())
    }

    /// Starts following a poll: joins the hub, subscribes when first here,
    /// then reads the snapshot — in that order, so no change falls between.
    ///
    /// Only the first follower of a poll here reads the store, and anyone
    /// who finds the hub without results or the feed not live. Otherwise
    /// the hub is current: the first follower read the poll after its
    /// subscription, every change since has come in through the feed (or,
    /// on the embedded store, through this service), and a reconnected
    /// feed is live only once it has re-read the poll. So a long poll —
    /// one follow per request — costs no store read while the poll is
    /// followed here.
    pub async fn follow(&self, id: &PollId, transport: Transport) -> Result<Following, Error> {
        let permit = Arc::clone(&self.followers)
            .try_acquire_owned()
            .map_err(|_| Error::TooManyConnections)?;
        let follower = follow_poll(&self.store, &self.hub, self.feed.as_ref(), id).await?;
        match follower.peek() {
            Some(snapshot) => self.schedule_close(&snapshot.results),
            None => return Err(Error::PollNotFound),
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

    /// Ready when the store answers and, with Redis, changes are arriving.
    pub async fn ready(&self) -> bool {
        self.store.ping().await.is_ok() && self.feed.as_ref().is_none_or(|f| f.is_live())
    }
}

/// Checks a presented admin token against the stored hash: missing is
/// 401, wrong is 403 (the caller has already answered 404 for an unknown
/// poll or event).
pub(crate) fn check_token(stored_sha256: String, token: Option<&str>) -> Result<(), Error> {
    let token = token.ok_or(Error::Unauthorized)?;
    if AdminToken::matches(token, &stored_sha256) {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

/// Joins the poll hub for `id` and makes sure it holds current results:
/// subscribes first when this is the poll's first follower here, then
/// reads the store — in that order, so no change falls between. A poll
/// already followed here is current (see [`Service::follow`]) and costs no
/// read. An unknown poll leaves the follower holding its deletion.
pub(crate) async fn follow_poll(
    store: &Arc<dyn Store>,
    hub: &Arc<Hub>,
    feed: Option<&Arc<dyn ChangeFeed>>,
    id: &PollId,
) -> Result<Follower, Error> {
    let (follower, first) = hub.join(id);
    if first && let Some(feed) = feed {
        feed.subscribe(&Topic::Poll(id.clone())).await;
    }
    let current = !first && follower.has_results() && feed.is_none_or(|f| f.is_live());
    if !current {
        match store.get(id).await? {
            Some(results) => hub.offer(&Snapshot::new(results)),
            None => hub.offer_deleted(id),
        }
    }
    Ok(follower)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The newest results in an event, or `None` once the poll is deleted.
pub fn results_of(event: &PollEvent) -> Option<&Arc<Snapshot>> {
    match event {
        PollEvent::Results(s) => Some(s),
        PollEvent::Deleted => None,
    }
}
