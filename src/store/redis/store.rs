//! The Redis backend: counts, voters and versions in Redis, so any number of
//! instances share one tally.
//!
//! Every operation on a poll is one round trip: one Lua script
//! (`poll.lua`, run by EVALSHA) checks, writes, bumps the version and
//! publishes a compact change (version, closed, counts) on the poll's
//! channel, atomically. Redis thus puts every poll's versions and published
//! messages in one total order. Redis only counts: the poll's text never
//! changes after creation, so this store reads it once per poll, caches it
//! under (id, created_at) and renders [`Results`] itself. Votes go through
//! [`GroupCommit`]: those of one poll that arrive while a call for it is in
//! flight share the next call.
//!
//! The poll index (`PREFIX:polls`) lies outside the poll's hash slot; it is
//! written after the poll, trimmed to the newest [`INDEX_CAP`] ids, cleaned
//! after a delete, and readers skip (and drop) ids whose poll is gone. On
//! a cluster it is one key in a slot of its own: no command ever names it
//! together with a poll's keys, so none crosses slots.
//!
//! Every command is bounded by `TALLY_REDIS_TIMEOUT`: past it the caller
//! gets [`Unavailable`] (HTTP 503 `store_unavailable`), never a hung
//! request.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Cmd, FromRedisValue, RedisResult, ScriptInvocation, Value};
use serde::Deserialize;

use super::connection::Connection;
use crate::config::Config;
use crate::event::EventId;
use crate::metrics::{self, RedisFailure};
use crate::poll::{
    Choice, Cloud, IdempotencyKey, Kind, PollId, PollSettings, PollText, Refusal, Results,
    ResultsVisibility, VoteLimit, VoterId,
};
use crate::store::group_commit::{BatchVoter, GroupCommit};
use crate::store::{
    CreatePoll, Hidden, Reopened, Store, Topic, Unavailable, Vote, VoteError, VoterRecord,
};

/// The Redis key layout. Keys are only ever built from validated ids, and
/// every key of one poll carries the hash tag `{ID}`.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The layout under `prefix` (`TALLY_REDIS_PREFIX`, default `tally`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The poll hash: question, options, vote_limit, closed, created_at,
    /// admin_token_sha256, max_choices, allow_change, results, closes_at,
    /// listed.
    pub fn poll(&self, id: &PollId) -> String {
        format!("{}:poll:{{{}}}", self.prefix, id)
    }

    /// The votes hash: option index → count.
    pub fn votes(&self, id: &PollId) -> String {
        format!("{}:votes", self.poll(id))
    }

    /// The version counter.
    pub fn version(&self, id: &PollId) -> String {
        format!("{}:version", self.poll(id))
    }

    /// Who voted: a set of voter ids (one-per-voter and `after_vote`
    /// polls), or a hash voter id → choice (`allow_change` polls).
    pub fn voters(&self, id: &PollId) -> String {
        format!("{}:voters", self.poll(id))
    }

    /// A word cloud's entries: a sorted set entry → votes × 8192 + (8191 −
    /// first-seen sequence), so the top is read without reading the set.
    pub fn words(&self, id: &PollId) -> String {
        format!("{}:words", self.poll(id))
    }

    /// The entries a word cloud's host hides: a set.
    pub fn hidden(&self, id: &PollId) -> String {
        format!("{}:hidden", self.poll(id))
    }

    /// The record of a vote made with an idempotency key (TTL
    /// `TALLY_IDEMPOTENCY_TTL`).
    pub fn idempotency(&self, id: &PollId, key: &IdempotencyKey) -> String {
        format!("{}:idem:{}", self.poll(id), key.as_str())
    }

    /// The index of poll ids by creation time.
    pub fn polls(&self) -> String {
        format!("{}:polls", self.prefix)
    }

    /// The pub/sub channel carrying the poll's compact change messages.
    pub fn changes(&self, id: &PollId) -> String {
        format!("{}:changes", self.poll(id))
    }

    /// The event hash: title, code, version, order, current, … (see
    /// `event.lua`).
    pub fn event(&self, id: &EventId) -> String {
        format!("{}:event:{{{}}}", self.prefix, id)
    }

    /// The event's deck: question id → summary JSON.
    pub fn deck(&self, id: &EventId) -> String {
        format!("{}:deck", self.event(id))
    }

    /// The event's Q&A hash (texts, statuses, votes, authors).
    pub fn qa(&self, id: &EventId) -> String {
        format!("{}:qa", self.event(id))
    }

    /// The event's Q&A keys after the hash: the board and held sorted sets
    /// and the upvotes set.
    pub fn qa_keys(&self, id: &EventId) -> [String; 3] {
        let qa = self.qa(id);
        [
            format!("{qa}:board"),
            format!("{qa}:held"),
            format!("{qa}:ups"),
        ]
    }

    /// The channel announcing an event's changes.
    pub fn event_changes(&self, id: &EventId) -> String {
        format!("{}:changes", self.event(id))
    }

    /// A join code's key (its own slot): the event id it leads to.
    pub fn join_code(&self, code: &crate::event::JoinCode) -> String {
        format!("{}:join:{{{}}}", self.prefix, code)
    }

    /// The channel of a followed topic.
    pub fn topic_channel(&self, topic: &Topic) -> String {
        match topic {
            Topic::Poll(id) => self.changes(id),
            Topic::Event(id) => self.event_changes(id),
        }
    }

    /// The topic a change channel carries, read back from its name.
    pub fn topic_of_channel(&self, channel: &str) -> Option<Topic> {
        let rest = channel.strip_prefix(&self.prefix)?.strip_prefix(':')?;
        let (kind, rest) = rest.split_once(":{")?;
        let id = rest.strip_suffix("}:changes")?;
        match kind {
            "poll" => PollId::parse(id).ok().map(Topic::Poll),
            "event" => EventId::parse(id).ok().map(Topic::Event),
            _ => None,
        }
    }

    /// The channel on which one instance hears its own heartbeats.
    pub fn heartbeat(&self, nonce: &str) -> String {
        format!("{}:heartbeat:{}", self.prefix, nonce)
    }
}

