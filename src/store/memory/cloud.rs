//! A word cloud's entries in the embedded store: counts by entry and an
//! ordered index (votes, then first seen), so the top entries are read
//! without sorting the whole set, as Redis's sorted set does.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::poll::Cloud;
use crate::poll::wordcloud::{MAX_DISTINCT, MAX_HIDDEN, TOP};

/// Every entry of one word cloud, with its hidden ones.
#[derive(Debug, Default)]
pub struct CloudState {
    /// Entry → (votes, first-seen sequence).
    counts: HashMap<String, (u64, u64)>,
    /// (votes descending, first seen ascending, entry).
    order: BTreeSet<(Reverse<u64>, u64, String)>,
    /// Entries with at least one vote.
    distinct: u64,
    hidden: HashSet<String>,
}

impl CloudState {
    /// Whether adding `entries` would pass the distinct-entries cap.
    pub fn would_overflow(&self, entries: &[String]) -> bool {
        let new = entries
            .iter()
            .filter(|e| !self.counts.contains_key(*e))
            .count() as u64;
        new > 0 && self.counts.len() as u64 + new > MAX_DISTINCT
    }

    /// Adds `delta` votes to `entry` (first seen now when new).
    pub fn add(&mut self, entry: &str, delta: i64) {
        let seq = self.counts.len() as u64;
        let (votes, first) = self.counts.entry(entry.to_owned()).or_insert((0, seq));
        self.order
            .remove(&(Reverse(*votes), *first, entry.to_owned()));
        let before = *votes;
        *votes = votes.saturating_add_signed(delta);
        self.order
            .insert((Reverse(*votes), *first, entry.to_owned()));
        match (before, *votes) {
            (0, v) if v > 0 => self.distinct += 1,
            (b, 0) if b > 0 => self.distinct -= 1,
            _ => {}
        }
    }

    /// Hides or shows `entry`; `None` when the hidden cap refuses it, else
    /// whether anything changed.
    pub fn set_hidden(&mut self, entry: &str, hidden: bool) -> Option<bool> {
        if !hidden {
            return Some(self.hidden.remove(entry));
        }
        if self.hidden.contains(entry) {
            return Some(false);
        }
        if self.hidden.len() as u64 >= MAX_HIDDEN {
            return None;
        }
        Some(self.hidden.insert(entry.to_owned()))
    }

    /// The top as results carry it: enough entries that [`TOP`] visible
    /// ones are among them, with the hidden ones' totals.
    pub fn cloud(&self) -> Cloud {
        let mut top = Vec::new();
        let mut visible = 0;
        for (Reverse(votes), _, text) in &self.order {
            if *votes == 0 || visible == TOP {
                break;
            }
            let hidden = self.hidden.contains(text);
            visible += usize::from(!hidden);
            top.push((text.clone(), *votes, u8::from(hidden)));
        }
        let hidden_counts = self.hidden.iter().filter_map(|h| self.counts.get(h));
        let (hidden_distinct, hidden_votes) = hidden_counts
            .filter(|(v, _)| *v > 0)
            .fold((0, 0), |(d, t), (v, _)| (d + 1, t + v));
        Cloud {
            top,
            distinct: self.distinct,
            hidden_distinct,
            hidden_votes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_orders_by_votes_then_first_seen_and_skips_zero() {
        let mut c = CloudState::default();
        for e in ["b", "a", "c", "a", "c"] {
            c.add(e, 1);
        }
        c.add("b", -1);
        let cloud = c.cloud();
        let texts: Vec<_> = cloud.top.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(texts, vec!["a", "c"]);
        assert_eq!(cloud.distinct, 2);
        c.set_hidden("a", true);
        let cloud = c.cloud();
        assert_eq!((cloud.hidden_distinct, cloud.hidden_votes), (1, 2));
    }
}
