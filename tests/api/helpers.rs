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

/// The bound on starting a whole program (a browser) on a loaded machine:
/// a cold Chromium launch beside a running suite can take longer than
/// [`WAIT`] on two cores.
pub const START_WAIT: Duration = Duration::from_secs(30);

/// Awaits `fut` for at most [`WAIT`], failing the test with `what` otherwise.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    within_for(WAIT, what, fut).await
}

/// [`within`] with another bound.
pub async fn within_for<T>(
    bound: Duration,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> T {
    tokio::time::timeout(bound, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {bound:?}: {what}"))
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

/// A free TCP port on loopback for a server a test starts later.
///
/// A port from `bind(0)` comes from the kernel's ephemeral range, which
/// outgoing connections draw from too: between "released here" and "bound by
/// redis-server" any client socket of a busy test run can take it (CI saw
/// exactly that). So ports come from below the ephemeral range (Linux's
/// default starts at 32768), each handed out once per process, starting at
/// an offset from the pid so that test binaries running side by side do not
/// walk the same sequence, and each checked free by binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 12_000;
    const SPAN: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() * 977) % SPAN;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + step) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN)
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
                self.fail_if_exited();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Fails at once, with the server's own log, when `redis-server` has
    /// already exited: waiting out the timeout would only hide why.
    fn fail_if_exited(&self) {
        let mut guard = self.child.lock().unwrap();
        let Some(child) = guard.as_mut() else { return };
        if let Ok(Some(status)) = child.try_wait() {
            let log =
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
            panic!(
                "redis-server on port {} exited ({status}) before answering PING; its log:\n{log}",
                self.port
            );
        }
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

    /// A fresh connection for assertions and fault injection. Its replies
    /// may take up to [`WAIT`]: redis-rs's default of 500 ms fails a
    /// loaded test run (3,000 followers on two cores) on a correct answer
    /// that was merely slow.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).expect("redis url");
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(WAIT))
            .set_response_timeout(Some(WAIT));
        within(
            "connect to test redis",
            client.get_multiplexed_async_connection_with_config(&config),
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
    spawn_redis_server(port, dir, aof)
}

/// A private `redis-server` on loopback `port`, no snapshots, logging to
/// `dir/redis.log`, DEBUG allowed from loopback, with `extra` arguments
/// (persistence, cluster mode).
pub fn spawn_redis_server(port: u16, dir: &Path, extra: &[&str]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
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
    /// A Redis Cluster (tests/api/cluster): its seed nodes and the key
    /// prefix of this test, so tests can share one cluster.
    Cluster {
        seeds: Vec<String>,
        prefix: String,
    },
}

impl Backend {
    /// A Redis backend on a new private server.
    pub async fn redis() -> Self {
        Backend::Redis(TestRedis::start().await)
    }

    /// The prefix the store's keys have: `tally` on one Redis, the test's
    /// own on a cluster; `None` in memory.
    pub fn key_prefix(&self) -> Option<String> {
        match self {
            Backend::Memory => None,
            Backend::Redis(_) => Some(Config::for_tests().redis_prefix),
            Backend::Cluster { prefix, .. } => Some(prefix.clone()),
        }
    }

    /// A connection to the Redis behind this backend (one server or the
    /// whole cluster), for assertions on the keys; `None` in memory.
    pub async fn store_conn(&self) -> Option<StoreConn> {
        match self {
            Backend::Memory => None,
            Backend::Redis(redis) => Some(StoreConn::Single(redis.conn().await)),
            Backend::Cluster { seeds, .. } => {
                Some(StoreConn::Cluster(cluster_conn(seeds.clone()).await))
            }
        }
    }

    pub fn config(&self) -> Config {
        let mut config = Config::for_tests();
        match self {
            Backend::Memory => {}
            Backend::Redis(r) => config.redis_url = Some(r.url()),
            Backend::Cluster { seeds, prefix } => {
                config.redis_cluster = seeds.clone();
                config.redis_prefix = prefix.clone();
            }
        }
        config
    }
}

/// A connection to the Redis Cluster of `seeds`, for assertions.
pub async fn cluster_conn(seeds: Vec<String>) -> redis::cluster_async::ClusterConnection {
    let client = redis::cluster::ClusterClient::new(seeds).expect("cluster client");
    within("connect to the test cluster", client.get_async_connection())
        .await
        .expect("connect to the test cluster")
}

