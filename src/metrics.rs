//! Prometheus metrics: votes by outcome and how long they took, followers
//! and deliveries by transport, Redis command latency and failures, the
//! bus heartbeat, readiness and the follower cap. Recorded through the
//! `metrics` facade; rendered at `/metrics`. The alert rules in
//! `deploy/prometheus/` and the dashboard in `deploy/grafana/` read these
//! names (a test checks that every name they use is exported).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::transport::Transport;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The handles on the hot paths, looked up once when the recorder is
/// installed: a registry lookup per vote was 1 % of a vote's CPU, and a long
/// poll, a follower per request, made three per request.
static HANDLES: OnceLock<Handles> = OnceLock::new();

struct Handles {
    votes_accepted: metrics::Counter,
    /// Indexed by `VoteOutcome as usize`.
    vote_seconds: [metrics::Histogram; 3],
    redis_seconds: metrics::Histogram,
    /// Indexed by `RedisFailure as usize`.
    redis_errors: [metrics::Counter; 2],
    /// Indexed by `Transport as usize`.
    per_transport: [TransportMetrics; 4],
}

struct TransportMetrics {
    followers: metrics::Gauge,
    deliveries: metrics::Counter,
}

fn transport_metrics(transport: Transport) -> TransportMetrics {
    TransportMetrics {
        followers: metrics::gauge!("tally_followers", "transport" => transport.as_str()),
        deliveries: metrics::counter!("tally_deliveries_total", "transport" => transport.as_str()),
    }
}

/// The handles of `transport`, from the table when it is installed.
fn for_transport<T>(transport: Transport, pick: impl Fn(&TransportMetrics) -> T) -> T {
    match HANDLES.get() {
        Some(handles) => pick(&handles.per_transport[transport as usize]),
        None => pick(&transport_metrics(transport)),
    }
}

/// Installs the process-wide recorder once (several in-process instances,
/// as in tests, share it) and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = builder().install_recorder().unwrap_or_else(|_| {
                // Another recorder is installed (an embedding program's):
                // render an empty registry rather than fail to start.
                PrometheusBuilder::new().build_recorder().handle()
            });
            describe();
            let _ = HANDLES.set(Handles {
                votes_accepted: metrics::counter!("tally_votes_accepted_total"),
                vote_seconds: VoteOutcome::ALL.map(
                    |o| metrics::histogram!("tally_vote_duration_seconds", "outcome" => o.as_str()),
                ),
                redis_seconds: metrics::histogram!("tally_redis_command_duration_seconds"),
                // Registered at 0, so `rate()` and the alerts see a series
                // before the first failure.
                redis_errors: RedisFailure::ALL.map(|kind| {
                    let counter =
                        metrics::counter!("tally_redis_errors_total", "kind" => kind.as_str());
                    counter.increment(0);
                    counter
                }),
                per_transport: Transport::ALL.map(transport_metrics),
            });
            handle
        })
        .clone()
}

/// Seconds: a vote takes well under a millisecond in memory and a few on
/// Redis; a Redis command is bounded by `TALLY_REDIS_TIMEOUT` (2 s default).
const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Votes per group-commit batch.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The exporter with buckets for the histograms, so that
/// `histogram_quantile` aggregates them across replicas (the exporter's
/// default, a summary per process, cannot be aggregated).
fn builder() -> PrometheusBuilder {
    let buckets = [
        ("tally_vote_duration_seconds", &SECONDS_BUCKETS[..]),
        ("tally_redis_command_duration_seconds", &SECONDS_BUCKETS[..]),
        ("tally_vote_batch_size", &BATCH_BUCKETS[..]),
    ];
    buckets
        .into_iter()
        .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .expect("bucket lists are not empty")
        })
}

fn describe() {
    metrics::describe_counter!(
        "tally_votes_accepted_total",
        "Votes counted (replays excluded)."
    );
    metrics::describe_counter!("tally_votes_rejected_total", "Votes refused, by reason.");
    metrics::describe_gauge!("tally_followers", "Open followers, by transport.");
    metrics::describe_histogram!(
        "tally_vote_batch_size",
        "Votes of one poll sent to Redis in one script call (group commit)."
    );
    metrics::describe_counter!(
        "tally_deliveries_total",
        "Result updates sent to followers, by transport."
    );
    metrics::describe_counter!(
        "tally_event_moves_total",
        "Event moves asked of this instance, by outcome (ok, failed)."
    );
    // Exported from the start, so an alert's rate() has a series at 0.
    for outcome in ["ok", "failed"] {
        metrics::counter!("tally_event_moves_total", "outcome" => outcome).increment(0);
    }
    metrics::describe_histogram!(
        "tally_vote_duration_seconds",
        metrics::Unit::Seconds,
        "Time to count or refuse a vote in the store, by outcome (accepted, refused: 4xx, failed: 5xx)."
    );
    metrics::describe_histogram!(
        "tally_redis_command_duration_seconds",
        metrics::Unit::Seconds,
        "Time of each Redis command or script call, answered or not."
    );
    metrics::describe_counter!(
        "tally_redis_errors_total",
        "Redis commands that failed, by kind (timeout: no answer within TALLY_REDIS_TIMEOUT)."
    );
    metrics::describe_gauge!(
        "tally_bus_heartbeat_last_heard_seconds",
        metrics::Unit::Seconds,
        "Unix time this instance last heard its own heartbeat over Redis pub/sub (on a cluster, the oldest over the masters); absent in memory."
    );
    metrics::describe_gauge!(
        "tally_ready",
        "1 when /readyz would answer ready (measured at each scrape), else 0."
    );
    metrics::describe_gauge!(
        "tally_max_followers",
        "The follower cap, TALLY_MAX_FOLLOWERS."
    );
}

