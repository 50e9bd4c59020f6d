//! `tally-bench events`: N followers of one event (WebSocket, SSE and long
//! poll, from `--ws/--sse/--longpoll`, spread over `--url`), then
//! `--moves` "next" moves on the first instance, `--interval` apart.
//!
//! Measured, per run:
//! - **switch latency**: from the move's 200 reply to each follower holding
//!   the new `current` (0 when the follower had it before the reply);
//! - **missed moves**: every follower must see every `current` value of the
//!   run, in order: lobby, 0, 1, … It counts a value it never held as
//!   missed (skipped, or not reached by the end), and a value older than
//!   one it already held as a regression. Both must be 0;
//! - **store commands per move per instance**, from `MONITOR` on every
//!   Redis node (`--redis`), each command told to its instance by the
//!   client address (the instances' sockets, from /proc), minus the same
//!   instance's commands over an idle window of the same length with the
//!   same followers (heartbeats, subscriptions);
//! - **server CPU per delivered switch** (`--server-pid`), beside the CPU
//!   per delivered update of a plain poll with the same followers and one
//!   vote per `--interval` (the ordinary run, afterwards);
//! - the **state message size** with a `--big-deck`-question deck.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::Args;
use crate::follow::Transport;
use crate::net::{self, Counters, Http, Target};
use crate::stats::{Latencies, LatencySummary, LocalLatencies, ProcSample};

/// Flags of the events mode (the followers come from `--ws/--sse/--longpoll`).
#[derive(Debug, Clone, clap::Args)]
pub struct EventArgs {
    /// "next" moves the host makes from the lobby (on the first --url).
    #[arg(long, default_value_t = 20)]
    moves: usize,
    /// Time between two moves.
    #[arg(long, default_value = "1s", value_parser = crate::duration)]
    interval: Duration,
    /// Redis nodes (host:port) to watch with MONITOR for the store
    /// commands per move (repeatable; every node of a cluster).
    #[arg(long = "redis")]
    redis: Vec<String>,
    /// Questions of the deck whose state message size is reported.
    #[arg(long, default_value_t = 100)]
    big_deck: usize,
    /// Skip the idle window (no subtraction of the background commands/CPU).
    #[arg(long)]
    no_idle: bool,
    /// Skip the plain-poll comparison run.
    #[arg(long)]
    no_poll: bool,
}

/// `current` as a number: -1 is the lobby.
type Current = i64;

/// One follower's end: each `current` it held, in order, with when.
#[derive(Default)]
struct Track {
    seen: Vec<(Current, u64)>,
    /// State messages received, the first included.
    states: u64,
    connected: bool,
    error: Option<String>,
}

/// What every follower of a run shares.
pub struct Room<E> {
    pub start: Instant,
    pub id: String,
    /// How many followers hold their first state.
    pub ready: (AtomicUsize, Notify),
    /// The run's last value (`events`: the last `current`; `qa`: the
    /// board's final version), set at the end.
    pub last: watch::Receiver<Option<E>>,
    pub cancel: CancellationToken,
}

impl<E> Room<E> {
    pub fn new(id: String, last: watch::Receiver<Option<E>>) -> Arc<Self> {
        Arc::new(Room {
            start: Instant::now(),
            id,
            ready: (AtomicUsize::new(0), Notify::new()),
            last,
            cancel: CancellationToken::new(),
        })
    }

    /// Counts a follower holding its first state.
    pub fn joined(&self) {
        self.ready.0.fetch_add(1, Ordering::Relaxed);
        self.ready.1.notify_one();
    }

    /// Where a follower listens.
    pub fn listen(&self) -> Listen<'_, Option<E>> {
        Listen {
            id: &self.id,
            end: self.last.clone(),
            cancel: &self.cancel,
        }
    }
}

type EventRoom = Room<Current>;

/// The value of `"field":` in a state (the first one: the head's), raw.
pub fn field<'a>(json: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let key = format!("\"{name}\":");
    let at = json.windows(key.len()).position(|w| w == key.as_bytes())? + key.len();
    let rest = &json[at..];
    let end = if rest.first() == Some(&b'"') {
        1 + rest[1..].iter().position(|&b| b == b'"')? + 1
    } else {
        rest.iter().position(|&b| b == b',' || b == b'}')?
    };
    Some(&rest[..end])
}

fn current_of(json: &[u8]) -> Option<Current> {
    match field(json, "current")? {
        b"null" => Some(-1),
        digits => std::str::from_utf8(digits).ok()?.parse().ok(),
    }
}

pub fn cursor_of(json: &[u8]) -> Option<String> {
    let raw = field(json, "cursor")?;
    Some(String::from_utf8_lossy(raw).trim_matches('"').to_owned())
}