/// A connection to one Redis or to a whole cluster (which routes each
/// command by its key's slot, and `KEYS` to every master), so an assertion
/// on keys is written once for both.
pub enum StoreConn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for StoreConn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            StoreConn::Single(c) => c.req_packed_command(cmd),
            StoreConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            StoreConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            StoreConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            StoreConn::Single(c) => c.get_db(),
            StoreConn::Cluster(c) => c.get_db(),
        }
    }
}

/// A running instance and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The instance's hub, to wait on its followers. (Not the whole state:
    /// holding that would keep the instance's Redis connections open after
    /// it stops.)
    pub hub: Arc<tally::hub::Hub>,
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
    let hub = Arc::clone(app.state().service.hub());
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        hub,
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

    /// Creates a listed poll and returns its results and admin token.
    pub async fn create_poll(&self, options: &[&str], vote_limit: &str) -> (Value, String) {
        let body = json!({"question": "Which?", "options": options, "vote_limit": vote_limit,
                          "listed": true});
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

/// `mod $module` with one `#[tokio::test]` per named behaviour, each run
/// against `$backend`; the building block of the two macros below.
macro_rules! backend_tests {
    ($module:ident, $backend:expr, $($name:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($backend).await;
                }
            )+
        }
    };
}

/// Generates `mod memory`, `mod redis` and `mod cluster_backend`, each with
/// one `#[tokio::test]` per named behaviour, so every behaviour runs in
/// memory, on one Redis and on the process's shared Redis Cluster (under a
/// key prefix of its own: `TestCluster::shared().backend()` in
/// tests/api/cluster/harness.rs; the first test forms the cluster):
/// `both_backends!(creates_a_poll, …)` where `async fn creates_a_poll(backend: Backend)`.
/// Filter with `cargo test --test api memory`, `… redis` or `… cluster`.
/// (The name stayed when the cluster joined.) A behaviour that pokes Redis
/// itself uses [`Backend::store_conn`] and [`Backend::key_prefix`], which
/// serve both Redis backends.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        backend_tests!(memory, $crate::helpers::Backend::Memory, $($name),+);
        backend_tests!(redis, $crate::helpers::Backend::redis().await, $($name),+);
        backend_tests!(
            cluster_backend,
            $crate::cluster::harness::TestCluster::shared().backend(),
            $($name),+
        );
    };
}

/// Like [`both_backends!`] for behaviours of one instance that do not
/// depend on the store (shutdown, frame limits): `mod memory_only`, which
/// the `memory` filter also selects.
macro_rules! memory_only {
    ($($name:ident),+ $(,)?) => {
        backend_tests!(memory_only, $crate::helpers::Backend::Memory, $($name),+);
    };
}

/// Sends a request built with `client`, bounded.
pub async fn send(what: &str, req: reqwest::RequestBuilder) -> reqwest::Response {
    within(what, req.send())
        .await
        .unwrap_or_else(|e| panic!("{what}: request failed: {e}"))
}

/// The body of a response as JSON, bounded.
pub async fn json_of(res: reqwest::Response) -> Value {
    within("response body", res.json::<Value>())
        .await
        .expect("a JSON body")
}

/// Asserts a response is the contract's error: `status`, `code`, the
/// instance header, and a body that is exactly `{"error":{"code","message"}}`.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) {
    let got = res.status().as_u16();
    assert!(
        res.headers().contains_key("x-tally-instance"),
        "error {code} without X-Tally-Instance"
    );
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = within("error body", res.text()).await.expect("error body");
    assert_eq!(got, status, "status for {code}; body: {text}");
    assert!(
        ctype.starts_with("application/json"),
        "error content-type {ctype:?}"
    );
    assert_error_body(&text, code);
}

/// Asserts `text` is exactly `{"error":{"code":code,"message":<non-empty>}}`.
pub fn assert_error_body(text: &str, code: &str) {
    let v: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text:?}"));
    let outer = v.as_object().expect("error body is an object");
    assert_eq!(outer.len(), 1, "error body has extra fields: {text}");
    let inner = v["error"].as_object().expect("error.error is an object");
    assert_eq!(inner.len(), 2, "error object has extra fields: {text}");
    assert_eq!(v["error"]["code"], code, "error code in {text}");
    let message = v["error"]["message"].as_str().expect("message is a string");
    assert!(!message.is_empty(), "empty error message");
}

/// The `Origin` a browser on the app's own page would send.
pub fn same_origin(app: &TestApp) -> String {
    format!("http://{}", app.addr)
}

