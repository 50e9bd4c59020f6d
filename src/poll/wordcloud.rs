//! Word clouds: how an entry is normalised before it is counted, and the
//! top entries that results carry.
//!
//! Normalising first means "Rust", " rust! " and "ＲＵＳＴ" are one entry:
//! the cloud counts words, not spellings. The store never sees raw text.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use super::Invalid;

/// Longest entry after normalising, in Unicode scalar values.
pub const MAX_ENTRY_CHARS: usize = 30;
/// Most entries one vote may carry (`max_entries` is 1 to this).
pub const MAX_ENTRIES_PER_VOTE: u32 = 3;
/// Most distinct entries one poll holds: past it new entries are refused
/// (409 `too_many_entries`) while known ones still count, so a room cannot
/// make the store hold an unbounded set.
pub const MAX_DISTINCT: u64 = 5_000;
/// How many entries results carry: the most voted, never the whole set, so
/// a change message stays the same size however many entries there are.
pub const TOP: usize = 50;
/// Most entries a host may hide at once; bounds what a change message
/// carries beside the top entries.
pub const MAX_HIDDEN: u64 = 50;

/// Whether `c` is Unicode general category P (Pc Pd Ps Pe Pi Pf Po).
///
/// std has no general-category API; `char::is_ascii_punctuation` also
/// takes ASCII symbols (`$+<=>^`|~`), which the contract keeps. This table
/// holds the category P ranges of the blocks people type from (Latin, General
/// Punctuation, CJK, fullwidth forms); symbols (S*) are never in it.
fn is_punctuation(c: char) -> bool {
    matches!(c,
        '!' ..= '#' | '%' ..= '*' | ',' ..= '/' | ':' | ';' | '?' | '@' | '[' ..= ']'
        | '_' | '{' | '}'
        | '\u{A1}' | '\u{A7}' | '\u{AB}' | '\u{B6}' | '\u{B7}' | '\u{BB}' | '\u{BF}'
        | '\u{37E}' | '\u{387}' | '\u{55A}' ..= '\u{55F}' | '\u{589}' | '\u{58A}'
        | '\u{5BE}' | '\u{5C0}' | '\u{5C3}' | '\u{5C6}' | '\u{5F3}' | '\u{5F4}'
        | '\u{609}' | '\u{60A}' | '\u{60C}' | '\u{60D}' | '\u{61B}' | '\u{61D}' ..= '\u{61F}'
        | '\u{66A}' ..= '\u{66D}' | '\u{6D4}' | '\u{964}' | '\u{965}' | '\u{970}'
        | '\u{E4F}' | '\u{E5A}' | '\u{E5B}'
        | '\u{2010}' ..= '\u{2027}' | '\u{2030}' ..= '\u{2043}' | '\u{2045}' ..= '\u{2051}'
        | '\u{2053}' ..= '\u{205E}' | '\u{207D}' | '\u{207E}' | '\u{208D}' | '\u{208E}'
        | '\u{2308}' ..= '\u{230B}' | '\u{2329}' | '\u{232A}' | '\u{2768}' ..= '\u{2775}'
        | '\u{27C5}' | '\u{27C6}' | '\u{27E6}' ..= '\u{27EF}' | '\u{2983}' ..= '\u{2998}'
        | '\u{29D8}' ..= '\u{29DB}' | '\u{29FC}' | '\u{29FD}' | '\u{2CF9}' ..= '\u{2CFC}'
        | '\u{2CFE}' | '\u{2CFF}' | '\u{2E00}' ..= '\u{2E2E}' | '\u{2E30}' ..= '\u{2E4F}'
        | '\u{2E52}' ..= '\u{2E5D}'
        | '\u{3001}' ..= '\u{3003}' | '\u{3008}' ..= '\u{3011}' | '\u{3014}' ..= '\u{301F}'
        | '\u{3030}' | '\u{303D}' | '\u{30A0}' | '\u{30FB}'
        | '\u{FE10}' ..= '\u{FE19}' | '\u{FE30}' ..= '\u{FE52}' | '\u{FE54}' ..= '\u{FE61}'
        | '\u{FE63}' | '\u{FE68}' | '\u{FE6A}' | '\u{FE6B}'
        | '\u{FF01}' ..= '\u{FF03}' | '\u{FF05}' ..= '\u{FF0A}' | '\u{FF0C}' ..= '\u{FF0F}'
        | '\u{FF1A}' | '\u{FF1B}' | '\u{FF1F}' | '\u{FF20}' | '\u{FF3B}' ..= '\u{FF3D}'
        | '\u{FF3F}' | '\u{FF5B}' | '\u{FF5D}' | '\u{FF5F}' ..= '\u{FF65}'
    )
}