/// Newest ids the poll index keeps: listing shows at most 100, and an index
/// that only grew would let one client fill Redis with ids.
pub const INDEX_CAP: isize = 1000;

/// Polls whose text one instance keeps; a miss costs one more read.
const TEXT_CACHE: usize = 10_000;

/// The bounds this store writes with.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Every command's bound (`TALLY_REDIS_TIMEOUT`).
    pub timeout: Duration,
    /// Idle life of a poll (`TALLY_POLL_TTL`); zero keeps polls forever.
    pub poll_ttl: Duration,
    /// Life of an idempotency record (`TALLY_IDEMPOTENCY_TTL`).
    pub idempotency_ttl: Duration,
    /// Replicas that must confirm each vote batch (`TALLY_REDIS_WAIT_REPLICAS`).
    pub wait_replicas: u32,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            timeout: config.redis_timeout,
            poll_ttl: config.poll_ttl,
            idempotency_ttl: config.idempotency_ttl,
            wait_replicas: config.redis_wait_replicas,
        }
    }
}

/// The Redis store over one multiplexed, self-reconnecting connection.
///
/// Why one `ConnectionManager` and not a deadpool-redis pool: the manager
/// pipelines every concurrent command on one socket, and our commands are
/// short scripts, never blocking ones. A pool hands each request a
/// connection of its own (so at most `max_size` commands are in flight) and
/// checks it on every checkout with an extra UNWATCH + PING round trip.
/// Measured with the vote of this script (EVALSHA), redis-server 7.0 on
/// loopback, release build, two runs of 20,000 and 40,000 votes on a busy
/// 2-core machine: at 200 concurrent voters the manager did 24,000–36,000
/// votes/s on its one socket; deadpool-redis did 9,000–13,000 with 16
/// connections, 7,000–10,000 with 4, and 4,000–9,000 with 1. So an instance
/// holds exactly two Redis connections (this one and the bus's pub/sub one)
/// however many clients it serves.
pub struct RedisStore {
    pub(super) core: Arc<Core>,
    commit: GroupCommit<Core>,
}

/// What the store and its batches share.
pub struct Core {
    pub(super) conn: Connection,
    pub(super) keys: Keys,
    pub(super) limits: Limits,
    /// Each poll's text by id; an entry only serves a poll of the same
    /// `created_at`, so a deleted and re-created id is never confused.
    texts: quick_cache::sync::Cache<PollId, Arc<PollText>>,
}

impl RedisStore {
    /// A store over `conn` (one Redis or a cluster), each command bounded
    /// by `limits.timeout`.
    pub fn new(conn: Connection, keys: Keys, limits: Limits) -> anyhow::Result<Self> {
        let core = Arc::new(Core {
            conn,
            keys,
            limits,
            texts: quick_cache::sync::Cache::new(TEXT_CACHE),
        });
        Ok(Self {
            commit: GroupCommit::new(Arc::clone(&core)),
            core,
        })
    }

