//! The bus on a Redis Cluster: the same guarantees as [`super::bus`] on one
//! Redis, over sharded pub/sub.
//!
//! - Each followed poll's channel is SSUBSCRIBEd on the master that owns its
//!   slot (the cluster connection routes it; the channel shares the poll's
//!   `{ID}` tag), and the subscription is confirmed before the snapshot is
//!   read, so no change falls between the two. A change only crosses the
//!   shard that owns the poll.
//! - A heartbeat per master: a channel of this instance's own whose hash
//!   tag lands in a slot of that master, SPUBLISHed every second. The bus is
//!   live only while every master's heartbeat comes back, so `/readyz`
//!   answers 503 while any shard's subscription is unproven.
//! - Any sign that a subscription may have lapsed — a node's connection
//!   dropped, a subscription dropped by a node (a slot migrated away), a
//!   heartbeat that nobody or not this bus heard, or a change in the
//!   masters or their slots (a failover, a slot move) — ends the session:
//!   the bus makes a new cluster connection, resubscribes every followed
//!   poll on its current owner and re-reads every snapshot (messages
//!   published meanwhile are gone for good). redis-rs would resubscribe by
//!   itself, but without telling when it is done, so it could not resync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::cluster::{self, Master};
use super::connection::cluster_client;
use super::feed::{
    self, BACKOFF_MIN, HEARTBEAT_EVERY, HEARTBEAT_FRESH, Lost, Subscriber, UNHEARD_LIMIT, bounded,
    deliver, resync,
};
use super::store::RedisStore;
use crate::hub::{Hubs, Topic};
use crate::metrics;
use crate::store::ChangeFeed;

/// SSUBSCRIBEs in flight at once when resubscribing (each poll is its own
/// slot, so each is its own command).
const SUBSCRIBE_CONCURRENCY: usize = 32;

/// Whether the bus is caught up, and when it last heard each master.
#[derive(Default)]
struct Liveness {
    synced: bool,
    /// Heartbeat channel → when it was last heard; one per master.
    heard: HashMap<String, Option<Instant>>,
}

struct Shared {
    seeds: Vec<String>,
    store: Arc<RedisStore>,
    hubs: Hubs,
    timeout: Duration,
    nonce: String,
    /// The current subscriber connection; `None` while disconnected.
    conn: Mutex<Option<ClusterConnection>>,
    liveness: Mutex<Liveness>,
    reconnect: Notify,
}

/// The change feed of the cluster backend. See the module docs.
pub struct ClusterBus {
    shared: Arc<Shared>,
    _stop: DropGuard,
}

