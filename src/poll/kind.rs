//! Question kinds: what a poll asks (pick options, one word, a value on a
//! scale, an order), the vote each takes and the counts each keeps.
//!
//! Every kind keeps plain counts in the same place (a choice poll's
//! option counts, a scale's count per value, a ranking's points and first
//! places, a word cloud's entry total), so the store's vote path, group
//! commit, idempotency and change messages are one code path; the word
//! cloud alone adds its entries (see [`super::wordcloud`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::scale::Scale;
use super::wordcloud::{self, MAX_ENTRIES_PER_VOTE};
use super::{Choice, Invalid, ranking};

/// The kind's name as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    /// Pick one or more options (`{"option":N}` or `{"options":[…]}`).
    #[default]
    Choice,
    /// One word or a few (`{"entries":["…"]}`).
    Wordcloud,
    /// A value on a scale (`{"value":N}`).
    Scale,
    /// All options in order (`{"ranking":[i,j,…]}`).
    Ranking,
}

impl KindName {
    pub fn as_str(self) -> &'static str {
        match self {
            KindName::Choice => "choice",
            KindName::Wordcloud => "wordcloud",
            KindName::Scale => "scale",
            KindName::Ranking => "ranking",
        }
    }

    /// The vote body this kind takes, for messages.
    pub fn vote_shape(self) -> &'static str {
        match self {
            KindName::Choice => "{\"option\":N} or {\"options\":[…]}",
            KindName::Wordcloud => "{\"entries\":[\"…\"]}",
            KindName::Scale => "{\"value\":N}",
            KindName::Ranking => "{\"ranking\":[i,j,…]}",
        }
    }
}

/// A poll's kind with its own settings, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Choice,
    WordCloud {
        /// Entries one vote may carry (1–3).
        max_entries: u32,
    },
    Scale(Scale),
    Ranking,
}

/// The kind fields of a create body, before checking.
#[derive(Debug, Clone, Default)]
pub struct KindInput {
    pub kind: Option<KindName>,
    pub max_entries: Option<u32>,
    pub scale: Option<Scale>,
}

/// Why a vote does not fit its poll's kind (checked by the store, which
/// knows the poll); every one is a 422 but `OptionNotFound` keeps its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A vote body of another kind's shape.
    WrongShape,
    OptionNotFound,
    TooManyChoices,
    /// A value outside the scale.
    BadValue,
    /// Not a permutation of the options.
    BadRanking,
    /// More entries than `max_entries`.
    BadEntries,
}

impl Refusal {
    /// The code the Redis script answers with.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::WrongShape => "wrong_shape",
            Refusal::OptionNotFound => "option_not_found",
            Refusal::TooManyChoices => "too_many_choices",
            Refusal::BadValue => "bad_value",
            Refusal::BadRanking => "bad_ranking",
            Refusal::BadEntries => "bad_entries",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [
            Refusal::WrongShape,
            Refusal::OptionNotFound,
            Refusal::TooManyChoices,
            Refusal::BadValue,
            Refusal::BadRanking,
            Refusal::BadEntries,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// The client's message, naming the field, for a poll of `kind` with
    /// `options` options.
    pub fn message(self, kind: &Kind, options: usize) -> String {
        let name = kind.name();
        match self {
            Refusal::WrongShape => format!(
                "this poll is a {} poll: a vote is {}",
                name.as_str(),
                name.vote_shape()
            ),
            Refusal::OptionNotFound => "option: no such option".into(),
            Refusal::TooManyChoices => "options: more than max_choices".into(),
            Refusal::BadValue => match kind {
                Kind::Scale(s) => format!("value must be from {} to {}", s.min, s.max),
                _ => "value is out of range".into(),
            },
            Refusal::BadRanking => {
                format!("ranking must list each of the {options} options exactly once")
            }
            Refusal::BadEntries => match kind {
                Kind::WordCloud { max_entries } => {
                    format!("entries: at most {max_entries} entries per vote")
                }
                _ => "entries: too many".into(),
            },
        }
    }
}

impl Kind {
    pub fn name(&self) -> KindName {
        match self {
            Kind::Choice => KindName::Choice,
            Kind::WordCloud { .. } => KindName::Wordcloud,
            Kind::Scale(_) => KindName::Scale,
            Kind::Ranking => KindName::Ranking,
        }
    }

