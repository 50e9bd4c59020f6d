//! The Redis backend (being built).

use std::sync::Arc;

use crate::config::Config;
use crate::hub::Hub;
use crate::service::ChangeFeed;
use crate::shutdown::Shutdown;

use super::Store;

/// Connects the Redis store and its change feed.
pub async fn connect(
    _config: &Config,
    _hub: Arc<Hub>,
    _shutdown: &Shutdown,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn ChangeFeed>)> {
    anyhow::bail!("the Redis backend is not available in this build yet")
}
