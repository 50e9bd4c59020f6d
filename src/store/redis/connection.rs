//! The store's command connection: one Redis or a Redis Cluster behind one
//! handle, so the store is written once for both.
//!
//! Both are multiplexed and heal themselves: a [`ConnectionManager`]
//! reconnects to its one server; a [`ClusterConnection`] routes each command
//! by its first key's slot, follows MOVED/ASK and refreshes its slot map
//! after a failover. What differs is named here: which publish command the
//! script uses and where `WAIT` must go.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Script, Value};

use super::cluster::slot_of;

/// The poll script as written: changes go out with PUBLISH.
static POLL_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("poll.lua")));

/// The poll script for a cluster: the same text with SPUBLISH as its
/// publish command, so a change only travels inside the shard that owns the
/// poll's slot (Redis allows it: the channel shares the poll's `{ID}` tag).
static CLUSTER_POLL_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&sharded(include_str!("poll.lua"))));

/// The event script, on one Redis and (sharded publish) on a cluster.
static EVENT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("event.lua")));
static CLUSTER_EVENT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&sharded(include_str!("event.lua"))));

/// The script's one publish-command line, as the cluster rewrites it.
const PUBLISH_LINE: &str = "local PUBLISH = 'PUBLISH'";

fn sharded(script: &str) -> String {
    assert!(
        script.contains(PUBLISH_LINE),
        "poll.lua must name its publish command in `{PUBLISH_LINE}`"
    );
    script.replace(PUBLISH_LINE, "local PUBLISH = 'SPUBLISH'")
}

/// One Redis or a cluster; cheap to clone (a handle on shared sockets).
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// A lazy connection to one Redis: an instance started before Redis
    /// answers runs, answers 503, and connects on the first command.
    pub fn single(client: redis::Client, timeout: Duration) -> RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(4)
            .set_pipeline_buffer_size(1024);
        Ok(Self::Single(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }

    /// A cluster connection made in the background (lazy like
    /// [`Connection::single`]).
    pub fn cluster(client: &ClusterClient) -> Self {
        Self::Cluster(client.get_pending_async_connection_with_config(Default::default()))
    }

    /// The poll script in this backend's dialect.
    pub fn poll_script(&self) -> &'static Script {
        match self {
            Self::Single(_) => &POLL_SCRIPT,
            Self::Cluster(_) => &CLUSTER_POLL_SCRIPT,
        }
    }

    /// The event script in this backend's dialect.
    pub fn event_script(&self) -> &'static Script {
        match self {
            Self::Single(_) => &EVENT_SCRIPT,
            Self::Cluster(_) => &CLUSTER_EVENT_SCRIPT,
        }
    }

    /// PUBLISH on one Redis, SPUBLISH (sharded, routed by the channel's
    /// slot) on a cluster.
    pub fn publish_command(&self) -> &'static str {
        match self {
            Self::Single(_) => "PUBLISH",
            Self::Cluster(_) => "SPUBLISH",
        }
    }

    /// `WAIT replicas timeout` on the node that ran this connection's last
    /// write to `key`: on one Redis the one multiplexed socket; on a cluster
    /// the master of `key`'s slot (its socket is the one the script went
    /// over). Returns how many replicas confirmed.
    pub async fn wait_replicas(
        &mut self,
        key: &str,
        replicas: u32,
        timeout: Duration,
    ) -> RedisResult<u64> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout.as_millis().max(1) as u64);
        match self {
            Self::Single(conn) => wait.query_async(conn).await,
            Self::Cluster(conn) => {
                // WAIT's default route is every primary; it must be this one.
                let route = Route::new(slot_of(key.as_bytes()), SlotAddr::Master);
                let reply = conn
                    .route_command(
                        wait,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(u64::from_redis_value(reply)?)
            }
        }
    }
}

/// A cluster client for `seeds` whose every command (retries included) is
/// bounded by `timeout`; `resp3_push` makes it a subscriber (sharded
/// pub/sub needs RESP3 and a push sender).
pub fn cluster_client(
    seeds: &[String],
    timeout: Duration,
    push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
) -> RedisResult<ClusterClient> {
    let mut builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(4)
        .min_retry_wait(50)
        .max_retry_wait(500);
    if let Some(push) = push {
        builder = builder
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push);
    }
    builder.build()
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_script_publishes_sharded_and_differs_only_there() {
        let text = include_str!("poll.lua");
        let cluster = sharded(text);
        assert_eq!(cluster.matches("'SPUBLISH'").count(), 1);
        assert_eq!(cluster.replace("'SPUBLISH'", "'PUBLISH'"), text);
        // Every publish in the script goes through the named command.
        assert!(!text.contains("redis.call('PUBLISH'"));
        assert_ne!(POLL_SCRIPT.get_hash(), CLUSTER_POLL_SCRIPT.get_hash());
    }
}
