//! The integration suite: one binary, one module per feature. Behaviours
//! run in memory, on one Redis and on a Redis Cluster through
//! `both_backends!` (`mod memory`, `mod redis`, `mod cluster_backend`).

#[macro_use]
mod helpers;
mod bounds;
mod closes_at;
mod cluster;
mod create_rate;
mod cross_site;
mod disconnects;
mod embed;
mod errors;
mod event_props;
mod events;
mod follower_cap;
mod hardening;
mod instances_on_one_redis;
mod kinds;
mod load_balancer;
mod longpoll;
mod monitoring;
mod openapi;
mod ops;
mod pacing;
mod pages;
mod polls;
mod process;
mod qa;
mod rate_limit;
mod reconnect_storm;
mod redis_faults;
mod richer_polls;
mod shortpoll;
mod shutdown;
mod smoke;
mod soak;
mod sse;
mod stats;
mod visibility;
mod votes;
mod websocket;
