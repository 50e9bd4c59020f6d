//! An instance cut off from Redis by the network while its process lives,
//! and a slow link to Redis. `redis-server` runs in its own network
//! namespace, reached over veth pairs (iproute2); the cut is the host end
//! of one veth set down, so packets are lost rather than refused — unlike
//! a killed Redis (`redis_faults.rs`), nothing tells the instance the
//! peer is gone. The delay is `tc netem delay` on the link when the kernel
//! has `sch_netem`, else a userspace proxy on the host that holds every
//! chunk for the same time.
//!
//! Needs root (network namespaces). Without it each test says so on
//! stderr and returns; CI runs as root, so there they run for real.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;
use crate::redis_faults::{sse_until, ws_until};

/// Runs `ip`/`tc` with `args`; returns whether it succeeded and its stderr.
fn run(program: &str, args: &[&str]) -> (bool, String) {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// Runs `ip`/`tc` with `args`, failing the test if it fails.
fn must(program: &str, args: &[&str]) {
    let (ok, err) = run(program, args);
    assert!(ok, "{program} {}: {err}", args.join(" "));
}

/// Why network namespaces cannot be used here, if they cannot.
fn missing_capability() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        return Some("not root (network namespaces need CAP_NET_ADMIN)".into());
    }
    if !run("ip", &["-V"]).0 {
        return Some("iproute2 (`ip`) is not installed".into());
    }
    None
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// A names-unique-per-test network namespace holding a `redis-server`,
/// reached from the host over `links` veth pairs (one /30 each). Dropping
/// it kills Redis and deletes the namespace and the veths.
struct NetLab {
    ns: String,
    /// Host-side veth names, one per link.
    host_ifs: Vec<String>,
    /// Redis's address on each link.
    redis_ips: Vec<String>,
    /// The host's address on each link.
    host_ips: Vec<String>,
    redis: Option<Child>,
    _dir: tempfile::TempDir,
}

static LABS: AtomicUsize = AtomicUsize::new(0);

