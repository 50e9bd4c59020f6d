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

/// The board as JSON, encoded once per board version: everyone's view and
/// the host's (which adds the questions held back).
#[derive(Debug)]
pub struct BoardJson {
    version: u64,
    public: String,
    host: String,
}

impl BoardJson {
    pub fn new(record: &EventRecord) -> Arc<Self> {
        let b = &record.qa;
        let public = serde_json::json!({
            "version": b.version, "moderation": b.moderation, "public": b.public,
            "pinned": b.pinned, "questions": b.top,
        });
        let mut host = public.clone();
        host["held"] = serde_json::to_value(&b.held).expect("items serialise");
        Arc::new(Self {
            version: b.version,
            public: public.to_string(),
            host: host.to_string(),
        })
    }

    /// Whether this encoding is still that of `record`'s board.
    pub fn matches(&self, record: &EventRecord) -> bool {
        self.version == record.qa.version
    }
}

/// Who a state is rendered for: it decides whether the current question's
/// counts show and whether the board's held questions do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The audience, counts withheld.
    Hidden,
    /// The audience, counts shown.
    Counts,
    /// The host: counts, and the questions held back from the board.
    Host,
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
    board: Arc<BoardJson>,
    rendered: [OnceLock<Rendered>; 3],
}

impl EventSnapshot {
    pub fn new(
        record: Arc<EventRecord>,
        now: Option<Arc<Snapshot>>,
        deck: Arc<DeckJson>,
        board: Arc<BoardJson>,
    ) -> Arc<Self> {
        let cursor = Cursor {
            event: record.version,
            poll: now.as_ref().map_or(0, |s| s.version()),
            qa: record.qa.version,
        };
        Arc::new(Self {
            record,
            now,
            cursor,
            deck,
            board,
            rendered: Default::default(),
        })
    }

    /// How a caller sees this state: the host all of it; everyone else
    /// the current question's counts when the screen shows them and the
    /// poll's own rule allows (a voter of an `after_vote` poll: `voted`).
    pub fn view_for(&self, admin: bool, voted: bool) -> View {
        if admin {
            return View::Host;
        }
        let Some(now) = &self.now else {
            return View::Counts;
        };
        let viewer = crate::visibility::Viewer {
            admin: false,
            voted,
        };
        if self.record.results_shown && viewer.sees_counts(&now.public_view().results) {
            View::Counts
        } else {
            View::Hidden
        }
    }

    fn rendered(&self, view: View) -> &Rendered {
        self.rendered[view as usize].get_or_init(|| {
            let now = match (&self.now, view) {
                (None, _) => "null".to_owned(),
                (Some(s), View::Host) => s.json().to_owned(),
                (Some(s), View::Counts) => s.public_view().json().to_owned(),
                (Some(s), View::Hidden) => s.public_view().hidden().json().to_owned(),
            };
            let board = match view {
                View::Host => &self.board.host,
                _ => &self.board.public,
            };
            let r = &self.record;
            let head = serde_json::json!({
                "id": r.id, "code": r.code, "title": r.title, "version": r.version,
                "current": r.current_index(), "results_shown": r.results_shown,
                "cursor": self.cursor.to_string(),
            })
            .to_string();
            let json = format!(
                "{},\"questions\":{},\"now\":{},\"qa\":{}}}",
                &head[..head.len() - 1],
                self.deck.json,
                now,
                board
            );
            Rendered {
                json: Bytes::from(json),
                ws: OnceLock::new(),
                sse: OnceLock::new(),
            }
        })
    }

    /// The state as a JSON body.
    pub fn json(&self, view: View) -> Bytes {
        self.rendered(view).json.clone()
    }

    /// The WebSocket push, `{"type":"event", …state}`.
    pub fn ws_frame(&self, view: View) -> Utf8Bytes {
        let r = self.rendered(view);
        r.ws.get_or_init(|| {
            let json = std::str::from_utf8(&r.json).expect("JSON is UTF-8");
            format!("{{\"type\":\"event\",{}", &json[1..]).into()
        })
        .clone()
    }

    /// The SSE event: `event: state`, the cursor as its id.
    pub fn sse_event(&self, view: View) -> Bytes {
        let r = self.rendered(view);
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
