//! Local fan-out: one `watch` channel per poll that has followers here.
//!
//! Every follower on this instance — WebSocket, SSE stream or waiting long
//! poll — holds a receiver of its poll's channel. A change is stored once as
//! an `Arc<Snapshot>`; followers read the newest value when they are ready
//! for it, so a slow follower skips versions instead of queueing them, and
//! nothing per client lives outside that client's own task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, watch};

use crate::poll::{PollId, Snapshot};

/// What a follower can learn about its poll.
#[derive(Debug, Clone)]
pub enum PollEvent {
    /// The newest results this instance knows of.
    Results(Arc<Snapshot>),
    /// The poll was deleted; followers say so and stop.
    Deleted,
}

impl PollEvent {
    pub fn version(&self) -> Option<u64> {
        match self {
            PollEvent::Results(s) => Some(s.version()),
            PollEvent::Deleted => None,
        }
    }
}

/// The channel of one followed poll. `None` until a first snapshot arrives.
struct Channel {
    tx: watch::Sender<Option<PollEvent>>,
    followers: usize,
}

/// The per-instance fan-out hub.
#[derive(Default)]
pub struct Hub {
    polls: Mutex<HashMap<PollId, Channel>>,
    /// Told about polls that lost their last follower (the Redis bus
    /// unsubscribes them); unset on the embedded store.
    on_unfollowed: OnceLock<mpsc::UnboundedSender<PollId>>,
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PollId, Channel>> {
        self.polls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers where to report polls that lost their last local follower.
    pub fn set_unfollow_notifier(&self, tx: mpsc::UnboundedSender<PollId>) {
        let _ = self.on_unfollowed.set(tx);
    }

    /// Adds a follower of `id`. The flag is true when it is the first one
    /// here, i.e. when the caller must make sure changes reach this instance
    /// (subscribe) before reading the snapshot.
    pub fn join(self: &Arc<Self>, id: &PollId) -> (Follower, bool) {
        let mut polls = self.lock();
        let mut first = false;
        let channel = polls.entry(id.clone()).or_insert_with(|| {
            first = true;
            Channel {
                tx: watch::channel(None).0,
                followers: 0,
            }
        });
        channel.followers += 1;
        let rx = channel.tx.subscribe();
        drop(polls);
        (
            Follower {
                id: id.clone(),
                rx,
                hub: Arc::clone(self),
            },
            first,
        )
    }

    /// Offers new results; kept only if newer than what followers have.
    /// Results for polls nobody here follows are dropped.
    pub fn offer(&self, snapshot: &Arc<Snapshot>) {
        let polls = self.lock();
        let Some(channel) = polls.get(snapshot.results.id.as_str()) else {
            return;
        };
        channel.tx.send_if_modified(|cur| match cur {
            Some(PollEvent::Deleted) => false,
            Some(PollEvent::Results(old)) if old.version() >= snapshot.version() => false,
            _ => {
                *cur = Some(PollEvent::Results(Arc::clone(snapshot)));
                true
            }
        });
    }

    /// Whether results of `id` at `version` would reach anyone here: the
    /// poll has local followers and nothing as new yet. Lets the bus skip
    /// decoding messages that [`Self::offer`] would drop anyway (another
    /// instance's echo of this instance's own votes, say).
    pub fn wants(&self, id: &str, version: u64) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|channel| match &*channel.tx.borrow() {
                None => true,
                Some(PollEvent::Deleted) => false,
                Some(PollEvent::Results(cur)) => version > cur.version(),
            })
    }

    /// Tells every follower of `id` that the poll is gone.
    pub fn offer_deleted(&self, id: &PollId) {
        if let Some(channel) = self.lock().get(id) {
            channel.tx.send_replace(Some(PollEvent::Deleted));
        }
    }

    /// The polls that have followers here (the bus resubscribes these).
    pub fn followed(&self) -> Vec<PollId> {
        self.lock().keys().cloned().collect()
    }

    /// Whether `id` has followers here right now.
    pub fn is_followed(&self, id: &PollId) -> bool {
        self.lock().contains_key(id)
    }

    /// How many followers `id` has here right now: how a test (or an
    /// operator's debugger) sees one stuck client being dropped.
    pub fn followers(&self, id: &PollId) -> usize {
        self.lock().get(id).map_or(0, |c| c.followers)
    }

    fn leave(&self, id: &PollId) {
        let mut polls = self.lock();
        let Some(channel) = polls.get_mut(id) else {
            return;
        };
        channel.followers -= 1;
        if channel.followers == 0 {
            polls.remove(id);
            drop(polls);
            if let Some(tx) = self.on_unfollowed.get() {
                let _ = tx.send(id.clone());
            }
        }
    }
}

