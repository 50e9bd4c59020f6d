//! This instance's own counts, readable back: followers open now and
//! updates delivered per transport, and votes accepted — what
//! `GET /api/stats` answers and the transport lab shows beside the
//! browser's own figures.
//!
//! Prometheus (`crate::metrics`) records the same events, but through a
//! process-wide recorder that cannot be read back per instance (tests run
//! several instances in one process). These are plain atomics owned by the
//! instance's [`crate::service::Service`]: a delivery costs one relaxed add.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use utoipa::ToSchema;

use crate::transport::Transport;

/// Every transport, in the order `/api/stats` lists them.
const TRANSPORTS: [Transport; 4] = [
    Transport::Ws,
    Transport::Sse,
    Transport::LongPoll,
    Transport::Poll,
];

fn slot(transport: Transport) -> usize {
    match transport {
        Transport::Ws => 0,
        Transport::Sse => 1,
        Transport::LongPoll => 2,
        Transport::Poll => 3,
    }
}

/// The counters of one instance, shared by its followers.
#[derive(Debug, Default)]
pub struct Stats {
    followers: [AtomicU64; 4],
    deliveries: [AtomicU64; 4],
    /// Short polls answered 304 (nothing new since the client's `ETag`).
    not_modified: AtomicU64,
    votes_accepted: AtomicU64,
}

impl Stats {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts an accepted vote (replays of an idempotency key included:
    /// each got a 200).
    pub fn vote_accepted(&self) {
        self.votes_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one short poll (`GET /api/polls/{id}`): a 200 carries the
    /// results (a delivery), a 304 says nothing changed.
    pub fn short_poll_answered(&self, modified: bool) {
        let counter = if modified {
            &self.deliveries[slot(Transport::Poll)]
        } else {
            &self.not_modified
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts results sent to a client of `transport` that did not wait as
    /// a follower (a long poll without `since` is answered at once).
    pub fn answered_at_once(&self, transport: Transport) {
        self.deliveries[slot(transport)].fetch_add(1, Ordering::Relaxed);
    }

    /// Registers an open follower of `transport`; it counts as open until
    /// the returned guard drops, and counts its deliveries through it.
    pub fn follower(self: &Arc<Self>, transport: Transport) -> FollowerStats {
        let slot = slot(transport);
        self.followers[slot].fetch_add(1, Ordering::Relaxed);
        FollowerStats {
            stats: Arc::clone(self),
            slot,
        }
    }

    /// The counts right now (each read on its own, so not one instant).
    pub fn snapshot(&self, instance: &str) -> StatsBody {
        let read = |t: Transport| TransportStats {
            followers: self.followers[slot(t)].load(Ordering::Relaxed),
            deliveries: self.deliveries[slot(t)].load(Ordering::Relaxed),
        };
        let [ws, sse, longpoll, poll] = TRANSPORTS.map(read);
        StatsBody {
            instance: instance.to_owned(),
            votes_accepted: self.votes_accepted.load(Ordering::Relaxed),
            transports: TransportsStats {
                ws,
                sse,
                longpoll,
                poll: ShortPollStats {
                    followers: poll.followers,
                    deliveries: poll.deliveries,
                    not_modified: self.not_modified.load(Ordering::Relaxed),
                },
            },
        }
    }
}

/// One open follower's place in the counts (held by
/// [`crate::service::Following`]).
#[derive(Debug)]
pub struct FollowerStats {
    stats: Arc<Stats>,
    slot: usize,
}

impl FollowerStats {
    /// Counts one update sent to this follower.
    pub fn delivered(&self) {
        self.stats.deliveries[self.slot].fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for FollowerStats {
    fn drop(&mut self) {
        self.stats.followers[self.slot].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answer of `GET /api/stats`: this instance's own view, since it started.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsBody {
    /// The instance that answered (as in `X-Tally-Instance`).
    pub instance: String,
    /// Votes this instance accepted (over HTTP, WebSocket or the form),
    /// since it started. A retry that replays an idempotency key's first
    /// outcome is answered 200 again and counted again.
    pub votes_accepted: u64,
    pub transports: TransportsStats,
}

/// Per transport, this instance's followers and deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransportsStats {
    pub ws: TransportStats,
    pub sse: TransportStats,
    pub longpoll: TransportStats,
    pub poll: ShortPollStats,
}

/// The followers of one pushing transport.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransportStats {
    /// Open now: WebSocket connections, SSE streams, or long polls waiting.
    pub followers: u64,
    /// Results sent, since the instance started: WebSocket `results`
    /// frames, SSE `results` events, long polls answered 200 (after
    /// waiting, or at once).
    pub deliveries: u64,
}

/// Short polling: requests, not followers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShortPollStats {
    /// Always 0: a short poll holds nothing open between requests.
    pub followers: u64,
    /// `GET /api/polls/{id}` answered 200 with the results.
    pub deliveries: u64,
    /// `GET /api/polls/{id}` answered 304: nothing new since the `ETag`.
    pub not_modified: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_count_while_held_and_deliveries_add_up() {
        let stats = Stats::new();
        let ws = stats.follower(Transport::Ws);
        let lp = stats.follower(Transport::LongPoll);
        ws.delivered();
        ws.delivered();
        lp.delivered();
        stats.answered_at_once(Transport::LongPoll);
        stats.short_poll_answered(true);
        stats.short_poll_answered(false);
        stats.short_poll_answered(false);
        stats.vote_accepted();
        let s = stats.snapshot("a");
        assert_eq!(s.instance, "a");
        assert_eq!(s.votes_accepted, 1);
        assert_eq!(
            (s.transports.ws.followers, s.transports.ws.deliveries),
            (1, 2)
        );
        assert_eq!(s.transports.longpoll.deliveries, 2);
        assert_eq!(s.transports.sse.followers, 0);
        assert_eq!(
            (s.transports.poll.deliveries, s.transports.poll.not_modified),
            (1, 2)
        );
        drop(ws);
        drop(lp);
        let s = stats.snapshot("a");
        assert_eq!(s.transports.ws.followers, 0);
        assert_eq!(s.transports.longpoll.followers, 0);
        assert_eq!(
            s.transports.ws.deliveries, 2,
            "deliveries outlive the follower"
        );
    }
}
