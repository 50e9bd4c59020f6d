//! Events on Redis: `event.lua` for the event's own keys (one hash tag,
//! `{EID}`), and the join code as one key in a slot of its own, written
//! apart (`SET NX` when claimed, deleted with the event).

use async_trait::async_trait;
use redis::{ScriptInvocation, Value};

use super::store::{Core, Fields, RedisStore};
use crate::event::qa::{self, Action, Board, Item, NewQuestion, Status};
use crate::event::{EventId, EventRecord, JoinCode, QuestionSummary};
use crate::poll::PollId;
use crate::poll::VoterId;
use crate::store::Unavailable;
use crate::store::events::{Cas, CreateEvent, DeckEdit, EventStore, MoveStart};
use crate::store::qa::{QaRefusal, QaStore};

impl Core {
    /// The event script call for `op` on event `id`.
    fn event_call(&self, op: &str, id: &EventId) -> ScriptInvocation<'static> {
        let mut call = self.conn.event_script().prepare_invoke();
        call.key(self.keys.event(id))
            .key(self.keys.deck(id))
            .key(self.keys.qa(id));
        for key in self.keys.qa_keys(id) {
            call.key(key);
        }
        call.arg(op)
            .arg(id.as_str())
            .arg(self.keys.event_changes(id))
            .arg(self.limits.poll_ttl.as_millis() as u64);
        call
    }

    /// The code lives in a slot of its own: kept alive as long as the
    /// event (a failure here only shortens its life, never breaks it).
    async fn renew_code(&self, code: &JoinCode) {
        if self.ttl_ms() > 0 {
            let expire = redis::cmd("PEXPIRE")
                .arg(self.keys.join_code(code))
                .arg(self.ttl_ms())
                .to_owned();
            let _ = self.query::<()>(&expire).await;
        }
    }

    fn ttl_ms(&self) -> u64 {
        self.limits.poll_ttl.as_millis() as u64
    }
}

fn poll_id(text: &str) -> Result<PollId, Unavailable> {
    PollId::parse(text).map_err(|_| Unavailable(format!("bad question id {text:?} in an event")))
}

/// The ids left in `fields`.
fn ids(fields: &mut Fields) -> Result<Vec<PollId>, Unavailable> {
    let mut out = Vec::new();
    while !fields.0.as_slice().is_empty() {
        out.push(poll_id(&fields.string()?)?);
    }
    Ok(out)
}

fn cas(reply: Result<Fields, String>) -> Result<Cas, Unavailable> {
    match reply {
        Ok(mut fields) => Ok(Cas::Done(fields.int()?)),
        Err(code) if code == "stale" => Ok(Cas::Stale),
        Err(_) => Ok(Cas::NotFound),
    }
}

#[async_trait]
impl EventStore for RedisStore {
    async fn claim_code(&self, code: &JoinCode, event: &EventId) -> Result<bool, Unavailable> {
        let core = &self.core;
        let mut set = redis::cmd("SET");
        set.arg(core.keys.join_code(code))
            .arg(event.as_str())
            .arg("NX");
        if core.ttl_ms() > 0 {
            set.arg("PX").arg(core.ttl_ms());
        }
        let reply: Option<String> = core.query(&set).await?;
        Ok(reply.is_some())
    }

    async fn event_by_code(&self, code: &JoinCode) -> Result<Option<EventId>, Unavailable> {
        let core = &self.core;
        let id: Option<String> = core
            .query(redis::cmd("GET").arg(core.keys.join_code(code)))
            .await?;
        Ok(id.and_then(|id| EventId::parse(&id).ok()))
    }

    async fn create_event(&self, e: &CreateEvent) -> Result<bool, Unavailable> {
        let core = &self.core;
        let mut call = core.event_call("create", &e.id);
        call.arg(&e.title)
            .arg(e.code.as_str())
            .arg(e.created_at_ms)
            .arg(&e.admin_token_sha256)
            .arg(u8::from(e.qa_moderation));
        for q in &e.deck {
            call.arg(q.id.as_str()).arg(summary_json(q));
        }
        Ok(core.invoke(&call).await?.is_ok())
    }