    /// The bound on every command.
    pub fn timeout(&self) -> Duration {
        self.core.limits.timeout
    }

    /// The key layout this store writes.
    pub fn keys(&self) -> &Keys {
        &self.core.keys
    }

    /// Publishes `payload` on `channel`; returns how many subscribers got
    /// it (the bus's heartbeat uses this to see that it is subscribed).
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<u64, Unavailable> {
        self.core
            .query(
                redis::cmd(self.core.conn.publish_command())
                    .arg(channel)
                    .arg(payload),
            )
            .await
    }

    /// Reads one message of a poll's channel. Results are rendered from the
    /// cached text; a change of a poll whose text this instance does not
    /// hold (or holds for an earlier poll of that id) is `Unknown`, and the
    /// caller re-reads that poll.
    pub fn read_change(&self, payload: &[u8]) -> Result<Change, serde_json::Error> {
        let msg: ChangeMessage = serde_json::from_slice(payload)?;
        let id = PollId::parse(msg.id).map_err(serde::de::Error::custom)?;
        if msg.deleted {
            return Ok(Change::Deleted(id));
        }
        let (Some(created_at), Some(version)) = (msg.created_at, msg.version) else {
            return Err(serde::de::Error::custom(
                "a change without created_at or version",
            ));
        };
        Ok(match self.core.text(&id, created_at) {
            Some(text) => Change::Results(with_cloud(
                text.results(&id, version, msg.closed, &msg.counts),
                msg.cloud.map(Arc::new),
            )),
            None => Change::Unknown(id),
        })
    }

    /// The id and version of a change message, read without rendering
    /// anything: most messages an instance hears are echoes of versions
    /// it already has.
    pub fn head_of(payload: &[u8]) -> Option<(String, u64)> {
        #[derive(Deserialize)]
        struct Head {
            id: String,
            version: Option<u64>,
        }
        let head: Head = serde_json::from_slice(payload).ok()?;
        Some((head.id, head.version?))
    }
}

/// The compact message the script publishes on a poll's channel.
#[derive(Deserialize)]
struct ChangeMessage<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(default)]
    deleted: bool,
    created_at: Option<u64>,
    version: Option<u64>,
    #[serde(default)]
    closed: bool,
    #[serde(default)]
    counts: Vec<u64>,
    /// A word cloud's top entries.
    #[serde(default)]
    cloud: Option<Cloud>,
}

/// Results with a word cloud's entries, when the reply carried them.
fn with_cloud(results: Results, cloud: Option<Arc<Cloud>>) -> Results {
    match cloud {
        Some(cloud) => results.with_cloud(cloud),
        None => results,
    }
}

/// One message of a poll's channel, as the bus hands it on.
#[derive(Debug)]
pub enum Change {
    Results(Results),
    Deleted(PollId),
    /// A change of a poll whose text is not cached here: read it again.
    Unknown(PollId),
}