impl NetLab {
    /// Builds the namespace, or returns `None` (after saying why on stderr)
    /// when this machine cannot.
    async fn start(test: &str, links: usize) -> Option<Self> {
        if let Some(why) = missing_capability() {
            eprintln!("SKIPPED {test}: {why}; run as root to test network cuts");
            return None;
        }
        let pid = std::process::id();
        let n = LABS.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{:x}{n}", pid & 0xff_ffff);
        let ns = format!("tally-cut-{tag}");
        // A /24 no interface on this host has yet: 10.213.<x>.0.
        let octet = (0..250u32)
            .map(|i| (pid + n as u32 * 37 + i) % 250 + 1)
            .find(|o| !ip_addrs().contains(&format!("10.213.{o}.")))
            .expect("a free 10.213.x.0/24");
        let mut lab = NetLab {
            ns: ns.clone(),
            host_ifs: Vec::new(),
            redis_ips: Vec::new(),
            host_ips: Vec::new(),
            redis: None,
            _dir: tempfile::tempdir().expect("temp dir"),
        };
        let (ok, err) = run("ip", &["netns", "add", &ns]);
        if !ok {
            eprintln!("SKIPPED {test}: `ip netns add` failed: {err}");
            return None;
        }
        for i in 0..links {
            let (host, peer) = (format!("vc{tag}{i}h"), format!("vc{tag}{i}n"));
            let (host_ip, peer_ip) = (
                format!("10.213.{octet}.{}", 4 * i + 1),
                format!("10.213.{octet}.{}", 4 * i + 2),
            );
            must(
                "ip",
                &["link", "add", &host, "type", "veth", "peer", "name", &peer],
            );
            lab.host_ifs.push(host.clone());
            must("ip", &["link", "set", &peer, "netns", &ns]);
            must(
                "ip",
                &["addr", "add", &format!("{host_ip}/30"), "dev", &host],
            );
            must("ip", &["link", "set", &host, "up"]);
            let in_ns = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &ns, "ip"];
                all.extend_from_slice(args);
                must("ip", &all);
            };
            in_ns(&["addr", "add", &format!("{peer_ip}/30"), "dev", &peer]);
            in_ns(&["link", "set", &peer, "up"]);
            lab.redis_ips.push(peer_ip);
            lab.host_ips.push(host_ip);
        }
        must(
            "ip",
            &["netns", "exec", &ns, "ip", "link", "set", "lo", "up"],
        );
        let redis = Command::new("ip")
            .args(["netns", "exec", &ns, "redis-server"])
            .args([
                "--port",
                "6379",
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
            ])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(lab._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server in the namespace");
        lab.redis = Some(redis);
        let url = lab.url(0);
        within("redis-server in the namespace to answer PING", async {
            loop {
                if let Ok(client) = redis::Client::open(url.as_str())
                    && let Ok(Ok(mut conn)) = tokio::time::timeout(
                        Duration::from_millis(500),
                        client.get_multiplexed_async_connection(),
                    )
                    .await
                    && redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        Some(lab)
    }

    /// Redis's URL over link `i`.
    fn url(&self, i: usize) -> String {
        format!("redis://{}:6379/", self.redis_ips[i])
    }

    /// Cuts link `i`: its host end goes down, packets on it are lost.
    fn cut(&self, i: usize) {
        must("ip", &["link", "set", &self.host_ifs[i], "down"]);
    }

    /// Heals link `i`.
    fn heal(&self, i: usize) {
        must("ip", &["link", "set", &self.host_ifs[i], "up"]);
    }

    /// A connection over link `i`, for assertions.
    async fn conn(&self, i: usize) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url(i)).expect("redis url");
        within(
            "connect to namespace redis",
            client.get_multiplexed_async_connection(),
        )
        .await
        .expect("connect to namespace redis")
    }

    /// A poll's counts and version as Redis holds them, read over link `i`.
    async fn tally(&self, i: usize, id: &str) -> (Vec<u64>, u64) {
        tally_over(&mut self.conn(i).await, id).await
    }
}

/// Kills, in Redis, the pub/sub connections that come from `host_ip`;
/// returns how many.
async fn kill_subscribers_from(
    conn: &mut redis::aio::MultiplexedConnection,
    host_ip: &str,
) -> usize {
    let mut killed = 0;
    for c in redis_clients(conn).await {
        let from_host = c
            .get("addr")
            .is_some_and(|a| a.starts_with(&format!("{host_ip}:")));
        let subscribed = ["sub", "psub", "ssub"]
            .iter()
            .any(|k| c.get(*k).is_some_and(|n| n != "0"));
        if from_host && subscribed {
            let _: () = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(&c["id"])
                .query_async(conn)
                .await
                .expect("CLIENT KILL");
            killed += 1;
        }
    }
    killed
}

