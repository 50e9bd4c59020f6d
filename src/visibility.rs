//! Who may see a poll's counts: the one rule every transport, the JSON API,
//! the CSV export and the pages apply before sending results.
//!
//! A poll's `results` setting (`always`, `after_vote`, `after_close`)
//! hides counts from some clients while it runs. The server decides per
//! client with a [`Viewer`], then sends either the shared snapshot or its
//! shared hidden twin ([`crate::poll::Snapshot::for_viewer`]), so hiding
//! costs one extra rendering per version, never one per follower.

use std::sync::Arc;

use crate::poll::{Results, ResultsVisibility, Snapshot};

/// Here, beside the rule, rather than in `poll`: the domain type does not
/// import the visibility rules above it.
impl Snapshot {
    /// The variant `viewer` may see: this one, or the hidden one.
    pub fn for_viewer(self: &Arc<Self>, viewer: &Viewer) -> Arc<Snapshot> {
        let base = if viewer.admin {
            Arc::clone(self)
        } else {
            self.public_view()
        };
        if viewer.sees_counts(&base.results) {
            base
        } else {
            base.hidden()
        }
    }
}

/// What the server knows about the client it is answering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Viewer {
    /// Presented the poll's admin token (`Authorization: Bearer`).
    pub admin: bool,
    /// Their voter cookie has voted on this poll.
    pub voted: bool,
}

impl Viewer {
    /// A client the server knows nothing about.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The poll's host, who always sees counts.
    pub fn admin() -> Self {
        Self {
            admin: true,
            voted: false,
        }
    }

    /// A client that has voted on the poll.
    pub fn voter() -> Self {
        Self {
            admin: false,
            voted: true,
        }
    }

    /// Whether this client may see the counts of `results` now.
    pub fn sees_counts(&self, results: &Results) -> bool {
        self.admin
            || results.closed
            || match results.results {
                ResultsVisibility::Always => true,
                ResultsVisibility::AfterVote => self.voted,
                ResultsVisibility::AfterClose => false,
            }
    }

    /// `results` as this client may see them.
    pub fn view(&self, results: Results) -> Results {
        // A word cloud's hidden entries are the host's alone.
        let results = if self.admin {
            results
        } else {
            results.public()
        };
        if self.sees_counts(&results) {
            results
        } else {
            results.hidden()
        }
    }
}

/// Whether what `results` shows a client can depend on the client having
/// voted: only then is a "has this voter voted" lookup worth its cost.
pub fn depends_on_vote(results: &Results) -> bool {
    results.results == ResultsVisibility::AfterVote
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::{PollId, Results, VoteLimit};

    fn results(visibility: ResultsVisibility, closed: bool) -> Results {
        let id = PollId::parse("p").unwrap();
        let mut r = Results::new(
            &id,
            "q",
            VoteLimit::OnePerVoter,
            closed,
            4,
            &["a".into(), "b".into()],
            &[3, 1],
        );
        r.results = visibility;
        r
    }

    #[test]
    fn each_setting_shows_counts_to_whom_it_says() {
        use ResultsVisibility::*;
        let (anon, voter, admin) = (Viewer::anonymous(), Viewer::voter(), Viewer::admin());
        assert!(anon.sees_counts(&results(Always, false)));
        assert!(!anon.sees_counts(&results(AfterVote, false)));
        assert!(voter.sees_counts(&results(AfterVote, false)));
        assert!(!voter.sees_counts(&results(AfterClose, false)));
        assert!(anon.sees_counts(&results(AfterClose, true)));
        assert!(anon.sees_counts(&results(AfterVote, true)));
        assert!(admin.sees_counts(&results(AfterClose, false)));
    }

    #[test]
    fn hidden_results_carry_no_count_but_keep_the_version() {
        let hidden = Viewer::anonymous().view(results(ResultsVisibility::AfterClose, false));
        assert!(hidden.results_hidden);
        assert_eq!(hidden.total, None);
        assert!(hidden.options.iter().all(|o| o.votes.is_none()));
        assert_eq!(hidden.version, 4);
        let json = serde_json::to_string(&hidden).unwrap();
        assert!(
            json.contains("\"total\":null") && !json.contains('3'),
            "{json}"
        );
    }
}
