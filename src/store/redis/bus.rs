//! The Redis bus: brings changes made on any instance into this instance's
//! hub, over ONE pub/sub connection per instance.
//!
//! - The first local follower of a poll subscribes its channel (and waits
//!   for Redis to confirm) before it reads the snapshot, so no change falls
//!   between the two. A poll that loses its last follower is unsubscribed
//!   after a short grace. Channels are named from validated ids only; the
//!   bus never uses PSUBSCRIBE.
//! - redis-rs's RESP2 `PubSub` never reconnects: its stream just ends. The
//!   bus owns that cycle instead of leaving it to a `ConnectionManager`, so
//!   it knows exactly when a new connection has resubscribed every followed
//!   poll and when the snapshots have been re-read (messages published while
//!   disconnected are gone for good); only then is it live again.
//! - A heartbeat, published every second through the command connection on
//!   a channel of this instance's own, proves the whole path end to end:
//!   the bus is live only while its heartbeats come back, and reconnects
//!   when Redis says nobody heard one or several went unanswered (a
//!   subscriber that died silently).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::feed::{
    self, BACKOFF_MIN, HEARTBEAT_EVERY, HEARTBEAT_FRESH, Lost, Subscriber, UNHEARD_LIMIT, bounded,
    deliver, resync,
};
use super::store::RedisStore;
use crate::hub::{Hubs, Topic};
use crate::metrics;
use crate::store::ChangeFeed;

/// Channels per SUBSCRIBE when resubscribing after a reconnect.
const SUBSCRIBE_BATCH: usize = 256;

/// Whether the bus is caught up, and when it last heard itself.
#[derive(Default)]
struct Liveness {
    synced: bool,
    last_heard: Option<Instant>,
}

struct Shared {
    client: redis::Client,
    store: Arc<RedisStore>,
    hubs: Hubs,
    timeout: Duration,
    heartbeat_channel: String,
    /// The current connection's command side; `None` while disconnected.
    sink: Mutex<Option<PubSubSink>>,
    liveness: Mutex<Liveness>,
    /// Asks the current connection to be dropped and made again.
    reconnect: Notify,
}

/// The change feed of the Redis backend. See the module docs.
pub struct Bus {
    shared: Arc<Shared>,
    /// Stops the bus's tasks when the bus is dropped, e.g. when an instance
    /// fails to start after connecting, even without a shutdown.
    _stop: DropGuard,
}

impl Bus {
    /// Starts the bus's tasks (connection and unsubscribing); both end when
    /// `shutdown` is cancelled or the bus is dropped.
    pub fn start(
        client: redis::Client,
        store: Arc<RedisStore>,
        hubs: Hubs,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let nonce: u64 = rand::rng().random();
        let shared = Arc::new(Shared {
            client,
            timeout: store.timeout(),
            heartbeat_channel: store.keys().heartbeat(&format!("{nonce:016x}")),
            store,
            hubs: hubs.clone(),
            sink: Mutex::new(None),
            liveness: Mutex::new(Liveness::default()),
            reconnect: Notify::new(),
        });
        let stop = feed::start(Arc::clone(&shared), &hubs, shutdown);
        Arc::new(Self {
            shared,
            _stop: stop,
        })
    }
}

#[async_trait]
impl ChangeFeed for Bus {
    async fn subscribe(&self, topic: &Topic) {
        let Some(mut sink) = self.shared.current_sink() else {
            // Disconnected: the reconnect subscribes every followed topic.
            return;
        };
        let channel = self.shared.store.keys().topic_channel(topic);
        if let Err(e) = self.shared.bounded(sink.subscribe(&channel)).await {
            tracing::debug!(?topic, error = %e, "subscribe failed; the reconnect will retry");
        }
    }

    fn is_live(&self) -> bool {
        let live = self.shared.lock_liveness();
        live.synced
            && live
                .last_heard
                .is_some_and(|t| t.elapsed() < HEARTBEAT_FRESH)
    }
}