impl Track {
    /// Notes a state; returns whether the follower may stop.
    fn state(&mut self, room: &EventRoom, json: &[u8]) -> bool {
        let Some(current) = current_of(json) else {
            return false;
        };
        self.states += 1;
        if !self.connected {
            self.connected = true;
            room.joined();
        }
        if self.seen.last().map(|s| s.0) != Some(current) {
            let at = room.start.elapsed().as_nanos() as u64;
            self.seen.push((current, at));
        }
        self.done(room)
    }

    fn done(&self, room: &EventRoom) -> bool {
        let last = *room.last.borrow();
        last.is_some_and(|l| self.seen.iter().any(|s| s.0 >= l))
    }
}

/// What a follower of an event does with the states it receives (the
/// transports below are shared by `events` and `qa`).
pub trait Observer {
    /// Notes a state; returns whether the follower may stop.
    fn state(&mut self, json: &[u8]) -> bool;
    /// Whether the follower may stop, asked whenever `end` changes.
    fn done(&self) -> bool;
}

/// The event one follower listens to, and what ends it: a change of `end`
/// after which the observer is done, or `cancel`.
pub struct Listen<'a, E> {
    pub id: &'a str,
    pub end: watch::Receiver<E>,
    pub cancel: &'a CancellationToken,
}

/// Follows one event over `transport` (long poll for anything but
/// WebSocket and SSE) until the observer is done or the run cancels.
pub async fn stream<E: Send + Sync>(
    listen: Listen<'_, E>,
    transport: Transport,
    target: &Target,
    source: Option<IpAddr>,
    counters: &Arc<Counters>,
    obs: &mut impl Observer,
) -> anyhow::Result<()> {
    match transport {
        Transport::Ws => ws(listen, target, source, counters, obs).await,
        Transport::Sse => sse(listen, target, source, counters, obs).await,
        _ => longpoll(listen, target, source, counters, obs).await,
    }
}

/// An events follower: its track against the room.
struct Follower<'a> {
    room: &'a EventRoom,
    track: &'a mut Track,
}

impl Observer for Follower<'_> {
    fn state(&mut self, json: &[u8]) -> bool {
        self.track.state(self.room, json)
    }

    fn done(&self) -> bool {
        self.track.done(self.room)
    }
}

/// One follower of the event until it holds the last `current`.
async fn follow(
    room: Arc<EventRoom>,
    transport: Transport,
    target: Target,
    source: Option<IpAddr>,
    counters: Arc<Counters>,
) -> Track {
    let mut track = Track::default();
    let listen = room.listen();
    let mut obs = Follower {
        room: &room,
        track: &mut track,
    };
    let result = stream(listen, transport, &target, source, &counters, &mut obs).await;
    if let Err(e) = result {
        track.error = Some(format!("{e:#}"));
    }
    track
}

/// The followers of a run (`--ws/--sse/--longpoll` spread over the
/// targets and sources), each a task ending in a `T`.
pub struct Crowd<T> {
    pub tasks: Vec<(Transport, JoinHandle<T>)>,
    pub counters: BTreeMap<Transport, Arc<Counters>>,
    pub followers: BTreeMap<&'static str, usize>,
    pub connected: usize,
}

impl<T: Send + 'static> Crowd<T> {
    /// Spawns every follower with `spawn(transport, target, source,
    /// counters)` and waits until `ready` counts them all (or `--settle`).
    pub async fn gather<F>(
        args: &Args,
        targets: &[Target],
        ready: &(AtomicUsize, Notify),
        mut spawn: impl FnMut(Transport, Target, Option<IpAddr>, Arc<Counters>) -> F,
    ) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut crowd = Crowd {
            tasks: Vec::new(),
            counters: BTreeMap::new(),
            followers: BTreeMap::new(),
            connected: 0,
        };
        let mut index = 0;
        for transport in [Transport::Ws, Transport::Sse, Transport::Longpoll] {
            let c = Arc::new(Counters::default());
            let n = args.followers(transport);
            crowd.followers.insert(transport.as_str(), n);
            for _ in 0..n {
                let target = targets[index % targets.len()].clone();
                let task = spawn(transport, target, args.source(index), Arc::clone(&c));
                crowd.tasks.push((transport, tokio::spawn(task)));
                index += 1;
            }
            crowd.counters.insert(transport, c);
        }
        crate::wait_ready(ready, index, args.settle).await;
        crowd.connected = ready.0.load(Ordering::Relaxed);
        if crowd.connected < index {
            eprintln!(
                "warning: {} of {index} followers connected",
                crowd.connected
            );
        }
        crowd
    }

    /// Every follower's end, waiting at most `settle` in all; a follower
    /// not done by then is cancelled and ends as `failed(late)`.
    pub async fn finish(
        self,
        settle: Duration,
        cancel: &CancellationToken,
        failed: impl Fn(String) -> T,
        late: &str,
    ) -> Vec<(Transport, T)> {
        let deadline = tokio::time::Instant::now() + settle;
        let mut ends = Vec::new();
        for (transport, task) in self.tasks {
            let end = match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => failed(e.to_string()),
                Err(_) => {
                    cancel.cancel();
                    failed(late.to_owned())
                }
            };
            ends.push((transport, end));
        }
        cancel.cancel();
        ends
    }
}

