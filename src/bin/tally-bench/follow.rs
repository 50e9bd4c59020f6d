//! The four kinds of follower, each on its own connection, each recording
//! when it saw which version.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::nchan;
use crate::net::{self, Counters, Http, Target, version_of};
use crate::stats::{AckTable, Latencies, LocalLatencies};

/// How a follower follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Transport {
    Ws,
    Sse,
    Longpoll,
    Poll,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::Ws,
        Transport::Sse,
        Transport::Longpoll,
        Transport::Poll,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
            Transport::Longpoll => "longpoll",
            Transport::Poll => "poll",
        }
    }
}

/// What all followers of one transport share.
pub struct Shared {
    pub transport: Transport,
    pub counters: Arc<Counters>,
    pub latencies: Arc<Latencies>,
    pub poll_interval: Duration,
    /// Following Nchan's subscriber endpoint instead of tally's API.
    pub nchan: bool,
}

/// Signals common to every follower of the run.
#[derive(Clone)]
pub struct Control {
    /// Followers that have their first state.
    pub ready: Arc<(AtomicUsize, Notify)>,
    /// The version every follower must reach before it stops (set at the end).
    pub target: watch::Receiver<Option<u64>>,
    /// Hard stop.
    pub cancel: CancellationToken,
}

/// One follower's end state.
#[derive(Debug, Default)]
pub struct Outcome {
    pub connected: bool,
    pub deliveries: u64,
    pub last_version: u64,
    pub last_json: Option<Bytes>,
    pub error: Option<String>,
}

/// Tracks versions seen and records delivery latencies.
struct Seen {
    outcome: Outcome,
    local: LocalLatencies,
    acks: Arc<AckTable>,
    ready: Arc<(AtomicUsize, Notify)>,
}

impl Seen {
    /// Handles one results JSON; returns the version now held.
    fn results(&mut self, json: Bytes) -> u64 {
        let Some(version) = version_of(&json) else {
            return self.outcome.last_version;
        };
        if !self.outcome.connected {
            self.outcome.connected = true;
            self.outcome.last_version = version;
            self.outcome.last_json = Some(json);
            self.ready.0.fetch_add(1, Ordering::Relaxed);
            self.ready.1.notify_one();
        } else if version > self.outcome.last_version {
            self.acks
                .delivered(self.outcome.last_version, version, &mut self.local);
            self.outcome.deliveries += 1;
            self.outcome.last_version = version;
            self.outcome.last_json = Some(json);
        }
        self.outcome.last_version
    }
}

fn reached(target: &watch::Receiver<Option<u64>>, version: u64) -> bool {
    target.borrow().is_some_and(|t| version >= t)
}

/// Where and how one follower connects.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    shared: &'a Shared,
    target: &'a Target,
    source: Option<IpAddr>,
    poll_id: &'a str,
    control: &'a Control,
}

/// Runs one follower until it reaches the target version or is cancelled.
pub async fn run(
    shared: Arc<Shared>,
    target_instance: Target,
    source: Option<IpAddr>,
    poll_id: String,
    acks: Arc<AckTable>,
    control: Control,
) -> Outcome {
    let mut seen = Seen {
        outcome: Outcome::default(),
        local: LocalLatencies::new(&shared.latencies),
        acks,
        ready: Arc::clone(&control.ready),
    };
    let ctx = Ctx {
        shared: &shared,
        target: &target_instance,
        source,
        poll_id: &poll_id,
        control: &control,
    };
    let result = match shared.transport {
        Transport::Ws => ws(&ctx, &mut seen).await,
        Transport::Sse => sse(&ctx, &mut seen).await,
        Transport::Longpoll if shared.nchan => nchan_longpoll(&ctx, &mut seen).await,
        Transport::Longpoll => longpoll(&ctx, &mut seen).await,
        Transport::Poll => poll(&ctx, &mut seen).await,
    };
    seen.local.flush();
    if let Err(e) = result {
        seen.outcome.error = Some(format!("{e:#}"));
    }
    seen.outcome
}