impl Shared {
    fn current_sink(&self) -> Option<PubSubSink> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_sink(&self, sink: Option<PubSubSink>) {
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    fn lock_liveness(&self) -> std::sync::MutexGuard<'_, Liveness> {
        self.liveness.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn bounded<T>(
        &self,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Lost> {
        bounded(self.timeout, fut).await
    }

    /// Opens the connection, subscribes the heartbeat and every followed
    /// poll, and re-reads their snapshots. The sink is published before the
    /// followed polls are listed, so a follower that joins meanwhile either
    /// is in that list or subscribes itself on the new connection.
    async fn connect(&self) -> Result<PubSubStream, Lost> {
        let (mut sink, stream) = self.bounded(self.client.get_async_pubsub()).await?.split();
        self.bounded(sink.subscribe(&self.heartbeat_channel))
            .await?;
        self.set_sink(Some(sink.clone()));
        let followed = self.hubs.followed();
        let channels: Vec<String> = followed
            .iter()
            .map(|t| self.store.keys().topic_channel(t))
            .collect();
        for batch in channels.chunks(SUBSCRIBE_BATCH) {
            self.bounded(sink.subscribe(batch)).await?;
        }
        self.resync(followed).await?;
        self.lock_liveness().synced = true;
        Ok(stream)
    }

    async fn resync(&self, topics: Vec<Topic>) -> Result<(), Lost> {
        resync(&self.store, &self.hubs, topics).await
    }

    /// Relays messages to the hub and runs the heartbeat, until the
    /// connection ends or stops hearing itself.
    async fn relay(self: &Arc<Self>, mut stream: PubSubStream) -> Lost {
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut publishes = FuturesUnordered::new();
        let mut next_seq: u64 = 0;
        let mut heard: u64 = 0;
        let mut delivered: u64 = 0;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) if msg.get_channel_name() == self.heartbeat_channel => {
                        if let Some(seq) = std::str::from_utf8(msg.get_payload_bytes())
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                        {
                            heard = heard.max(seq);
                            self.lock_liveness().last_heard = Some(Instant::now());
                            metrics::bus_heartbeat_heard(Duration::ZERO);
                        }
                    }
                    Some(msg) => self.deliver(msg.get_payload_bytes()),
                    None => return Lost::Closed,
                },
                _ = self.reconnect.notified() => return Lost::Asked,
                _ = tick.tick() => {
                    if delivered >= heard + UNHEARD_LIMIT {
                        return Lost::Deaf(delivered - heard);
                    }
                    next_seq += 1;
                    let seq = next_seq;
                    publishes.push(async move {
                        let payload = seq.to_string();
                        (seq, self.store.publish(&self.heartbeat_channel, &payload).await)
                    });
                }
                Some((seq, outcome)) = publishes.next(), if !publishes.is_empty() => match outcome {
                    Ok(0) => return Lost::NotSubscribed,
                    Ok(_) => delivered = delivered.max(seq),
                    // Redis is unreachable: the stream ends or heartbeats go
                    // stale; either way readiness says so.
                    Err(e) => tracing::debug!(error = %e.0, "heartbeat not published"),
                },
            }
        }
    }

    fn deliver(&self, payload: &[u8]) {
        deliver(&self.store, &self.hubs, payload);
    }
}

#[async_trait]
impl Subscriber for Shared {
    const NAME: &'static str = "Redis pub/sub connection";

    /// One connection's life: connect, catch up, then relay messages.
    async fn session(self: Arc<Self>, backoff: &mut Duration) -> Lost {
        let stream = match self.connect().await {
            Ok(stream) => stream,
            Err(lost) => return lost,
        };
        *backoff = BACKOFF_MIN;
        tracing::info!("Redis pub/sub connected and resynced");
        self.relay(stream).await
    }

    fn disconnected(&self) {
        self.set_sink(None);
        *self.lock_liveness() = Liveness::default();
    }

    /// Unsubscribes `ids` that still have no follower. A follower may join
    /// while the UNSUBSCRIBE is on its way and have its own SUBSCRIBE undone
    /// by it: such polls are subscribed again and re-read afterwards.
    async fn unsubscribe(&self, ids: Vec<Topic>) {
        let ids: Vec<Topic> = ids
            .into_iter()
            .filter(|id| !self.hubs.is_followed(id))
            .collect();
        if ids.is_empty() {
            return;
        }
        let Some(mut sink) = self.current_sink() else {
            return;
        };
        let channels: Vec<String> = ids
            .iter()
            .map(|t| self.store.keys().topic_channel(t))
            .collect();
        if let Err(e) = self.bounded(sink.unsubscribe(&channels)).await {
            tracing::debug!(error = %e, "unsubscribe failed");
            return;
        }
        let rejoined: Vec<Topic> = ids
            .into_iter()
            .filter(|id| self.hubs.is_followed(id))
            .collect();
        if rejoined.is_empty() {
            return;
        }
        let channels: Vec<String> = rejoined
            .iter()
            .map(|t| self.store.keys().topic_channel(t))
            .collect();
        let again = async {
            self.bounded(sink.subscribe(&channels)).await?;
            self.resync(rejoined).await
        };
        if let Err(e) = again.await {
            tracing::warn!(error = %e, "resubscribe after a rejoin failed; reconnecting");
            // Losing these polls' changes silently is not an option: make
            // the connection again, which resubscribes everything.
            self.reconnect.notify_one();
        }
    }
}
