//! Voters: each on its own kept-alive connection, at a shared target rate
//! or as fast as the server answers.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::nchan::{self, Channel};
use crate::net::{Counters, Http, Target, version_of};
use crate::stats::{AckTable, Latencies, LocalLatencies};

/// One poll being voted on.
pub struct PollRun {
    pub id: String,
    pub options: u32,
    pub acks: Arc<AckTable>,
    /// With `--nchan`: the channel whose tallies the bench keeps and publishes.
    pub nchan: Option<Arc<Channel>>,
}

/// What all voters share.
pub struct Voting {
    pub polls: Vec<PollRun>,
    pub accepted: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub ack_latency: Arc<Latencies>,
    pub counters: Arc<Counters>,
    pub idempotency_keys: bool,
}

impl Voting {
    fn error(&self, kind: String) {
        *self
            .errors
            .lock()
            .expect("errors lock")
            .entry(kind)
            .or_default() += 1;
    }
}

/// The error code of an error body, or the status when there is none.
fn error_kind(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["code"]
                .as_str()
                .map(|c| format!("{} {c}", status.as_u16()))
        })
        .unwrap_or_else(|| status.as_u16().to_string())
}

/// Votes until `stop`: every `period` when pacing, else back to back.
pub async fn voter(
    voting: Arc<Voting>,
    target: Target,
    source: Option<IpAddr>,
    worker: usize,
    period: Option<Duration>,
    stop: CancellationToken,
) {
    let mut local = LocalLatencies::new(&voting.ack_latency);
    let mut http: Option<Http> = None;
    let mut ticks = period.map(|p| {
        let offset = p.mul_f64(rand::random::<f64>());
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut n: u64 = 0;
    while !stop.is_cancelled() {
        if let Some(t) = ticks.as_mut() {
            tokio::select! {
                _ = t.tick() => {}
                _ = stop.cancelled() => break,
            }
        }
        n += 1;
        let poll = &voting.polls[(worker + n as usize) % voting.polls.len()];
        let option = rand::random_range(0..poll.options);
        if http.is_none() {
            match Http::open(&target, source, &voting.counters).await {
                Ok(h) => http = Some(h),
                Err(e) => {
                    voting.error(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let conn = http.as_mut().expect("connected");
        if let Some(channel) = &poll.nchan {
            let (version, body) = channel.vote(option);
            let started = Instant::now();
            match nchan::publish(conn, &channel.id, body).await {
                Ok(StatusCode::CREATED | StatusCode::ACCEPTED) => {
                    poll.acks.acked(version);
                    local.record(started.elapsed().as_micros() as u64);
                    voting.accepted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(status) => voting.error(status.as_u16().to_string()),
                Err(e) => {
                    voting.error(format!("transport: {}", e.root_cause()));
                    http = None;
                }
            }
            continue;
        }
        let key = format!("b{worker}x{n}");
        let mut headers = vec![];
        if voting.idempotency_keys {
            headers.push(("idempotency-key", key.as_str()));
        }
        let body = format!("{{\"option\":{option}}}");
        let path = format!("/api/polls/{}/votes", poll.id);
        let started = Instant::now();
        match conn.fetch(Method::POST, &path, &headers, Some(body)).await {
            Ok((StatusCode::OK, _, body)) => {
                if let Some(v) = version_of(&body) {
                    poll.acks.acked(v);
                }
                local.record(started.elapsed().as_micros() as u64);
                voting.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, _, body)) => voting.error(error_kind(status, &body)),
            Err(e) => {
                voting.error(format!("transport: {}", e.root_cause()));
                http = None;
            }
        }
    }
}