fn ip_addrs() -> String {
    Command::new("ip")
        .args(["-o", "addr"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl Drop for NetLab {
    fn drop(&mut self) {
        if let Some(mut redis) = self.redis.take() {
            let _ = redis.kill();
            let _ = redis.wait();
        }
        for host in &self.host_ifs {
            // Deleting one end deletes its peer.
            let _ = run("ip", &["link", "del", host]);
        }
        let _ = run("ip", &["netns", "del", &self.ns]);
    }
}

/// One vote with `key`: its status, error code and how long it took.
async fn timed_vote(base: &str, id: &str, option: u32, key: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let res = client()
        .post(format!("{base}/api/polls/{id}/votes"))
        .header("Idempotency-Key", key)
        .json(&json!({"option": option}))
        .send()
        .await
        .expect("vote request");
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].clone(), started.elapsed())
}

/// The cut: `/readyz` 503 within 3 s, votes 503 `store_unavailable` within
/// the Redis timeout, followers stay connected; votes on an instance whose
/// link still works go on. On heal: ready again, the cut instance's
/// followers (the same connections) catch up on the votes made elsewhere
/// during the cut, and no acknowledged vote is lost — the refused ones,
/// retried with their keys, count once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_from_redis_goes_unready_fails_fast_and_resyncs_on_heal() {
    const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
    const REFUSED: usize = 10;
    let Some(lab) = NetLab::start("network cut", 2).await else {
        return;
    };
    let cut = spawn_app_with(&Backend::Memory, |c| {
        c.redis_url = Some(lab.url(0));
        c.redis_timeout = REDIS_TIMEOUT;
        c.instance_id = Some("cut".into());
    })
    .await;
    let other = spawn_app_with(&Backend::Memory, |c| {
        c.redis_url = Some(lab.url(1));
        c.redis_timeout = REDIS_TIMEOUT;
        c.instance_id = Some("other".into());
    })
    .await;
    wait_until_ready(&cut).await;
    wait_until_ready(&other).await;
    let (poll, _) = cut.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    let pid = tally::poll::PollId::parse(&id).unwrap();
    // The votes refused during the cut go to a poll nobody follows, so
    // that the followed one changes after the heal only through the resync.
    let (refused, _) = cut.create_poll(&["a", "b"], "unlimited").await;
    let refused_id = refused["id"].as_str().unwrap().to_owned();
    let mut ws = cut.ws(&id).await;
    ws.next_results().await;
    let mut sse = cut.sse(&id, None).await;
    sse.next_results().await;
    let mut acked = 0u64;
    for i in 0..10u32 {
        let app = if i % 2 == 0 { &cut } else { &other };
        let (status, body) = app.vote(&id, i % 2, Some(&format!("before-{i}"))).await;
        assert_eq!(status, 200, "{body}");
        acked += 1;
    }

    lab.cut(0);
    let cut_at = Instant::now();
    let unready_after = within("/readyz to answer 503 after the cut", async {
        while readyz(&cut).await != 503 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cut_at.elapsed()
    })
    .await;
    assert!(
        unready_after < Duration::from_secs(3),
        "/readyz still 200 {unready_after:?} after the cut"
    );

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REFUSED {
        let (base, id) = (cut.base.clone(), refused_id.clone());
        tasks.spawn(async move {
            let got = timed_vote(&base, &id, (i % 2) as u32, &format!("cut-{i}")).await;
            (i, got)
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(joined) = within("votes during the cut", tasks.join_next()).await {
        let (i, (status, code, took)) = joined.unwrap();
        assert_eq!(
            (status, code),
            (503, json!("store_unavailable")),
            "vote {i}"
        );
        assert!(
            took < REDIS_TIMEOUT + Duration::from_millis(700),
            "vote {i} took {took:?} to fail (timeout {REDIS_TIMEOUT:?})"
        );
        slowest = slowest.max(took);
    }
    // Redis drops the cut instance's pub/sub connection (as it would on
    // an output-buffer limit); the close is lost in the cut, so on heal
    // the instance must notice, reconnect and re-read what it missed.
    let killed = kill_subscribers_from(&mut lab.conn(1).await, &lab.host_ips[0]).await;
    assert!(
        killed >= 1,
        "no pub/sub connection of the cut instance in Redis"
    );
    // The other instance's link works: its votes go on during the cut.
    for i in 0..5u32 {
        let (status, body) = other.vote(&id, 1, Some(&format!("elsewhere-{i}"))).await;
        assert_eq!(status, 200, "{body}");
        acked += 1;
    }
    assert_eq!(readyz(&other).await, 200, "the other instance stays ready");
    // The cut instance keeps its followers: nothing was closed.
    assert_eq!(cut.hub.followers(&pid), 2, "followers of the cut instance");
    let cut_for = cut_at.elapsed();

    lab.heal(0);
    let healed_at = Instant::now();
    wait_until_ready(&cut).await;
    let ready_after = healed_at.elapsed();
    // The same connections catch up on what was voted elsewhere meanwhile.
    let (_, version_now) = lab.tally(1, &id).await;
    let (mut ws_last, mut sse_last) = (None, None);
    let ws_seen = within(
        "websocket follower to resync",
        ws_until(&mut ws, &mut ws_last, version_now),
    )
    .await;
    let sse_seen = within(
        "sse follower to resync",
        sse_until(&mut sse, &mut sse_last, version_now),
    )
    .await;
    let resynced_after = healed_at.elapsed();
    let (in_redis, _) = lab.tally(1, &id).await;
    assert_eq!(counts(&ws_seen), in_redis);
    assert_eq!(counts(&sse_seen), in_redis);

    assert_eq!(
        in_redis.iter().sum::<u64>(),
        acked,
        "every acknowledged vote, nothing else"
    );

    // The refused votes, retried with their keys, count once each (one
    // that reached Redis after the heal — its bytes were in the socket's
    // send buffer — is answered from its key).
    for i in 0..REFUSED {
        let (status, body) = cut
            .vote(&refused_id, (i % 2) as u32, Some(&format!("cut-{i}")))
            .await;
        assert_eq!(status, 200, "retry {i}: {body}");
    }
    let (refused_counts, refused_version) = lab.tally(1, &refused_id).await;
    assert_eq!(refused_counts.iter().sum::<u64>(), REFUSED as u64);
    assert_eq!(refused_version, REFUSED as u64);
    // The live path works again on the healed instance.
    let (status, body) = cut.vote(&id, 0, Some("after-heal")).await;
    assert_eq!(status, 200, "{body}");
    let (in_redis, version) = lab.tally(1, &id).await;
    assert_eq!(version, acked + 1);
    assert_eq!(
        counts(&ws_until(&mut ws, &mut ws_last, version).await),
        in_redis
    );
    assert_eq!(
        counts(&sse_until(&mut sse, &mut sse_last, version).await),
        in_redis
    );
    eprintln!(
        "network cut: /readyz 503 {unready_after:?} after the cut, slowest refused vote {slowest:?}, \
         cut for {cut_for:?}; ready {ready_after:?} and followers resynced {resynced_after:?} after the heal"
    );
}

/// A delaying TCP proxy on loopback: every chunk sent towards Redis is
/// written `delay` later, in order (what `netem delay` does
/// to packets, for kernels without `sch_netem`).
async fn delaying_proxy(upstream: String, delay: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (dr, dw) = down.into_split();
            let (ur, uw) = up.into_split();
            // Like netem on the host's end of the link: only what goes to
            // Redis is held, so the delay adds to each round trip once.
            tokio::spawn(pipe(dr, uw, Arc::clone(&delay)));
            tokio::spawn(pipe(ur, dw, Arc::new(AtomicU64::new(0))));
        }
    });
    format!("redis://{addr}/")
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Arc<AtomicU64>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let due = Instant::now() + Duration::from_millis(delay.load(Ordering::Relaxed));
        if tx.send((due, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// The link's added latency: netem on the veth when the kernel has it,
/// else a delaying proxy in front of Redis.
enum Delay {
    Netem(String),
    Proxy(Arc<AtomicU64>),
}

impl Delay {
    fn set(&self, ms: u64) {
        match self {
            Delay::Netem(dev) => must(
                "tc",
                &[
                    "qdisc",
                    "replace",
                    "dev",
                    dev,
                    "root",
                    "netem",
                    "delay",
                    &format!("{ms}ms"),
                ],
            ),
            Delay::Proxy(d) => d.store(ms, Ordering::Relaxed),
        }
    }
}

/// Sends `n` concurrent keyed votes; each must answer 200 or 503
/// `store_unavailable` within `bound`. Returns (acknowledged, slowest).
async fn votes_answer_within(
    base: &str,
    id: &str,
    tag: &str,
    n: usize,
    bound: Duration,
) -> (u64, Duration) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (base, id, key) = (base.to_owned(), id.to_owned(), format!("{tag}-{i}"));
        tasks.spawn(async move { (i, timed_vote(&base, &id, (i % 2) as u32, &key).await) });
    }
    let (mut ok, mut slowest) = (0, Duration::ZERO);
    while let Some(joined) = within("votes on a slow link", tasks.join_next()).await {
        let (i, (status, code, took)) = joined.unwrap();
        assert!(
            status == 200 || (status, &code) == (503, &json!("store_unavailable")),
            "{tag} vote {i}: {status} {code}"
        );
        assert!(
            took < bound,
            "{tag} vote {i} took {took:?} (bound {bound:?})"
        );
        ok += u64::from(status == 200);
        slowest = slowest.max(took);
    }
    (ok, slowest)
}

/// 300 ms of delay to Redis with `TALLY_REDIS_TIMEOUT=1s`: votes still
/// succeed, each within the timeout. Delay past the timeout (1.5 s): every
/// vote answers 503 within the timeout, none hangs. Delay removed: votes
/// succeed again, and none acknowledged is missing from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_over_a_slow_redis_link_answer_within_the_timeout_or_503() {
    const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
    const N: usize = 20;
    let Some(lab) = NetLab::start("netem delay", 1).await else {
        return;
    };
    let dev = lab.host_ifs[0].clone();
    let (delay, url) = if run(
        "tc",
        &["qdisc", "add", "dev", &dev, "root", "netem", "delay", "0ms"],
    )
    .0
    {
        (Delay::Netem(dev), lab.url(0))
    } else {
        eprintln!(
            "netem delay: this kernel has no sch_netem; delaying through a userspace proxy instead"
        );
        let d = Arc::new(AtomicU64::new(0));
        let url = delaying_proxy(format!("{}:6379", lab.redis_ips[0]), Arc::clone(&d)).await;
        (Delay::Proxy(d), url)
    };
    let app = spawn_app_with(&Backend::Memory, |c| {
        c.redis_url = Some(url);
        c.redis_timeout = REDIS_TIMEOUT;
    })
    .await;
    wait_until_ready(&app).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    let bound = REDIS_TIMEOUT + Duration::from_millis(700);

    delay.set(300);
    let (ok_slow, slowest_slow) = votes_answer_within(&app.base, &id, "slow", N, bound).await;
    assert_eq!(
        ok_slow, N as u64,
        "with 300 ms to Redis every vote still succeeds"
    );
    assert!(
        slowest_slow >= Duration::from_millis(300),
        "the delay did not apply: slowest vote {slowest_slow:?}"
    );

    delay.set(1500);
    let (ok_stuck, slowest_stuck) = votes_answer_within(&app.base, &id, "stuck", N, bound).await;
    assert_eq!(
        ok_stuck, 0,
        "a 1.5 s link cannot answer within the 1 s timeout"
    );

    delay.set(0);
    wait_until_ready(&app).await;
    let (ok_after, _) = votes_answer_within(&app.base, &id, "after", N, bound).await;
    assert_eq!(ok_after, N as u64);
    let (in_redis, _) = lab.tally(0, &id).await;
    let acked = ok_slow + ok_after;
    let total: u64 = in_redis.iter().sum();
    // A timed-out vote may still land when its delayed bytes arrive, so
    // Redis holds at least the acknowledged ones and at most all sent.
    assert!(
        (acked..=acked + N as u64).contains(&total),
        "{total} in Redis, {acked} acknowledged"
    );
    eprintln!(
        "netem delay: 300 ms — {N}/{N} votes ok, slowest {slowest_slow:?}; \
         1.5 s — {N} refused, slowest {slowest_stuck:?}"
    );
}