impl ClusterBus {
    /// Starts the bus's tasks; they end on `shutdown` or when the bus is
    /// dropped.
    pub fn start(
        seeds: Vec<String>,
        store: Arc<RedisStore>,
        hubs: Hubs,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let nonce: u64 = rand::rng().random();
        let shared = Arc::new(Shared {
            seeds,
            timeout: store.timeout(),
            nonce: format!("{nonce:016x}"),
            store,
            hubs: hubs.clone(),
            conn: Mutex::new(None),
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
impl ChangeFeed for ClusterBus {
    async fn subscribe(&self, topic: &Topic) {
        let Some(mut conn) = self.shared.current() else {
            return;
        };
        let channel = self.shared.store.keys().topic_channel(topic);
        if let Err(e) = self.shared.bounded(conn.ssubscribe(&channel)).await {
            tracing::debug!(?topic, error = %e, "ssubscribe failed; reconnecting");
            // The poll's owner may be changing: a new session subscribes it
            // wherever it lives now.
            self.shared.reconnect.notify_one();
        }
    }

    fn is_live(&self) -> bool {
        let live = self.shared.lock_liveness();
        live.synced
            && !live.heard.is_empty()
            && live
                .heard
                .values()
                .all(|t| t.is_some_and(|t| t.elapsed() < HEARTBEAT_FRESH))
    }
}

/// A heartbeat channel's counts: the newest sequence Redis delivered to a
/// subscriber, and the newest this bus heard.
#[derive(Default, Clone, Copy)]
struct Beats {
    delivered: u64,
    heard: u64,
}

impl Shared {
    fn current(&self) -> Option<ClusterConnection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_current(&self, conn: Option<ClusterConnection>) {
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = conn;
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

    /// The heartbeat channel of `master`: in one of its slots, this
    /// instance's own.
    fn heartbeat_channel(&self, master: &Master) -> String {
        self.store
            .keys()
            .heartbeat(&format!("{{{}}}:{}", master.tag(), self.nonce))
    }

    /// A new subscriber connection: heartbeats of every master, then every
    /// followed poll, then their snapshots. The connection is published
    /// before the followed polls are listed, so a follower that joins
    /// meanwhile is either listed or subscribes itself on it.
    async fn connect(
        &self,
        pushes: mpsc::UnboundedSender<PushInfo>,
    ) -> Result<(ClusterConnection, Vec<Master>), Lost> {
        let client = cluster_client(&self.seeds, self.timeout, Some(pushes))?;
        let mut conn = self.bounded(client.get_async_connection()).await?;
        let masters = self.bounded(cluster::masters(&mut conn)).await?;
        if masters.is_empty() {
            return Err(Lost::Topology);
        }
        let mut heard = HashMap::new();
        for master in &masters {
            let channel = self.heartbeat_channel(master);
            self.bounded(conn.ssubscribe(&channel)).await?;
            heard.insert(channel, None);
        }
        self.lock_liveness().heard = heard;
        self.set_current(Some(conn.clone()));
        let followed = self.hubs.followed();
        let channels: Vec<String> = followed
            .iter()
            .map(|t| self.store.keys().topic_channel(t))
            .collect();
        let mut subscribes = futures_util::stream::iter(channels.into_iter().map(|channel| {
            let mut conn = conn.clone();
            async move { self.bounded(conn.ssubscribe(channel)).await }
        }))
        .buffer_unordered(SUBSCRIBE_CONCURRENCY);
        while let Some(done) = subscribes.next().await {
            done?;
        }
        drop(subscribes);
        resync(&self.store, &self.hubs, followed).await?;
        self.lock_liveness().synced = true;
        Ok((conn, masters))
    }

    /// Relays messages and runs the heartbeats and the topology check,
    /// until something says a subscription may have lapsed.
    async fn relay(
        self: &Arc<Self>,
        conn: ClusterConnection,
        masters: Vec<Master>,
        mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    ) -> Lost {
        let channels: Vec<String> = masters.iter().map(|m| self.heartbeat_channel(m)).collect();
        let mut beats: HashMap<String, Beats> = channels
            .iter()
            .map(|c| (c.clone(), Beats::default()))
            .collect();
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut publishes = FuturesUnordered::new();
        let mut topology = FuturesUnordered::new();
        let mut next_seq: u64 = 0;
        loop {
            tokio::select! {
                push = pushes.recv() => {
                    let Some(push) = push else { return Lost::Closed };
                    if let Err(lost) = self.on_push(push, &mut beats) {
                        return lost;
                    }
                }
                _ = self.reconnect.notified() => return Lost::Asked,
                _ = tick.tick() => {
                    if let Some(b) = beats.values().find(|b| b.delivered >= b.heard + UNHEARD_LIMIT) {
                        return Lost::Deaf(b.delivered - b.heard);
                    }
                    next_seq += 1;
                    let seq = next_seq;
                    for channel in &channels {
                        let channel = channel.clone();
                        publishes.push(async move {
                            let outcome = self.store.publish(&channel, &seq.to_string()).await;
                            (channel, seq, outcome)
                        });
                    }
                    if topology.is_empty() {
                        let mut conn = conn.clone();
                        topology.push(async move {
                            self.bounded(cluster::masters(&mut conn)).await
                        });
                    }
                }
                Some((channel, seq, outcome)) = publishes.next(), if !publishes.is_empty() => {
                    match outcome {
                        Ok(0) => return Lost::NotSubscribed,
                        Ok(_) => if let Some(b) = beats.get_mut(&channel) {
                            b.delivered = b.delivered.max(seq);
                        },
                        Err(e) => tracing::debug!(error = %e.0, "heartbeat not published"),
                    }
                }
                Some(now) = topology.next(), if !topology.is_empty() => match now {
                    Ok(now) if now != masters => return Lost::Topology,
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "cluster layout not read"),
                },
            }
        }
    }

    /// One push from any node of the cluster.
    fn on_push(
        self: &Arc<Self>,
        push: PushInfo,
        beats: &mut HashMap<String, Beats>,
    ) -> Result<(), Lost> {
        match push.kind {
            PushKind::SMessage => {
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                else {
                    return Ok(());
                };
                let channel = String::from_utf8_lossy(&channel);
                if let Some(b) = beats.get_mut(channel.as_ref()) {
                    if let Some(seq) = std::str::from_utf8(&payload)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                    {
                        b.heard = b.heard.max(seq);
                        let mut live = self.lock_liveness();
                        if let Some(at) = live.heard.get_mut(channel.as_ref()) {
                            *at = Some(Instant::now());
                        }
                        // The bus is as fresh as its stalest master.
                        if let Some(Some(oldest)) = live.heard.values().min() {
                            metrics::bus_heartbeat_heard(oldest.elapsed());
                        }
                    }
                } else {
                    deliver(&self.store, &self.hubs, &payload);
                }
                Ok(())
            }
            PushKind::Disconnection => Err(Lost::Closed),
            PushKind::SUnsubscribe => {
                // Ours are only for polls nobody follows; any other was
                // dropped by a node (its slot moved away).
                let channel = match push.data.first() {
                    Some(Value::BulkString(c)) => String::from_utf8_lossy(c).into_owned(),
                    _ => return Ok(()),
                };
                let followed = self
                    .store
                    .keys()
                    .topic_of_channel(&channel)
                    .is_some_and(|t| self.hubs.is_followed(&t));
                if followed || beats.contains_key(&channel) {
                    Err(Lost::Dropped(channel))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Unsubscribes `id` if it still has no follower. A follower that joins
    /// while the SUNSUBSCRIBE is on its way has its SSUBSCRIBE undone: its
    /// poll is subscribed again and re-read.
    async fn unsubscribe_one(&self, id: Topic) {
        if self.hubs.is_followed(&id) {
            return;
        }
        let Some(mut conn) = self.current() else {
            return;
        };
        let channel = self.store.keys().topic_channel(&id);
        if let Err(e) = self.bounded(conn.sunsubscribe(&channel)).await {
            tracing::debug!(error = %e, "sunsubscribe failed");
            return;
        }
        if !self.hubs.is_followed(&id) {
            return;
        }
        let again = async {
            self.bounded(conn.ssubscribe(&channel)).await?;
            resync(&self.store, &self.hubs, vec![id]).await
        };
        if let Err(e) = again.await {
            tracing::warn!(error = %e, "resubscribe after a rejoin failed; reconnecting");
            self.reconnect.notify_one();
        }
    }
}

#[async_trait]
impl Subscriber for Shared {
    const NAME: &'static str = "Redis Cluster pub/sub";

    async fn session(self: Arc<Self>, backoff: &mut Duration) -> Lost {
        let (pushes_tx, pushes) = mpsc::unbounded_channel();
        let (conn, masters) = match self.connect(pushes_tx).await {
            Ok(connected) => connected,
            Err(lost) => return lost,
        };
        *backoff = BACKOFF_MIN;
        tracing::info!(
            masters = masters.len(),
            "Redis Cluster pub/sub connected and resynced"
        );
        self.relay(conn, masters, pushes).await
    }

    fn disconnected(&self) {
        self.set_current(None);
        *self.lock_liveness() = Liveness::default();
    }

    async fn unsubscribe(&self, ids: Vec<Topic>) {
        // Each poll is its own slot, so each is its own SUNSUBSCRIBE.
        for id in ids {
            self.unsubscribe_one(id).await;
        }
    }
}
