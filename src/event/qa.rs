//! Audience Q&A: questions from the room, upvoted, moderated by the host.
//!
//! A board belongs to an event. Its order is fixed here, once, for every
//! backend: the pinned question first, then the open ones by votes (most
//! first) and age (oldest first), answered ones last. Questions waiting for
//! approval (`qa_moderation`) and hidden ones are on no one's board but the
//! host's.

use serde::Serialize;

use crate::poll::Invalid;

/// Longest question text, in Unicode scalar values.
pub const MAX_TEXT_CHARS: usize = 280;
/// Longest name, in Unicode scalar values.
pub const MAX_NAME_CHARS: usize = 40;
/// Most questions one event's board takes.
pub const MAX_QUESTIONS: u32 = 2_000;
/// Questions a state message carries (the rest: `GET …/qa`).
pub const TOP: usize = 50;
/// Shortest gap between two posts of one voter, in milliseconds.
pub const POST_GAP_MS: u64 = 10_000;

/// A question as posted: trimmed, within the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQuestion {
    pub text: String,
    pub name: Option<String>,
}

impl NewQuestion {
    /// Checks a post: text 1–280 characters, name at most 40 (empty means
    /// anonymous).
    pub fn parse(text: &str, name: Option<&str>) -> Result<Self, Invalid> {
        let text = text.trim();
        let len = text.chars().count();
        if len == 0 {
            return Err(Invalid("text must not be empty".into()));
        }
        if len > MAX_TEXT_CHARS {
            return Err(Invalid(format!(
                "text must be at most {MAX_TEXT_CHARS} characters"
            )));
        }
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        if name.is_some_and(|n| n.chars().count() > MAX_NAME_CHARS) {
            return Err(Invalid(format!(
                "name must be at most {MAX_NAME_CHARS} characters"
            )));
        }
        Ok(Self {
            text: text.to_owned(),
            name: name.map(str::to_owned),
        })
    }
}

/// Where a question stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for the host's approval (events with `qa_moderation`).
    Pending,
    /// On the board.
    Open,
    /// On the board, after the others.
    Answered,
    /// Off everyone's board but the host's.
    Hidden,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Open => "open",
            Status::Answered => "answered",
            Status::Hidden => "hidden",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Status::Pending,
            "open" => Status::Open,
            "answered" => Status::Answered,
            "hidden" => Status::Hidden,
            _ => return None,
        })
    }

    /// Whether everyone sees it.
    pub fn is_public(self) -> bool {
        matches!(self, Status::Open | Status::Answered)
    }
}

/// One question of a board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Item {
    /// 1, 2, 3… in posting order within the event.
    pub id: u32,
    pub text: String,
    pub name: Option<String>,
    pub votes: u64,
    pub status: Status,
    pub pinned: bool,
}

/// The host's moderation actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Shows a pending question, or a hidden one again.
    Approve,
    Hide,
    Answer,
    /// Pins it (unpinning any other); pinning the pinned one unpins it.
    Pin,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "approve" => Action::Approve,
            "hide" => Action::Hide,
            "answer" => Action::Answer,
            "pin" => Action::Pin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Hide => "hide",
            Action::Answer => "answer",
            Action::Pin => "pin",
        }
    }
}

/// Board order among public questions: answered last, then most votes,
/// then oldest (lowest id) first. The pinned one is shown apart.
pub fn board_key(item: &Item) -> (bool, std::cmp::Reverse<u64>, u32) {
    (
        item.status == Status::Answered,
        std::cmp::Reverse(item.votes),
        item.id,
    )
}

/// What a board shows: the pinned question, the top public ones, how many
/// public ones there are, and (for the host only) the pending and hidden
/// ones at the head of their queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Board {
    /// Rises on every change of the board.
    pub version: u64,
    pub pinned: Option<Item>,
    /// Public questions in board order, the pinned one excluded, at most
    /// [`TOP`].
    pub top: Vec<Item>,
    /// Every public question, the pinned one included.
    pub public: u32,
    /// Pending and hidden questions (oldest first, at most [`TOP`]): the
    /// host's view only.
    pub held: Vec<Item>,
    pub moderation: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_are_trimmed_and_bounded_in_characters() {
        let q = NewQuestion::parse("  Why?  ", Some("  Ann ")).unwrap();
        assert_eq!((q.text.as_str(), q.name.as_deref()), ("Why?", Some("Ann")));
        assert_eq!(NewQuestion::parse("x", Some("  ")).unwrap().name, None);
        assert!(NewQuestion::parse(" ", None).is_err());
        assert!(NewQuestion::parse(&"问".repeat(280), Some(&"名".repeat(40))).is_ok());
        assert!(NewQuestion::parse(&"问".repeat(281), None).is_err());
        assert!(NewQuestion::parse("x", Some(&"名".repeat(41))).is_err());
    }

    #[test]
    fn board_order_is_votes_then_age_with_answered_last() {
        let item = |id, votes, status| Item {
            id,
            text: String::new(),
            name: None,
            votes,
            status,
            pinned: false,
        };
        let mut items = [
            item(1, 2, Status::Open),
            item(2, 5, Status::Answered),
            item(3, 5, Status::Open),
            item(4, 2, Status::Open),
        ];
        items.sort_by_key(board_key);
        let ids: Vec<u32> = items.iter().map(|i| i.id).collect();
        assert_eq!(ids, vec![3, 1, 4, 2]);
    }
}
