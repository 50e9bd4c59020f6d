//! What the two buses share ([`super::bus`] on one Redis, [`super::cluster_bus`]
//! on a cluster): the timings, why a subscriber connection was given up,
//! the reconnect loop with backoff, the unsubscribe grace, and how a
//! (re)subscription catches up and a message reaches the hub.
//!
//! A bus implements [`Subscriber`] (one connection's life, and how to drop
//! polls nobody follows); [`start`] runs it. Each bus keeps only what its
//! kind of pub/sub makes different.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::StreamExt;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::store::{Change, RedisStore};
use crate::event::{EventChange, EventId};
use crate::hub::{Hubs, Topic};
use crate::poll::Snapshot;
use crate::store::{EventStore, Store};

/// How often an instance publishes a heartbeat to itself.
pub(super) const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How recent the last heartbeat heard must be for the bus to be live.
pub(super) const HEARTBEAT_FRESH: Duration = Duration::from_secs(3);
/// Heartbeats Redis delivered but the subscriber never heard before the bus
/// declares its connection dead.
pub(super) const UNHEARD_LIMIT: u64 = 3;
/// How long a poll without local followers stays subscribed, so a page
/// reload does not unsubscribe and resubscribe.
const UNSUBSCRIBE_GRACE: Duration = Duration::from_secs(2);
/// Snapshots re-read at once after a reconnect.
const RESYNC_CONCURRENCY: usize = 16;
/// Reconnect backoff bounds.
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Why a connection was given up.
#[derive(Debug, thiserror::Error)]
pub(super) enum Lost {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("no answer from Redis in time")]
    Timeout,
    #[error(transparent)]
    Store(#[from] crate::store::Unavailable),
    #[error("the pub/sub connection closed")]
    Closed,
    #[error("Redis delivered the heartbeat to nobody: not subscribed")]
    NotSubscribed,
    #[error("{0} heartbeats delivered but never heard")]
    Deaf(u64),
    #[error("asked to reconnect")]
    Asked,
    #[error("a node dropped the subscription of {0}")]
    Dropped(String),
    #[error("the cluster's masters or slots changed")]
    Topology,
    #[error("shutting down")]
    Shutdown,
}

/// `fut`, given up as [`Lost::Timeout`] after `timeout`.
pub(super) async fn bounded<T>(
    timeout: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, Lost> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Lost::Timeout),
    }
}

/// One kind of subscriber connection, as [`start`] drives it.
#[async_trait]
pub(super) trait Subscriber: Send + Sync + 'static {
    /// Names the connection in logs.
    const NAME: &'static str;

    /// One connection's life: connect, subscribe, catch up (then set
    /// `*backoff` to [`BACKOFF_MIN`]), relay; returns why it ended.
    async fn session(self: Arc<Self>, backoff: &mut Duration) -> Lost;

    /// Forgets the lost connection: not live until the next has caught up.
    fn disconnected(&self);

    /// Unsubscribes those of `topics` that still have no local follower.
    async fn unsubscribe(&self, topics: Vec<Topic>);
}

/// Starts `subscriber`'s tasks: its connection, made again with jittered
/// backoff whenever it is lost, and the unsubscribing of polls that lost
/// their last local follower. Both end on `shutdown` or when the returned
/// guard is dropped.
pub(super) fn start<S: Subscriber>(
    subscriber: Arc<S>,
    hubs: &Hubs,
    shutdown: CancellationToken,
) -> DropGuard {
    let (unfollowed_tx, unfollowed_rx) = mpsc::unbounded_channel();
    hubs.set_unfollow_notifier(move |topic| {
        let _ = unfollowed_tx.send(topic);
    });
    let stop = shutdown.child_token();
    tokio::spawn(reconnecting(Arc::clone(&subscriber), stop.clone()));
    tokio::spawn(unsubscriber(subscriber, unfollowed_rx, stop.clone()));
    stop.drop_guard()
}

/// Runs sessions until shutdown, backing off between them.
async fn reconnecting<S: Subscriber>(subscriber: Arc<S>, shutdown: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let lost = tokio::select! {
            lost = Arc::clone(&subscriber).session(&mut backoff) => lost,
            _ = shutdown.cancelled() => Lost::Shutdown,
        };
        subscriber.disconnected();
        if matches!(lost, Lost::Shutdown) {
            break;
        }
        tracing::warn!(reason = %lost, retry_in = ?backoff, "{} down", S::NAME);
        let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 2);
        tokio::select! {
            _ = tokio::time::sleep(backoff + Duration::from_millis(jitter)) => {}
            _ = shutdown.cancelled() => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    tracing::debug!("{} stopped", S::NAME);
}

