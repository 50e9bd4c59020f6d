//! `tally-bench qa`: N followers of one event (WebSocket, SSE and long
//! poll, from `--ws/--sse/--longpoll`, spread over `--url`) while the room
//! upvotes and posts on its Q&A board: `--upvotes` and `--posts` per second
//! for `--duration`, each by a voter of its own, sent one at a time (on a
//! thread of their own) and alternately to each instance.
//!
//! Measured, per run:
//! - **delivery of a board change**: every accepted upvote or post raises
//!   the board's version by one, and the bench sends them one at a time,
//!   so the k-th accepted change is board version V0 + k exactly (checked
//!   at the end against the board's final version). Its delay runs from
//!   its 200/201 reply to each follower holding a state whose cursor's
//!   third part (the board's version) is at least V0 + k; 0 when the
//!   follower had it before the reply;
//! - **store commands per change per instance**, from `MONITOR` on every
//!   Redis node (`--redis`), told to their instance by client address, less
//!   the same instance's rate over an idle window (`--idle`) with the same
//!   followers, scaled to the run's length;
//! - server CPU per change, bytes and state messages per change per
//!   follower;
//! - the **state message size** of a full board: `--full-board` questions
//!   of 280 CJK characters with 40-character names (the top 50 travel).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Serialize;
use tokio::sync::watch;

use crate::Args;
use crate::events::{self, Crowd, Monitor, Observer};
use crate::follow::Transport;
use crate::net::{Counters, Http, Target};
use crate::stats::{AckTable, Latencies, LatencySummary, LocalLatencies};

/// Flags of the Q&A mode (the followers come from `--ws/--sse/--longpoll`).
#[derive(Debug, Clone, clap::Args)]
pub struct QaArgs {
    /// How long the room upvotes and posts.
    #[arg(long, default_value = "60s", value_parser = crate::duration)]
    duration: Duration,
    /// Upvotes per second, each by a voter of its own.
    #[arg(long, default_value_t = 50.0)]
    upvotes: f64,
    /// Posts per second, each by a voter of its own.
    #[arg(long, default_value_t = 1.0)]
    posts: f64,
    /// Questions posted before the followers join (the top 50 travel in
    /// every state).
    #[arg(long, default_value_t = 50)]
    seed: usize,
    /// Redis nodes (host:port) to watch with MONITOR for the store
    /// commands per change (repeatable; every node of a cluster).
    #[arg(long = "redis")]
    redis: Vec<String>,
    /// Idle window before the run whose commands and CPU per second are
    /// subtracted (0s: nothing subtracted).
    #[arg(long, default_value = "20s", value_parser = crate::duration)]
    idle: Duration,
    /// Questions of the full board whose state size is reported (0: skip).
    #[arg(long, default_value_t = 2000)]
    full_board: usize,
}

/// What every follower shares; the run ends at the board's final version.
type Room = events::Room<u64>;

/// The board's version: the third part of the state's cursor `E.P.Q`.
fn board_version(json: &[u8]) -> Option<u64> {
    let cursor = events::field(json, "cursor")?;
    let cursor = cursor.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let q = cursor.rsplit(|&b| b == b'.').next()?;
    std::str::from_utf8(q).ok()?.parse().ok()
}

/// One follower's end.
#[derive(Default)]
struct End {
    /// The highest board version it held.
    seen: u64,
    /// State messages received, the first included.
    states: u64,
    error: Option<String>,
}

/// A Q&A follower: each new board version it holds is a delivery of every
/// version up to it.
struct Board<'a> {
    room: &'a Room,
    /// When the reply of each board version arrived.
    acks: &'a AckTable,
    end: &'a mut End,
    connected: bool,
    mine: LocalLatencies,
    all: LocalLatencies,
}

