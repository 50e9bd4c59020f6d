//! A real Redis Cluster for tests: six `redis-server --cluster-enabled yes`
//! on free loopback ports (three masters, three replicas, made by
//! `redis-cli --cluster create`). The behavioural tests share ONE cluster
//! per test process, each under a key prefix of its own; fault tests start
//! their own, so a killed master never disturbs another test.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::helpers::{Backend, free_port, spawn_redis_server};

/// How long a cluster may take to form (or to agree again after a fault).
const FORM: Duration = Duration::from_secs(30);

/// One node of a test cluster.
pub struct Node {
    pub port: u16,
    bus: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Node {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: nothing flushed, like a crash.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again on its ports and its `nodes.conf`, as
    /// a supervisor would: it rejoins the cluster (as a replica, once its
    /// slots were failed over).
    pub fn restart(&self) {
        self.kill();
        *self.child.lock().unwrap() = Some(spawn_node(self.port, self.bus, &self.dir));
    }

    pub fn is_running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }

    /// `redis-cli -p PORT ARGS…`, its output (blocking; for set-up and
    /// fault injection).
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_node(port: u16, bus: u16, dir: &std::path::Path) -> Child {
    let bus = bus.to_string();
    spawn_redis_server(
        port,
        dir,
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &bus,
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            "--appendonly",
            "no",
            // A rejoining replica syncs at once, not after the default 5 s.
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ],
    )
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli runs (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running six-node cluster, torn down when dropped.
pub struct TestCluster {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts six nodes, creates the cluster and waits until every node
    /// says `cluster_state:ok` and every replica is in sync (bounded).
    pub fn start() -> Arc<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<Node> = (0..6)
            .map(|i| {
                let node_dir = dir.path().join(format!("n{i}"));
                std::fs::create_dir_all(&node_dir).expect("node dir");
                let port = free_port();
                // The cluster bus gets a free port of its own (Redis 7's
                // cluster-port) rather than port + 10000, which may be taken.
                let bus = free_port();
                let child = spawn_node(port, bus, &node_dir);
                Node {
                    port,
                    bus,
                    dir: node_dir,
                    child: Mutex::new(Some(child)),
                }
            })
            .collect();
        let cluster = Arc::new(Self { nodes, _dir: dir });
        cluster.until("every node to answer PING", |c| {
            c.nodes.iter().all(|n| n.cli(&["PING"]).trim() == "PONG")
        });
        let addrs: Vec<String> = cluster.nodes.iter().map(Node::addr).collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create").args(&addrs).args([
            "--cluster-replicas",
            "1",
            "--cluster-yes",
        ]);
        let out = create
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.until_healthy();
        cluster
    }

    /// The one cluster this test process shares between behavioural tests.
    pub fn shared() -> Arc<Self> {
        static SHARED: OnceLock<Arc<TestCluster>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| {
            let cluster = TestCluster::start();
            // The process exits without dropping statics: make sure the
            // servers go with it.
            for node in &cluster.nodes {
                if let Some(child) = node.child.lock().unwrap().as_ref() {
                    reap_with_parent(child.id());
                }
            }
            cluster
        }))
    }

    /// Seed URLs for `TALLY_REDIS_CLUSTER`.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(Node::url)
            .collect()
    }

    /// Polls `done` until it holds, for at most [`FORM`].
    pub fn until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(start.elapsed() < FORM, "timed out after {FORM:?}: {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every running node says the cluster is ok, knows every
    /// slot, and every running replica's link to its master is up.
    pub fn until_healthy(&self) {
        self.until("the cluster to be healthy", |c| {
            c.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let info = n.cli(&["CLUSTER", "INFO"]);
                let repl = n.cli(&["INFO", "replication"]);
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && (repl.contains("role:master") || repl.contains("master_link_status:up"))
            })
        });
    }

    /// The node that is master of `key`'s slot now.
    pub fn master_of(&self, key: &str) -> &Node {
        self.find_master_of(key).expect("a master for the slot")
    }

    /// The running node that says it is master of `key`'s slot, if any
    /// does right now (none may during a failover).
    pub fn find_master_of(&self, key: &str) -> Option<&Node> {
        let asker = self.nodes.iter().find(|n| n.is_running())?;
        let slot: u16 = asker
            .cli(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .ok()?;
        self.nodes.iter().filter(|n| n.is_running()).find(|n| {
            n.cli(&["ROLE"]).starts_with("master")
                && n.cli(&["CLUSTER", "NODES"]).lines().any(|line| {
                    line.contains("myself") && line.contains("master") && serves(line, slot)
                })
        })
    }

    /// The replica of `master`.
    pub fn replica_of(&self, master: &Node) -> &Node {
        let id = master.cli(&["CLUSTER", "MYID"]).trim().to_owned();
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .find(|n| {
                n.cli(&["CLUSTER", "NODES"])
                    .lines()
                    .any(|l| l.contains("myself") && l.contains("slave") && l.contains(&id))
            })
            .expect("a replica")
    }

    /// A tally backend on this cluster under a fresh key prefix.
    pub fn backend(self: &Arc<Self>) -> Backend {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        Backend::Cluster {
            seeds: self.seeds(),
            prefix: format!(
                "t{}x{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// A connection to the whole cluster, for assertions.
    pub async fn conn(&self) -> redis::cluster_async::ClusterConnection {
        crate::helpers::cluster_conn(self.seeds()).await
    }
}

/// Whether a `CLUSTER NODES` line lists `slot` among its ranges.
fn serves(line: &str, slot: u16) -> bool {
    line.split_whitespace().skip(8).any(|range| {
        let mut parts = range.split('-');
        match (
            parts.next().and_then(|a| a.parse::<u16>().ok()),
            parts.next(),
        ) {
            (Some(lo), Some(hi)) => hi.parse::<u16>().is_ok_and(|hi| (lo..=hi).contains(&slot)),
            (Some(one), None) => one == slot,
            _ => false,
        }
    })
}

/// A watchdog that SIGKILLs `pid` once this test process is gone.
fn reap_with_parent(pid: u32) {
    let me = std::process::id();
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; kill -9 {pid} 2>/dev/null"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}
