//! Real `tally` processes, for what an in-process instance cannot show:
//! signals (SIGTERM drains, SIGKILL loses the process mid-request), the
//! exit status, and panics written to the process's own stderr.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::helpers::*;

/// A `tally` binary running on a free loopback port, killed when dropped.
pub struct TallyProcess {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    pub base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl TallyProcess {
    /// Starts the binary with `env` on top of a quiet test configuration
    /// (embedded store unless `TALLY_REDIS_URL` is given) and waits until
    /// `/readyz` answers 200.
    pub async fn start(env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("tally.log");
        let out = std::fs::File::create(&log).expect("log file");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tally"));
        cmd.env_clear()
            .env("TALLY_LISTEN", addr.to_string())
            .env("TALLY_LOG", "warn")
            // Tests create polls freely from 127.0.0.1; `env` may set it.
            .env("TALLY_CREATE_RATE", "0")
            .env("TALLY_INSTANCE_ID", format!("proc-{}", addr.port()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("start the tally binary");
        let process = Self {
            child,
            addr,
            base: format!("http://{addr}"),
            log,
            _dir: dir,
        };
        process.wait_ready().await;
        process
    }

    async fn wait_ready(&self) {
        let client = client();
        let url = self.url("/readyz");
        within("tally process to become ready", async {
            loop {
                if let Ok(res) = client.get(&url).send().await
                    && res.status() == 200
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("process still running")
    }

    /// Sends a signal by name (`TERM`, `KILL`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits for the process to exit, at most `bound`.
    pub async fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        tokio::time::timeout(bound, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("tally still running {bound:?} after the signal"))
            .expect("wait for tally")
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test if the process logged a panic.
    pub fn assert_no_panic(&self) {
        let log = self.log();
        assert!(!log.contains("panicked"), "tally panicked:\n{log}");
    }

    /// Creates an unlimited poll with `options`; returns its id.
    pub async fn create_poll(&self, options: &[&str]) -> String {
        let body = serde_json::json!({"question": "Which?", "options": options, "vote_limit": "unlimited"});
        let res = send(
            "create poll",
            client().post(self.url("/api/polls")).json(&body),
        )
        .await;
        assert_eq!(res.status(), 201, "create poll");
        json_of(res).await["poll"]["id"]
            .as_str()
            .expect("poll id")
            .to_owned()
    }
}