/// `p50 …, p99 …, max … (n samples)`.
pub fn latency(s: &LatencySummary) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        s.p50_ms, s.p99_ms, s.max_ms, s.samples
    )
}

/// A delivery's summary, then each transport's with its bytes per `per`.
pub fn print_delivery(
    what: &str,
    all: &LatencySummary,
    by_transport: &BTreeMap<&'static str, LatencySummary>,
    bytes: &BTreeMap<&'static str, f64>,
    per: &str,
) {
    println!("{what}: {}", latency(all));
    for (t, s) in by_transport {
        let b = bytes.get(t).copied().unwrap_or(0.0);
        println!("  {t:<9} {}; {b:.0} bytes per {per}", latency(s));
    }
}

/// The followers in all and by transport: `ws 400, sse 300, …`.
pub fn mix(followers: &BTreeMap<&'static str, usize>) -> (usize, String) {
    let parts: Vec<String> = followers.iter().map(|(t, n)| format!("{t} {n}")).collect();
    (followers.values().sum(), parts.join(", "))
}

async fn ws<E: Send + Sync>(
    mut listen: Listen<'_, E>,
    target: &Target,
    source: Option<IpAddr>,
    counters: &Arc<Counters>,
    obs: &mut impl Observer,
) -> anyhow::Result<()> {
    let stream = net::connect(target, source, counters).await?;
    let url = format!("ws://{}/api/events/{}/ws", target.host, listen.id);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    counters.requests.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            msg = socket.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if text.as_str().starts_with(r#"{"type":"event""#)
                        && obs.state(text.as_bytes()) {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("websocket closed by the server"),
            },
            _ = listen.end.changed() => if obs.done() { break },
            _ = listen.cancel.cancelled() => break,
        }
    }
    let _ = socket.close(None).await;
    Ok(())
}

/// The data of an `event: state` block.
fn sse_state(block: &[u8]) -> Option<&[u8]> {
    let text = std::str::from_utf8(block).ok()?;
    let mut lines = text.lines();
    if !lines.any(|l| l == "event: state") {
        return None;
    }
    let data = text.lines().find_map(|l| l.strip_prefix("data: "))?;
    Some(data.as_bytes())
}

async fn sse<E: Send + Sync>(
    mut listen: Listen<'_, E>,
    target: &Target,
    source: Option<IpAddr>,
    counters: &Arc<Counters>,
    obs: &mut impl Observer,
) -> anyhow::Result<()> {
    let mut http = Http::open(target, source, counters).await?;
    let path = format!("/api/events/{}/events", listen.id);
    let res = http
        .send(Method::GET, &path, &[("accept", "text/event-stream")], None)
        .await?;
    anyhow::ensure!(res.status() == StatusCode::OK, "sse: {}", res.status());
    let mut body = res.into_body();
    let mut buf = BytesMut::new();
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    buf.extend_from_slice(&data);
                    let mut done = false;
                    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                        let block = buf.split_to(end + 2);
                        if let Some(json) = sse_state(&block) {
                            done |= obs.state(json);
                        }
                    }
                    if done { break }
                }
                Some(Err(e)) => return Err(e.into()),
                None => bail!("sse stream ended"),
            },
            _ = listen.end.changed() => if obs.done() { break },
            _ = listen.cancel.cancelled() => break,
        }
    }
    Ok(())
}

async fn longpoll<E: Send + Sync>(
    mut listen: Listen<'_, E>,
    target: &Target,
    source: Option<IpAddr>,
    counters: &Arc<Counters>,
    obs: &mut impl Observer,
) -> anyhow::Result<()> {
    let mut http = Http::open(target, source, counters).await?;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/api/events/{}/changes", listen.id),
            Some(c) => format!("/api/events/{}/changes?since={c}&timeout=25", listen.id),
        };
        // As in follow.rs: a request in flight is dropped only at the end.
        let fetch = http.fetch(Method::GET, &path, &[], None);
        tokio::pin!(fetch);
        let (status, _, body) = loop {
            tokio::select! {
                res = &mut fetch => break res?,
                _ = listen.end.changed() => if obs.done() { return Ok(()) },
                _ = listen.cancel.cancelled() => return Ok(()),
            }
        };
        match status {
            StatusCode::OK => {
                cursor = Some(cursor_of(&body).context("state without a cursor")?);
                if obs.state(&body) {
                    return Ok(());
                }
            }
            StatusCode::NO_CONTENT => {}
            other => bail!("long poll: {other}"),
        }
    }
}

