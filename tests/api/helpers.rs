//! Test harness: real instances on `127.0.0.1:0`, a real `redis-server` on
//! a free port, and real HTTP, SSE and WebSocket clients. Every wait is
//! bounded so a hang fails the test instead of stalling CI.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tally::Application;
use tally::config::Config;
use tally::shutdown::Shutdown;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// The bound on any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `fut` for at most [`WAIT`], failing the test with `what` otherwise.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

/// Logs go to the test output only when `TEST_LOG` is set.
pub fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "info".into()))
            .with_test_writer()
            .try_init();
    }
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A private `redis-server` for one test, killed when dropped.
pub struct TestRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: std::sync::Mutex<Option<Child>>,
    /// Whether the server keeps an fsynced append-only file, so a restart
    /// (after a kill) comes back with the data.
    persistent: bool,
}

impl TestRedis {
    /// Starts `redis-server` on a free port and waits until it answers PING.
    pub async fn start() -> Arc<Self> {
        Self::start_with(false).await
    }

    /// Starts one with `--appendonly yes --appendfsync always`: every write
    /// acknowledged before a kill is there after [`Self::restart`].
    pub async fn start_persistent() -> Arc<Self> {
        Self::start_with(true).await
    }

    async fn start_with(persistent: bool) -> Arc<Self> {
        let redis = Arc::new(Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: std::sync::Mutex::new(None),
            persistent,
        });
        redis.launch().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn launch(&self) {
        let child = spawn_redis(self.port, self.dir.path(), self.persistent);
        *self.child.lock().unwrap() = Some(child);
        within("redis-server to answer PING", async {
            loop {
                if self.ping().await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    async fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(Ok(mut conn)) = tokio::time::timeout(
            Duration::from_millis(500),
            client.get_multiplexed_async_connection(),
        )
        .await
        else {
            return false;
        };
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }

    /// Kills the server (SIGKILL: nothing is flushed, like a crash).
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&self) {
        self.kill();
        self.launch().await;
    }

    /// A fresh connection for assertions and fault injection.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).expect("redis url");
        within(
            "connect to test redis",
            client.get_multiplexed_async_connection(),
        )
        .await
        .expect("connect to test redis")
    }
}

fn spawn_redis(port: u16, dir: &Path, persistent: bool) -> Child {
    let aof: &[&str] = if persistent {
        &["--appendonly", "yes", "--appendfsync", "always"]
    } else {
        &["--appendonly", "no"]
    };
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(aof)
        .arg("--dir")
        .arg(dir)
        .args(["--enable-debug-command", "local"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start `redis-server` ({e}); install it, e.g. apt-get install redis-server"
            )
        })
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which store a test instance runs on.
#[derive(Clone)]
pub enum Backend {
    Memory,
    Redis(Arc<TestRedis>),
}

impl Backend {
    /// A Redis backend on a new private server.
    pub async fn redis() -> Self {
        Backend::Redis(TestRedis::start().await)
    }

    pub fn config(&self) -> Config {
        let mut config = Config::for_tests();
        if let Backend::Redis(r) = self {
            config.redis_url = Some(r.url());
        }
        config
    }
}

/// A running instance and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub shutdown: Shutdown,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    pub backend: Backend,
}

/// Starts an instance on `backend` with default test configuration.
pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts an instance after `tweak` adjusts its configuration.
pub async fn spawn_app_with(backend: &Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    init_logging();
    let mut config = backend.config();
    tweak(&mut config);
    let app = within("instance to build", Application::build(config))
        .await
        .expect("instance builds");
    let addr = app.local_addr();
    let shutdown = app.shutdown();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client: client(),
        shutdown,
        server: Some(server),
        backend: backend.clone(),
    }
}

