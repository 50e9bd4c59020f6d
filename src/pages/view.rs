//! The page templates and the view models they render.
//!
//! Handlers turn domain values into these plain structs (numbers already
//! formatted, percentages already computed), so the templates in
//! `templates/` hold markup only. askama escapes every `{{ }}` for HTML.

use askama::Template;
use askama_web::WebTemplate;

use crate::poll::{IdempotencyKey, MAX_OPTIONS, MIN_OPTIONS, Results, VoteLimit};

/// The create form as typed, so a refused form comes back filled in.
pub struct CreateForm {
    pub question: String,
    pub options: Vec<String>,
    pub unlimited: bool,
    /// Put the cursor in the last option field (after "add option").
    pub focus_last: bool,
}

impl Default for CreateForm {
    fn default() -> Self {
        Self {
            question: String::new(),
            options: vec![String::new(); 3],
            unlimited: false,
            focus_last: false,
        }
    }
}

impl CreateForm {
    /// Whether "add option" may add one more field.
    pub fn can_add(&self) -> bool {
        self.options.len() < MAX_OPTIONS
    }

    /// Whether "remove" may take a field away (the form keeps two).
    pub fn can_remove(&self) -> bool {
        self.options.len() > MIN_OPTIONS
    }

    /// Whether field `index` gets `autofocus`: the one just added.
    pub fn focus(&self, index: &usize) -> bool {
        self.focus_last && *index + 1 == self.options.len()
    }
}

/// One line of the recent polls list.
pub struct PollSummary {
    pub id: String,
    pub question: String,
    pub total: String,
    pub closed: bool,
}

impl From<&Results> for PollSummary {
    fn from(r: &Results) -> Self {
        Self {
            id: r.id.clone(),
            question: r.question.clone(),
            total: votes_text(r.total.unwrap_or(0)),
            closed: r.closed,
        }
    }
}

/// `/`: the create form and the newest polls (`None`: the store could not
/// list them, which must not stop anyone from creating a poll).
#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub struct HomePage {
    pub form: CreateForm,
    pub error: Option<String>,
    pub recent: Option<Vec<PollSummary>>,
    /// The demo poll's transport lab, when this instance keeps a demo poll.
    pub lab_url: Option<String>,
}

/// The answer to the create form: the link and the admin token, once.
#[derive(Template, WebTemplate)]
#[template(path = "created.html")]
pub struct CreatedPage {
    pub id: String,
    pub question: String,
    /// The link to share.
    pub url: String,
    /// The poll's API address, for the close and delete examples.
    pub api_url: String,
    pub token: String,
}

/// One option of the poll page: its label, count, share and bar.
pub struct OptionRow {
    pub id: u32,
    pub label: String,
    pub votes: String,
    /// The share in percent with one decimal, without the sign: `28.4`.
    pub share: String,
    /// The share rounded to a whole percent: the bar's width class
    /// (`w-0` … `w-100`), since the CSP forbids inline style attributes.
    pub width: u8,
    pub chosen: bool,
}

/// A transport the poll page can follow changes with.
pub struct TransportLink {
    pub name: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// A one-line message about the last action (e.g. after a form vote).
pub struct Notice {
    pub text: &'static str,
    /// `ok` or `warn`: how the notice looks.
    pub kind: &'static str,
}

/// `/polls/{id}`: the question, vote buttons and live result bars.
#[derive(Template, WebTemplate)]
#[template(path = "poll.html")]
pub struct PollPage {
    pub id: String,
    pub question: String,
    pub closed: bool,
    pub one_per_voter: bool,
    pub version: u64,
    pub total: String,
    pub options: Vec<OptionRow>,
    pub transport: &'static str,
    /// Whether the transport was asked for in the URL (kept across a form vote).
    pub transport_chosen: bool,
    pub transports: Vec<TransportLink>,
    pub instance: String,
    pub notice: Option<Notice>,
    /// The form vote's idempotency key, new on every render: a form sent
    /// twice (a double click, a resubmission) counts once, and the page
    /// the vote redirects to carries a new key for the next vote.
    pub vote_key: String,
    /// The results as JSON, for the script (an escaped attribute value).
    pub results_json: String,
}

impl PollPage {
    /// The view of `results` with `choice` marked as the visitor's vote.
    pub fn new(results: &Results, choice: Option<u32>) -> Self {
        let options = results
            .options
            .iter()
            .map(|o| OptionRow {
                id: o.id,
                label: o.label.clone(),
                votes: votes_text(o.votes.unwrap_or(0)),
                share: share_text(o.votes.unwrap_or(0), results.total.unwrap_or(0)),
                width: width_class(o.votes.unwrap_or(0), results.total.unwrap_or(0)),
                chosen: choice == Some(o.id),
            })
            .collect();
        Self {
            id: results.id.clone(),
            question: results.question.clone(),
            closed: results.closed,
            one_per_voter: results.vote_limit == VoteLimit::OnePerVoter,
            version: results.version,
            total: votes_text(results.total.unwrap_or(0)),
            options,
            transport: "ws",
            transport_chosen: false,
            transports: Vec::new(),
            instance: String::new(),
            notice: None,
            vote_key: IdempotencyKey::generate().as_str().to_owned(),
            results_json: serde_json::to_string(results).expect("results always serialise"),
        }
    }
}

/// One transport's panel in the lab: its hook name, title and a plain-words
/// account of how it works.
#[derive(Clone, Copy)]
pub struct LabPanel {
    pub name: &'static str,
    pub label: &'static str,
    pub explain: &'static str,
}

/// `/polls/{id}/lab`: the poll followed over all four transports at once.
#[derive(Template, WebTemplate)]
#[template(path = "lab.html")]
pub struct LabPage {
    pub id: String,
    pub question: String,
    pub instance: String,
    pub panels: Vec<LabPanel>,
    /// Whether the lab may cast votes here (an open, unlimited poll).
    pub can_vote: bool,
    /// Why it may not, in words, when it may not.
    pub why_not: Option<&'static str>,
    /// Where to try the vote control instead (the demo poll's lab), if anywhere.
    pub try_instead: Option<String>,
    /// The results as JSON, for the script (an escaped attribute value).
    pub results_json: String,
}

/// Any page-level failure: not found, unavailable, refused.
#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: &'static str,
    pub message: String,
    pub status: u16,
}

/// `1117` → `1,117`; the script formats the same way (`en-US`).
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 vote`, `1,117 votes`.
pub fn votes_text(n: u64) -> String {
    let unit = if n == 1 { "vote" } else { "votes" };
    format!("{} {unit}", group_thousands(n))
}

fn share(votes: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        votes as f64 * 100.0 / total as f64
    }
}

/// The share with one decimal, as the script shows it: `28.4`.
pub fn share_text(votes: u64, total: u64) -> String {
    format!("{:.1}", share(votes, total))
}

fn width_class(votes: u64, total: u64) -> u8 {
    share(votes, total).round().clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped_like_en_us() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1117), "1,117");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn shares_have_one_decimal_and_survive_zero_total() {
        assert_eq!(share_text(0, 0), "0.0");
        assert_eq!(share_text(600, 1100), "54.5");
        assert_eq!(width_class(600, 1100), 55);
        assert_eq!(width_class(1, 1), 100);
        assert_eq!(votes_text(1), "1 vote");
    }
}