impl Core {
    /// Runs one command future within the timeout; any failure is
    /// [`Unavailable`].
    pub(super) async fn bounded<T>(
        &self,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.limits.timeout, fut).await;
        let failure = match &result {
            Ok(Ok(_)) => None,
            Ok(Err(_)) => Some(RedisFailure::Error),
            Err(_) => Some(RedisFailure::Timeout),
        };
        metrics::redis_command(started.elapsed(), failure);
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Unavailable(e.to_string())),
            Err(_) => Err(Unavailable(format!(
                "no answer from Redis within {:?}",
                self.limits.timeout
            ))),
        }
    }

    /// Sends one command within the timeout.
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Unavailable> {
        let mut conn = self.conn.clone();
        self.bounded(cmd.query_async(&mut conn)).await
    }

    /// The cached text of `id`, if it is that of the poll created at
    /// `created_at`.
    fn text(&self, id: &PollId, created_at: u64) -> Option<Arc<PollText>> {
        self.texts
            .get(id)
            .filter(|text| text.created_at_ms == created_at)
    }

    /// The script call for `op` on poll `id`, with the four keys every
    /// operation gets and the common arguments.
    fn invocation(&self, op: &str, id: &PollId) -> ScriptInvocation<'static> {
        let mut call = self.conn.poll_script().prepare_invoke();
        call.key(self.keys.poll(id))
            .key(self.keys.votes(id))
            .key(self.keys.version(id))
            .key(self.keys.voters(id))
            .key(self.keys.words(id))
            .key(self.keys.hidden(id))
            .arg(op)
            .arg(id.as_str())
            .arg(self.keys.changes(id))
            .arg(self.limits.poll_ttl.as_millis() as u64)
            .arg(crate::poll::now_ms());
        call
    }

    /// Runs a script call (the poll's or the event's); `Err(code)` inside
    /// is a refusal of the whole call.
    pub(super) async fn invoke(
        &self,
        call: &ScriptInvocation<'_>,
    ) -> Result<Result<Fields, String>, Unavailable> {
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = self.bounded(call.invoke_async(&mut conn)).await?;
        let mut fields = Fields(reply.into_iter());
        match fields.string()?.as_str() {
            "ok" => Ok(Ok(fields)),
            _ => Ok(Err(fields.string()?)),
        }
    }

    /// The poll's current results; its text from the cache, or read in the
    /// same call when the cache misses.
    async fn read(&self, id: &PollId) -> Result<Option<Results>, Unavailable> {
        let cached = self.texts.get(id);
        let mut call = self.invocation("read", id);
        match &cached {
            Some(text) => call.arg(text.created_at_ms),
            None => call.arg(""),
        };
        let mut fields = match self.invoke(&call).await? {
            Ok(fields) => fields,
            Err(_) => return Ok(None),
        };
        let state = State::read(&mut fields)?;
        let text = match cached.filter(|t| t.created_at_ms == state.created_at) {
            Some(text) => text,
            None => {
                let question = fields.string()?;
                let labels: Vec<String> = serde_json::from_str(&fields.string()?)
                    .map_err(|e| Unavailable(format!("unreadable options in Redis: {e}")))?;
                let vote_limit =
                    VoteLimit::parse(&fields.string()?).map_err(|e| Unavailable(e.0))?;
                let settings = read_settings(&mut fields)?;
                let kind = fields.string()?;
                let kind = Kind::from_stored(&kind, &fields.string()?)
                    .map_err(|e| Unavailable(format!("unreadable kind in Redis: {}", e.0)))?;
                let text = Arc::new(PollText {
                    question,
                    labels,
                    vote_limit,
                    created_at_ms: state.created_at,
                    settings,
                    kind,
                });
                self.texts.insert(id.clone(), Arc::clone(&text));
                text
            }
        };
        let results = text.results(id, state.version, state.closed, &state.counts);
        Ok(Some(with_cloud(results, fields.cloud()?)))
    }

    /// The text of `id` at `created_at`: cached, or read once more.
    async fn text_of(
        &self,
        id: &PollId,
        created_at: u64,
    ) -> Result<Option<Arc<PollText>>, Unavailable> {
        if let Some(text) = self.text(id, created_at) {
            return Ok(Some(text));
        }
        self.read(id).await?;
        Ok(self.text(id, created_at))
    }
}

/// The poll's settings as `read` returns them; '' (a poll created before
/// the field existed) reads as the default.
fn read_settings(fields: &mut Fields) -> Result<PollSettings, Unavailable> {
    let default = PollSettings::default();
    let max_choices = fields.string()?;
    let allow_change = fields.string()?;
    let results = fields.string()?;
    let closes_at = fields.string()?;
    let listed = fields.string()?;
    let bad = |what: &str| Unavailable(format!("unreadable {what} in Redis"));
    Ok(PollSettings {
        max_choices: match max_choices.as_str() {
            "" => default.max_choices,
            s => s.parse().map_err(|_| bad("max_choices"))?,
        },
        allow_change: allow_change == "1",
        results: match results.as_str() {
            "" => ResultsVisibility::Always,
            s => ResultsVisibility::parse(s).map_err(|_| bad("results"))?,
        },
        closes_at_ms: match closes_at.as_str() {
            "" => None,
            s => Some(s.parse().map_err(|_| bad("closes_at"))?),
        },
        listed: listed == "1",
    })
}