/// An HTTP client with a cookie store (one browser) and bounded requests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(70))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Creates a poll and returns its results and admin token.
    pub async fn create_poll(&self, options: &[&str], vote_limit: &str) -> (Value, String) {
        let body = json!({"question": "Which?", "options": options, "vote_limit": vote_limit});
        let res = within(
            "create poll",
            self.client.post(self.url("/api/polls")).json(&body).send(),
        )
        .await
        .expect("create request");
        assert_eq!(res.status(), 201, "create poll");
        let v: Value = res.json().await.expect("json");
        (
            v["poll"].clone(),
            v["admin_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Votes with this app's client (its cookie); returns status and body.
    pub async fn vote(&self, id: &str, option: u32, key: Option<&str>) -> (u16, Value) {
        vote_with(&self.client, &self.base, id, option, key).await
    }

    /// Triggers shutdown and waits for the instance to finish; returns how
    /// long that took.
    pub async fn stop(&mut self) -> Duration {
        let started = std::time::Instant::now();
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            within("instance to shut down", server)
                .await
                .expect("server task")
                .expect("server result");
        }
        started.elapsed()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Votes through `client` against `base`; returns status and JSON body.
pub async fn vote_with(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    option: u32,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = client
        .post(format!("{base}/api/polls/{id}/votes"))
        .json(&json!({ "option": option }));
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let res = within("vote", req.send()).await.expect("vote request");
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// A WebSocket follower.
pub struct WsClient {
    pub stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsClient {
    pub async fn connect(app_ws_url: &str) -> Self {
        let (stream, _) = within(
            "websocket connect",
            tokio_tungstenite::connect_async(app_ws_url),
        )
        .await
        .expect("websocket handshake");
        Self { stream }
    }

    /// The next text message as JSON (pings and pongs skipped); `None` when
    /// the socket closes.
    pub async fn next_json(&mut self) -> Option<Value> {
        within("websocket message", async {
            loop {
                match self.stream.next().await? {
                    Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => continue,
                }
            }
        })
        .await
    }

    pub async fn send_json(&mut self, v: &Value) {
        within(
            "websocket send",
            self.stream.send(Message::Text(v.to_string().into())),
        )
        .await
        .expect("websocket send");
    }
}

/// An SSE follower over a real HTTP stream.
pub struct SseClient {
    events: std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                    Item = Result<
                        eventsource_stream::Event,
                        eventsource_stream::EventStreamError<reqwest::Error>,
                    >,
                > + Send,
        >,
    >,
}

impl SseClient {
    pub async fn connect(url: &str, last_event_id: Option<u64>) -> Self {
        use eventsource_stream::Eventsource;
        let mut req = client().get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let res = within("sse connect", req.send())
            .await
            .expect("sse request");
        assert_eq!(res.status(), 200, "sse status");
        Self {
            events: Box::pin(res.bytes_stream().eventsource()),
        }
    }

    /// The next event (comments and retry-only events skipped); `None` at end.
    pub async fn next_event(&mut self) -> Option<eventsource_stream::Event> {
        within("sse event", async {
            loop {
                match self.events.next().await? {
                    Ok(ev) if ev.event == "message" && ev.data.is_empty() => continue,
                    Ok(ev) => return Some(ev),
                    Err(_) => return None,
                }
            }
        })
        .await
    }
}

/// Total votes of a results object.
pub fn total(results: &Value) -> u64 {
    results["total"].as_u64().expect("total")
}

/// Votes per option of a results object.
pub fn counts(results: &Value) -> Vec<u64> {
    results["options"]
        .as_array()
        .expect("options")
        .iter()
        .map(|o| o["votes"].as_u64().expect("votes"))
        .collect()
}

/// Waits until the instance answers `/readyz` with 200 (on Redis: the store
/// answers and the bus has subscribed and hears its heartbeat).
pub async fn wait_until_ready(app: &TestApp) {
    within("instance to become ready", async {
        loop {
            if let Ok(res) = app.client.get(app.url("/readyz")).send().await
                && res.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The `/readyz` status right now.
pub async fn readyz(app: &TestApp) -> u16 {
    within("readyz", app.client.get(app.url("/readyz")).send())
        .await
        .expect("readyz request")
        .status()
        .as_u16()
}

/// The clients Redis has right now, one map of `CLIENT LIST` fields each.
pub async fn redis_clients(
    conn: &mut redis::aio::MultiplexedConnection,
) -> Vec<std::collections::HashMap<String, String>> {
    let list: String = within(
        "CLIENT LIST",
        redis::cmd("CLIENT").arg("LIST").query_async(conn),
    )
    .await
    .expect("CLIENT LIST");
    list.lines()
        .map(|line| {
            line.split(' ')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}