/// How a vote ended, for `tally_vote_duration_seconds`.
#[derive(Debug, Clone, Copy)]
pub enum VoteOutcome {
    Accepted,
    /// A client error (4xx): closed poll, unknown option, already voted…
    Refused,
    /// A server error (5xx): the store did not answer.
    Failed,
}

impl VoteOutcome {
    const ALL: [VoteOutcome; 3] = [
        VoteOutcome::Accepted,
        VoteOutcome::Refused,
        VoteOutcome::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            VoteOutcome::Accepted => "accepted",
            VoteOutcome::Refused => "refused",
            VoteOutcome::Failed => "failed",
        }
    }
}

/// Records how long a vote took and how it ended: the dashboard's vote
/// latency, and the alert on the share of votes that failed.
pub fn vote_done(outcome: VoteOutcome, took: Duration) {
    let seconds = took.as_secs_f64();
    match HANDLES.get() {
        Some(handles) => handles.vote_seconds[outcome as usize].record(seconds),
        None => metrics::histogram!("tally_vote_duration_seconds", "outcome" => outcome.as_str())
            .record(seconds),
    }
}

/// Why a Redis command failed, for `tally_redis_errors_total`.
#[derive(Debug, Clone, Copy)]
pub enum RedisFailure {
    /// No answer within `TALLY_REDIS_TIMEOUT`.
    Timeout,
    /// An error reply or a broken connection.
    Error,
}

impl RedisFailure {
    const ALL: [RedisFailure; 2] = [RedisFailure::Timeout, RedisFailure::Error];

    fn as_str(self) -> &'static str {
        match self {
            RedisFailure::Timeout => "timeout",
            RedisFailure::Error => "error",
        }
    }
}

/// Records one Redis command: how long it took and, if it failed, why.
pub fn redis_command(took: Duration, failure: Option<RedisFailure>) {
    let seconds = took.as_secs_f64();
    match HANDLES.get() {
        Some(handles) => {
            handles.redis_seconds.record(seconds);
            if let Some(kind) = failure {
                handles.redis_errors[kind as usize].increment(1);
            }
        }
        None => {
            metrics::histogram!("tally_redis_command_duration_seconds").record(seconds);
            if let Some(kind) = failure {
                metrics::counter!("tally_redis_errors_total", "kind" => kind.as_str()).increment(1);
            }
        }
    }
}

/// Records that the bus heard its heartbeat `age` ago (the oldest of a
/// cluster's masters; zero on one Redis). A timestamp rather than an age:
/// it keeps its meaning between scrapes and when the bus stops hearing
/// anything, and `time() - tally_bus_heartbeat_last_heard_seconds` is the
/// age.
pub fn bus_heartbeat_heard(age: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let heard = now.saturating_sub(age).as_secs_f64();
    metrics::gauge!("tally_bus_heartbeat_last_heard_seconds").set(heard);
}

/// Records whether the instance is ready, as `/readyz` decides it.
pub fn set_ready(ready: bool) {
    metrics::gauge!("tally_ready").set(if ready { 1.0 } else { 0.0 });
}

/// Records the follower cap, so an alert can compare `tally_followers`
/// with it.
pub fn set_max_followers(max: usize) {
    metrics::gauge!("tally_max_followers").set(max as f64);
}

/// Counts an event move: `failed` ones (the store did not answer, or
/// other hosts kept changing the event) are what an operator is paged for.
pub fn event_move(ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics::counter!("tally_event_moves_total", "outcome" => outcome).increment(1);
}

/// Counts an accepted vote.
pub fn vote_accepted() {
    match HANDLES.get() {
        Some(handles) => handles.votes_accepted.increment(1),
        None => metrics::counter!("tally_votes_accepted_total").increment(1),
    }
}

/// Counts a refused vote under its error code.
pub fn vote_rejected(reason: &'static str) {
    metrics::counter!("tally_votes_rejected_total", "reason" => reason).increment(1);
}

/// The counter of updates sent to followers of one transport. A follower
/// looks it up once and keeps it: a lookup per delivery showed in profiles.
pub fn deliveries(transport: Transport) -> metrics::Counter {
    for_transport(transport, |m| m.deliveries.clone())
}

/// Keeps the follower gauge of its transport up while it lives.
pub struct FollowerGauge(metrics::Gauge);

impl FollowerGauge {
    pub fn new(transport: Transport) -> Self {
        let gauge = for_transport(transport, |m| m.followers.clone());
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for FollowerGauge {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
