//! The report: built from what the run collected, printed as a table or
//! as JSON.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use crate::Args;
use crate::follow::{Outcome, Shared, Transport};
use crate::stats::{LatencySummary, ProcSample};
use crate::vote::Voting;

#[derive(Debug, Serialize)]
pub struct Report {
    /// Every follower ended on its poll's final tallies.
    pub converged: bool,
    pub instances: usize,
    pub vote_seconds: f64,
    /// `--after-leave`, in seconds.
    pub after_leave_seconds: Option<f64>,
    pub votes: VotesReport,
    pub transports: BTreeMap<&'static str, TransportReport>,
    pub server: Option<ServerReport>,
}

#[derive(Debug, Serialize)]
pub struct VotesReport {
    pub accepted: u64,
    pub per_second: f64,
    pub errors: BTreeMap<String, u64>,
    pub ack_latency: LatencySummary,
}

#[derive(Debug, Serialize)]
pub struct TransportReport {
    pub followers: usize,
    pub converged: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub deliveries: u64,
    pub delivery_latency: LatencySummary,
    pub requests: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub requests_per_update: f64,
    pub bytes_per_update: f64,
}

#[derive(Debug, Serialize)]
pub struct ServerReport {
    pub rss_kib_without_followers: u64,
    pub rss_kib_with_followers: u64,
    pub rss_kib_per_follower: f64,
    pub rss_kib_after_votes: u64,
    /// With `--after-leave`: RSS that long after every follower left.
    pub rss_kib_after_followers_left: Option<u64>,
    pub cpu_seconds_while_voting: f64,
    pub cpu_ms_per_1000_deliveries: f64,
    /// Of that CPU time, the kernel's (system time) share, 0–1.
    pub kernel_share_while_voting: f64,
}

pub struct Inputs<'a> {
    pub args: &'a Args,
    pub shared: &'a BTreeMap<Transport, Arc<Shared>>,
    pub voting: &'a Voting,
    pub outcomes: &'a [(Transport, usize, Outcome)],
    pub finals: &'a [serde_json::Value],
    pub vote_elapsed: Duration,
    pub connected: usize,
    pub total_followers: usize,
    pub baseline: Vec<ProcSample>,
    pub idle: Vec<ProcSample>,
    pub after: Vec<ProcSample>,
    pub left: Option<Vec<ProcSample>>,
}

fn counts(v: &serde_json::Value) -> Vec<u64> {
    v["options"]
        .as_array()
        .map(|o| o.iter().filter_map(|x| x["votes"].as_u64()).collect())
        .unwrap_or_default()
}