impl Core {
    /// Waits until `TALLY_REDIS_WAIT_REPLICAS` replicas have the writes
    /// this connection made to `poll`'s node (the batch just run), within
    /// the timeout; once per batch, not per vote.
    async fn replicated(&self, poll: &PollId) -> Result<(), Unavailable> {
        let wanted = self.limits.wait_replicas;
        if wanted == 0 {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        // WAIT's own bound leaves room for its reply within the timeout.
        let wait = self.limits.timeout.mul_f32(0.8);
        let key = self.keys.version(poll);
        let confirmed = self.bounded(conn.wait_replicas(&key, wanted, wait)).await?;
        if confirmed < u64::from(wanted) {
            return Err(Unavailable(format!(
                "{confirmed} of {wanted} replicas confirmed the vote within {wait:?}"
            )));
        }
        Ok(())
    }
}

/// The state at the head of most script replies.
struct State {
    created_at: u64,
    version: u64,
    closed: bool,
    counts: Vec<u64>,
}

impl State {
    fn read(fields: &mut Fields) -> Result<Self, Unavailable> {
        let created_at = fields.int()?;
        let version = fields.int()?;
        let closed = fields.int()? == 1;
        let n = fields.int()? as usize;
        let counts = (0..n).map(|_| fields.int()).collect::<Result<_, _>>()?;
        Ok(Self {
            created_at,
            version,
            closed,
            counts,
        })
    }
}

/// The fields of a script reply, read in order.
pub(super) struct Fields(pub(super) std::vec::IntoIter<Value>);

impl Fields {
    pub(super) fn next(&mut self) -> Result<Value, Unavailable> {
        self.0
            .next()
            .ok_or_else(|| Unavailable("a short reply from the poll script".into()))
    }

    pub(super) fn string(&mut self) -> Result<String, Unavailable> {
        String::from_redis_value(self.next()?)
            .map_err(|e| Unavailable(format!("unreadable reply from the poll script: {e}")))
    }

    /// A word cloud's top entries, which end the replies of a word cloud.
    fn cloud(&mut self) -> Result<Option<Arc<Cloud>>, Unavailable> {
        if self.0.as_slice().is_empty() {
            return Ok(None);
        }
        let json = self.string()?;
        serde_json::from_str(&json)
            .map(|cloud| Some(Arc::new(cloud)))
            .map_err(|e| Unavailable(format!("unreadable word cloud from the poll script: {e}")))
    }