impl Observer for Board<'_> {
    fn state(&mut self, json: &[u8]) -> bool {
        let Some(version) = board_version(json) else {
            return false;
        };
        self.end.states += 1;
        if !self.connected {
            self.connected = true;
            self.room.joined();
        }
        if version > self.end.seen {
            let acks = self.acks;
            acks.delivered(self.end.seen, version, &mut self.mine);
            acks.delivered(self.end.seen, version, &mut self.all);
            self.end.seen = version;
        }
        self.done()
    }

    fn done(&self) -> bool {
        self.room.last.borrow().is_some_and(|l| self.end.seen >= l)
    }
}

async fn follow(
    (room, acks): (Arc<Room>, Arc<AckTable>),
    transport: Transport,
    target: Target,
    source: Option<IpAddr>,
    counters: Arc<Counters>,
    latencies: (Arc<Latencies>, Arc<Latencies>),
) -> End {
    let mut end = End::default();
    let listen = room.listen();
    let mut board = Board {
        room: &room,
        acks: &acks,
        end: &mut end,
        connected: false,
        mine: LocalLatencies::new(&latencies.0),
        all: LocalLatencies::new(&latencies.1),
    };
    let result = events::stream(listen, transport, &target, source, &counters, &mut board).await;
    drop(board);
    if let Err(e) = result {
        end.error = Some(format!("{e:#}"));
    }
    end
}