    /// Checks the kind fields of a create body against its `options`;
    /// messages name the field.
    pub fn parse(input: &KindInput, options: usize) -> Result<Self, Invalid> {
        let name = input.kind.unwrap_or_default();
        let bad = |m: &str| Err(Invalid(m.into()));
        if input.max_entries.is_some() && name != KindName::Wordcloud {
            return bad("max_entries is only for kind \"wordcloud\"");
        }
        if input.scale.is_some() && name != KindName::Scale {
            return bad("scale is only for kind \"scale\"");
        }
        match name {
            KindName::Choice => Ok(Kind::Choice),
            KindName::Wordcloud | KindName::Scale if options > 0 => Err(Invalid(format!(
                "options: a {} poll has no options",
                name.as_str()
            ))),
            KindName::Wordcloud => {
                let max_entries = input.max_entries.unwrap_or(1);
                if !(1..=MAX_ENTRIES_PER_VOTE).contains(&max_entries) {
                    return Err(Invalid(format!(
                        "max_entries must be from 1 to {MAX_ENTRIES_PER_VOTE}"
                    )));
                }
                Ok(Kind::WordCloud { max_entries })
            }
            KindName::Scale => Ok(Kind::Scale(Scale::parse(
                input.scale.as_ref().unwrap_or(&Scale::default()),
            )?)),
            KindName::Ranking => {
                if !(ranking::MIN_OPTIONS..=ranking::MAX_OPTIONS).contains(&options) {
                    return Err(Invalid(format!(
                        "options: a ranking needs {} to {} options",
                        ranking::MIN_OPTIONS,
                        ranking::MAX_OPTIONS
                    )));
                }
                Ok(Kind::Ranking)
            }
        }
    }

    /// The labels results show: the options, or a scale's values.
    pub fn labels(&self, options: &[String]) -> Vec<String> {
        match self {
            Kind::Scale(s) => s.values().map(|v| v.to_string()).collect(),
            Kind::WordCloud { .. } => Vec::new(),
            _ => options.to_vec(),
        }
    }

    /// How many counts the store keeps for a poll of `labels` labels.
    pub fn count_fields(&self, labels: usize) -> usize {
        match self {
            Kind::Choice | Kind::Scale(_) => labels,
            Kind::Ranking => 2 * labels,
            Kind::WordCloud { .. } => 1,
        }
    }

    /// The count increments `choice` makes on a poll of this kind with
    /// `labels` labels, or why it does not fit.
    pub fn deltas(
        &self,
        choice: &Choice,
        labels: usize,
        max_choices: u32,
    ) -> Result<Vec<(usize, i64)>, Refusal> {
        use super::Ballot;
        match (self, choice.ballot()) {
            (Kind::Choice, Ballot::Options(options)) => {
                if options.iter().any(|&o| o as usize >= labels) {
                    return Err(Refusal::OptionNotFound);
                }
                if options.len() > max_choices as usize {
                    return Err(Refusal::TooManyChoices);
                }
                Ok(options.iter().map(|&o| (o as usize, 1)).collect())
            }
            (Kind::Scale(s), Ballot::Value(v)) => {
                if !s.values().contains(v) {
                    return Err(Refusal::BadValue);
                }
                Ok(vec![((v - s.min) as usize, 1)])
            }
            (Kind::Ranking, Ballot::Ranking(order)) => {
                ranking::check(order, labels).map_err(|_| Refusal::BadRanking)?;
                Ok(ranking::deltas(order, labels))
            }
            (Kind::WordCloud { max_entries }, Ballot::Entries(entries)) => {
                if entries.len() > *max_entries as usize {
                    return Err(Refusal::BadEntries);
                }
                Ok(vec![(0, entries.len() as i64)])
            }
            _ => Err(Refusal::WrongShape),
        }
    }

    /// The kind's settings as the Redis poll hash keeps them (`kind_spec`).
    pub fn spec_json(&self) -> String {
        match self {
            Kind::Choice | Kind::Ranking => String::new(),
            Kind::WordCloud { max_entries } => format!("{{\"max_entries\":{max_entries}}}"),
            Kind::Scale(s) => serde_json::to_string(s).expect("a scale serialises"),
        }
    }

