//! Configuration: command-line flags, each with a `TALLY_*` environment
//! variable, so the same binary is configured the same way by hand, in
//! Docker Compose and in Kubernetes.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// An address (a range of one) or a CIDR range.
fn ip_or_range(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR range"))
}

fn duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// Everything an instance can be told at start.
#[derive(Debug, Clone, Parser)]
#[command(name = "tally", version, about = "A live-poll service")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "TALLY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Redis URL (redis://host:port/db); unset runs the embedded in-memory store.
    #[arg(long, env = "TALLY_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Seed nodes of a Redis Cluster (`redis://h1:p1,redis://h2:p2,…`):
    /// selects the cluster backend. Setting it with `TALLY_REDIS_URL` too is
    /// refused at start.
    #[arg(long, env = "TALLY_REDIS_CLUSTER", value_delimiter = ',')]
    pub redis_cluster: Vec<String>,

    /// Replicas that must confirm a vote (`WAIT N`) before it is
    /// acknowledged; 0 acknowledges once the master has it. A vote whose
    /// confirmation does not come within `TALLY_REDIS_TIMEOUT` answers 503.
    #[arg(long, env = "TALLY_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,

    /// Prefix of every Redis key and channel.
    #[arg(long, env = "TALLY_REDIS_PREFIX", default_value = "tally")]
    pub redis_prefix: String,

    /// How long a Redis command may take before the request answers 503.
    #[arg(long, env = "TALLY_REDIS_TIMEOUT", default_value = "1s", value_parser = duration)]
    pub redis_timeout: Duration,

    /// How long a poll with no vote, close or reopen is kept (0 = forever);
    /// every key of it expires together.
    #[arg(long, env = "TALLY_POLL_TTL", default_value = "30d", value_parser = duration)]
    pub poll_ttl: Duration,

    /// How long a vote's Idempotency-Key replays its first outcome.
    #[arg(long, env = "TALLY_IDEMPOTENCY_TTL", default_value = "24h", value_parser = duration)]
    pub idempotency_ttl: Duration,

    /// Name shown in the X-Tally-Instance header (default: the hostname).
    #[arg(long, env = "TALLY_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Create the demo poll `lpl` at start when it is absent.
    #[arg(long, env = "TALLY_DEMO", default_value_t = true, action = ArgAction::Set)]
    pub demo: bool,

    /// Admin token of the demo poll; without it the demo cannot be closed or deleted.
    #[arg(long, env = "TALLY_DEMO_ADMIN_TOKEN", hide_env_values = true)]
    pub demo_admin_token: Option<String>,

    /// Default wait of a long poll (keep it below the load balancer's timeout).
    #[arg(long, env = "TALLY_LONGPOLL_TIMEOUT", default_value = "25s", value_parser = duration)]
    pub longpoll_timeout: Duration,

    /// Extra origins allowed for WebSocket and state-changing requests, comma-separated.
    #[arg(long, env = "TALLY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Who may frame the embed pages (`/polls/{id}/embed`,
    /// `/events/{id}/embed`): their CSP `frame-ancestors`, space- or
    /// comma-separated sources (`*`, `https://course.example.edu`, …).
    /// Every other page may be framed by no one.
    #[arg(long, env = "TALLY_EMBED_ORIGINS", default_value = "*", value_parser = embed_origins)]
    pub embed_origins: String,

    /// Log format: text or json.
    #[arg(long, env = "TALLY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Longest a shutdown may take before remaining connections are dropped.
    #[arg(long, env = "TALLY_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub shutdown_timeout: Duration,

    /// Most concurrent followers (WebSocket, SSE, waiting long polls) per instance.
    #[arg(long, env = "TALLY_MAX_FOLLOWERS", default_value_t = 50_000)]
    pub max_followers: usize,

    /// Most updates per second sent to one WebSocket or SSE follower of a hot
    /// poll (0 = every version); paced followers always end on the newest.
    #[arg(long, env = "TALLY_MAX_UPDATE_RATE", default_value_t = 0)]
    pub max_update_rate: u32,

    /// Votes per second allowed per client address (0 = no limit).
    #[arg(long, env = "TALLY_VOTE_RATE", default_value_t = 0)]
    pub vote_rate: u32,

    /// New polls per minute allowed per client address (0 = no limit), on
    /// the API and the create form alike: one client cannot fill the store.
    #[arg(long, env = "TALLY_CREATE_RATE", default_value_t = 10)]
    pub create_rate: u32,

    /// Failed join-code look-ups per minute allowed per client address
    /// (0 = no limit): six-digit codes cannot be enumerated.
    #[arg(long, env = "TALLY_JOIN_RATE", default_value_t = 30)]
    pub join_rate: u32,

    /// Peers whose X-Forwarded-For is believed (the load balancers): comma-separated
    /// IPs or CIDR ranges, e.g. `10.0.0.5,172.16.0.0/12`.
    #[arg(long, env = "TALLY_TRUSTED_PROXIES", value_delimiter = ',', value_parser = ip_or_range)]
    pub trusted_proxies: Vec<IpNet>,

    /// Longest a client may take to send a request's headers (slowloris guard).
    #[arg(long, env = "TALLY_HEADER_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub header_timeout: Duration,

    /// Interval of WebSocket pings.
    #[arg(long, env = "TALLY_WS_PING_INTERVAL", default_value = "20s", value_parser = duration)]
    pub ws_ping_interval: Duration,

    /// How long a WebSocket peer may leave a ping unanswered.
    #[arg(long, env = "TALLY_WS_PONG_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub ws_pong_timeout: Duration,

    /// How long one WebSocket send may wait on a client that does not read
    /// before that client is dropped (bounds what a stuck reader costs).
    #[arg(long, env = "TALLY_WS_SEND_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub ws_send_timeout: Duration,

    /// Interval of SSE keep-alive comments.
    #[arg(long, env = "TALLY_SSE_KEEPALIVE", default_value = "15s", value_parser = duration)]
    pub sse_keepalive: Duration,

    /// The site's public address (`https://vote.example.com`), for share
    /// links and QR codes; unset: the request's scheme and `Host`.
    #[arg(long, env = "TALLY_PUBLIC_URL", value_parser = public_url)]
    pub public_url: Option<String>,
}

