//! The whole event state a follower receives, rendered once per change per
//! instance and shared by every follower there.
//!
//! A state is the event (title, code, deck, current, results_shown) plus
//! `now`, the current question's results. The deck part is encoded once per
//! deck and reused across votes; `now` comes as the poll's own shared
//! [`Snapshot`]. What differs between callers is only whether `now` shows
//! counts, so each state has two renderings, each built on first need.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;

use super::{Cursor, EventRecord};
use crate::poll::Snapshot;

/// The deck as JSON (`[{"id","question","kind"}…]`), encoded once per deck.
#[derive(Debug)]
pub struct DeckJson {
    deck: Vec<super::QuestionSummary>,
    json: String,
}

impl DeckJson {
    pub fn new(record: &EventRecord) -> Arc<Self> {
        Arc::new(Self {
            json: serde_json::to_string(&record.deck).expect("deck serialises"),
            deck: record.deck.clone(),
        })
    }

    /// Whether this encoding is still that of `record`'s deck.
    pub fn matches(&self, record: &EventRecord) -> bool {
        self.deck == record.deck
    }
}

/// One rendering: JSON, and the WebSocket and SSE forms of it.
#[derive(Debug)]
struct Rendered {
    json: Bytes,
    ws: OnceLock<Utf8Bytes>,
    sse: OnceLock<Bytes>,
}

/// The event state at one cursor.
#[derive(Debug)]
pub struct EventSnapshot {
    pub record: Arc<EventRecord>,
    /// The current question's results (with counts), `None` in the lobby.
    pub now: Option<Arc<Snapshot>>,
    pub cursor: Cursor,
    deck: Arc<DeckJson>,
    full: OnceLock<Rendered>,
    hidden: OnceLock<Rendered>,
}

impl EventSnapshot {
    pub fn new(
        record: Arc<EventRecord>,
        now: Option<Arc<Snapshot>>,
        deck: Arc<DeckJson>,
    ) -> Arc<Self> {
        let cursor = Cursor {
            event: record.version,
            poll: now.as_ref().map_or(0, |s| s.version()),
        };
        Arc::new(Self {
            record,
            now,
            cursor,
            deck,
            full: OnceLock::new(),
            hidden: OnceLock::new(),
        })
    }

    /// Whether a caller sees the current question's counts: the host
    /// always; everyone else when the screen shows them and the poll's own
    /// rule allows (a voter of an `after_vote` poll: `voted`).
    pub fn shows_counts(&self, admin: bool, voted: bool) -> bool {
        let Some(now) = &self.now else { return true };
        admin
            || (self.record.results_shown
                && crate::visibility::Viewer {
                    admin: false,
                    voted,
                }
                .sees_counts(&now.results))
    }

    fn rendered(&self, counts: bool) -> &Rendered {
        let cell = if counts { &self.full } else { &self.hidden };
        cell.get_or_init(|| {
            let now = match &self.now {
                None => "null".to_owned(),
                Some(s) if counts => s.json().to_owned(),
                Some(s) => s.hidden().json().to_owned(),
            };
            let r = &self.record;
            let head = serde_json::json!({
                "id": r.id, "code": r.code, "title": r.title, "version": r.version,
                "current": r.current_index(), "results_shown": r.results_shown,
                "cursor": self.cursor.to_string(),
            })
            .to_string();
            let json = format!(
                "{},\"questions\":{},\"now\":{}}}",
                &head[..head.len() - 1],
                self.deck.json,
                now
            );
            Rendered {
                json: Bytes::from(json),
                ws: OnceLock::new(),
                sse: OnceLock::new(),
            }
        })
    }

    /// The state as a JSON body.
    pub fn json(&self, counts: bool) -> Bytes {
        self.rendered(counts).json.clone()
    }

    /// The WebSocket push, `{"type":"event", …state}`.
    pub fn ws_frame(&self, counts: bool) -> Utf8Bytes {
        let r = self.rendered(counts);
        r.ws.get_or_init(|| {
            let json = std::str::from_utf8(&r.json).expect("JSON is UTF-8");
            format!("{{\"type\":\"event\",{}", &json[1..]).into()
        })
        .clone()
    }

    /// The SSE event: `event: state`, the cursor as its id.
    pub fn sse_event(&self, counts: bool) -> Bytes {
        let r = self.rendered(counts);
        r.sse
            .get_or_init(|| {
                let json = std::str::from_utf8(&r.json).expect("JSON is UTF-8");
                format!("event: state\nid: {}\ndata: {}\n\n", self.cursor, json).into()
            })
            .clone()
    }
}

/// What an event's followers see: its newest state, or that it is gone.
#[derive(Debug, Clone)]
pub enum EventUpdate {
    State(Arc<EventSnapshot>),
    Deleted,
}
