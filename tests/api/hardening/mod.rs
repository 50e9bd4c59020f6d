//! Hostile clients, overload and faults. Each test here fails without the
//! protection it names: the header-read timeout (slowloris), the WebSocket
//! send timeout (a reader that never reads), the frame checks (raw abuse),
//! the drain on SIGTERM, idempotency keys across a SIGKILL, the Redis
//! command timeout (a paused Redis), Redis at `maxmemory`, Redis cut off by the network or behind a slow
//! link (`network_cut.rs`: a network namespace, needs root), and lingering close (refused bodies
//! whose answer real clients still read).
//!
//! `redis_faults.rs` has the single-vote versions of the Redis faults; the
//! tests here add concurrency, real processes and signals.

mod lingering;
mod maxmemory;
mod network_cut;
mod raw_websocket;
mod redis_pause;
mod signals;
mod slow_reader;
mod slowloris;