async fn ws(ctx: &Ctx<'_>, seen: &mut Seen) -> anyhow::Result<()> {
    let Ctx {
        shared,
        target,
        source,
        poll_id,
        control,
    } = *ctx;
    let stream = net::connect(target, source, &shared.counters).await?;
    let url = if shared.nchan {
        format!("ws://{}{}", target.host, nchan::subscriber_path(poll_id))
    } else {
        format!("ws://{}/api/polls/{poll_id}/ws", target.host)
    };
    // Small buffers: the bench holds tens of thousands of these.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let mut target_rx = control.target.clone();
    loop {
        tokio::select! {
            msg = socket.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let bytes: Bytes = text.into();
                    // Nchan sends the published message as it is.
                    if shared.nchan || bytes.starts_with(br#"{"type":"results""#) {
                        let v = seen.results(bytes);
                        if reached(&target_rx, v) { break; }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("websocket closed by the server"),
            },
            _ = target_rx.changed() => {
                if reached(&target_rx, seen.outcome.last_version) { break; }
            }
            _ = control.cancel.cancelled() => break,
        }
    }
    let _ = socket.close(None).await;
    Ok(())
}

async fn sse(ctx: &Ctx<'_>, seen: &mut Seen) -> anyhow::Result<()> {
    let Ctx {
        shared,
        target,
        source,
        poll_id,
        control,
    } = *ctx;
    let mut http = Http::open(target, source, &shared.counters).await?;
    let path = if shared.nchan {
        nchan::subscriber_path(poll_id)
    } else {
        format!("/api/polls/{poll_id}/events")
    };
    let res = http
        .send(Method::GET, &path, &[("accept", "text/event-stream")], None)
        .await?;
    anyhow::ensure!(
        res.status() == StatusCode::OK,
        "sse status {}",
        res.status()
    );
    let mut body = res.into_body();
    let mut buf = BytesMut::new();
    let mut target_rx = control.target.clone();
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                            let event = buf.split_to(end + 2).freeze();
                            if let Some(json) = sse_results_data(&event) {
                                seen.results(json);
                            }
                        }
                        if reached(&target_rx, seen.outcome.last_version) { break; }
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("sse stream ended"),
            },
            _ = target_rx.changed() => {
                if reached(&target_rx, seen.outcome.last_version) { break; }
            }
            _ = control.cancel.cancelled() => break,
        }
    }
    Ok(())
}

/// The data of an `event: results` block.
fn sse_results_data(event: &Bytes) -> Option<Bytes> {
    let text = std::str::from_utf8(event).ok()?;
    let mut is_results = false;
    let mut data = None;
    for line in text.lines() {
        if line == "event: results" {
            is_results = true;
        } else if let Some(d) = line.strip_prefix("data: ") {
            let start = d.as_ptr() as usize - text.as_ptr() as usize;
            data = Some(event.slice(start..start + d.len()));
        }
    }
    if is_results { data } else { None }
}

/// Opens a follower's connection and reads the poll once: where both
/// polling transports start.
async fn open_and_read(ctx: &Ctx<'_>, seen: &mut Seen) -> anyhow::Result<Http> {
    let mut http = Http::open(ctx.target, ctx.source, &ctx.shared.counters).await?;
    let path = format!("/api/polls/{}", ctx.poll_id);
    let (status, _, body) = http.fetch(Method::GET, &path, &[], None).await?;
    anyhow::ensure!(status == StatusCode::OK, "initial get: {status}");
    seen.results(body);
    Ok(http)
}

