//! `tally-bench`: a load generator for tally that measures what the four
//! ways of following a poll cost and how fast they deliver.
//!
//! It opens N followers per transport over a list of instances, votes at a
//! rate (or as fast as the servers answer) for a bounded time, and reports
//! votes/s, acknowledgement latency, vote→follower delivery latency per
//! transport (from the 200 reply carrying version V to the follower seeing
//! ≥ V), requests and bytes per delivered update, server CPU and memory
//! (with `--server-pid`), and whether every follower converged on the final
//! tallies.
//!
//! `tally-bench … events` follows an event instead and moves through its
//! deck (see `events.rs`); `tally-bench … qa` follows one while the room
//! upvotes and posts on its Q&A board (see `qa.rs`).

mod events;
mod follow;
mod nchan;
mod net;
mod qa;
mod report;
mod stats;
mod vote;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hyper::{Method, StatusCode};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use follow::{Control, Outcome, Shared, Transport};
use net::{Counters, Http, Target};
use stats::{AckTable, Latencies, ProcSample};
use vote::{PollRun, Voting};

fn duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// Load generator for tally.
#[derive(Debug, Clone, Parser)]
#[command(name = "tally-bench", version)]
pub struct Args {
    /// What to measure; without one, votes on polls.
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Instance base URLs; followers and voters are spread over them.
    #[arg(long = "url", default_value = "http://127.0.0.1:8080")]
    urls: Vec<String>,
    /// Where votes (with --nchan: publishes) go instead, e.g. one instance
    /// while the followers are on another (repeatable).
    #[arg(long = "vote-url")]
    vote_urls: Vec<String>,
    /// Drive Nchan instead of tally: followers subscribe to `/sub/{channel}`
    /// on --url, and each vote is a publish of the bench's own tallies to
    /// `/pub/{channel}` (WebSocket, SSE and long polling only).
    #[arg(long)]
    nchan: bool,
    /// WebSocket followers.
    #[arg(long, default_value_t = 0)]
    ws: usize,
    /// Server-Sent Events followers.
    #[arg(long, default_value_t = 0)]
    sse: usize,
    /// Long-polling followers.
    #[arg(long, default_value_t = 0)]
    longpoll: usize,
    /// Short-polling followers.
    #[arg(long, default_value_t = 0)]
    poll: usize,
    /// Interval of short-polling followers.
    #[arg(long, default_value = "1s", value_parser = duration)]
    poll_interval: Duration,
    /// Votes per second in total; absent means as fast as the servers answer.
    #[arg(long)]
    rate: Option<f64>,
    /// Cast no votes (measure idle followers).
    #[arg(long)]
    no_votes: bool,
    /// Concurrent voters, each on its own connection.
    #[arg(long, default_value_t = 32)]
    voters: usize,
    /// How long votes are cast.
    #[arg(long, default_value = "10s", value_parser = duration)]
    duration: Duration,
    /// Vote on these existing polls (repeatable); otherwise fresh ones are created.
    #[arg(long = "poll-id")]
    poll_ids: Vec<String>,
    /// How many fresh polls to create when no --poll-id is given.
    #[arg(long, default_value_t = 1)]
    polls: usize,
    /// Send an Idempotency-Key with every vote, as the pages do.
    #[arg(long)]
    idempotency_keys: bool,
    /// Spread connections over this many source addresses 127.0.0.1, .2, … (one runs out of ports past ~28k).
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Server processes to sample for CPU and memory (repeatable).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Keep idle followers open this long after they connect, before voting.
    #[arg(long, default_value = "0s", value_parser = duration)]
    hold: Duration,
    /// Longest wait for followers to connect, and to converge at the end.
    #[arg(long, default_value = "60s", value_parser = duration)]
    settle: Duration,
    /// After the followers have gone, wait this long and sample the servers'
    /// RSS again: does the memory of a burst of followers come back?
    #[arg(long, value_parser = duration)]
    after_leave: Option<Duration>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum Mode {
    /// Followers of one event while its host moves through the deck.
    Events(events::EventArgs),
    /// Followers of one event while the room upvotes and posts on its Q&A board.
    Qa(qa::QaArgs),
}

impl Args {
    fn followers(&self, t: Transport) -> usize {
        match t {
            Transport::Ws => self.ws,
            Transport::Sse => self.sse,
            Transport::Longpoll => self.longpoll,
            Transport::Poll => self.poll,
        }
    }