    pub(super) fn int(&mut self) -> Result<u64, Unavailable> {
        u64::from_redis_value(self.next()?)
            .map_err(|e| Unavailable(format!("unreadable reply from the poll script: {e}")))
    }
}

/// A refusal code from the script as the store's error.
fn vote_error(code: &str, text: Option<&PollText>) -> VoteError {
    match code {
        "poll_not_found" => VoteError::PollNotFound,
        "poll_closed" => VoteError::PollClosed,
        "option_not_found" => VoteError::OptionNotFound,
        "too_many_choices" => VoteError::TooManyChoices(text.map_or(1, |t| t.settings.max_choices)),
        "already_voted" => VoteError::AlreadyVoted,
        "idempotency_key_reused" => VoteError::IdempotencyKeyReused,
        "too_many_entries" => VoteError::TooManyEntries,
        other => match (Refusal::from_code(other), text) {
            (Some(refusal), Some(t)) => {
                VoteError::refused(refusal, &t.kind, t.labels.len(), t.settings.max_choices)
            }
            (Some(refusal), None) => VoteError::Invalid(refusal.code().replace('_', " ")),
            (None, _) => {
                VoteError::Unavailable(Unavailable(format!("unexpected refusal {other:?}")))
            }
        },
    }
}

/// The outcome an idempotency record stands for: "created_at,option,
/// version,count0,…". A vote only counts on an open poll, so it was open.
fn replayed(id: &PollId, text: &PollText, record: &str) -> Result<Results, VoteError> {
    let unreadable =
        || VoteError::Unavailable(Unavailable(format!("unreadable record {record:?}")));
    let mut fields = record.split(',').skip(2).map(str::parse::<u64>);
    let version = fields
        .next()
        .ok_or_else(unreadable)?
        .map_err(|_| unreadable())?;
    let counts: Vec<u64> = fields.collect::<Result<_, _>>().map_err(|_| unreadable())?;
    Ok(text.results(id, version, false, &counts))
}

#[async_trait]
impl BatchVoter for Core {
    #[tracing::instrument(level = "debug", skip_all, fields(poll = %poll, votes = votes.len()))]
    async fn vote_batch(&self, poll: &PollId, votes: &[Vote]) -> Vec<Result<Results, VoteError>> {
        let all = |e: VoteError| votes.iter().map(|_| Err(e.clone())).collect();
        let mut call = self.invocation("vote", poll);
        call.arg(self.limits.idempotency_ttl.as_secs().max(1));
        match self.texts.get(poll) {
            Some(text) => call
                .arg(text.created_at_ms)
                .arg(text.kind.count_fields(text.labels.len())),
            None => call.arg("").arg(0),
        };
        call.arg(votes.len());
        let mut keyed = 6;
        for vote in votes {
            call.arg(vote.choice.encode()).arg(vote.voter.as_str());
            match &vote.idempotency_key {
                Some(key) => {
                    keyed += 1;
                    call.key(self.keys.idempotency(poll, key)).arg(keyed);
                }
                None => {
                    call.arg(0);
                }
            }
        }
        let mut fields = match self.invoke(&call).await {
            Ok(Ok(fields)) => fields,
            Ok(Err(code)) => return all(vote_error(&code, None)),
            Err(e) => return all(e.into()),
        };
        if let Err(e) = self.replicated(poll).await {
            return all(e.into());
        }
        let state = match State::read(&mut fields) {
            Ok(state) => state,
            Err(e) => return all(e.into()),
        };
        let text = match self.text_of(poll, state.created_at).await {
            Ok(Some(text)) => text,
            // Deleted (and maybe re-created) right after this batch.
            Ok(None) => return all(VoteError::PollNotFound),
            Err(e) => return all(e.into()),
        };
        let (mut version, mut counts) = (state.version, state.counts);
        let statuses: Vec<Result<String, Unavailable>> =
            votes.iter().map(|_| fields.string()).collect();
        // A word cloud's entries are read once, after the batch: each vote
        // keeps its own version and total, and shows the entries as the
        // batch left them.
        let cloud = match fields.cloud() {
            Ok(cloud) => cloud,
            Err(e) => return all(e.into()),
        };
        let render = |version, counts: &[u64], closed| {
            with_cloud(text.results(poll, version, closed, counts), cloud.clone())
        };
        let shift = |counts: &mut Vec<u64>, choice: &Choice, sign: i64| {
            let (kind, labels) = (&text.kind, text.labels.len());
            let max_choices = text.settings.max_choices;
            for (field, delta) in kind.deltas(choice, labels, max_choices).unwrap_or_default() {
                if let Some(count) = counts.get_mut(field) {
                    *count = count.saturating_add_signed(sign * delta);
                }
            }
        };
        votes
            .iter()
            .zip(statuses)
            .map(|(vote, status)| {
                let status = status?;
                match status.as_bytes().first() {
                    Some(b'+') => {
                        if status.len() > 1 {
                            let previous = Choice::decode(&status[1..]).ok_or_else(|| {
                                Unavailable(format!("unreadable choice {status:?}"))
                            })?;
                            shift(&mut counts, &previous, -1);
                        }
                        shift(&mut counts, &vote.choice, 1);
                        version += 1;
                        Ok(render(version, &counts, false))
                    }
                    Some(b'~') => Ok(render(version, &counts, false)),
                    Some(b'=') => {
                        replayed(poll, &text, &status[1..]).map(|r| with_cloud(r, cloud.clone()))
                    }
                    _ => Err(vote_error(&status, Some(&text))),
                }
            })
            .collect()
    }
}

#[async_trait]
impl Store for RedisStore {
    #[tracing::instrument(skip_all, fields(poll = %c.id))]
    async fn create(&self, c: &CreatePoll) -> Result<Option<Results>, Unavailable> {
        let core = &self.core;
        let options = serde_json::to_string(&c.poll.options).expect("labels serialise");
        let mut counts = c.initial_counts.clone();
        counts.resize(c.poll.count_fields(), 0);
        let kind = &c.poll.kind;
        let settings = &c.poll.settings;
        let mut call = core.invocation("create", &c.id);
        call.arg(&c.poll.question)
            .arg(options)
            .arg(c.poll.vote_limit.as_str())
            .arg(c.created_at_ms)
            .arg(&c.admin_token_sha256)
            .arg(settings.max_choices)
            .arg(u8::from(settings.allow_change))
            .arg(settings.results.as_str())
            .arg(
                settings
                    .closes_at_ms
                    .map(|ms| ms.to_string())
                    .unwrap_or_default(),
            )
            .arg(u8::from(settings.listed))
            .arg(kind.name().as_str())
            .arg(kind.spec_json())
            .arg(kind.scale_min())
            .arg(kind.max_entries())
            .arg(&counts);
        if core.invoke(&call).await?.is_err() {
            return Ok(None);
        }
        let text = Arc::new(PollText::of(&c.poll, c.created_at_ms));
        core.texts.insert(c.id.clone(), Arc::clone(&text));
        let created = text.results(&c.id, 0, false, &counts);
        let created = match kind {
            Kind::WordCloud { .. } => created.with_cloud(Arc::default()),
            _ => created,
        };
        if !settings.listed {
            // Reachable by its link only: never in the index strangers list.
            return Ok(Some(created));
        }
        let index = redis::pipe()
            .cmd("ZADD")
            .arg(core.keys.polls())
            .arg(c.created_at_ms)
            .arg(c.id.as_str())
            .ignore()
            .cmd("ZREMRANGEBYRANK")
            .arg(core.keys.polls())
            .arg(0)
            .arg(-INDEX_CAP - 1)
            .ignore()
            .to_owned();
        let mut conn = core.conn.clone();
        if let Err(e) = core.bounded(index.query_async::<()>(&mut conn)).await {
            // The poll exists and works; only listing misses it. Answering
            // 503 would make the client create a second one.
            tracing::warn!(poll = %c.id, error = %e, "created poll left out of the index");
        }
        Ok(Some(created))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(poll = %id))]
    async fn get(&self, id: &PollId) -> Result<Option<Results>, Unavailable> {
        self.core.read(id).await
    }