async fn longpoll(ctx: &Ctx<'_>, seen: &mut Seen) -> anyhow::Result<()> {
    let (poll_id, control) = (ctx.poll_id, ctx.control);
    let mut http = open_and_read(ctx, seen).await?;
    let mut target_rx = control.target.clone();
    loop {
        if reached(&target_rx, seen.outcome.last_version) {
            break;
        }
        let path = format!(
            "/api/polls/{poll_id}/changes?since={}&timeout=25",
            seen.outcome.last_version
        );
        // The request in flight is never dropped unless the follower is done:
        // hyper closes a connection whose pending response is abandoned, and
        // the next long poll would then fail with "channel closed".
        let fetch = http.fetch(Method::GET, &path, &[], None);
        tokio::pin!(fetch);
        let status_body = loop {
            tokio::select! {
                res = &mut fetch => break res?,
                _ = target_rx.changed() => {
                    if reached(&target_rx, seen.outcome.last_version) {
                        return Ok(());
                    }
                }
                _ = control.cancel.cancelled() => return Ok(()),
            }
        };
        match status_body {
            (StatusCode::OK, _, body) => {
                seen.results(body);
            }
            (StatusCode::NO_CONTENT, _, _) => {}
            (other, _, _) => anyhow::bail!("long poll status {other}"),
        }
    }
    Ok(())
}

/// Nchan's long poll: each reply carries `Last-Modified` and `Etag`, sent
/// back as `If-Modified-Since` and `If-None-Match` to ask for the message
/// after it. The first request, without them, gets the channel's oldest
/// message: the first state.
async fn nchan_longpoll(ctx: &Ctx<'_>, seen: &mut Seen) -> anyhow::Result<()> {
    let control = ctx.control;
    let mut http = Http::open(ctx.target, ctx.source, &ctx.shared.counters).await?;
    let path = nchan::subscriber_path(ctx.poll_id);
    let mut target_rx = control.target.clone();
    let mut cursor: Option<(String, String)> = None;
    loop {
        if seen.outcome.connected && reached(&target_rx, seen.outcome.last_version) {
            break;
        }
        let (status, headers, body) = {
            let ask: Vec<(&str, &str)> = match &cursor {
                Some((modified, etag)) => vec![
                    ("if-modified-since", modified.as_str()),
                    ("if-none-match", etag.as_str()),
                ],
                None => vec![],
            };
            let fetch = http.fetch(Method::GET, &path, &ask, None);
            tokio::pin!(fetch);
            loop {
                tokio::select! {
                    res = &mut fetch => break res?,
                    _ = target_rx.changed() => {
                        if reached(&target_rx, seen.outcome.last_version) {
                            return Ok(());
                        }
                    }
                    _ = control.cancel.cancelled() => return Ok(()),
                }
            }
        };
        match status {
            StatusCode::OK => {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                        .unwrap_or_default()
                };
                cursor = Some((header("last-modified"), header("etag")));
                seen.results(body);
            }
            // A subscriber timeout or an expired message id: ask again.
            StatusCode::NOT_MODIFIED | StatusCode::NO_CONTENT | StatusCode::REQUEST_TIMEOUT => {}
            other => anyhow::bail!("nchan long poll status {other}"),
        }
    }
    Ok(())
}

async fn poll(ctx: &Ctx<'_>, seen: &mut Seen) -> anyhow::Result<()> {
    let (shared, poll_id, control) = (ctx.shared, ctx.poll_id, ctx.control);
    let mut http = open_and_read(ctx, seen).await?;
    let path = format!("/api/polls/{poll_id}");
    // Start at a random phase so pollers do not all ask at once.
    let phase = shared.poll_interval.mul_f64(rand::random::<f64>());
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + phase, shared.poll_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut target_rx = control.target.clone();
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let etag = format!("\"{}\"", seen.outcome.last_version);
                let (status, _, body) = http
                    .fetch(Method::GET, &path, &[("if-none-match", &etag)], None)
                    .await?;
                match status {
                    StatusCode::OK => { seen.results(body); }
                    StatusCode::NOT_MODIFIED => {}
                    other => anyhow::bail!("poll status {other}"),
                }
                if reached(&target_rx, seen.outcome.last_version) { break; }
            }
            _ = target_rx.changed() => {
                if reached(&target_rx, seen.outcome.last_version) { break; }
            }
            _ = control.cancel.cancelled() => break,
        }
    }
    Ok(())
}