/// One entry as it is counted: NFKC, trimmed, inner whitespace runs made
/// one space, lower case (Unicode-aware, not case folding: ß stays ß),
/// leading and trailing punctuation (category P) removed, then 1 to 30
/// characters. CJK text stays whole: nothing is ever split.
pub fn normalise(raw: &str) -> Result<String, Invalid> {
    let nfkc: String = raw.nfkc().collect();
    let spaced = nfkc.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = spaced.to_lowercase();
    let stripped = lower
        .trim_matches(|c: char| is_punctuation(c) || c.is_whitespace())
        .to_owned();
    let len = stripped.chars().count();
    if len == 0 {
        return Err(Invalid(
            "entries: an entry is empty after normalising (spaces and punctuation are removed)"
                .into(),
        ));
    }
    if len > MAX_ENTRY_CHARS {
        return Err(Invalid(format!(
            "entries: an entry must be at most {MAX_ENTRY_CHARS} characters"
        )));
    }
    Ok(stripped)
}

/// The entries of one `{"entries":[…]}` vote: each normalised, equal ones
/// counted once, at least one. Whether they fit the poll's `max_entries`
/// is the store's check (it knows the poll).
pub fn normalise_all(raw: &[String]) -> Result<Vec<String>, Invalid> {
    if raw.is_empty() {
        return Err(Invalid("entries must hold at least one entry".into()));
    }
    if raw.len() > MAX_ENTRIES_PER_VOTE as usize {
        return Err(Invalid(format!(
            "entries: at most {MAX_ENTRIES_PER_VOTE} entries per vote"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for entry in raw {
        let entry = normalise(entry)?;
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// The counted top of a word cloud as the store reads it (never the whole
/// set): what a change message carries and results are rendered from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cloud {
    /// The most voted entries with at least one vote, most first, ties
    /// first seen first: the top [`TOP`] plus enough more that [`TOP`]
    /// visible ones are among them; `[text, votes, hidden (0/1)]`.
    pub top: Vec<(String, u64, u8)>,
    /// Distinct entries with at least one vote, hidden ones included.
    pub distinct: u64,
    /// Hidden entries with at least one vote.
    pub hidden_distinct: u64,
    /// Votes of hidden entries.
    pub hidden_votes: u64,
}

impl Cloud {
    /// The top entries a viewer sees: everything (the host) or only the
    /// visible ones; at most [`TOP`].
    pub fn entries(&self, host: bool) -> impl Iterator<Item = (&str, u64, bool)> {
        self.top
            .iter()
            .filter(move |(_, _, hidden)| host || *hidden == 0)
            .take(TOP)
            .map(|(text, votes, hidden)| (text.as_str(), *votes, *hidden == 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let cases: &[(&str, &str)] = &[
            ("Rust", "rust"),
            ("  Rust  ", "rust"),
            ("ＲＵＳＴ", "rust"),    // fullwidth letters (NFKC)
            ("Cafe\u{301}", "café"), // combining accent composed
            ("CAFÉ", "café"),
            ("Straße", "straße"), // lower case, not case folding
            ("STRASSE", "strasse"),
            ("¿Qué tal?", "qué tal"),          // Spanish edge punctuation
            ("  new \t\n york  ", "new york"), // inner whitespace collapsed
            ("北京 大学", "北京 大学"),        // CJK kept whole
            ("「北京」", "北京"),              // CJK brackets are punctuation
            ("你好！", "你好"),                // fullwidth ! (NFKC to !)
            ("🎉 party 🎉", "🎉 party 🎉"),    // emoji are symbols: kept
            ("$100", "$100"),                  // symbols kept at the edge
            ("c++", "c++"),                    // + is a symbol (Sm)
            ("...wait...", "wait"),
            ("don't", "don't"), // inner punctuation kept
        ];
        for (raw, want) in cases {
            assert_eq!(normalise(raw).as_deref(), Ok(*want), "{raw:?}");
        }
    }

    #[test]
    fn only_punctuation_or_too_long_is_refused() {
        for bad in ["", "   ", "!!!", "¿?", "。", "—", &"a".repeat(31)] {
            let err = normalise(bad).unwrap_err();
            assert!(err.0.starts_with("entries"), "{bad:?}: {}", err.0);
        }
        assert!(normalise(&"字".repeat(30)).is_ok());
        assert!(normalise(&"字".repeat(31)).is_err());
    }

    #[test]
    fn a_vote_counts_equal_entries_once_and_needs_one() {
        let got = normalise_all(&["Rust".into(), "rust!".into(), "Go".into()]).unwrap();
        assert_eq!(got, vec!["rust", "go"]);
        assert!(normalise_all(&[]).is_err());
        assert!(normalise_all(&vec!["a".to_owned(); 4]).is_err());
    }

    #[test]
    fn hidden_entries_leave_the_public_top_which_fills_from_the_next() {
        let mut cloud = Cloud::default();
        for i in 0..(TOP as u64 + 2) {
            cloud.top.push((format!("w{i}"), 100 - i, u8::from(i == 0)));
        }
        let public: Vec<_> = cloud.entries(false).collect();
        assert_eq!(public.len(), TOP);
        assert_eq!(public[0].0, "w1");
        assert_eq!(public[TOP - 1].0, format!("w{TOP}"));
        let host: Vec<_> = cloud.entries(true).collect();
        assert_eq!(host[0], ("w0", 100, true));
    }
}