    fn source(&self, i: usize) -> Option<IpAddr> {
        (self.sources > 1).then(|| {
            IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                1 + (i % self.sources as usize) as u8,
            ))
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let wanted = (args.ws + args.sse + args.longpoll + args.poll + args.voters + 64) as u64;
    if let Ok(limit) = rlimit::increase_nofile_limit(u64::MAX)
        && limit < wanted
    {
        eprintln!(
            "warning: open-file limit is {limit}; raise it (ulimit -n) for this many connections"
        );
    }
    if let Some(Mode::Events(ev)) = &args.mode {
        return events::main(&args, ev).await;
    }
    if let Some(Mode::Qa(qa)) = &args.mode {
        return qa::main(&args, qa).await;
    }
    let report = run(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report::print_table(&report);
    }
    if !report.converged {
        std::process::exit(2);
    }
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<report::Report> {
    if args.nchan && args.poll > 0 {
        bail!("--nchan drives WebSocket, SSE and long-poll followers only");
    }
    let mut targets = Vec::new();
    for url in &args.urls {
        targets.push(Target::parse(url).await?);
    }
    let mut vote_targets = Vec::new();
    for url in &args.vote_urls {
        vote_targets.push(Target::parse(url).await?);
    }
    if vote_targets.is_empty() {
        vote_targets = targets.clone();
    }
    let start = Instant::now();
    let capacity = votes_capacity(args);
    let polls = prepare_polls(args, &vote_targets[0], start, capacity).await?;
    let cancel = CancellationToken::new();
    let ready = Arc::new((AtomicUsize::new(0), Notify::new()));
    let poll_targets: Vec<watch::Sender<Option<u64>>> =
        polls.iter().map(|_| watch::channel(None).0).collect();

    let baseline = sample(&args.server_pids);

    // Followers.
    let mut shared = BTreeMap::new();
    let mut tasks = Vec::new();
    let mut index = 0usize;
    for transport in Transport::ALL {
        let s = Arc::new(Shared {
            transport,
            counters: Arc::new(Counters::default()),
            latencies: Arc::new(Latencies::default()),
            poll_interval: args.poll_interval,
            nchan: args.nchan,
        });
        for _ in 0..args.followers(transport) {
            let p = index % polls.len();
            let control = Control {
                ready: Arc::clone(&ready),
                target: poll_targets[p].subscribe(),
                cancel: cancel.clone(),
            };
            let task = tokio::spawn(follow::run(
                Arc::clone(&s),
                targets[index % targets.len()].clone(),
                args.source(index),
                polls[p].id.clone(),
                Arc::clone(&polls[p].acks),
                control,
            ));
            tasks.push((transport, p, task));
            index += 1;
        }
        shared.insert(transport, s);
    }
    let total_followers = index;
    wait_ready(&ready, total_followers, args.settle).await;
    let connected = ready.0.load(Ordering::Relaxed);
    if !args.hold.is_zero() {
        tokio::time::sleep(args.hold).await;
    }
    let idle = sample(&args.server_pids);

    // Votes.
    let voting = Arc::new(Voting {
        polls,
        accepted: Default::default(),
        errors: Default::default(),
        ack_latency: Arc::new(Latencies::default()),
        counters: Arc::new(Counters::default()),
        idempotency_keys: args.idempotency_keys,
    });
    let vote_started = Instant::now();
    if !args.no_votes {
        cast_votes(args, &voting, &vote_targets).await;
    }
    let vote_elapsed = vote_started.elapsed();
    let after = sample(&args.server_pids);

    // Convergence: every follower must reach each poll's final version.
    let mut finals = Vec::new();
    for (p, run) in voting.polls.iter().enumerate() {
        let final_results = match &run.nchan {
            Some(channel) => serde_json::from_str(&channel.results().1)?,
            None => fetch_results(&targets[0], &run.id).await?,
        };
        let version = final_results["version"].as_u64().context("final version")?;
        poll_targets[p].send_replace(Some(version));
        finals.push(final_results);
    }
    let deadline = tokio::time::Instant::now() + args.settle;
    let mut outcomes: Vec<(Transport, usize, Outcome)> = Vec::new();
    for (transport, p, task) in tasks {
        let outcome = match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => Outcome {
                error: Some(e.to_string()),
                ..Default::default()
            },
            Err(_) => {
                cancel.cancel();
                Outcome {
                    error: Some("did not converge in time".into()),
                    ..Default::default()
                }
            }
        };
        outcomes.push((transport, p, outcome));
    }
    cancel.cancel();
    let left = match args.after_leave {
        Some(wait) => {
            // Every follower's task has ended, so its connection is closed
            // on this side; the servers notice within a moment.
            tokio::time::sleep(wait).await;
            Some(sample(&args.server_pids))
        }
        None => None,
    };
    Ok(report::build(report::Inputs {
        args,
        shared: &shared,
        voting: &voting,
        outcomes: &outcomes,
        finals: &finals,
        vote_elapsed,
        connected,
        total_followers,
        baseline,
        idle,
        after,
        left,
    }))
}

/// Room in the ack tables for every vote the run can make.
fn votes_capacity(args: &Args) -> usize {
    let per_sec = args.rate.unwrap_or(60_000.0).max(1.0);
    (per_sec * args.duration.as_secs_f64() * 1.5) as usize + 10_000
}

async fn fetch_results(target: &Target, id: &str) -> anyhow::Result<serde_json::Value> {
    let mut http = Http::open(target, None, &Arc::new(Counters::default())).await?;
    let (status, _, body) = http
        .fetch(Method::GET, &format!("/api/polls/{id}"), &[], None)
        .await?;
    if status != StatusCode::OK {
        bail!("GET poll {id}: {status}");
    }
    Ok(serde_json::from_slice(&body)?)
}

async fn prepare_polls(
    args: &Args,
    target: &Target,
    start: Instant,
    capacity: usize,
) -> anyhow::Result<Vec<PollRun>> {
    if args.nchan {
        let mut runs = Vec::new();
        for _ in 0..args.polls.max(1) {
            let channel = nchan::prepare(target).await?;
            runs.push(PollRun {
                id: channel.id.clone(),
                options: channel.options(),
                acks: Arc::new(AckTable::new(start, channel.results().0, capacity)),
                nchan: Some(channel),
            });
        }
        return Ok(runs);
    }
    let mut ids = args.poll_ids.clone();
    if ids.is_empty() {
        let mut http = Http::open(target, None, &Arc::new(Counters::default())).await?;
        for i in 0..args.polls.max(1) {
            let body = serde_json::json!({
                "question": format!("tally-bench poll {i}"),
                "options": ["alpha", "beta", "gamma", "delta"],
                "vote_limit": "unlimited",
            });
            let (status, _, body) = http
                .fetch(Method::POST, "/api/polls", &[], Some(body.to_string()))
                .await?;
            if status != StatusCode::CREATED {
                bail!(
                    "creating a poll: {status} {}",
                    String::from_utf8_lossy(&body)
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            ids.push(v["poll"]["id"].as_str().context("poll id")?.to_owned());
        }
    }
    let mut runs = Vec::new();
    for id in ids {
        let results = fetch_results(target, &id).await?;
        let options = results["options"].as_array().map_or(0, |o| o.len()) as u32;
        let version = results["version"].as_u64().context("version")?;
        runs.push(PollRun {
            id,
            options,
            acks: Arc::new(AckTable::new(start, version, capacity)),
            nchan: None,
        });
    }
    Ok(runs)
}

async fn wait_ready(ready: &(AtomicUsize, Notify), total: usize, bound: Duration) {
    let progress = indicatif::ProgressBar::new(total as u64).with_message("connecting followers");
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let n = ready.0.load(Ordering::Relaxed);
        progress.set_position(n as u64);
        if n >= total {
            break;
        }
        let tick = tokio::time::sleep(Duration::from_millis(100));
        tokio::select! {
            _ = ready.1.notified() => {}
            _ = tick => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    progress.finish_and_clear();
}

async fn cast_votes(args: &Args, voting: &Arc<Voting>, targets: &[Target]) {
    let stop = CancellationToken::new();
    let voters = args.voters.max(1);
    let period = args
        .rate
        .map(|r| Duration::from_secs_f64(voters as f64 / r.max(0.001)));
    let mut handles = Vec::new();
    for w in 0..voters {
        handles.push(tokio::spawn(vote::voter(
            Arc::clone(voting),
            targets[w % targets.len()].clone(),
            args.source(w),
            w,
            period,
            stop.clone(),
        )));
    }
    let progress = indicatif::ProgressBar::new(args.duration.as_millis() as u64);
    let started = Instant::now();
    while started.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let accepted = voting.accepted.load(Ordering::Relaxed);
        progress.set_position(started.elapsed().as_millis() as u64);
        progress.set_message(format!(
            "{accepted} votes, {:.0}/s",
            accepted as f64 / started.elapsed().as_secs_f64()
        ));
    }
    stop.cancel();
    for h in handles {
        let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
    }
    progress.finish_and_clear();
}

fn sample(pids: &[u32]) -> Vec<ProcSample> {
    pids.iter()
        .map(|&p| ProcSample::read(p).unwrap_or_default())
        .collect()
}
