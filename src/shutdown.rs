//! Graceful shutdown, shared by every long-lived connection.
//!
//! `axum::serve`'s own graceful shutdown waits forever on an open SSE stream
//! and does not wait for upgraded WebSockets at all. So every follower
//! watches one [`CancellationToken`] and ends itself (long polls answer 204,
//! SSE streams end, WebSockets close with 1001), upgraded sockets are
//! tracked in a [`TaskTracker`], and the whole drain has a deadline.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The instance's shutdown signal and the tasks that must finish first.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown: every follower ends itself.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has started.
    pub fn triggered(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// An owned version of [`Self::triggered`], for `'static` streams.
    pub fn triggered_owned(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }

    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Wraps a task (an upgraded WebSocket) that shutdown must wait for.
    pub fn track<F: Future>(&self, fut: F) -> tokio_util::task::task_tracker::TrackedFuture<F> {
        self.tracker.track_future(fut)
    }

    /// Waits for every tracked task; call after [`Self::trigger`].
    pub async fn wait_for_tasks(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}
