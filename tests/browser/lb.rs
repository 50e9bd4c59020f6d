//! A real load balancer for the browser: haproxy on loopback in front of
//! two instances, sending everything to the first while it is up and to
//! the second once the first stops (health checks on `/readyz`, failed
//! connections re-dispatched) — or, round robin, each request to the next.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{TestApp, free_port, within};

/// A running haproxy, killed when dropped.
pub struct Balancer {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

fn config(port: u16, mode: &Mode, first: &TestApp, second: &TestApp) -> String {
    format!(
        "global
    maxconn 256
defaults
    mode http
    timeout connect 1s
    timeout client 90s
    timeout server 90s
    timeout tunnel 90s
    retries 3
    option redispatch 1
{options}frontend web
    bind 127.0.0.1:{port}
    default_backend app
backend app
    balance {balance}
    option httpchk GET /readyz
    default-server check inter 100ms fall 1 rise 2
    server first {first}
    server second {second}
",
        balance = mode.balance,
        options = mode.options,
        first = first.addr,
        second = second.addr,
    )
}

/// How the balancer spreads requests, and the options that go with it.
struct Mode {
    balance: &'static str,
    options: &'static str,
}

impl Balancer {
    /// Starts haproxy in front of `first` and `second` and waits until it
    /// forwards to `first`.
    pub async fn start(first: &TestApp, second: &TestApp) -> Self {
        let mode = Mode {
            balance: "first",
            options: "",
        };
        Self::start_with(&mode, first, second).await
    }

    /// Starts haproxy sending each request (and each WebSocket or SSE
    /// connection) to the next of `first` and `second` in turn, set up for
    /// live streams: `http-no-delay` forwards each small SSE event at once
    /// (without it haproxy holds them back, measured at ~110 ms p50 by the
    /// transport lab), and `abortonclose` ends a stream or long poll on
    /// the instance when its client leaves (without it the instance keeps
    /// it until its next write or its timeout).
    pub async fn start_round_robin(first: &TestApp, second: &TestApp) -> Self {
        let mode = Mode {
            balance: "roundrobin",
            options: "    option http-no-delay\n    option abortonclose\n",
        };
        Self::start_with(&mode, first, second).await
    }

    async fn start_with(mode: &Mode, first: &TestApp, second: &TestApp) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config(port, mode, first, second)).expect("write haproxy.cfg");
        let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("log file");
        let child = Command::new(haproxy())
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start haproxy ({e}); install it: apt-get install -y haproxy")
            });
        let lb = Self { port, child, dir };
        lb.wait_forwarding_to(first).await;
        lb
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_forwarding_to(&self, app: &TestApp) {
        let want = app.url("/healthz");
        let instance = within("instance name", app.client.get(&want).send())
            .await
            .expect("healthz")
            .headers()["x-tally-instance"]
            .clone();
        let client = reqwest::Client::new();
        let url = self.url("/healthz");
        let answered = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(res) = client.get(&url).send().await
                    && res.headers().get("x-tally-instance") == Some(&instance)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let log = std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default();
        assert!(
            answered.is_ok(),
            "haproxy does not forward to {want}:\n{log}"
        );
    }
}

fn haproxy() -> &'static str {
    if std::path::Path::new("/usr/sbin/haproxy").exists() {
        "/usr/sbin/haproxy"
    } else {
        "haproxy"
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
