//! # tally — a live-poll service
//!
//! People create a poll, share its link, vote, and watch the tallies move.
//! Any number of stateless instances run behind a load balancer; Redis holds
//! every count and carries every change between instances. Without Redis,
//! one instance runs on an embedded in-memory store.
//!
//! A follower can watch a poll four ways — short polling, long polling,
//! Server-Sent Events or WebSocket — all written once above the store.
//!
//! # Layout
//!
//! - [`config`]: flags and `TALLY_*` environment variables.
//! - [`poll`]: domain types; every id, text and key is validated here.
//! - [`store`]: the [`store::Store`] trait and its memory and Redis
//!   backends; [`store::redis::bus`] is the Redis pub/sub subscriber that
//!   feeds the hub changes made on other instances (reconnects, resyncs).
//! - [`event`]: events (a deck of questions under one join code), their
//!   moves, cursor and Q&A board; [`service`]'s `events` module runs the
//!   move protocol and the per-instance composer of an event's state.
//! - [`hub`]: local fan-out, one `watch` channel per followed topic (a poll
//!   or an event).
//! - [`service`]: the operations (create, vote, follow…) every handler calls.
//! - [`api`]: the JSON API, one module per transport; [`pages`]: HTML.
//! - [`server`]: the accept loop (hyper, header timeout); [`shutdown`]: the
//!   drain on SIGTERM; [`linger`]: lingering close after a refused body;
//!   [`metrics`]: Prometheus; [`stats`]: this instance's own counts, read
//!   back for `GET /api/stats` and the transport lab.
//!
//! # How a vote flows
//!
//! `POST /api/polls/{id}/votes` → [`service::Service::vote`] →
//! [`store::Store::vote`] (on Redis: [`store::group_commit`] gathers the
//! poll's votes that arrive while a call is in flight, and one Lua script
//! checks, counts, bumps the version and publishes a compact change for the
//! whole batch; the instance renders each vote's results from the poll's
//! cached text) → the results go into this instance's [`hub::Hub`] at once,
//! and the compact change reaches other instances' hubs over Redis pub/sub
//! (each renders it from its own cached text) → every follower's task wakes
//! and sends the newest results in its own
//! format (WebSocket frame, SSE event, long-poll answer).

pub mod api;
pub mod config;
pub mod error;
pub mod event;
pub mod hub;
pub mod linger;
pub mod metrics;
pub mod pages;
pub mod poll;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod stats;
pub mod store;
pub mod transport;
pub mod visibility;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderValue;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::api::{AppState, Inner, X_TALLY_INSTANCE};
use crate::config::Config;
use crate::hub::Hubs;
use crate::service::Service;
use crate::shutdown::Shutdown;
use crate::store::memory::MemoryStore;