impl TestApp {
    /// `GET path`, bounded.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        send(path, self.client.get(self.url(path))).await
    }

    /// `POST path` with a JSON body, bounded.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        send(path, self.client.post(self.url(path)).json(body)).await
    }

    /// The current results of a poll (asserting 200).
    pub async fn results(&self, id: &str) -> Value {
        let res = self.get(&format!("/api/polls/{id}")).await;
        assert_eq!(res.status(), 200, "get poll {id}");
        json_of(res).await
    }

    /// `POST /api/polls/{id}/close` with an optional bearer token.
    pub async fn close_poll(&self, id: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(&format!("/api/polls/{id}/close")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        send("close poll", req).await
    }

    /// `DELETE /api/polls/{id}` with an optional bearer token.
    pub async fn delete_poll(&self, id: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.delete(self.url(&format!("/api/polls/{id}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        send("delete poll", req).await
    }

    /// Opens a WebSocket on a poll.
    pub async fn ws(&self, id: &str) -> WsClient {
        WsClient::connect(&self.ws_url(&format!("/api/polls/{id}/ws"))).await
    }

    /// Opens an SSE stream on a poll.
    pub async fn sse(&self, id: &str, last_event_id: Option<u64>) -> SseClient {
        SseClient::connect(&self.url(&format!("/api/polls/{id}/events")), last_event_id).await
    }

    /// Waits until this instance's hub has (or no longer has) a local
    /// follower of `id` — how a test knows a long poll is really waiting.
    pub async fn wait_followed(&self, id: &str, followed: bool) {
        let id = tally::poll::PollId::parse(id).expect("valid id");
        within("hub follower state", async {
            while self.hub.is_followed(&id) != followed {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }

    /// Waits for the instance to finish after shutdown was triggered.
    pub async fn wait_stopped(&mut self) {
        if let Some(server) = self.server.take() {
            within("instance to shut down", server)
                .await
                .expect("server task")
                .expect("server result");
        }
    }
}

/// Casts `k` concurrent votes on an unlimited poll with `options` options
/// (vote `i` goes to option `i % options`); returns the expected counts.
pub async fn cast_concurrent_votes(app: &TestApp, id: &str, k: usize, options: usize) -> Vec<u64> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..k {
        let (client, base, id) = (app.client.clone(), app.base.clone(), id.to_owned());
        tasks
            .spawn(async move { vote_with(&client, &base, &id, (i % options) as u32, None).await });
    }
    within("concurrent votes", async {
        while let Some(joined) = tasks.join_next().await {
            let (status, body) = joined.expect("vote task");
            assert_eq!(status, 200, "concurrent vote: {body}");
        }
    })
    .await;
    let mut expected = vec![0u64; options];
    for i in 0..k {
        expected[i % options] += 1;
    }
    expected
}

/// Asserts the versions a follower saw strictly increase.
pub fn assert_strictly_increasing(versions: &[u64]) {
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions not strictly increasing: {versions:?}"
    );
}

/// The version of a results object.
pub fn version(results: &Value) -> u64 {
    results["version"].as_u64().expect("version")
}

/// What ended a WebSocket, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum WsEnd {
    /// A close frame with this code.
    Close(u16),
    /// The connection ended without a close frame.
    Dropped,
}

impl WsClient {
    /// Connects with a prepared handshake request (extra headers); returns
    /// the handshake response's headers too.
    pub async fn connect_request(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<
        (
            Self,
            tokio_tungstenite::tungstenite::handshake::client::Response,
        ),
        tokio_tungstenite::tungstenite::Error,
    > {
        let (stream, response) = within(
            "websocket connect",
            tokio_tungstenite::connect_async(request),
        )
        .await?;
        Ok((Self { stream }, response))
    }

    /// A handshake request for `url` with extra headers.
    pub fn request(
        url: &str,
        headers: &[(&str, &str)],
    ) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().expect("ws request");
        for (k, v) in headers {
            req.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        req
    }

    /// The next results push, skipping other messages.
    pub async fn next_results(&mut self) -> Value {
        loop {
            let msg = self.next_json().await.expect("socket open");
            if msg["type"] == "results" {
                return msg;
            }
        }
    }

    /// Reads until the socket ends; how it ended.
    pub async fn end(&mut self) -> WsEnd {
        within("websocket end", async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Close(frame))) => {
                        return WsEnd::Close(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return WsEnd::Dropped,
                }
            }
        })
        .await
    }

    pub async fn send_message(&mut self, msg: Message) {
        within("websocket send", self.stream.send(msg))
            .await
            .expect("websocket send");
    }
}

/// One step of an SSE stream, for tests that care how it ends.
#[derive(Debug)]
pub enum SseStep {
    Event(eventsource_stream::Event),
    /// The server ended the response cleanly.
    End,
    /// The stream broke.
    Error(String),
}

impl SseClient {
    /// The next event, or how the stream ended.
    pub async fn step(&mut self) -> SseStep {
        within("sse step", async {
            loop {
                match self.events.next().await {
                    None => return SseStep::End,
                    Some(Err(e)) => return SseStep::Error(e.to_string()),
                    Some(Ok(ev)) if ev.event == "message" && ev.data.is_empty() => continue,
                    Some(Ok(ev)) => return SseStep::Event(ev),
                }
            }
        })
        .await
    }

    /// The next `results` event's data, asserting its `id` is its version.
    pub async fn next_results(&mut self) -> Value {
        let ev = self.next_event().await.expect("sse stream open");
        assert_eq!(ev.event, "results", "event type");
        let data: Value = serde_json::from_str(&ev.data).expect("results JSON");
        assert_eq!(ev.id, version(&data).to_string(), "SSE id is the version");
        data
    }
}

/// A raw HTTP/1.1 connection, for what clients hide: `Expect: 100-continue`,
/// and WebSocket peers that never answer pings.
pub struct RawConn {
    pub stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = within("tcp connect", tokio::net::TcpStream::connect(addr))
            .await
            .expect("tcp connect");
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        within("raw write", self.stream.write_all(bytes))
            .await
            .expect("raw write");
    }

    /// Reads until `needle` appears; returns everything before and
    /// including it (the rest stays buffered).
    pub async fn read_until(&mut self, needle: &[u8]) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        within("raw read", async {
            loop {
                if let Some(pos) = self.buf.windows(needle.len()).position(|w| w == needle) {
                    let rest = self.buf.split_off(pos + needle.len());
                    return std::mem::replace(&mut self.buf, rest);
                }
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).await.expect("raw read");
                assert!(n > 0, "connection closed before {needle:?}");
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
    }

    /// Reads everything until the peer closes; returns it all.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        within("raw read to end", async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return std::mem::take(&mut self.buf),
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
    }
}