/// An `http(s)://host[:port]` origin without a path, as links are built on it.
/// `frame-ancestors` sources: `*`, `'self'`, or scheme://host[:port]
/// (with `*.` wildcards), nothing that could end the CSP directive.
fn embed_origins(s: &str) -> Result<String, String> {
    let sources: Vec<&str> = s
        .split([',', ' '])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if sources.is_empty() {
        return Err("give at least one source (or 'none')".into());
    }
    for source in &sources {
        let ok = source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":/.-*'_[]".contains(&b));
        if !ok {
            return Err(format!("{source:?} is not a frame-ancestors source"));
        }
    }
    Ok(sources.join(" "))
}

fn public_url(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?} must start with http:// or https://"))?;
    let plain = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !plain {
        return Err(format!(
            "{s:?} must be scheme://host[:port], without a path"
        ));
    }
    Ok(s.to_owned())
}

impl Config {
    /// The defaults, listening on a free loopback port: what tests start from.
    pub fn for_tests() -> Self {
        let mut c = Self::parse_from(["tally"]);
        c.listen = "127.0.0.1:0".parse().expect("valid address");
        c.redis_url = None;
        c.redis_cluster.clear();
        c.redis_wait_replicas = 0;
        c.instance_id = None;
        c.demo = true;
        c.allowed_origins.clear();
        c.trusted_proxies.clear();
        c.vote_rate = 0;
        // Tests create polls by the dozen from 127.0.0.1; the limit's own
        // tests turn it on.
        c.create_rate = 0;
        c.join_rate = 0;
        c.public_url = None;
        c
    }

    /// Refuses settings that contradict each other, naming them, so an
    /// instance never starts on a backend the operator did not mean.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.redis_url.is_some() && !self.redis_cluster.is_empty() {
            anyhow::bail!(
                "both TALLY_REDIS_URL (--redis-url) and TALLY_REDIS_CLUSTER (--redis-cluster) are set: \
                 set TALLY_REDIS_URL for one Redis or TALLY_REDIS_CLUSTER for a Redis Cluster, not both"
            );
        }
        Ok(())
    }

    /// Whether counts live in Redis (one server or a cluster) rather than
    /// in this instance's memory.
    pub fn uses_redis(&self) -> bool {
        self.redis_url.is_some() || !self.redis_cluster.is_empty()
    }

    /// The instance name: configured, else the hostname.
    pub fn instance_name(&self) -> String {
        self.instance_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "tally".to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_creation_is_limited_by_default_and_not_in_tests() {
        let defaults = Config::parse_from(["tally"]);
        if std::env::var_os("TALLY_CREATE_RATE").is_none() {
            assert_eq!(defaults.create_rate, 10);
        }
        assert_eq!(Config::for_tests().create_rate, 0);
    }

    #[test]
    fn one_redis_and_a_cluster_together_are_refused_by_name() {
        let mut c = Config::for_tests();
        c.redis_url = Some("redis://127.0.0.1:6379".into());
        assert!(c.check().is_ok());
        c.redis_cluster = vec!["redis://127.0.0.1:7000".into()];
        let e = c.check().unwrap_err().to_string();
        assert!(
            e.contains("TALLY_REDIS_URL") && e.contains("TALLY_REDIS_CLUSTER"),
            "{e}"
        );
        c.redis_url = None;
        assert!(c.check().is_ok());
    }

    #[test]
    fn cluster_seeds_are_comma_separated() {
        let c = Config::parse_from(["tally", "--redis-cluster", "redis://a:1,redis://b:2"]);
        assert_eq!(c.redis_cluster, ["redis://a:1", "redis://b:2"]);
    }

    #[test]
    fn the_public_url_is_an_origin() {
        assert_eq!(
            public_url("https://vote.example.com/").unwrap(),
            "https://vote.example.com"
        );
        assert_eq!(
            public_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(public_url("vote.example.com").is_err());
        assert!(public_url("https://vote.example.com/path").is_err());
        assert!(public_url("https://").is_err());
    }
}
