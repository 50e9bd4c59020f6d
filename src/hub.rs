//! Local fan-out: one `watch` channel per topic (a poll, or an event) that
//! has followers here.
//!
//! Every follower on this instance — WebSocket, SSE stream or waiting long
//! poll — holds a receiver of its topic's channel. A change is stored once
//! as an `Arc` of its rendered form; followers read the newest value when
//! they are ready for it, so a slow follower skips versions instead of
//! queueing them, and nothing per client lives outside that client's own
//! task. Polls and events use the same hub type with their own keys and
//! values ([`Hub`] for polls, [`EventHub`] for events).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::watch;

use crate::event::{EventChange, EventId};
use crate::poll::{PollId, Snapshot};

/// What a follower follows: a poll, or an event (whose followers get the
/// current question's results through the instance's composer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    Poll(PollId),
    Event(EventId),
}

/// The instance's hubs, one per kind of topic; what the Redis bus feeds.
#[derive(Clone, Default)]
pub struct Hubs {
    pub polls: Arc<Hub>,
    pub events: Arc<EventHub>,
}

impl Hubs {
    /// Every topic with followers here.
    pub fn followed(&self) -> Vec<Topic> {
        let polls = self.polls.followed().into_iter().map(Topic::Poll);
        polls
            .chain(self.events.followed().into_iter().map(Topic::Event))
            .collect()
    }

    /// Whether `topic` has followers here right now.
    pub fn is_followed(&self, topic: &Topic) -> bool {
        match topic {
            Topic::Poll(id) => self.polls.is_followed(id),
            Topic::Event(id) => self.events.is_followed(id),
        }
    }

    /// Calls `notify` with every topic that loses its last follower.
    pub fn set_unfollow_notifier(&self, notify: impl Fn(Topic) + Send + Sync + Clone + 'static) {
        let n = notify.clone();
        self.polls
            .set_unfollow_notifier(move |id| n(Topic::Poll(id)));
        self.events
            .set_unfollow_notifier(move |id| notify(Topic::Event(id)));
    }
}

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

/// The channel of one followed topic. `None` until a first value arrives.
struct Channel<V> {
    tx: watch::Sender<Option<V>>,
    followers: usize,
}

/// Told the key of a topic that lost its last local follower.
type Notifier<K> = Box<dyn Fn(K) + Send + Sync>;

/// The per-instance fan-out hub of one kind of topic.
pub struct Hub<K = PollId, V = PollEvent> {
    topics: Mutex<HashMap<K, Channel<V>>>,
    /// Told about topics that lost their last follower (the Redis bus
    /// unsubscribes them); unset on the embedded store.
    on_unfollowed: OnceLock<Notifier<K>>,
}

/// The hub of events' store-side changes: the one follower of each is the
/// instance's composer of that event's state.
pub type EventHub = Hub<EventId, EventChange>;

impl<K, V> Default for Hub<K, V> {
    fn default() -> Self {
        Self {
            topics: Mutex::default(),
            on_unfollowed: OnceLock::new(),
        }
    }
}