/// The opcodes of the unmasked (server → client) WebSocket frames in `bytes`.
pub fn server_frame_opcodes(mut bytes: &[u8]) -> Vec<u8> {
    let mut opcodes = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, header) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 if bytes.len() >= 10 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n if n < 126 => (n as usize, 2),
            _ => break,
        };
        opcodes.push(opcode);
        bytes = &bytes[(header + len).min(bytes.len())..];
    }
    opcodes
}

impl SseClient {
    /// Connects with a raw `Last-Event-ID` value (e.g. one that is not a number).
    pub async fn connect_with_header(url: &str, last_event_id: &str) -> Self {
        use eventsource_stream::Eventsource;
        let req = client().get(url).header("Last-Event-ID", last_event_id);
        let res = within("sse connect", req.send())
            .await
            .expect("sse request");
        assert_eq!(res.status(), 200, "sse status");
        Self {
            events: Box::pin(res.bytes_stream().eventsource()),
        }
    }
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

/// `n` instances named app0, app1, … on one backend, each ready.
pub async fn ready_instances(backend: &Backend, n: usize) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for i in 0..n {
        let app = spawn_app_with(backend, |c| c.instance_id = Some(format!("app{i}"))).await;
        wait_until_ready(&app).await;
        apps.push(app);
    }
    apps
}

impl TestRedis {
    /// A poll's counts (in option order) and version as Redis holds them:
    /// the truth every follower and every acknowledged vote is checked
    /// against.
    pub async fn tally(&self, id: &str) -> (Vec<u64>, u64) {
        tally_over(&mut self.conn().await, id).await
    }
}

/// A poll's counts (in option order) and version, read over `conn`.
pub async fn tally_over(conn: &mut redis::aio::MultiplexedConnection, id: &str) -> (Vec<u64>, u64) {
    use redis::AsyncCommands;
    let votes: std::collections::HashMap<String, u64> = conn
        .hgetall(format!("tally:poll:{{{id}}}:votes"))
        .await
        .expect("HGETALL votes");
    let version: u64 = conn
        .get(format!("tally:poll:{{{id}}}:version"))
        .await
        .expect("GET version");
    let mut counts = vec![0; votes.len()];
    for (option, n) in votes {
        counts[option.parse::<usize>().expect("option index")] = n;
    }
    (counts, version)
}