/// One request on a kept connection, reopened and retried once if it
/// broke; at most 10 s each.
async fn call(
    conn: &mut Option<Http>,
    target: &Target,
    counters: &Arc<Counters>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut last = None;
    for _ in 0..2 {
        let http = match conn {
            Some(h) => h,
            None => conn.insert(Http::open(target, None, counters).await?),
        };
        let fetch = http.fetch(method.clone(), path, headers, body.clone());
        match tokio::time::timeout(Duration::from_secs(10), fetch).await {
            Ok(Ok((status, _, body))) => return Ok((status, body)),
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(anyhow::anyhow!("no reply in 10 s")),
        }
        *conn = None;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
}

/// Posts a question as `voter`; its id.
async fn post(
    conn: &mut Option<Http>,
    target: &Target,
    counters: &Arc<Counters>,
    event: &str,
    voter: &str,
    text: &str,
    name: &str,
) -> anyhow::Result<Result<u32, StatusCode>> {
    let cookie = format!("tally_voter={voter}");
    let body = serde_json::json!({"text": text, "name": name}).to_string();
    let (status, reply) = call(
        conn,
        target,
        counters,
        Method::POST,
        &format!("/api/events/{event}/qa"),
        &[("cookie", &cookie)],
        Some(body),
    )
    .await?;
    if status != StatusCode::CREATED {
        return Ok(Err(status));
    }
    let v: serde_json::Value = serde_json::from_slice(&reply)?;
    let id = v["question"]["id"].as_u64().context("question id")?;
    Ok(Ok(u32::try_from(id)?))
}

/// An event without a deck (and so without moderation); its id.
async fn create_event(target: &Target) -> anyhow::Result<String> {
    let mut http = Http::open(target, None, &Arc::new(Counters::default())).await?;
    Ok(events::create_event(&mut http, 0).await?.0)
}

/// The state as the public sees it: its bytes and the board's version.
async fn state(http: &mut Option<Http>, target: &Target, id: &str) -> anyhow::Result<Bytes> {
    let counters = Arc::new(Counters::default());
    let path = format!("/api/events/{id}");
    let (status, body) = call(http, target, &counters, Method::GET, &path, &[], None).await?;
    anyhow::ensure!(status == StatusCode::OK, "GET event: {status}");
    Ok(body)
}

/// `n` CJK characters from a place in the block, different per question.
fn cjk(n: usize, from: usize) -> String {
    (0..n)
        .map(|i| char::from_u32(0x4E00 + ((from * 7 + i) % 20_000) as u32).unwrap_or('问'))
        .collect()
}

#[derive(Debug, Serialize)]
pub struct FullBoard {
    pub questions: usize,
    /// The public state's JSON (`GET /api/events/{id}`, the long poll's body).
    pub state_bytes: usize,
    /// The same as a WebSocket frame (`{"type":"event",…}`).
    pub ws_frame_bytes: usize,
    pub public: u64,
    pub travelling: usize,
    /// The status of one more post (409 expected at 2,000).
    pub one_more: u16,
}

/// Fills a fresh board with `n` questions of 280 CJK characters and
/// 40-character names; the state's size.
async fn full_board(target: &Target, n: usize) -> anyhow::Result<FullBoard> {
    let mut http = None;
    let id = create_event(target).await?;
    let counters = Arc::new(Counters::default());
    let progress = indicatif::ProgressBar::new(n as u64).with_message("filling a board");
    for i in 0..n {
        let voter = format!("bench-full-{i}");
        if let Err(status) = post(
            &mut http,
            target,
            &counters,
            &id,
            &voter,
            &cjk(280, i),
            &cjk(40, i + 1),
        )
        .await?
        {
            bail!("full board: post {i}: {status}");
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let one_more = post(&mut http, target, &counters, &id, "bench-full-x", "x", "x")
        .await?
        .err()
        .map_or(201, |s| s.as_u16());
    let body = state(&mut http, target, &id).await?;
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(FullBoard {
        questions: n,
        state_bytes: body.len(),
        ws_frame_bytes: body.len() + r#""type":"event","#.len(),
        public: v["qa"]["public"].as_u64().unwrap_or(0),
        travelling: v["qa"]["questions"].as_array().map_or(0, Vec::len)
            + usize::from(!v["qa"]["pinned"].is_null()),
        one_more,
    })
}

/// What the room's changes came to.
#[derive(Default)]
struct Driven {
    accepted: u64,
    upvotes: u64,
    posts: u64,
    refused: BTreeMap<String, u64>,
    elapsed: Duration,
}

/// The run's changes, one at a time on the schedule, alternately on each
/// instance; each accepted one is the next board version.
async fn drive(
    event: &str,
    acks: &AckTable,
    targets: &[Target],
    qa: &QaArgs,
    (mut questions, base): (u32, u64),
    ack: &Arc<Latencies>,
) -> Driven {
    let rate = (qa.upvotes + qa.posts).max(0.001);
    let total = (rate * qa.duration.as_secs_f64()).round() as usize;
    let share = qa.posts / rate;
    let counters = Arc::new(Counters::default());
    let mut conns: Vec<Option<Http>> = targets.iter().map(|_| None).collect();
    let mut out = Driven::default();
    let mut local = LocalLatencies::new(ack);
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let progress = indicatif::ProgressBar::new(total as u64);
    let first = tokio::time::Instant::now();
    for k in 0..total {
        tokio::time::sleep_until(first + Duration::from_secs_f64(k as f64 / rate)).await;
        let is_post = ((k + 1) as f64 * share).floor() > (k as f64 * share).floor();
        let t = k % targets.len();
        let sent = Instant::now();
        let result = if is_post {
            let n = out.posts + 1;
            let text = format!(
                "Question {n} from the room: how does every instance show the same board order when upvotes arrive together?"
            );
            post(
                &mut conns[t],
                &targets[t],
                &counters,
                event,
                &format!("bench-post-{n}"),
                &text,
                &format!("Guest {n}"),
            )
            .await
            .map(|r| r.map(|qid| questions = questions.max(qid)))
        } else {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let qid = 1 + rng % u64::from(questions.max(1));
            let cookie = format!("tally_voter=bench-up-{k}");
            let path = format!("/api/events/{event}/qa/{qid}/upvote");
            let headers = [("cookie", cookie.as_str())];
            call(
                &mut conns[t],
                &targets[t],
                &counters,
                Method::POST,
                &path,
                &headers,
                None,
            )
            .await
            .map(|(status, _)| {
                if status == StatusCode::OK {
                    Ok(())
                } else {
                    Err(status)
                }
            })
        };
        match result {
            Ok(Ok(())) => {
                out.accepted += 1;
                acks.acked(base + out.accepted);
                local.record(sent.elapsed().as_micros() as u64);
                if is_post {
                    out.posts += 1;
                } else {
                    out.upvotes += 1;
                }
            }
            Ok(Err(status)) => *out.refused.entry(status.to_string()).or_default() += 1,
            Err(e) => *out.refused.entry(format!("{e:#}")).or_default() += 1,
        }
        progress.set_position(k as u64 + 1);
    }
    out.elapsed = first.elapsed();
    progress.finish_and_clear();
    out
}

#[derive(Debug, Serialize)]
pub struct QaReport {
    pub followers: BTreeMap<&'static str, usize>,
    pub connected: usize,
    pub instances: usize,
    pub seconds: f64,
    pub upvotes: u64,
    pub posts: u64,
    pub changes_per_second: f64,
    pub refused: BTreeMap<String, u64>,
    /// The board's final version is V0 + accepted changes (the delivery
    /// bookkeeping is exact).
    pub versions_exact: bool,
    pub change_ack: LatencySummary,
    /// Change's reply → follower holds its board version, all transports.
    pub delivery: LatencySummary,
    pub delivery_by_transport: BTreeMap<&'static str, LatencySummary>,
    /// Deliveries expected (followers × changes) and those recorded.
    pub deliveries_expected: u64,
    pub followers_short_of_the_end: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    /// State messages per change per follower (after each one's first).
    pub states_per_change: f64,
    pub bytes_per_state: BTreeMap<&'static str, f64>,
    pub state_bytes_at_start: usize,
    pub state_bytes_at_end: usize,
    /// Store commands per change, per instance (`--server-pid` order), the
    /// idle rate subtracted; then other clients, then what scripts ran.
    pub commands_per_change: Vec<BTreeMap<String, f64>>,
    pub commands_per_change_total: Vec<f64>,
    pub idle_commands_per_second: Vec<f64>,
    pub cpu_seconds: f64,
    pub cpu_us_per_change_net_of_idle: f64,
    pub full_board: Option<FullBoard>,
}

/// Runs the Q&A mode and prints its report.
pub async fn main(args: &Args, qa: &QaArgs) -> anyhow::Result<()> {
    let report = run(args, qa).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    if report.failed > 0 || report.followers_short_of_the_end > 0 || !report.versions_exact {
        std::process::exit(2);
    }
    Ok(())
}

async fn run(args: &Args, qa: &QaArgs) -> anyhow::Result<QaReport> {
    if args.poll > 0 {
        bail!("qa: followers are --ws, --sse and --longpoll");
    }
    let mut targets = Vec::new();
    for url in &args.urls {
        targets.push(Target::parse(url).await?);
    }
    let full = if qa.full_board > 0 {
        Some(full_board(&targets[0], qa.full_board).await?)
    } else {
        None
    };

    // The run's event and its first questions.
    let mut admin = None;
    let id = create_event(&targets[0]).await?;
    let counters = Arc::new(Counters::default());
    let mut questions = 0;
    for i in 0..qa.seed {
        let text = format!(
            "Seeded question {i}: what does the board cost the store when the whole room upvotes at once?"
        );
        let voter = format!("bench-seed-{i}");
        match post(
            &mut admin,
            &targets[0],
            &counters,
            &id,
            &voter,
            &text,
            "Host",
        )
        .await?
        {
            Ok(qid) => questions = questions.max(qid),
            Err(status) => bail!("seeding question {i}: {status}"),
        }
    }
    let start_state = state(&mut admin, &targets[0], &id).await?;
    let base = board_version(&start_state).context("the state's board version")?;

    let rate = qa.upvotes + qa.posts;
    let capacity = (rate * qa.duration.as_secs_f64()) as usize + 1_000;
    let (last_tx, last_rx) = watch::channel(None);
    let room = Room::new(id.clone(), last_rx);
    let acks = Arc::new(AckTable::new(room.start, base, capacity));
    let all = Arc::new(Latencies::default());
    let by_transport: BTreeMap<Transport, Arc<Latencies>> =
        [Transport::Ws, Transport::Sse, Transport::Longpoll]
            .into_iter()
            .map(|t| (t, Arc::default()))
            .collect();
    let crowd = Crowd::gather(args, &targets, &room.ready, |t, target, source, c| {
        let latencies = (Arc::clone(&by_transport[&t]), Arc::clone(&all));
        let shared = (Arc::clone(&room), Arc::clone(&acks));
        follow(shared, t, target, source, c, latencies)
    })
    .await;
    let (counters_by, followers, connected) = (
        crowd.counters.clone(),
        crowd.followers.clone(),
        crowd.connected,
    );
    let index: usize = followers.values().sum();

    let (monitor, stop_monitor) = Monitor::start(&qa.redis);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_start = (monitor.snapshot(), crate::sample(&args.server_pids));
    let idle_clock = Instant::now();
    if !qa.idle.is_zero() {
        eprintln!("idle window: {:.0} s", qa.idle.as_secs_f64());
        tokio::time::sleep(qa.idle).await;
    }
    let idle_seconds = idle_clock.elapsed().as_secs_f64();
    let idle_end = (monitor.snapshot(), crate::sample(&args.server_pids));

    eprintln!(
        "{} upvotes/s and {} posts/s for {:?}",
        qa.upvotes, qa.posts, qa.duration
    );
    let ack = Arc::new(Latencies::default());
    let busy_clock = Instant::now();
    let busy_start = (monitor.snapshot(), crate::sample(&args.server_pids));
    // The changes run on a thread and runtime of their own: on a busy box
    // the followers' tasks would otherwise delay them past their schedule.
    let driven = {
        let (event, acks, ack) = (room.id.clone(), Arc::clone(&acks), Arc::clone(&ack));
        let (targets, qa) = (targets.clone(), qa.clone());
        tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let start = (questions, base);
            anyhow::Ok(rt.block_on(drive(&event, &acks, &targets, &qa, start, &ack)))
        })
        .await??
    };
    // The reads that follow the last change land within the second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy_end = (monitor.snapshot(), crate::sample(&args.server_pids));
    let busy_seconds = busy_clock.elapsed().as_secs_f64();
    stop_monitor.cancel();

    let end_state = state(&mut admin, &targets[0], &id).await?;
    let last = board_version(&end_state).context("the final board version")?;
    last_tx.send_replace(Some(last));
    let failed = |error| End {
        error: Some(error),
        ..Default::default()
    };
    let late = "did not reach the final board in time";
    let ends = crowd.finish(args.settle, &room.cancel, failed, late).await;

    let owner = events::owners(&args.server_pids);
    let instances = args.server_pids.len();
    let idle = events::per_instance(&idle_start.0, &idle_end.0, &owner, instances);
    let busy = events::per_instance(&busy_start.0, &busy_end.0, &owner, instances);
    let share = if qa.idle.is_zero() {
        0.0
    } else {
        busy_seconds / idle_seconds
    };
    let changes = driven.accepted as usize;
    let (commands_per_change, totals) = events::per_step(&busy, &idle, share, changes);
    let idle_rate = idle
        .iter()
        .map(|c| c.values().sum::<u64>() as f64 / idle_seconds.max(1e-9))
        .collect();
    let cpu_busy = events::cpu(&busy_end.1) - events::cpu(&busy_start.1);
    let cpu_idle = events::cpu(&idle_end.1) - events::cpu(&idle_start.1);

    let states: BTreeMap<Transport, u64> = ends.iter().fold(BTreeMap::new(), |mut m, (t, e)| {
        *m.entry(*t).or_default() += e.states;
        m
    });
    let after_first: u64 = ends.iter().map(|(_, e)| e.states.saturating_sub(1)).sum();
    Ok(QaReport {
        followers,
        connected,
        instances: targets.len(),
        seconds: driven.elapsed.as_secs_f64(),
        upvotes: driven.upvotes,
        posts: driven.posts,
        changes_per_second: driven.accepted as f64 / driven.elapsed.as_secs_f64().max(1e-9),
        refused: driven.refused,
        versions_exact: last == base + driven.accepted,
        change_ack: ack.summary(),
        delivery: all.summary(),
        delivery_by_transport: by_transport
            .iter()
            .map(|(t, l)| (t.as_str(), l.summary()))
            .collect(),
        deliveries_expected: index as u64 * driven.accepted,
        followers_short_of_the_end: ends.iter().filter(|(_, e)| e.seen < last).count(),
        failed: ends.iter().filter(|(_, e)| e.error.is_some()).count(),
        first_error: ends.iter().find_map(|(_, e)| e.error.clone()),
        states_per_change: after_first as f64 / (index.max(1) as f64 * changes.max(1) as f64),
        bytes_per_state: counters_by
            .iter()
            .map(|(t, c)| {
                let n = states.get(t).copied().unwrap_or(0).max(1) as f64;
                (t.as_str(), c.read.load(Ordering::Relaxed) as f64 / n)
            })
            .collect(),
        state_bytes_at_start: start_state.len(),
        state_bytes_at_end: end_state.len(),
        commands_per_change,
        commands_per_change_total: totals,
        idle_commands_per_second: idle_rate,
        cpu_seconds: cpu_busy,
        cpu_us_per_change_net_of_idle: (cpu_busy - share * cpu_idle) * 1e6 / changes.max(1) as f64,
        full_board: full,
    })
}

fn print(r: &QaReport) {
    let (n, mix) = events::mix(&r.followers);
    println!(
        "qa: {n} followers ({mix}) over {} instance(s), {} connected; {} upvotes and {} posts in {:.1} s ({:.1} changes/s)",
        r.instances, r.connected, r.upvotes, r.posts, r.seconds, r.changes_per_second
    );
    if !r.refused.is_empty() {
        println!("refused: {:?}", r.refused);
    }
    let l = events::latency;
    println!("change 200/201 reply: {}", l(&r.change_ack));
    events::print_delivery(
        "delivery (reply → follower holds that board version)",
        &r.delivery,
        &r.delivery_by_transport,
        &r.bytes_per_state,
        "state",
    );
    println!(
        "deliveries: {} of {} expected; state messages per change per follower: {:.2}; board versions exact: {}",
        r.delivery.samples,
        r.deliveries_expected,
        r.states_per_change,
        if r.versions_exact { "yes" } else { "NO" }
    );
    println!(
        "followers short of the final board: {}; failed: {}",
        r.followers_short_of_the_end, r.failed
    );
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
    events::print_commands(
        "change",
        &r.commands_per_change,
        &r.commands_per_change_total,
        &r.idle_commands_per_second,
    );
    println!(
        "server CPU: {:.2} s over the run; {:.1} µs per change net of idle",
        r.cpu_seconds, r.cpu_us_per_change_net_of_idle
    );
    println!(
        "state message: {} bytes before the run, {} after it",
        r.state_bytes_at_start, r.state_bytes_at_end
    );
    if let Some(f) = &r.full_board {
        println!(
            "full board: {} questions of 280 CJK characters, 40-character names: state {} bytes ({:.1} KiB), WebSocket frame {} bytes; {} public, {} travel; one more post: {}",
            f.questions,
            f.state_bytes,
            f.state_bytes as f64 / 1024.0,
            f.ws_frame_bytes,
            f.public,
            f.travelling,
            f.one_more
        );
    }
}

#[cfg(test)]
mod tests {
    use super::board_version;

    #[test]
    fn the_board_version_is_the_cursors_third_part() {
        let s =
            br#"{"code":"123456","current":null,"cursor":"7.0.42","id":"x","qa":{"version":42}}"#;
        assert_eq!(board_version(s), Some(42));
        assert_eq!(board_version(br#"{"cursor":"7.12"}"#), Some(12));
        assert_eq!(board_version(b"{}"), None);
    }
}