/// A bound, ready-to-run instance. Tests build one on `127.0.0.1:0`.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects the store, creates the demo poll and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // First: the store and its bus record metrics from their start.
        let metrics = metrics::install();
        metrics::set_max_followers(config.max_followers);
        let hubs = Hubs::default();
        let shutdown = Shutdown::new();
        config.check()?;
        let (store, feed) = if config.uses_redis() {
            let (store, feed) = store::redis::connect(&config, hubs.clone(), &shutdown).await?;
            (store, Some(feed))
        } else {
            (
                Arc::new(MemoryStore::with_ttls(
                    config.poll_ttl,
                    config.idempotency_ttl,
                )) as Arc<dyn store::Store>,
                None,
            )
        };
        let service = Service::new(
            store,
            hubs,
            feed,
            config.max_followers,
            config.max_update_rate,
        );
        let demo_pending = config.demo
            && service
                .ensure_demo(config.demo_admin_token.as_deref())
                .await
                .inspect_err(
                    |e| tracing::warn!(error = %e, "demo poll not created yet; will retry"),
                )
                .is_err();
        let listener = TcpListener::bind(config.listen).await?;
        let instance = config.instance_name();
        let vote_limiter =
            api::ratelimit::VoteLimiter::votes(config.vote_rate, config.trusted_proxies.clone());
        let create_limiter = api::ratelimit::ClientRateLimit::creates(
            config.create_rate,
            config.trusted_proxies.clone(),
        );
        let join_limiter =
            api::join_limit::JoinLimiter::new(config.join_rate, config.trusted_proxies.clone());
        let state = AppState::new(Inner {
            service,
            instance,
            shutdown,
            metrics,
            vote_limiter,
            create_limiter,
            join_limiter,
            config,
        });
        spawn_limiter_upkeep(&state);
        if demo_pending {
            spawn_demo_retry(&state);
        }
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The handle that stops this instance (what SIGTERM triggers).
    pub fn shutdown(&self) -> Shutdown {
        self.state.shutdown.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until shutdown is triggered, then drains: waiting long polls
    /// answer, streams end, WebSockets close with 1001, in-flight requests
    /// finish — all within the configured shutdown timeout.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let deadline = self.state.config.shutdown_timeout;
        let router = app(self.state.clone());
        tracing::info!(addr = %self.local_addr(), instance = %self.state.instance, "listening");
        let mut server = tokio::spawn(server::serve(
            self.listener,
            router,
            shutdown.clone(),
            self.state.config.header_timeout,
        ));
        // The accept loop only returns once shutdown has begun (or if it
        // panicked); either way, drain below.
        let server_done = tokio::select! {
            biased;
            _ = shutdown.triggered() => false,
            result = &mut server => {
                result?;
                true
            }
        };
        shutdown.trigger();
        tracing::info!("shutting down");
        let drain = async {
            if !server_done {
                (&mut server).await?;
            }
            shutdown.wait_for_tasks().await;
            anyhow::Ok(())
        };
        match tokio::time::timeout(deadline, drain).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(?deadline, "shutdown deadline passed; dropping what remains");
                server.abort();
                Ok(())
            }
        }
    }
}

/// Creates the demo poll once the store answers, for an instance that
/// started while Redis was down.
fn spawn_demo_retry(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut wait = std::time::Duration::from_millis(200);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = state.shutdown.triggered() => return,
            }
            let token = state.config.demo_admin_token.as_deref();
            if state.service.ensure_demo(token).await.is_ok() {
                return;
            }
            wait = (wait * 2).min(std::time::Duration::from_secs(5));
        }
    });
}

/// Keeps the rate limiters' tables small while the instance runs.
fn spawn_limiter_upkeep(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    state.vote_limiter.forget_idle_clients();
                    state.create_limiter.forget_idle_clients();
                    state.join_limiter.forget_idle_clients();
                }
                _ = state.shutdown.triggered() => return,
            }
        }
    });
}

/// The whole application: the router, wrapped once in the layers every
/// response passes (tracing, the instance header).
///
/// Wrapped around the router rather than added with `Router::layer`, which
/// wraps every route apart: each such layer cost every request a boxed
/// service clone and one more future level (8.5 % of tally's CPU per vote
/// was the router and its layers, against ~1 % for the routing itself).
pub fn app(state: AppState) -> impl server::App {
    let instance = HeaderValue::from_str(&state.instance)
        .unwrap_or_else(|_| HeaderValue::from_static("tally"));
    let router = router(state);
    tower::ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(SetResponseHeaderLayer::overriding(
            X_TALLY_INSTANCE.clone(),
            instance,
        ))
        .service(router)
}

/// API and pages, with the cross-site refusal that must sit inside routing.
fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(pages::routes(state.clone()))
        .fallback(api::errors::not_found)
        .layer(api::security::RefuseCrossSiteLayer::new(state.clone()))
        // After the cross-site layer, on purpose: axum swaps this handler in
        // for each route's default fallback, so a method a route does not
        // have answers 405 without passing the cross-site check (a PUT with
        // a foreign or empty `Origin` is not allowed, not forbidden). The
        // layers of `app` still wrap it.
        .method_not_allowed_fallback(api::errors::method_not_allowed)
        .with_state(state)
}