pub fn build(i: Inputs<'_>) -> Report {
    let final_counts: Vec<Vec<u64>> = i.finals.iter().map(counts).collect();
    let mut transports = BTreeMap::new();
    let mut all_converged = i.connected == i.total_followers;
    let mut total_deliveries = 0;
    for (transport, shared) in i.shared {
        let mine: Vec<&(Transport, usize, Outcome)> = i
            .outcomes
            .iter()
            .filter(|(t, _, _)| t == transport)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let converged = mine
            .iter()
            .filter(|(_, p, o)| {
                o.last_json
                    .as_ref()
                    .and_then(|j| serde_json::from_slice::<serde_json::Value>(j).ok())
                    .is_some_and(|v| counts(&v) == final_counts[*p])
            })
            .count();
        all_converged &= converged == mine.len();
        let deliveries: u64 = mine.iter().map(|(_, _, o)| o.deliveries).sum();
        total_deliveries += deliveries;
        let c = &shared.counters;
        let requests = c.requests.load(Ordering::Relaxed);
        let bytes_received = c.read.load(Ordering::Relaxed);
        let per_update = |x: u64| {
            if deliveries == 0 {
                0.0
            } else {
                x as f64 / deliveries as f64
            }
        };
        transports.insert(
            transport.as_str(),
            TransportReport {
                followers: mine.len(),
                converged,
                failed: mine.iter().filter(|(_, _, o)| o.error.is_some()).count(),
                first_error: mine.iter().find_map(|(_, _, o)| o.error.clone()),
                deliveries,
                delivery_latency: shared.latencies.summary(),
                requests,
                bytes_received,
                bytes_sent: c.written.load(Ordering::Relaxed),
                requests_per_update: per_update(requests),
                bytes_per_update: per_update(bytes_received + c.written.load(Ordering::Relaxed)),
            },
        );
    }
    let accepted = i.voting.accepted.load(Ordering::Relaxed);
    let secs = i.vote_elapsed.as_secs_f64().max(1e-9);
    let server = (!i.args.server_pids.is_empty()).then(|| {
        let sum = |s: &[ProcSample], f: fn(&ProcSample) -> f64| s.iter().map(f).sum::<f64>();
        let rss = |s: &ProcSample| s.rss_kib as f64;
        let cpu = |s: &ProcSample| s.cpu_seconds;
        let cpu_while_voting = sum(&i.after, cpu) - sum(&i.idle, cpu);
        let kernel = |s: &ProcSample| s.kernel_cpu_seconds;
        let kernel_while_voting = sum(&i.after, kernel) - sum(&i.idle, kernel);
        ServerReport {
            rss_kib_without_followers: sum(&i.baseline, rss) as u64,
            rss_kib_with_followers: sum(&i.idle, rss) as u64,
            rss_kib_per_follower: if i.connected == 0 {
                0.0
            } else {
                (sum(&i.idle, rss) - sum(&i.baseline, rss)) / i.connected as f64
            },
            rss_kib_after_votes: sum(&i.after, rss) as u64,
            rss_kib_after_followers_left: i.left.as_ref().map(|l| sum(l, rss) as u64),
            cpu_seconds_while_voting: cpu_while_voting,
            cpu_ms_per_1000_deliveries: if total_deliveries == 0 {
                0.0
            } else {
                cpu_while_voting * 1000.0 / (total_deliveries as f64 / 1000.0)
            },
            kernel_share_while_voting: if cpu_while_voting > 0.0 {
                kernel_while_voting / cpu_while_voting
            } else {
                0.0
            },
        }
    });
    Report {
        converged: all_converged,
        instances: i.args.urls.len(),
        vote_seconds: secs,
        after_leave_seconds: i.args.after_leave.map(|d| d.as_secs_f64()),
        votes: VotesReport {
            accepted,
            per_second: accepted as f64 / secs,
            errors: i.voting.errors.lock().expect("errors lock").clone(),
            ack_latency: i.voting.ack_latency.summary(),
        },
        transports,
        server,
    }
}

pub fn print_table(r: &Report) {
    let v = &r.votes;
    println!(
        "votes: {} accepted in {:.1} s = {:.0}/s over {} instance(s); ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        v.accepted,
        r.vote_seconds,
        v.per_second,
        r.instances,
        v.ack_latency.p50_ms,
        v.ack_latency.p99_ms,
        v.ack_latency.max_ms
    );
    for (kind, n) in &v.errors {
        println!("  errors {kind}: {n}");
    }
    if !r.transports.is_empty() {
        println!();
        println!(
            "{:<9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9} {:>10} {:>11}",
            "transport",
            "followers",
            "converged",
            "updates",
            "p50 ms",
            "p99 ms",
            "max ms",
            "req/update",
            "bytes/update"
        );
        for (name, t) in &r.transports {
            println!(
                "{:<9} {:>9} {:>9} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>10.3} {:>11.0}",
                name,
                t.followers,
                t.converged,
                t.deliveries,
                t.delivery_latency.p50_ms,
                t.delivery_latency.p99_ms,
                t.delivery_latency.max_ms,
                t.requests_per_update,
                t.bytes_per_update
            );
            if let Some(e) = &t.first_error {
                println!("  {} failed, first error: {e}", t.failed);
            }
        }
    }
    if let Some(s) = &r.server {
        println!();
        println!(
            "server: RSS {} KiB without followers, {} KiB with ({:.1} KiB per follower), {} KiB after votes",
            s.rss_kib_without_followers,
            s.rss_kib_with_followers,
            s.rss_kib_per_follower,
            s.rss_kib_after_votes
        );
        if let (Some(left), Some(wait)) = (s.rss_kib_after_followers_left, r.after_leave_seconds) {
            println!(
                "server: RSS {left} KiB {wait:.0} s after every follower left ({:.2}× the RSS without followers)",
                left as f64 / s.rss_kib_without_followers.max(1) as f64
            );
        }
        println!(
            "server: {:.2} CPU s while voting ({:.0} % in the kernel), {:.1} CPU ms per 1,000 deliveries",
            s.cpu_seconds_while_voting,
            s.kernel_share_while_voting * 100.0,
            s.cpu_ms_per_1000_deliveries
        );
    }
    println!();
    println!("converged: {}", if r.converged { "yes" } else { "NO" });
}