    async fn get_event(&self, id: &EventId) -> Result<Option<EventRecord>, Unavailable> {
        let core = &self.core;
        let Ok(mut f) = core.invoke(&core.event_call("read", id)).await? else {
            return Ok(None);
        };
        let title = f.string()?;
        let code = JoinCode::parse(&f.string()?)
            .map_err(|_| Unavailable("bad join code in an event".into()))?;
        let created_at_ms = f.int()?;
        let version = f.int()?;
        let current = f.string()?;
        let results_shown = f.string()? == "1";
        let n = f.int()?;
        let mut deck = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let qid = poll_id(&f.string()?)?;
            let summary = f.string()?;
            let (question, kind) = serde_json::from_str::<(String, String)>(&summary)
                .unwrap_or_else(|_| (String::new(), "choice".to_owned()));
            deck.push(QuestionSummary {
                id: qid,
                question,
                kind,
            });
        }
        let qa = read_board(&mut f)?;
        Ok(Some(EventRecord {
            id: id.clone(),
            title,
            code,
            created_at_ms,
            version,
            current: if current.is_empty() {
                None
            } else {
                Some(poll_id(&current)?)
            },
            deck,
            results_shown,
            qa,
        }))
    }

    async fn event_token_sha256(&self, id: &EventId) -> Result<Option<String>, Unavailable> {
        let core = &self.core;
        match core.invoke(&core.event_call("token", id)).await? {
            Ok(mut f) => Ok(Some(f.string()?)),
            Err(_) => Ok(None),
        }
    }

    async fn begin_move(
        &self,
        id: &EventId,
        expected_version: u64,
        target: Option<&PollId>,
    ) -> Result<MoveStart, Unavailable> {
        let core = &self.core;
        let mut call = core.event_call("begin", id);
        call.arg(expected_version)
            .arg(target.map_or("", |t| t.as_str()));
        let mut f = match core.invoke(&call).await? {
            Ok(f) => f,
            Err(code) if code == "stale" => return Ok(MoveStart::Stale),
            Err(_) => return Ok(MoveStart::NotFound),
        };
        let generation = f.int()?;
        let current = f.string()?;
        let code = f.string()?;
        let dirty = ids(&mut f)?;
        if let Ok(code) = JoinCode::parse(&code) {
            core.renew_code(&code).await;
        }
        Ok(MoveStart::Started {
            generation,
            current: if current.is_empty() {
                None
            } else {
                Some(poll_id(&current)?)
            },
            dirty,
        })
    }

    async fn finish_move(&self, id: &EventId, generation: u64) -> Result<(), Unavailable> {
        let core = &self.core;
        let mut call = core.event_call("finish", id);
        call.arg(generation);
        core.invoke(&call).await?.ok();
        Ok(())
    }

    async fn edit_deck(
        &self,
        id: &EventId,
        expected_version: u64,
        edit: &DeckEdit,
    ) -> Result<Cas, Unavailable> {
        let core = &self.core;
        let mut call = core.event_call("edit", id);
        call.arg(expected_version);
        match edit {
            DeckEdit::Append(q) => call.arg("append").arg(q.id.as_str()).arg(summary_json(q)),
            DeckEdit::Replace { old, new } => call
                .arg("replace")
                .arg(old.as_str())
                .arg(new.id.as_str())
                .arg(summary_json(new)),
            DeckEdit::Remove(q) => call.arg("remove").arg(q.as_str()),
            DeckEdit::Reorder(order) => call.arg("reorder").arg(
                order
                    .iter()
                    .map(PollId::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        };
        cas(core.invoke(&call).await?)
    }

    async fn set_results_shown(&self, id: &EventId, shown: bool) -> Result<Cas, Unavailable> {
        let core = &self.core;
        let mut call = core.event_call("results", id);
        call.arg(if shown { "1" } else { "0" });
        cas(core.invoke(&call).await?)
    }

    async fn touch_event(&self, id: &EventId) -> Result<(), Unavailable> {
        let core = &self.core;
        let Ok(mut f) = core.invoke(&core.event_call("touch", id)).await? else {
            return Ok(());
        };
        if let Ok(code) = JoinCode::parse(&f.string()?) {
            core.renew_code(&code).await;
        }
        Ok(())
    }

    async fn delete_event(&self, id: &EventId) -> Result<bool, Unavailable> {
        let core = &self.core;
        let Ok(mut f) = core.invoke(&core.event_call("delete", id)).await? else {
            return Ok(false);
        };
        if let Ok(code) = JoinCode::parse(&f.string()?) {
            // Only this event's claim is released: a code can be reused
            // by a later event once this one is gone.
            let key = core.keys.join_code(&code);
            let held: Option<String> = core.query(redis::cmd("GET").arg(&key)).await?;
            if held.as_deref() == Some(id.as_str()) {
                core.query::<()>(redis::cmd("DEL").arg(&key)).await?;
            }
        }
        Ok(true)
    }
}

/// One Q&A question from a reply: id, status, votes, text JSON.
fn read_item(f: &mut Fields, pin: &str) -> Result<Item, Unavailable> {
    let id = f.string()?;
    let status = Status::parse(&f.string()?).unwrap_or(Status::Hidden);
    let votes = f.int()?;
    #[derive(serde::Deserialize)]
    struct Text {
        #[serde(default)]
        text: String,
        #[serde(default)]
        name: Option<String>,
    }
    let text: Text = serde_json::from_str(&f.string()?)
        .map_err(|e| Unavailable(format!("unreadable Q&A question: {e}")))?;
    Ok(Item {
        pinned: id == pin,
        id: id
            .parse()
            .map_err(|_| Unavailable(format!("bad Q&A id {id:?}")))?,
        text: text.text,
        name: text.name,
        votes,
        status,
    })
}

/// The board at the end of a `read` reply.
fn read_board(f: &mut Fields) -> Result<Board, Unavailable> {
    let version = f.int()?;
    let moderation = f.string()? == "1";
    let pin = f.string()?;
    let public = f.int()? as u32;
    let mut top = Vec::new();
    for _ in 0..f.int()? {
        top.push(read_item(f, &pin)?);
    }
    let pinned = if !pin.is_empty() && top.first().is_some_and(|i| i.pinned) {
        Some(top.remove(0))
    } else {
        None
    };
    top.truncate(qa::TOP);
    let mut held = Vec::new();
    for _ in 0..f.int()? {
        held.push(read_item(f, &pin)?);
    }
    Ok(Board {
        version,
        pinned,
        top,
        public,
        held,
        moderation,
    })
}

/// A Q&A step's reply: the question, or the refusal.
fn qa_outcome(reply: Result<Fields, String>) -> Result<Result<Item, QaRefusal>, Unavailable> {
    match reply {
        Ok(mut f) => {
            // The item's four fields, then the pin.
            let rest: Vec<Value> = f.0.by_ref().collect();
            let pin = match rest.last() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            let mut item_fields = Fields(rest.into_iter());
            Ok(Ok(read_item(&mut item_fields, &pin)?))
        }
        Err(code) => Ok(Err(match code.as_str() {
            "not_found" => QaRefusal::EventNotFound,
            "own_question" => QaRefusal::OwnQuestion,
            "too_many" => QaRefusal::TooMany,
            c if c.starts_with("rate_limited:") => {
                QaRefusal::RateLimited(c["rate_limited:".len()..].parse().unwrap_or(10_000))
            }
            _ => QaRefusal::QuestionNotFound,
        })),
    }
}

#[async_trait]
impl QaStore for RedisStore {
    async fn qa_post(
        &self,
        event: &EventId,
        voter: &VoterId,
        question: &NewQuestion,
    ) -> Result<Result<Item, QaRefusal>, Unavailable> {
        let core = &self.core;
        let mut call = core.event_call("qa_post", event);
        let text = serde_json::json!({"text": question.text, "name": question.name}).to_string();
        call.arg(voter.as_str()).arg(text);
        qa_outcome(core.invoke(&call).await?)
    }

    async fn qa_upvote(
        &self,
        event: &EventId,
        id: u32,
        voter: &VoterId,
        up: bool,
    ) -> Result<Result<Item, QaRefusal>, Unavailable> {
        let core = &self.core;
        let mut call = core.event_call("qa_vote", event);
        call.arg(id).arg(voter.as_str()).arg(u8::from(up));
        qa_outcome(core.invoke(&call).await?)
    }

    async fn qa_moderate(
        &self,
        event: &EventId,
        id: u32,
        action: Action,
    ) -> Result<Result<Item, QaRefusal>, Unavailable> {
        let core = &self.core;
        let mut call = core.event_call("qa_mod", event);
        call.arg(id).arg(action.as_str());
        qa_outcome(core.invoke(&call).await?)
    }

    async fn qa_page(
        &self,
        event: &EventId,
        offset: usize,
        limit: usize,
    ) -> Result<Option<(Vec<Item>, u32)>, Unavailable> {
        let core = &self.core;
        let mut call = core.event_call("qa_page", event);
        call.arg(offset).arg(limit);
        let Ok(mut f) = core.invoke(&call).await? else {
            return Ok(None);
        };
        let public = f.int()? as u32;
        let pin = f.string()?;
        let mut items = Vec::new();
        for _ in 0..f.int()? {
            items.push(read_item(&mut f, &pin)?);
        }
        Ok(Some((items, public)))
    }

    async fn qa_upvoted(&self, event: &EventId, voter: &VoterId) -> Result<Vec<u32>, Unavailable> {
        let core = &self.core;
        let mut call = core.event_call("qa_upvoted", event);
        call.arg(voter.as_str());
        let Ok(mut f) = core.invoke(&call).await? else {
            return Ok(Vec::new());
        };
        let list = f.string()?;
        let mut ids: Vec<u32> = list.split(',').filter_map(|s| s.parse().ok()).collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

/// A deck entry as stored: `["question","kind"]` (the id is the field).
fn summary_json(q: &QuestionSummary) -> String {
    serde_json::to_string(&(&q.question, &q.kind)).expect("strings serialise")
}
