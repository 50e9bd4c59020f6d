//! Events: a deck of questions under one join code, stepped through by a
//! presenter while every follower switches with it.
//!
//! An event holds no counts of its own: each question is an ordinary poll
//! (its own keys, its own hash tag), and the event only records which one is
//! on screen (`current`), whether counts are shown, and its deck. Every value
//! built here is checked, so store keys are only ever made from valid ids.

pub mod moves;
pub mod qa;
pub mod view;

use std::fmt;

use rand::Rng;
use serde::Serialize;

use crate::poll::{Invalid, PollId};

/// Longest event title, in Unicode scalar values.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most questions one event's deck may hold.
pub const MAX_QUESTIONS: usize = 100;

/// An event id: the same pattern as a poll id (10 base62 when generated).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// The only way to build an id from outside input.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        PollId::parse(s)
            .map(|p| Self(p.as_str().to_owned()))
            .map_err(|_| {
                Invalid("event id must be 1-32 characters of A-Z, a-z, 0-9, _ and -".into())
            })
    }

    /// A fresh id of 10 random base62 characters.
    pub fn generate() -> Self {
        Self(PollId::generate().as_str().to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for EventId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The 6-digit code a room types to join: short enough to read off a
/// projector, numeric so a phone shows its number pad.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct JoinCode(String);

impl JoinCode {
    /// Reads what someone typed: digits only, spaces (any whitespace)
    /// ignored, exactly six of them.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(digits))
        } else {
            Err(Invalid("a join code is 6 digits".into()))
        }
    }

    /// A fresh random code (collisions are retried by the caller).
    pub fn generate() -> Self {
        Self(format!("{:06}", rand::rng().random_range(0..1_000_000u32)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JoinCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A checked event title: trimmed, 1–200 characters.
pub fn parse_title(raw: &str) -> Result<String, Invalid> {
    let title = raw.trim();
    let len = title.chars().count();
    if len == 0 {
        return Err(Invalid("title must not be empty".into()));
    }
    if len > MAX_TITLE_CHARS {
        return Err(Invalid(format!(
            "title must be at most {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(title.to_owned())
}

/// What the deck shows of one question without reading its poll: its id,
/// its text and its kind. Encoded by the instance, stored as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QuestionSummary {
    #[schema(value_type = String)]
    pub id: PollId,
    pub question: String,
    pub kind: String,
}

/// An event as the store holds it (no counts: those are its questions').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: EventId,
    pub title: String,
    pub code: JoinCode,
    pub created_at_ms: u64,
    /// Rises on every change of the event itself (moves, deck, results).
    pub version: u64,
    /// The deck in order.
    pub deck: Vec<QuestionSummary>,
    /// The question on screen; `None` is the lobby.
    pub current: Option<PollId>,
    pub results_shown: bool,
    /// The audience's questions (`qa_moderation` inside).
    pub qa: qa::Board,
}

impl EventRecord {
    /// Whether this record is newer than `other` (the event's own version
    /// and its board's both only rise).
    pub fn is_newer_than(&self, other: &EventRecord) -> bool {
        (self.version, self.qa.version) > (other.version, other.qa.version)
    }

    /// The 0-based place of the current question in the deck.
    pub fn current_index(&self) -> Option<usize> {
        let current = self.current.as_ref()?;
        self.deck.iter().position(|q| &q.id == current)
    }

    /// Whether `id` is one of this event's questions.
    pub fn has_question(&self, id: &PollId) -> bool {
        self.deck.iter().any(|q| &q.id == id)
    }
}

/// What an event's followers on this instance learn from the store (the
/// bus, or the service after a change made here).
#[derive(Debug, Clone)]
pub enum EventChange {
    Record(std::sync::Arc<EventRecord>),
    Deleted,
}

impl EventChange {
    pub fn version(&self) -> Option<u64> {
        match self {
            EventChange::Record(r) => Some(r.version),
            EventChange::Deleted => None,
        }
    }
}

/// The opaque position a follower has seen: the event's version, the
/// current question's and the Q&A board's. Ordered: an event change
/// outranks any poll change; the board's version is independent of both,
/// so two cursors compare as newer when one part rose and none fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub event: u64,
    pub poll: u64,
    pub qa: u64,
}

impl Cursor {
    /// Whether a state at `self` is news to a follower at `seen`.
    pub fn is_after(&self, seen: &Cursor) -> bool {
        self.event > seen.event
            || (self.event == seen.event
                && self.poll >= seen.poll
                && self.qa >= seen.qa
                && self != seen)
    }
}

impl Cursor {
    /// Reads a cursor the server gave; anything else is `None` (a client
    /// that sends garbage simply gets the current state).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let event = parts.next()?.parse().ok()?;
        let poll = parts.next()?.parse().ok()?;
        let qa = match parts.next() {
            Some(q) => q.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self { event, poll, qa })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.event, self.poll, self.qa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_codes_are_six_digits_with_spaces_ignored() {
        assert_eq!(JoinCode::parse("123 456").unwrap().as_str(), "123456");
        assert_eq!(JoinCode::parse(" 012345 ").unwrap().as_str(), "012345");
        for bad in ["12345", "1234567", "12a456", "", "１２３４５６"] {
            assert!(JoinCode::parse(bad).is_err(), "{bad:?} accepted");
        }
        let fresh = JoinCode::generate();
        assert!(JoinCode::parse(fresh.as_str()).is_ok());
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(parse_title("  Talk ").unwrap(), "Talk");
        assert!(parse_title("   ").is_err());
        assert!(parse_title(&"讲".repeat(200)).is_ok());
        assert!(parse_title(&"讲".repeat(201)).is_err());
    }

    #[test]
    fn cursors_order_event_changes_before_poll_changes() {
        let a = Cursor {
            event: 3,
            poll: 90,
            qa: 5,
        };
        let b = Cursor {
            event: 4,
            poll: 1,
            qa: 5,
        };
        assert!(b.is_after(&a) && !a.is_after(&b));
        let c = Cursor { qa: 6, ..b };
        assert!(c.is_after(&b) && !b.is_after(&c));
        assert!(!b.is_after(&b));
        assert_eq!(Cursor::parse(&b.to_string()), Some(b));
        assert_eq!(Cursor::parse("4.1"), Some(Cursor { qa: 0, ..b }));
        assert_eq!(Cursor::parse("x"), None);
        assert_eq!(Cursor::parse("1.-2"), None);
    }

    #[test]
    fn event_ids_follow_the_poll_id_pattern() {
        assert!(EventId::parse("abc_9-Z").is_ok());
        assert!(EventId::parse("a b").is_err());
        assert_eq!(EventId::generate().as_str().len(), 10);
    }
}
