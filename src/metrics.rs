//! Prometheus metrics: votes by outcome, followers and deliveries by
//! transport. Recorded through the `metrics` facade; rendered at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::service::Transport;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The handles on the hot paths, looked up once when the recorder is
/// installed: a registry lookup per vote was 1 % of a vote's CPU, and a long
/// poll, a follower per request, made three per request.
static HANDLES: OnceLock<Handles> = OnceLock::new();

struct Handles {
    votes_accepted: metrics::Counter,
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
            let handle = PrometheusBuilder::new()
                .install_recorder()
                .unwrap_or_else(|_| {
                    // Another recorder is installed (an embedding program's):
                    // render an empty registry rather than fail to start.
                    PrometheusBuilder::new().build_recorder().handle()
                });
            describe();
            let _ = HANDLES.set(Handles {
                votes_accepted: metrics::counter!("tally_votes_accepted_total"),
                per_transport: Transport::ALL.map(transport_metrics),
            });
            handle
        })
        .clone()
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