    async fn list(&self, limit: usize) -> Result<Vec<Results>, Unavailable> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let core = &self.core;
        let ids: Vec<String> = core
            .query(
                redis::cmd("ZREVRANGE")
                    .arg(core.keys.polls())
                    .arg(0)
                    .arg(limit - 1),
            )
            .await?;
        let ids: Vec<PollId> = ids.iter().filter_map(|id| PollId::parse(id).ok()).collect();
        let polls = futures_util::future::try_join_all(ids.iter().map(|id| core.read(id))).await?;
        let gone: Vec<&str> = ids
            .iter()
            .zip(&polls)
            .filter(|(_, p)| p.is_none())
            .map(|(id, _)| id.as_str())
            .collect();
        if !gone.is_empty() {
            // Expired (TALLY_POLL_TTL) or deleted before the index was
            // cleaned: drop them, so the index holds only live polls.
            let clean = redis::cmd("ZREM")
                .arg(core.keys.polls())
                .arg(&gone)
                .to_owned();
            if let Err(e) = core.query::<()>(&clean).await {
                tracing::debug!(error = %e, "index not cleaned");
            }
        }
        Ok(polls.into_iter().flatten().collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(poll = %v.poll))]
    async fn vote(&self, v: &Vote) -> Result<Results, VoteError> {
        // The whole vote, not only its batch's call, is bounded: a vote
        // queued behind a call still in flight would otherwise wait for
        // that call's timeout and then its own (twice the timeout, seen
        // with Redis cut off by the network). A vote given up on here may
        // still be counted by its batch; a retry with its key replays it.
        let timeout = self.core.limits.timeout;
        tokio::time::timeout(timeout, self.commit.vote(v.clone()))
            .await
            .unwrap_or_else(|_| {
                Err(VoteError::Unavailable(Unavailable(format!(
                    "no answer from Redis within {timeout:?}"
                ))))
            })
    }

    async fn admin_token_sha256(&self, id: &PollId) -> Result<Option<String>, Unavailable> {
        self.core
            .query(
                redis::cmd("HGET")
                    .arg(self.core.keys.poll(id))
                    .arg("admin_token_sha256"),
            )
            .await
    }

    #[tracing::instrument(skip_all, fields(poll = %id))]
    async fn close(&self, id: &PollId) -> Result<Option<Results>, Unavailable> {
        let core = &self.core;
        let mut fields = match core.invoke(&core.invocation("close", id)).await? {
            Ok(fields) => fields,
            Err(_) => return Ok(None),
        };
        let state = State::read(&mut fields)?;
        let cloud = fields.cloud()?;
        Ok(core.text_of(id, state.created_at).await?.map(|text| {
            with_cloud(
                text.results(id, state.version, state.closed, &state.counts),
                cloud,
            )
        }))
    }

    #[tracing::instrument(skip_all, fields(poll = %id))]
    async fn reopen(&self, id: &PollId) -> Result<Reopened, Unavailable> {
        let core = &self.core;
        let mut fields = match core.invoke(&core.invocation("reopen", id)).await? {
            Ok(fields) => fields,
            Err(code) if code == "past_closes_at" => return Ok(Reopened::PastClosesAt),
            Err(code) if code.starts_with("in_event:") => {
                return Ok(EventId::parse(&code["in_event:".len()..])
                    .map_or(Reopened::NotFound, Reopened::InEvent));
            }
            Err(_) => return Ok(Reopened::NotFound),
        };
        let state = State::read(&mut fields)?;
        let cloud = fields.cloud()?;
        Ok(match core.text_of(id, state.created_at).await? {
            Some(text) => Reopened::Open(with_cloud(
                text.results(id, state.version, false, &state.counts),
                cloud,
            )),
            None => Reopened::NotFound,
        })
    }

    async fn voter_record(&self, id: &PollId, voter: &VoterId) -> Result<VoterRecord, Unavailable> {
        let core = &self.core;
        let mut call = core.invocation("voted", id);
        call.arg(voter.as_str());
        let Ok(mut fields) = core.invoke(&call).await? else {
            return Ok(VoterRecord::None);
        };
        if fields.int()? == 0 {
            return Ok(VoterRecord::None);
        }
        if fields.0.as_slice().is_empty() {
            return Ok(VoterRecord::Voted);
        }
        let choice = fields.string()?;
        Choice::decode(&choice)
            .map(VoterRecord::Chose)
            .ok_or_else(|| Unavailable(format!("unreadable choice {choice:?} in the voters hash")))
    }

    #[tracing::instrument(skip_all, fields(poll = %id))]
    async fn delete(&self, id: &PollId) -> Result<bool, Unavailable> {
        let core = &self.core;
        if core.invoke(&core.invocation("delete", id)).await?.is_err() {
            return Ok(false);
        }
        core.texts.remove(id);
        let unindex = redis::cmd("ZREM")
            .arg(core.keys.polls())
            .arg(id.as_str())
            .to_owned();
        if let Err(e) = core.query::<()>(&unindex).await {
            // The poll is gone; readers of the index skip it anyway.
            tracing::warn!(poll = %id, error = %e, "deleted poll left in the index");
        }
        Ok(true)
    }

    #[tracing::instrument(skip_all, fields(poll = %id, generation))]
    async fn fence(
        &self,
        id: &PollId,
        event: &EventId,
        open: bool,
        generation: u64,
    ) -> Result<Option<Results>, Unavailable> {
        let core = &self.core;
        let mut call = core.invocation("fence", id);
        call.arg(event.as_str())
            .arg(if open { "1" } else { "0" })
            .arg(generation);
        let mut fields = match core.invoke(&call).await? {
            Ok(fields) => fields,
            Err(_) => return Ok(None),
        };
        let state = State::read(&mut fields)?;
        let cloud = fields.cloud()?;
        Ok(core.text_of(id, state.created_at).await?.map(|text| {
            with_cloud(
                text.results(id, state.version, state.closed, &state.counts),
                cloud,
            )
        }))
    }

    #[tracing::instrument(skip_all, fields(poll = %id))]
    async fn set_hidden(
        &self,
        id: &PollId,
        text: &str,
        hidden: bool,
    ) -> Result<Hidden, Unavailable> {
        let core = &self.core;
        let mut call = core.invocation("hide", id);
        call.arg(text).arg(u8::from(hidden));
        let mut fields = match core.invoke(&call).await? {
            Ok(fields) => fields,
            Err(code) => {
                return Ok(match code.as_str() {
                    "not_wordcloud" => Hidden::NotWordCloud,
                    "too_many_hidden" => Hidden::TooMany,
                    _ => Hidden::NotFound,
                });
            }
        };
        let state = State::read(&mut fields)?;
        let cloud = fields.cloud()?;
        Ok(match core.text_of(id, state.created_at).await? {
            Some(text) => Hidden::Done(with_cloud(
                text.results(id, state.version, state.closed, &state.counts),
                cloud,
            )),
            None => Hidden::NotFound,
        })
    }

    async fn ping(&self) -> Result<(), Unavailable> {
        self.core.query(&redis::cmd("PING")).await
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let keys = Keys::new("tally");
        let id = PollId::parse("lpl").unwrap();
        let key = IdempotencyKey::parse("k-1").unwrap();
        assert_eq!(keys.poll(&id), "tally:poll:{lpl}");
        assert_eq!(keys.votes(&id), "tally:poll:{lpl}:votes");
        assert_eq!(keys.version(&id), "tally:poll:{lpl}:version");
        assert_eq!(keys.voters(&id), "tally:poll:{lpl}:voters");
        assert_eq!(keys.idempotency(&id, &key), "tally:poll:{lpl}:idem:k-1");
        assert_eq!(keys.polls(), "tally:polls");
        assert_eq!(keys.changes(&id), "tally:poll:{lpl}:changes");
        assert_eq!(keys.heartbeat("n"), "tally:heartbeat:n");
    }
}