/// Unsubscribes polls that lost their last local follower, once they have
/// stayed without one for the grace period.
async fn unsubscriber<S: Subscriber>(
    subscriber: Arc<S>,
    mut unfollowed: mpsc::UnboundedReceiver<Topic>,
    shutdown: CancellationToken,
) {
    let mut pending: HashMap<Topic, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(UNSUBSCRIBE_GRACE / 2);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            id = unfollowed.recv() => match id {
                Some(id) => { pending.insert(id, Instant::now() + UNSUBSCRIBE_GRACE); }
                None => return,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let mut due = Vec::new();
                pending.retain(|id, at| {
                    let keep = *at > now;
                    if !keep {
                        due.push(id.clone());
                    }
                    keep
                });
                if !due.is_empty() {
                    subscriber.unsubscribe(due).await;
                }
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Re-reads each topic's state and offers it (or its deletion): what
/// every (re)subscription is followed by, on one Redis and on a cluster.
pub(super) async fn resync(
    store: &RedisStore,
    hubs: &Hubs,
    topics: Vec<Topic>,
) -> Result<(), Lost> {
    let mut reads = futures_util::stream::iter(topics)
        .map(|topic| async move {
            match &topic {
                Topic::Poll(id) => match store.get(id).await? {
                    Some(results) => hubs.polls.offer(&Snapshot::new(results)),
                    None => hubs.polls.offer_deleted(id),
                },
                Topic::Event(id) => offer_event(store, hubs, id).await?,
            }
            Ok::<(), crate::store::Unavailable>(())
        })
        .buffer_unordered(RESYNC_CONCURRENCY);
    while let Some(done) = reads.next().await {
        done?;
    }
    Ok(())
}

/// Reads an event and hands it (or its deletion) to the event hub.
async fn offer_event(
    store: &RedisStore,
    hubs: &Hubs,
    id: &EventId,
) -> Result<(), crate::store::Unavailable> {
    let change = match store.get_event(id).await? {
        Some(record) => EventChange::Record(Arc::new(record)),
        None => EventChange::Deleted,
    };
    hubs.events.offer_event(id, change);
    Ok(())
}

/// The head of an event channel's message.
#[derive(serde::Deserialize)]
struct EventMessage<'a> {
    event: &'a str,
    version: Option<u64>,
    /// The board's version, on Q&A changes (and on every announcement).
    #[serde(default)]
    qa: u64,
    #[serde(default)]
    deleted: bool,
}

/// Hands one message from an event's channel on: a deletion at once; a
/// change by reading the event (once per change per instance, and only
/// when this instance does not have that version yet).
fn deliver_event(store: &Arc<RedisStore>, hubs: &Hubs, payload: &[u8]) {
    let Ok(msg) = serde_json::from_slice::<EventMessage>(payload) else {
        tracing::warn!("unreadable message on an event channel");
        return;
    };
    let Ok(id) = EventId::parse(msg.event) else {
        return;
    };
    if msg.deleted {
        hubs.events.offer_event(&id, EventChange::Deleted);
        return;
    }
    if !msg
        .version
        .is_some_and(|v| hubs.events.wants_event(id.as_str(), v, msg.qa))
    {
        return;
    }
    let (store, hubs) = (Arc::clone(store), hubs.clone());
    tokio::spawn(async move {
        if let Err(e) = offer_event(&store, &hubs, &id).await {
            tracing::debug!(event = %id, error = %e.0, "event re-read failed");
        }
    });
}

/// Hands one message from a poll's or an event's channel to its hub.
pub(super) fn deliver(store: &Arc<RedisStore>, hubs: &Hubs, payload: &[u8]) {
    if payload.starts_with(b"{\"event\":") {
        return deliver_event(store, hubs, payload);
    }
    let hub = &hubs.polls;
    // Every instance hears every change of the polls it follows, its
    // own votes' included: read just the id and version first, and
    // render results only when the hub would keep them.
    if let Some((id, version)) = RedisStore::head_of(payload)
        && !hub.wants(&id, version)
    {
        return;
    }
    match store.read_change(payload) {
        Ok(Change::Results(results)) => hub.offer(&Snapshot::new(results)),
        Ok(Change::Deleted(id)) => hub.offer_deleted(&id),
        Ok(Change::Unknown(id)) => {
            // The text of this poll is not cached here (evicted, or the
            // id was deleted and created again): read it once more.
            let (store, hubs) = (Arc::clone(store), hubs.clone());
            tokio::spawn(async move {
                if let Err(e) = resync(&store, &hubs, vec![Topic::Poll(id)]).await {
                    tracing::debug!(error = %e, "re-read after an unknown change failed");
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "unreadable message on a poll channel"),
    }
}