/// One follower's handle on its poll's channel; leaving is dropping it.
pub struct Follower {
    id: PollId,
    rx: watch::Receiver<Option<PollEvent>>,
    hub: Arc<Hub>,
}

impl Follower {
    pub fn poll_id(&self) -> &PollId {
        &self.id
    }

    /// Whether the channel holds results (not nothing yet, not a
    /// deletion), without marking them seen.
    pub fn has_results(&self) -> bool {
        matches!(&*self.rx.borrow(), Some(PollEvent::Results(_)))
    }

    /// The newest results, without marking them seen.
    pub fn peek(&self) -> Option<Arc<Snapshot>> {
        match &*self.rx.borrow() {
            Some(PollEvent::Results(s)) => Some(Arc::clone(s)),
            _ => None,
        }
    }

    /// The newest event, marking it seen.
    pub fn latest(&mut self) -> Option<PollEvent> {
        self.rx.borrow_and_update().clone()
    }

    /// Waits until an event newer than the last one read is there, and
    /// returns it. Never ends while the follower exists (the hub keeps the
    /// channel's sender alive as long as anyone follows it).
    pub async fn next(&mut self) -> Option<PollEvent> {
        if self.rx.changed().await.is_err() {
            return None;
        }
        self.latest()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.hub.leave(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::{Results, VoteLimit};

    fn snap(version: u64) -> Arc<Snapshot> {
        let id = PollId::parse("p").unwrap();
        let labels = vec!["a".to_string(), "b".to_string()];
        Snapshot::new(Results::new(
            &id,
            "q",
            VoteLimit::Unlimited,
            false,
            version,
            &labels,
            &[version, 0],
        ))
    }

    #[tokio::test]
    async fn followers_only_ever_see_newer_versions() {
        let hub = Hub::new();
        let id = PollId::parse("p").unwrap();
        let (mut f, first) = hub.join(&id);
        assert!(first);
        hub.offer(&snap(2));
        hub.offer(&snap(1));
        assert_eq!(f.latest().and_then(|e| e.version()), Some(2));
        hub.offer(&snap(5));
        hub.offer(&snap(3));
        let next = tokio::time::timeout(std::time::Duration::from_secs(1), f.next())
            .await
            .unwrap();
        assert_eq!(next.and_then(|e| e.version()), Some(5));
    }

    #[tokio::test]
    async fn last_follower_leaving_removes_the_channel_and_notifies() {
        let hub = Hub::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        hub.set_unfollow_notifier(tx);
        let id = PollId::parse("p").unwrap();
        let (a, first_a) = hub.join(&id);
        let (b, first_b) = hub.join(&id);
        assert!(first_a && !first_b);
        assert_eq!(hub.followers(&id), 2);
        drop(a);
        assert!(hub.is_followed(&id));
        assert_eq!(hub.followers(&id), 1);
        drop(b);
        assert!(!hub.is_followed(&id));
        assert_eq!(rx.try_recv().unwrap(), id);
    }

    #[tokio::test]
    async fn only_newer_results_of_followed_polls_are_wanted() {
        let hub = Hub::new();
        assert!(!hub.wants("p", 1), "nobody follows p");
        let id = PollId::parse("p").unwrap();
        let (_f, _) = hub.join(&id);
        assert!(hub.wants("p", 1), "no results yet");
        hub.offer(&snap(3));
        assert!(!hub.wants("p", 3));
        assert!(hub.wants("p", 4));
        hub.offer_deleted(&id);
        assert!(!hub.wants("p", 9));
    }

    #[tokio::test]
    async fn deletion_is_final() {
        let hub = Hub::new();
        let id = PollId::parse("p").unwrap();
        let (mut f, _) = hub.join(&id);
        hub.offer(&snap(1));
        hub.offer_deleted(&id);
        hub.offer(&snap(9));
        assert!(matches!(f.latest(), Some(PollEvent::Deleted)));
    }
}
