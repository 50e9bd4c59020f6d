//! The Redis backend, on one Redis or a Redis Cluster: [`store`] keeps the
//! counts (one Lua script, [`poll.lua`](store), per operation) over a
//! [`connection::Connection`], and [`bus`] (one Redis) or [`cluster_bus`]
//! (sharded pub/sub on a cluster) brings every change made on any instance
//! into this instance's hub; `feed` is what the two buses share (the
//! reconnect loop, the unsubscribe grace, resync and delivery).
//!
//! The bus reads through the store (snapshots after a reconnect) and never
//! the other way round: only [`connect`], here, knows both.

pub mod bus;
pub mod cluster;
pub mod cluster_bus;
pub mod connection;
pub mod events;
mod feed;
pub mod store;

use std::sync::Arc;

use redis::IntoConnectionInfo;

use crate::config::Config;
use crate::hub::Hubs;
use crate::shutdown::Shutdown;
use crate::store::ChangeFeed;
use crate::store::Store;
use bus::Bus;
use cluster_bus::ClusterBus;
use connection::{Connection, cluster_client};
use store::{Keys, Limits, RedisStore};

/// Connects the Redis store and its change feed: the [`Bus`] on one Redis
/// (`TALLY_REDIS_URL`), the [`ClusterBus`] on a Redis Cluster
/// (`TALLY_REDIS_CLUSTER`).
///
/// The command connection is made lazily: an instance started before Redis
/// is reachable runs, answers 503 and is not ready until Redis answers.
pub async fn connect(
    config: &Config,
    hubs: Hubs,
    shutdown: &Shutdown,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn ChangeFeed>)> {
    let keys = Keys::new(&config.redis_prefix);
    let limits = Limits::from_config(config);
    if !config.redis_cluster.is_empty() {
        let seeds = config.redis_cluster.clone();
        let client = cluster_client(&seeds, limits.timeout, None)?;
        let store = Arc::new(RedisStore::new(Connection::cluster(&client), keys, limits)?);
        let bus = ClusterBus::start(seeds, Arc::clone(&store), hubs, shutdown.token());
        return Ok((store, bus));
    }
    let url = config
        .redis_url
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("no Redis URL configured"))?;
    let client = client(url)?;
    let store = Arc::new(RedisStore::new(
        Connection::single(client.clone(), limits.timeout)?,
        keys,
        limits,
    )?);
    let bus = Bus::start(client, Arc::clone(&store), hubs, shutdown.token());
    Ok((store, bus))
}

/// A client whose connections say `lib-name=tally` in `CLIENT LIST` (on
/// Redis 7.2 and later; older servers ignore it), so an operator can tell
/// tally's connections from others.
fn client(url: &str) -> anyhow::Result<redis::Client> {
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_lib_name("tally", env!("CARGO_PKG_VERSION"));
    Ok(redis::Client::open(info.set_redis_settings(settings))?)
}