    /// Reads [`Self::spec_json`] back; '' kind is a choice poll (created
    /// before kinds existed).
    pub fn from_stored(name: &str, spec: &str) -> Result<Self, Invalid> {
        let bad = |e: serde_json::Error| Invalid(format!("unreadable kind_spec: {e}"));
        Ok(match name {
            "" | "choice" => Kind::Choice,
            "ranking" => Kind::Ranking,
            "scale" => Kind::Scale(serde_json::from_str(spec).map_err(bad)?),
            "wordcloud" => {
                #[derive(Deserialize)]
                struct Spec {
                    max_entries: u32,
                }
                let spec: Spec = serde_json::from_str(spec).map_err(bad)?;
                Kind::WordCloud {
                    max_entries: spec.max_entries,
                }
            }
            other => return Err(Invalid(format!("unknown kind {other:?}"))),
        })
    }

    /// The scale's lowest value (0 for other kinds): the Redis script maps
    /// a value to its count with it.
    pub fn scale_min(&self) -> u32 {
        match self {
            Kind::Scale(s) => s.min,
            _ => 0,
        }
    }

    /// Entries per vote (0 for other kinds).
    pub fn max_entries(&self) -> u32 {
        match self {
            Kind::WordCloud { max_entries } => *max_entries,
            _ => 0,
        }
    }
}

/// Keeps the word cloud's normalisation reachable from the kind.
pub use wordcloud::normalise_all as normalise_entries;

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: KindName) -> KindInput {
        KindInput {
            kind: Some(kind),
            ..Default::default()
        }
    }

    #[test]
    fn each_kind_checks_its_own_fields() {
        assert_eq!(Kind::parse(&KindInput::default(), 2), Ok(Kind::Choice));
        assert!(
            Kind::parse(&input(KindName::Wordcloud), 2)
                .unwrap_err()
                .0
                .starts_with("options")
        );
        assert_eq!(
            Kind::parse(&input(KindName::Wordcloud), 0),
            Ok(Kind::WordCloud { max_entries: 1 })
        );
        let four = KindInput {
            max_entries: Some(4),
            ..input(KindName::Wordcloud)
        };
        assert!(
            Kind::parse(&four, 0)
                .unwrap_err()
                .0
                .starts_with("max_entries")
        );
        assert!(
            Kind::parse(&input(KindName::Ranking), 11)
                .unwrap_err()
                .0
                .starts_with("options")
        );
        assert!(Kind::parse(&input(KindName::Ranking), 1).is_err());
        assert_eq!(
            Kind::parse(&input(KindName::Scale), 0),
            Ok(Kind::Scale(Scale::default()))
        );
        let stray = KindInput {
            scale: Some(Scale::default()),
            ..KindInput::default()
        };
        assert!(Kind::parse(&stray, 2).unwrap_err().0.starts_with("scale"));
    }

    #[test]
    fn a_vote_of_another_shape_is_refused() {
        let scale = Kind::Scale(Scale::default());
        assert_eq!(
            scale.deltas(&Choice::one(0), 5, 1),
            Err(Refusal::WrongShape)
        );
        assert_eq!(
            scale.deltas(&Choice::value(6), 5, 1),
            Err(Refusal::BadValue)
        );
        assert_eq!(
            scale.deltas(&Choice::value(0), 5, 1),
            Err(Refusal::BadValue)
        );
        assert_eq!(scale.deltas(&Choice::value(5), 5, 1), Ok(vec![(4, 1)]));
        let cloud = Kind::WordCloud { max_entries: 1 };
        let two = Choice::entries(&["a".into(), "b".into()]).unwrap();
        assert_eq!(cloud.deltas(&two, 0, 1), Err(Refusal::BadEntries));
        assert_eq!(
            Kind::Ranking.deltas(&Choice::value(1), 3, 1),
            Err(Refusal::WrongShape)
        );
        let order = Choice::ranking(&[1, 0]).unwrap();
        assert_eq!(Kind::Ranking.deltas(&order, 3, 1), Err(Refusal::BadRanking));
    }

    #[test]
    fn the_stored_spec_reads_back() {
        for kind in [
            Kind::Choice,
            Kind::Ranking,
            Kind::WordCloud { max_entries: 3 },
            Kind::Scale(Scale {
                min: 0,
                max: 7,
                min_label: Some("no".into()),
                max_label: None,
            }),
        ] {
            let back = Kind::from_stored(kind.name().as_str(), &kind.spec_json()).unwrap();
            assert_eq!(back, kind);
        }
        assert_eq!(Kind::from_stored("", ""), Ok(Kind::Choice));
    }
}
