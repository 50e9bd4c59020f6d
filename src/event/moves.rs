//! Which question a move leads to, decided from the event as read.
//!
//! The decision is pure; the store then applies it only if the event is
//! still at the version it was read at (compare-and-set), and the service
//! retries on a newer one. So two hosts pressing "next" at once on two
//! instances make two steps, never two open questions.

use serde::Deserialize;

use super::EventRecord;
use crate::poll::{Invalid, PollId};

/// A move as the API takes it: `{"to": index|null}` or `{"step": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// To a question by 0-based index, or to the lobby.
    To(Option<usize>),
    Next,
    Prev,
}

/// The move request body, checked by hand so each mistake gets its own
/// message (both or neither field, a bad step, a bad index).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    #[serde(default, deserialize_with = "present")]
    pub to: Option<serde_json::Value>,
    #[serde(default)]
    pub step: Option<serde_json::Value>,
}

/// Tells `"to": null` (present) from an absent `to`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl MoveBody {
    /// The move this body asks for.
    pub fn parse(&self) -> Result<Move, Invalid> {
        match (&self.to, &self.step) {
            (Some(_), Some(_)) => Err(Invalid("give either to or step, not both".into())),
            (None, None) => Err(Invalid("give to (an index or null) or step".into())),
            (Some(serde_json::Value::Null), None) => Ok(Move::To(None)),
            (Some(to), None) => to
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .map(|i| Move::To(Some(i)))
                .ok_or_else(|| Invalid("to must be a question index (0, 1, …) or null".into())),
            (None, Some(step)) => match step.as_str() {
                Some("next") => Ok(Move::Next),
                Some("prev") => Ok(Move::Prev),
                _ => Err(Invalid("step must be \"next\" or \"prev\"".into())),
            },
        }
    }
}

impl Move {
    /// The question the event should show after this move, or `None` for
    /// the lobby. `next` on the last question, `prev` on the first and in
    /// the lobby stay where they are; `to` past the deck is refused.
    pub fn target(self, event: &EventRecord) -> Result<Option<PollId>, Invalid> {
        let at = event.current_index();
        let len = event.deck.len();
        let index = match self {
            Move::To(None) => None,
            Move::To(Some(i)) if i < len => Some(i),
            Move::To(Some(i)) => {
                return Err(Invalid(format!(
                    "to: there is no question {i} (the deck has {len})"
                )));
            }
            Move::Next => match at {
                None if len > 0 => Some(0),
                None => None,
                Some(i) => Some((i + 1).min(len - 1)),
            },
            Move::Prev => at.map(|i| i.saturating_sub(1)),
        };
        Ok(index.map(|i| event.deck[i].id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventId, JoinCode, QuestionSummary};

    fn event(n: usize, current: Option<usize>) -> EventRecord {
        let deck: Vec<QuestionSummary> = (0..n)
            .map(|i| QuestionSummary {
                id: PollId::parse(&format!("q{i}")).unwrap(),
                question: format!("Q{i}"),
                kind: "choice".into(),
            })
            .collect();
        EventRecord {
            id: EventId::parse("e").unwrap(),
            title: "t".into(),
            code: JoinCode::parse("123456").unwrap(),
            created_at_ms: 0,
            version: 0,
            current: current.map(|i| deck[i].id.clone()),
            deck,
            results_shown: true,
            qa: Default::default(),
        }
    }

    fn at(target: Option<PollId>) -> Option<String> {
        target.map(|p| p.as_str().to_owned())
    }

    #[test]
    fn next_and_prev_stop_at_the_ends() {
        assert_eq!(
            at(Move::Next.target(&event(3, None)).unwrap()),
            Some("q0".into())
        );
        assert_eq!(
            at(Move::Next.target(&event(3, Some(1))).unwrap()),
            Some("q2".into())
        );
        assert_eq!(
            at(Move::Next.target(&event(3, Some(2))).unwrap()),
            Some("q2".into())
        );
        assert_eq!(
            at(Move::Prev.target(&event(3, Some(0))).unwrap()),
            Some("q0".into())
        );
        assert_eq!(
            at(Move::Prev.target(&event(3, Some(2))).unwrap()),
            Some("q1".into())
        );
        assert_eq!(at(Move::Prev.target(&event(3, None)).unwrap()), None);
        assert_eq!(at(Move::Next.target(&event(0, None)).unwrap()), None);
    }

    #[test]
    fn to_goes_anywhere_in_the_deck_or_the_lobby_and_nowhere_else() {
        assert_eq!(
            at(Move::To(Some(2)).target(&event(3, None)).unwrap()),
            Some("q2".into())
        );
        assert_eq!(at(Move::To(None).target(&event(3, Some(1))).unwrap()), None);
        assert!(Move::To(Some(3)).target(&event(3, None)).is_err());
    }

    #[test]
    fn bodies_need_exactly_one_valid_field() {
        let parse = |s: &str| {
            serde_json::from_str::<MoveBody>(s)
                .map_err(|e| e.to_string())
                .and_then(|b| b.parse().map_err(|e| e.0))
        };
        assert_eq!(parse(r#"{"to":1}"#), Ok(Move::To(Some(1))));
        assert_eq!(parse(r#"{"to":null}"#), Ok(Move::To(None)));
        assert_eq!(parse(r#"{"step":"next"}"#), Ok(Move::Next));
        assert_eq!(parse(r#"{"step":"prev"}"#), Ok(Move::Prev));
        for bad in [
            r#"{}"#,
            r#"{"to":1,"step":"next"}"#,
            r#"{"to":-1}"#,
            r#"{"to":"1"}"#,
            r#"{"to":1.5}"#,
            r#"{"step":"up"}"#,
            r#"{"step":1}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }
}