impl<K, V> Hub<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Channel<V>>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers what to call for topics that lost their last follower.
    pub fn set_unfollow_notifier(&self, notify: impl Fn(K) + Send + Sync + 'static) {
        let _ = self.on_unfollowed.set(Box::new(notify));
    }

    /// Adds a follower of `id`. The flag is true when it is the first one
    /// here, i.e. when the caller must make sure changes reach this instance
    /// (subscribe) before reading the snapshot.
    pub fn join(self: &Arc<Self>, id: &K) -> (Follower<K, V>, bool) {
        let mut topics = self.lock();
        let mut first = false;
        let channel = topics.entry(id.clone()).or_insert_with(|| {
            first = true;
            Channel {
                tx: watch::channel(None).0,
                followers: 0,
            }
        });
        channel.followers += 1;
        let rx = channel.tx.subscribe();
        drop(topics);
        (
            Follower {
                id: id.clone(),
                rx,
                hub: Arc::clone(self),
            },
            first,
        )
    }

    /// Offers a value to the followers of `id`, if any: `replace` decides,
    /// seeing the current value, whether to replace it (and does).
    pub fn offer_with(&self, id: &K, replace: impl FnOnce(&mut Option<V>) -> bool) {
        if let Some(channel) = self.lock().get(id) {
            channel.tx.send_if_modified(replace);
        }
    }

    /// The current value of `id` here, if followed.
    pub fn current(&self, id: &K) -> Option<V> {
        self.lock().get(id).and_then(|c| c.tx.borrow().clone())
    }

    /// The topics that have followers here (the bus resubscribes these).
    pub fn followed(&self) -> Vec<K> {
        self.lock().keys().cloned().collect()
    }

    /// Whether `id` has followers here right now.
    pub fn is_followed(&self, id: &K) -> bool {
        self.lock().contains_key(id)
    }

    /// How many followers `id` has here right now: how a test (or an
    /// operator's debugger) sees one stuck client being dropped.
    pub fn followers(&self, id: &K) -> usize {
        self.lock().get(id).map_or(0, |c| c.followers)
    }

    fn leave(&self, id: &K) {
        let mut topics = self.lock();
        let Some(channel) = topics.get_mut(id) else {
            return;
        };
        channel.followers -= 1;
        if channel.followers == 0 {
            topics.remove(id);
            drop(topics);
            if let Some(notify) = self.on_unfollowed.get() {
                notify(id.clone());
            }
        }
    }
}

impl Hub<PollId, PollEvent> {
    /// Offers new results; kept only if newer than what followers have.
    /// Results for polls nobody here follows are dropped.
    pub fn offer(&self, snapshot: &Arc<Snapshot>) {
        let topics = self.lock();
        let Some(channel) = topics.get(snapshot.results.id.as_str()) else {
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
}

impl Hub<EventId, EventChange> {
    /// Offers an event as the store has it; kept only if newer (a deletion
    /// is final).
    pub fn offer_event(&self, id: &EventId, change: EventChange) {
        self.offer_with(id, |cur| {
            let newer = match (&*cur, &change) {
                (Some(EventChange::Deleted), _) => false,
                (_, EventChange::Deleted) => true,
                (Some(EventChange::Record(old)), EventChange::Record(new)) => {
                    new.is_newer_than(old)
                }
                (None, _) => true,
            };
            if newer {
                *cur = Some(change);
            }
            newer
        });
    }

    /// Whether the event at `version` with its board at `qa` would be news
    /// to this instance.
    pub fn wants_event(&self, id: &str, version: u64, qa: u64) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|channel| match &*channel.tx.borrow() {
                None => true,
                Some(EventChange::Deleted) => false,
                Some(EventChange::Record(cur)) => (version, qa) > (cur.version, cur.qa.version),
            })
    }
}

/// One follower's handle on its topic's channel; leaving is dropping it.
pub struct Follower<K = PollId, V = PollEvent>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    id: K,
    rx: watch::Receiver<Option<V>>,
    hub: Arc<Hub<K, V>>,
}

impl<K, V> Follower<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The topic followed.
    pub fn key(&self) -> &K {
        &self.id
    }

    /// The newest value, marking it seen.
    pub fn latest(&mut self) -> Option<V> {
        self.rx.borrow_and_update().clone()
    }

    /// The newest value, without marking it seen.
    pub fn peek_value(&self) -> Option<V> {
        self.rx.borrow().clone()
    }

    /// Waits until a value newer than the last one read is there, and
    /// returns it. Never ends while the follower exists (the hub keeps the
    /// channel's sender alive as long as anyone follows it).
    pub async fn next(&mut self) -> Option<V> {
        if self.rx.changed().await.is_err() {
            return None;
        }
        self.latest()
    }
}

impl Follower<PollId, PollEvent> {
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
}

impl<K, V> Drop for Follower<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
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
        let hub: Arc<Hub> = Hub::new();
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
        let hub: Arc<Hub> = Hub::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        hub.set_unfollow_notifier(move |id| {
            let _ = tx.send(id);
        });
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
        let hub: Arc<Hub> = Hub::new();
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
        let hub: Arc<Hub> = Hub::new();
        let id = PollId::parse("p").unwrap();
        let (mut f, _) = hub.join(&id);
        hub.offer(&snap(1));
        hub.offer_deleted(&id);
        hub.offer(&snap(9));
        assert!(matches!(f.latest(), Some(PollEvent::Deleted)));
    }
}
