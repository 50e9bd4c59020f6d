//! A model of one poll with the richer rules (multi-choice, change-your-vote,
//! visibility, reopen, a deadline), written from the store's contract: what
//! each vote, close and reopen must answer, and the state after it.

use std::collections::HashMap;

use tally::poll::{Choice, NewPoll, ResultsVisibility, SettingsInput, VoteLimit};
use tally::store::VoterRecord;

/// Where a poll's `closes_at` lies when the test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    None,
    /// An hour away: it must change nothing.
    Later,
    /// Already past: the first operation closes the poll (version +1) and
    /// it can never be reopened.
    Passed,
}

/// The settings a poll is created with.
#[derive(Debug, Clone)]
pub struct Setup {
    pub options: usize,
    pub limit: VoteLimit,
    pub max_choices: u32,
    pub allow_change: bool,
    pub results: ResultsVisibility,
    pub deadline: Deadline,
    pub listed: bool,
}

impl Setup {
    /// The poll as the API would have validated it. A passed deadline is
    /// set after validation (the API refuses one; the store must handle a
    /// deadline that passed before anyone touched the poll).
    pub fn new_poll(&self, now_ms: u64) -> NewPoll {
        let labels: Vec<String> = (0..self.options).map(|i| format!("o{i}")).collect();
        let input = SettingsInput {
            max_choices: Some(self.max_choices),
            allow_change: Some(self.allow_change),
            results: Some(self.results),
            closes_at: (self.deadline != Deadline::None)
                .then(|| tally::poll::format_rfc3339(now_ms + 3_600_000)),
            listed: Some(self.listed),
        };
        let mut poll = NewPoll::parse("q", &labels, self.limit)
            .unwrap()
            .with_settings(&input, now_ms)
            .expect("the strategy makes only valid settings");
        if self.deadline == Deadline::Passed {
            poll.settings.closes_at_ms = Some(now_ms - 3_600_000);
        }
        poll
    }

    fn records_voters(&self) -> bool {
        self.limit == VoteLimit::OnePerVoter || self.results == ResultsVisibility::AfterVote
    }
}

/// What the model says one vote must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Not a choice (empty, or an option repeated): refused before any
    /// store sees it (`Choice::parse` fails).
    Invalid,
    /// Counted: the next version and the counts right after it.
    Counted { version: u64, counts: Vec<u64> },
    /// The voter's current choice again (allow_change): 200 with the
    /// current state, nothing changed and no key recorded.
    Unchanged { version: u64, counts: Vec<u64> },
    /// A retry of a key's first vote: that vote's version and counts.
    Replayed { version: u64, counts: Vec<u64> },
    /// Refused with this code.
    Refused(&'static str),
}

/// What a key's first (counted) vote chose and got.
#[derive(Debug, Clone)]
struct First {
    choice: Vec<u32>,
    version: u64,
    counts: Vec<u64>,
}

/// One poll's state as the contract defines it.
#[derive(Debug)]
pub struct PollModel {
    pub setup: Setup,
    pub counts: Vec<u64>,
    pub version: u64,
    pub closed: bool,
    /// Voter → current choice, where the poll records voters.
    voters: HashMap<u8, Vec<u32>>,
    keys: HashMap<u8, First>,
}

impl PollModel {
    pub fn new(setup: &Setup) -> Self {
        Self {
            setup: setup.clone(),
            counts: vec![0; setup.options],
            version: 0,
            closed: false,
            voters: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// Any operation on a poll past its deadline closes it first.
    pub fn close_if_due(&mut self) {
        if self.setup.deadline == Deadline::Passed && !self.closed {
            self.closed = true;
            self.version += 1;
        }
    }

    /// One vote of `raw` (as the client sent it) by `voter`, maybe keyed.
    /// Checks in the store's order: closed (where only a retry of an
    /// earlier vote replays), options exist, how many, key, voter rule.
    pub fn vote(&mut self, raw: &[u32], voter: u8, key: Option<u8>) -> Expect {
        let mut choice = raw.to_vec();
        choice.sort_unstable();
        if choice.is_empty() || choice.windows(2).any(|w| w[0] == w[1]) {
            return Expect::Invalid;
        }
        self.close_if_due();
        if self.closed {
            // A retry of a vote counted before the close still replays it.
            return match key.and_then(|k| self.keys.get(&k)) {
                Some(first) if first.choice == choice => Expect::Replayed {
                    version: first.version,
                    counts: first.counts.clone(),
                },
                _ => Expect::Refused("poll_closed"),
            };
        }
        if choice.iter().any(|&o| o as usize >= self.setup.options) {
            return Expect::Refused("option_not_found");
        }
        if choice.len() > self.setup.max_choices as usize {
            return Expect::Refused("too_many_choices");
        }
        if let Some(first) = key.and_then(|k| self.keys.get(&k)) {
            return if first.choice == choice {
                Expect::Replayed {
                    version: first.version,
                    counts: first.counts.clone(),
                }
            } else {
                Expect::Refused("idempotency_key_reused")
            };
        }
        let mut previous = None;
        if self.setup.records_voters() {
            let one_per_voter = self.setup.limit == VoteLimit::OnePerVoter;
            match self.voters.get(&voter) {
                Some(_) if one_per_voter && !self.setup.allow_change => {
                    return Expect::Refused("already_voted");
                }
                Some(current) if one_per_voter && *current == choice => {
                    // The key keeps this answer: another choice with it
                    // is then refused, not counted.
                    self.remember(key, choice);
                    return Expect::Unchanged {
                        version: self.version,
                        counts: self.counts.clone(),
                    };
                }
                Some(current) if one_per_voter => previous = Some(current.clone()),
                // Unlimited after_vote polls only remember who voted.
                _ => {}
            }
            self.voters.insert(voter, choice.clone());
        }
        for &o in previous.iter().flatten() {
            self.counts[o as usize] -= 1;
        }
        for &o in &choice {
            self.counts[o as usize] += 1;
        }
        self.version += 1;
        self.remember(key, choice);
        Expect::Counted {
            version: self.version,
            counts: self.counts.clone(),
        }
    }

    /// Keeps the poll's state now as the answer of `key`, if any.
    fn remember(&mut self, key: Option<u8>, choice: Vec<u32>) {
        if let Some(k) = key {
            let first = First {
                choice,
                version: self.version,
                counts: self.counts.clone(),
            };
            self.keys.insert(k, first);
        }
    }

    /// An admin's close: version +1 unless already closed.
    pub fn close(&mut self) {
        self.close_if_due();
        if !self.closed {
            self.closed = true;
            self.version += 1;
        }
    }

    /// An admin's reopen: `false` when the deadline has passed (the poll
    /// stays closed); else open, version +1 if it was closed.
    pub fn reopen(&mut self) -> bool {
        self.close_if_due();
        if self.setup.deadline == Deadline::Passed {
            return false;
        }
        if self.closed {
            self.closed = false;
            self.version += 1;
        }
        true
    }

    /// What the store must have on record of `voter`: their current
    /// choice where votes may change, else only that they voted.
    pub fn voter_record(&self, voter: u8) -> VoterRecord {
        match self.voters.get(&voter) {
            None => VoterRecord::None,
            Some(choice) if self.setup.allow_change => {
                VoterRecord::Chose(Choice::parse(choice).expect("a recorded choice is valid"))
            }
            Some(_) => VoterRecord::Voted,
        }
    }
}