/// Commands seen by `MONITOR`, by client address and command name.
#[derive(Default)]
pub struct Monitor {
    counts: Mutex<HashMap<(String, String), u64>>,
}

impl Monitor {
    /// Counts the commands one Redis node receives until `stop`.
    async fn watch(self: Arc<Self>, node: String, stop: CancellationToken) -> anyhow::Result<()> {
        let mut conn = tokio::net::TcpStream::connect(&node)
            .await
            .with_context(|| format!("MONITOR {node}"))?;
        conn.write_all(b"MONITOR\r\n").await?;
        let mut lines = BufReader::new(conn).lines();
        loop {
            let line = tokio::select! {
                line = lines.next_line() => line?,
                _ = stop.cancelled() => return Ok(()),
            };
            let Some(line) = line else { return Ok(()) };
            // +1700000000.123456 [0 127.0.0.1:54321] "EVALSHA" "…"
            let Some((client, rest)) = line.split_once(" [").and_then(|(_, r)| r.split_once("] "))
            else {
                continue;
            };
            let addr = client.split_once(' ').map_or(client, |(_, a)| a);
            let cmd = rest.split('"').nth(1).unwrap_or("?").to_ascii_lowercase();
            *self
                .counts
                .lock()
                .expect("monitor lock")
                .entry((addr.to_owned(), cmd))
                .or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> HashMap<(String, String), u64> {
        self.counts.lock().expect("monitor lock").clone()
    }

    /// Watches every node until the token is cancelled.
    pub fn start(nodes: &[String]) -> (Arc<Self>, CancellationToken) {
        let monitor = Arc::new(Monitor::default());
        let stop = CancellationToken::new();
        for node in nodes {
            let m = Arc::clone(&monitor);
            let (node, stop) = (node.clone(), stop.clone());
            tokio::spawn(async move {
                if let Err(e) = m.watch(node, stop).await {
                    eprintln!("warning: {e:#}");
                }
            });
        }
        (monitor, stop)
    }
}

/// Which instance (index of `pids`) each local socket address belongs to.
pub fn owners(pids: &[u32]) -> HashMap<String, usize> {
    let mut owner = HashMap::new();
    for (i, &pid) in pids.iter().enumerate() {
        for addr in socket_addrs(pid) {
            owner.insert(addr, i);
        }
    }
    owner
}

/// Commands per step, by instance and name: the busy window's less
/// `idle_share` times the idle window's, over `steps`; and each row's sum.
pub fn per_step(
    busy: &[Commands],
    idle: &[Commands],
    idle_share: f64,
    steps: usize,
) -> (Vec<BTreeMap<String, f64>>, Vec<f64>) {
    let mut rows = Vec::new();
    let mut totals = Vec::new();
    for (m, i) in busy.iter().zip(idle) {
        let mut row = BTreeMap::new();
        for name in m.keys().chain(i.keys()) {
            let busy = m.get(name).copied().unwrap_or(0) as f64;
            let quiet = idle_share * i.get(name).copied().unwrap_or(0) as f64;
            let per = (busy - quiet) / steps.max(1) as f64;
            if per.abs() >= 0.005 {
                row.insert(name.clone(), per);
            }
        }
        totals.push(row.values().sum::<f64>() + 0.0);
        rows.push(row);
    }
    (rows, totals)
}

/// Prints [`per_step`]'s rows: the instances A, B, …, then other clients,
/// then what scripts ran.
pub fn print_commands(
    step: &str,
    rows: &[BTreeMap<String, f64>],
    totals: &[f64],
    idle_per_second: &[f64],
) {
    for (i, (row, total)) in rows.iter().zip(totals).enumerate() {
        let who = match rows.len() - i {
            1 => "run inside scripts".to_owned(),
            2 => "other clients".to_owned(),
            _ => format!("instance {}", (b'A' + i as u8) as char),
        };
        let parts: Vec<String> = row.iter().map(|(c, n)| format!("{c} {n:.2}")).collect();
        let idle = idle_per_second.get(i).copied().unwrap_or(0.0);
        println!(
            "store commands per {step}, {who}: {total:.2} ({}); idle {idle:.1}/s subtracted",
            if parts.is_empty() {
                "none".to_owned()
            } else {
                parts.join(", ")
            }
        );
    }
}

/// The `ip:port` of every TCP socket `pid` holds, from /proc.
pub fn socket_addrs(pid: u32) -> Vec<String> {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in dir.flatten() {
            if let Ok(link) = std::fs::read_link(entry.path()) {
                let link = link.to_string_lossy().into_owned();
                if let Some(inode) = link
                    .strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let mut addrs = Vec::new();
    for row in table.lines().skip(1) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let (Some(local), Some(inode)) = (cols.get(1), cols.get(9)) else {
            continue;
        };
        if !inodes.contains(*inode) {
            continue;
        }
        let Some((ip, port)) = local.split_once(':') else {
            continue;
        };
        let (Ok(ip), Ok(port)) = (u32::from_str_radix(ip, 16), u16::from_str_radix(port, 16))
        else {
            continue;
        };
        let ip = std::net::Ipv4Addr::from(ip.swap_bytes());
        addrs.push(format!("{ip}:{port}"));
    }
    addrs
}

/// Commands of one instance over a window, by name.
pub type Commands = BTreeMap<String, u64>;

/// Sums a window's commands (`after - before`) per instance (index of
/// `--server-pid`), then those of other clients, then those Lua scripts
/// ran (MONITOR shows them too, as client `lua`; they are not sent).
pub fn per_instance(
    before: &HashMap<(String, String), u64>,
    after: &HashMap<(String, String), u64>,
    owner: &HashMap<String, usize>,
    instances: usize,
) -> Vec<Commands> {
    let mut out = vec![Commands::new(); instances + 2];
    for ((addr, cmd), n) in after {
        let d = n - before
            .get(&(addr.clone(), cmd.clone()))
            .copied()
            .unwrap_or(0);
        if d > 0 {
            let i = match owner.get(addr) {
                Some(&i) => i,
                None if addr == "lua" => instances + 1,
                None => instances,
            };
            *out[i].entry(cmd.clone()).or_default() += d;
        }
    }
    out
}

#[derive(Debug, Serialize)]
pub struct EventReport {
    pub followers: BTreeMap<&'static str, usize>,
    pub connected: usize,
    pub instances: usize,
    pub moves: usize,
    pub interval_seconds: f64,
    pub move_ack: LatencySummary,
    /// Move's 200 → follower holds the new `current`, all transports.
    pub switch: LatencySummary,
    pub switch_by_transport: BTreeMap<&'static str, LatencySummary>,
    pub switches_delivered: u64,
    /// State messages per switch a follower received after its first (a
    /// move can reach a follower as more than one state).
    pub states_per_switch: f64,
    /// Followers with a missed value or a regression (must be 0).
    pub followers_missing_a_move: usize,
    pub missed_values: u64,
    pub regressions: u64,
    pub failed: usize,
    pub first_error: Option<String>,
    /// Store commands per move, per instance (`--server-pid` order), the
    /// idle window's subtracted; then other clients, then the commands Lua
    /// scripts ran (not sent: shown for what a script costs).
    pub commands_per_move: Vec<BTreeMap<String, f64>>,
    pub commands_per_move_total: Vec<f64>,
    pub idle_commands_per_second: Vec<f64>,
    pub cpu_seconds_moves: f64,
    pub cpu_seconds_idle: f64,
    pub cpu_us_per_switch: f64,
    pub cpu_us_per_switch_net_of_idle: f64,
    pub bytes_per_switch: BTreeMap<&'static str, f64>,
    pub state_bytes_small_deck: usize,
    pub state_bytes_big_deck_lobby: usize,
    pub state_bytes_big_deck_question: usize,
    pub big_deck: usize,
    pub poll: Option<PollComparison>,
}

#[derive(Debug, Serialize)]
pub struct PollComparison {
    pub votes: u64,
    pub deliveries: u64,
    pub delivery: BTreeMap<&'static str, LatencySummary>,
    pub cpu_seconds: f64,
    pub cpu_us_per_delivery: f64,
    /// The same, less the event followers' idle CPU over the same window.
    pub cpu_us_per_delivery_net_of_idle: f64,
    pub converged: bool,
}

/// Runs the events mode and prints its report.
pub async fn main(args: &Args, ev: &EventArgs) -> anyhow::Result<()> {
    let report = run(args, ev).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    let ok = report.followers_missing_a_move == 0
        && report.failed == 0
        && report.poll.as_ref().is_none_or(|p| p.converged);
    if !ok {
        std::process::exit(2);
    }
    Ok(())
}

/// An event with `questions` questions of four options; its id and token.
pub async fn create_event(http: &mut Http, questions: usize) -> anyhow::Result<(String, String)> {
    let deck: Vec<_> = (0..questions)
        .map(|i| {
            serde_json::json!({
                "question": format!("Question {}: which of these would you pick for the next part of the talk?", i + 1),
                "options": ["The first option", "The second option", "The third option", "None of these"],
                "vote_limit": "unlimited",
            })
        })
        .collect();
    let body = serde_json::json!({"title": "tally-bench event", "questions": deck});
    let (status, _, body) = http
        .fetch(Method::POST, "/api/events", &[], Some(body.to_string()))
        .await?;
    if status != StatusCode::CREATED {
        bail!(
            "creating an event: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok((
        v["event"]["id"].as_str().context("event id")?.to_owned(),
        v["admin_token"].as_str().context("admin token")?.to_owned(),
    ))
}

async fn move_next(http: &mut Http, id: &str, token: &str) -> anyhow::Result<Bytes> {
    let auth = format!("Bearer {token}");
    let (status, _, body) = http
        .fetch(
            Method::POST,
            &format!("/api/events/{id}/move"),
            &[("authorization", &auth)],
            Some(r#"{"step":"next"}"#.to_owned()),
        )
        .await?;
    if status != StatusCode::OK {
        bail!("move: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}

pub async fn state_size(http: &mut Http, id: &str) -> anyhow::Result<usize> {
    let (status, _, body) = http
        .fetch(Method::GET, &format!("/api/events/{id}"), &[], None)
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "GET event: {status}");
    Ok(body.len())
}

pub fn cpu(s: &[ProcSample]) -> f64 {
    s.iter().map(|p| p.cpu_seconds).sum()
}

async fn run(args: &Args, ev: &EventArgs) -> anyhow::Result<EventReport> {
    if args.poll > 0 {
        bail!("events: followers are --ws, --sse and --longpoll");
    }
    anyhow::ensure!(ev.moves > 0, "events: --moves must be at least 1");
    let mut targets = Vec::new();
    for url in &args.urls {
        targets.push(Target::parse(url).await?);
    }
    let admin_counters = Arc::new(Counters::default());
    let mut admin = Http::open(&targets[0], None, &admin_counters).await?;

    // The state message size with a big deck, in the lobby and on a question.
    let (big, big_token) = create_event(&mut admin, ev.big_deck).await?;
    let big_lobby = state_size(&mut admin, &big).await?;
    move_next(&mut admin, &big, &big_token).await?;
    let big_question = state_size(&mut admin, &big).await?;

    let (id, token) = create_event(&mut admin, ev.moves).await?;
    let small = state_size(&mut admin, &id).await?;

    let (last_tx, last_rx) = watch::channel(None);
    let room = Room::new(id.clone(), last_rx);
    let crowd = Crowd::gather(args, &targets, &room.ready, |t, target, source, c| {
        follow(Arc::clone(&room), t, target, source, c)
    })
    .await;
    let (counters, followers, connected) = (
        crowd.counters.clone(),
        crowd.followers.clone(),
        crowd.connected,
    );

    // Store commands from MONITOR on every node, told apart by instance.
    let (monitor, stop_monitor) = Monitor::start(&ev.redis);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let window = ev.interval * ev.moves as u32;

    // Idle window: the same followers, no moves.
    let idle_start = (monitor.snapshot(), crate::sample(&args.server_pids));
    if !ev.no_idle {
        eprintln!("idle window: {:.0} s", window.as_secs_f64());
        tokio::time::sleep(window).await;
    }
    let idle_end = (monitor.snapshot(), crate::sample(&args.server_pids));

    // Moves, `interval` apart; the window ends `interval` after the last.
    eprintln!("{} moves, {:?} apart", ev.moves, ev.interval);
    let move_ack = Arc::new(Latencies::default());
    let mut acks: Vec<u64> = Vec::new();
    // A fresh connection: the one that created the event may have been
    // closed as idle meanwhile; this one sees a move every interval.
    let mut admin = Http::open(&targets[0], None, &admin_counters).await?;
    let first = tokio::time::Instant::now();
    let moves_start = (monitor.snapshot(), crate::sample(&args.server_pids));
    for k in 0..ev.moves {
        tokio::time::sleep_until(first + ev.interval * k as u32).await;
        let sent = Instant::now();
        let body = move_next(&mut admin, &id, &token).await?;
        acks.push(room.start.elapsed().as_nanos() as u64);
        move_ack.merge(&[sent.elapsed().as_micros() as u64]);
        anyhow::ensure!(
            current_of(&body) == Some(k as Current),
            "move {k}: the reply's current is not {k}"
        );
    }
    tokio::time::sleep_until(first + window).await;
    let moves_end = (monitor.snapshot(), crate::sample(&args.server_pids));
    stop_monitor.cancel();

    // Every follower must reach the last question.
    last_tx.send_replace(Some(ev.moves as Current - 1));
    let failed = |error| Track {
        error: Some(error),
        ..Default::default()
    };
    let late = "did not reach the last question in time";
    let tracks = crowd.finish(args.settle, &room.cancel, failed, late).await;

    // Switches: each follower's values in order, against the moves' acks.
    let all = Latencies::default();
    let mut by_transport: BTreeMap<Transport, Arc<Latencies>> = BTreeMap::new();
    let (mut missing, mut missed, mut regressions, mut switches) = (0, 0u64, 0u64, 0u64);
    let mut delivered: BTreeMap<Transport, u64> = BTreeMap::new();
    for (transport, track) in &tracks {
        let shared = by_transport.entry(*transport).or_default();
        let mut local = LocalLatencies::new(shared);
        let mut samples = Vec::new();
        let mut high: Current = -1;
        let (mut my_missed, mut my_regressions) = (0u64, 0u64);
        for &(current, at) in &track.seen {
            if current < high {
                my_regressions += 1;
                continue;
            }
            if current == high {
                continue;
            }
            my_missed += (current - high - 1) as u64;
            high = current;
            let ack = acks[current as usize];
            let micros = at.saturating_sub(ack) / 1_000;
            local.record(micros);
            samples.push(micros);
            switches += 1;
            *delivered.entry(*transport).or_default() += 1;
        }
        my_missed += (ev.moves as Current - 1 - high).max(0) as u64;
        all.merge(&samples);
        if my_missed + my_regressions > 0 {
            missing += 1;
        }
        missed += my_missed;
        regressions += my_regressions;
    }

    // Store commands per move per instance, idle subtracted.
    let owner = owners(&args.server_pids);
    let instances = args.server_pids.len();
    let idle = per_instance(&idle_start.0, &idle_end.0, &owner, instances);
    let moving = per_instance(&moves_start.0, &moves_end.0, &owner, instances);
    let idle_share = if ev.no_idle { 0.0 } else { 1.0 };
    let (commands_per_move, totals) = per_step(&moving, &idle, idle_share, ev.moves);
    let idle_rate = idle
        .iter()
        .map(|c| c.values().sum::<u64>() as f64 / window.as_secs_f64())
        .collect();

    let cpu_moves = cpu(&moves_end.1) - cpu(&moves_start.1);
    let cpu_idle = if ev.no_idle {
        0.0
    } else {
        cpu(&idle_end.1) - cpu(&idle_start.1)
    };
    let per = |x: f64| {
        if switches == 0 {
            0.0
        } else {
            x * 1e6 / switches as f64
        }
    };
    let bytes_per_switch = counters
        .iter()
        .map(|(t, c)| {
            let n = delivered.get(t).copied().unwrap_or(0).max(1) as f64;
            let bytes = c.read.load(Ordering::Relaxed) + c.written.load(Ordering::Relaxed);
            (t.as_str(), bytes as f64 / n)
        })
        .collect();

    let poll = if ev.no_poll {
        None
    } else {
        Some(compare_poll(args, ev, cpu_idle).await?)
    };
    Ok(EventReport {
        followers,
        connected,
        instances: targets.len(),
        moves: ev.moves,
        interval_seconds: ev.interval.as_secs_f64(),
        move_ack: move_ack.summary(),
        switch: all.summary(),
        switch_by_transport: by_transport
            .iter()
            .map(|(t, l)| (t.as_str(), l.summary()))
            .collect(),
        switches_delivered: switches,
        states_per_switch: tracks
            .iter()
            .map(|(_, t)| t.states.saturating_sub(1))
            .sum::<u64>() as f64
            / switches.max(1) as f64,
        followers_missing_a_move: missing,
        missed_values: missed,
        regressions,
        failed: tracks.iter().filter(|(_, t)| t.error.is_some()).count(),
        first_error: tracks.iter().find_map(|(_, t)| t.error.clone()),
        commands_per_move,
        commands_per_move_total: totals,
        idle_commands_per_second: idle_rate,
        cpu_seconds_moves: cpu_moves,
        cpu_seconds_idle: cpu_idle,
        cpu_us_per_switch: per(cpu_moves),
        cpu_us_per_switch_net_of_idle: per(cpu_moves - cpu_idle),
        bytes_per_switch,
        state_bytes_small_deck: small,
        state_bytes_big_deck_lobby: big_lobby,
        state_bytes_big_deck_question: big_question,
        big_deck: ev.big_deck,
        poll,
    })
}

/// The ordinary run with the same followers on a plain poll, one vote per
/// interval on the first instance, as many votes as moves.
async fn compare_poll(
    args: &Args,
    ev: &EventArgs,
    idle_cpu: f64,
) -> anyhow::Result<PollComparison> {
    let mut poll_args = args.clone();
    poll_args.mode = None;
    poll_args.rate = Some(1.0 / ev.interval.as_secs_f64());
    poll_args.voters = 1;
    poll_args.duration = ev.interval * ev.moves as u32;
    poll_args.vote_urls = vec![args.urls[0].clone()];
    poll_args.no_votes = false;
    poll_args.hold = Duration::ZERO;
    poll_args.after_leave = None;
    poll_args.poll_ids.clear();
    poll_args.polls = 1;
    eprintln!(
        "plain poll: the same followers, one vote per {:?}",
        ev.interval
    );
    let r = crate::run(&poll_args).await?;
    let deliveries: u64 = r.transports.values().map(|t| t.deliveries).sum();
    let cpu = r
        .server
        .as_ref()
        .map_or(0.0, |s| s.cpu_seconds_while_voting);
    let per = |x: f64| {
        if deliveries == 0 {
            0.0
        } else {
            x * 1e6 / deliveries as f64
        }
    };
    Ok(PollComparison {
        votes: r.votes.accepted,
        deliveries,
        delivery: r
            .transports
            .iter()
            .map(|(t, x)| (*t, x.delivery_latency.clone()))
            .collect(),
        cpu_seconds: cpu,
        cpu_us_per_delivery: per(cpu),
        cpu_us_per_delivery_net_of_idle: per(cpu - idle_cpu),
        converged: r.converged,
    })
}

fn print(r: &EventReport) {
    let (n, mix) = mix(&r.followers);
    println!(
        "event: {n} followers ({mix}) over {} instance(s), {} connected; {} moves {:.1} s apart",
        r.instances, r.connected, r.moves, r.interval_seconds
    );
    let l = latency;
    println!("move 200 reply: {}", l(&r.move_ack));
    print_delivery(
        "switch (move 200 → follower has the new current)",
        &r.switch,
        &r.switch_by_transport,
        &r.bytes_per_switch,
        "switch",
    );
    println!(
        "state messages per switch: {:.2} (after each follower's first)",
        r.states_per_switch
    );
    println!(
        "switches delivered: {} of {}; followers that missed a move: {} ({} values missed, {} regressions); {} failed",
        r.switches_delivered,
        n * r.moves,
        r.followers_missing_a_move,
        r.missed_values,
        r.regressions,
        r.failed
    );
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
    print_commands(
        "move",
        &r.commands_per_move,
        &r.commands_per_move_total,
        &r.idle_commands_per_second,
    );
    println!(
        "server CPU: {:.2} s over the moves, {:.2} s over as long idle; {:.1} µs per switch ({:.1} µs net of idle)",
        r.cpu_seconds_moves,
        r.cpu_seconds_idle,
        r.cpu_us_per_switch,
        r.cpu_us_per_switch_net_of_idle
    );
    if let Some(p) = &r.poll {
        println!(
            "plain poll, same followers, {} votes: {} deliveries, {:.2} CPU s, {:.1} µs per delivery ({:.1} µs net of idle); converged: {}",
            p.votes,
            p.deliveries,
            p.cpu_seconds,
            p.cpu_us_per_delivery,
            p.cpu_us_per_delivery_net_of_idle,
            if p.converged { "yes" } else { "NO" }
        );
        for (t, s) in &p.delivery {
            println!("  {t:<9} vote 200 → follower: {}", l(s));
        }
        if p.cpu_us_per_delivery > 0.0 {
            println!(
                "switch / poll delivery CPU: {:.2}× ({:.2}× net of idle)",
                r.cpu_us_per_switch / p.cpu_us_per_delivery,
                r.cpu_us_per_switch_net_of_idle / p.cpu_us_per_delivery_net_of_idle.max(1e-9)
            );
        }
    }
    println!(
        "state message: {} bytes with {} questions; {} bytes with {} questions in the lobby, {} on a question",
        r.state_bytes_small_deck,
        r.moves,
        r.state_bytes_big_deck_lobby,
        r.big_deck,
        r.state_bytes_big_deck_question
    );
}

#[cfg(test)]
mod tests {
    use super::{current_of, cursor_of, sse_state};

    #[test]
    fn fields_are_read_from_the_head_of_a_state() {
        let s = br#"{"code":"123456","current":3,"cursor":"7.12","id":"x","questions":[],"now":{"version":5}}"#;
        assert_eq!(current_of(s), Some(3));
        assert_eq!(cursor_of(s).as_deref(), Some("7.12"));
        assert_eq!(current_of(br#"{"current":null,"cursor":"1.0"}"#), Some(-1));
        let block = b"event: state\nid: 1.0\ndata: {\"current\":null}\n\n";
        assert_eq!(sse_state(block), Some(&b"{\"current\":null}"[..]));
        assert_eq!(sse_state(b": keep-alive\n\n"), None);
    }
}
