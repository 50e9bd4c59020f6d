//! The page templates and the view models they render.
//!
//! Handlers turn domain values into these plain structs (numbers already
//! formatted, percentages already computed), so the templates in
//! `templates/` hold markup only. askama escapes every `{{ }}` for HTML.

use askama::Template;
use askama_web::WebTemplate;

use super::i18n::fill;
use super::ui::Ui;
use crate::poll::{
    IdempotencyKey, Invalid, KindInput, KindName, MAX_OPTIONS, MIN_OPTIONS, PollId, Results,
    ResultsVisibility, Scale, SettingsInput, VoteLimit,
};

/// The create form as typed, so a refused form comes back filled in.
pub struct CreateForm {
    pub question: String,
    pub options: Vec<String>,
    pub unlimited: bool,
    /// Most options one vote may choose, as typed (`1` = single choice).
    pub max_choices: String,
    pub allow_change: bool,
    /// `always`, `after_vote` or `after_close`.
    pub results: String,
    /// `closes_at` as the `datetime-local` field had it (`2026-12-24T18:00`).
    pub closes_at: String,
    /// The browser's `getTimezoneOffset()` in minutes, which the script
    /// fills in; without it `closes_at` is read as UTC.
    pub tz_offset: Option<i32>,
    pub listed: bool,
    /// Put the cursor in the last option field (after "add option").
    pub focus_last: bool,
    /// `choice`, `wordcloud`, `scale` or `ranking`.
    pub kind: String,
    /// Word cloud: entries per vote, as typed (`1`–`3`).
    pub max_entries: String,
    /// Scale: its bounds and end labels, as typed.
    pub scale_min: String,
    pub scale_max: String,
    pub min_label: String,
    pub max_label: String,
}

impl Default for CreateForm {
    fn default() -> Self {
        Self {
            question: String::new(),
            options: vec![String::new(); 3],
            unlimited: false,
            max_choices: "1".into(),
            allow_change: false,
            results: "always".into(),
            closes_at: String::new(),
            tz_offset: None,
            listed: false,
            focus_last: false,
            kind: "choice".into(),
            max_entries: "1".into(),
            scale_min: "1".into(),
            scale_max: "5".into(),
            min_label: String::new(),
            max_label: String::new(),
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

    /// The settings as the API takes them: `closes_at` from the local time
    /// typed and the browser's offset (UTC without one).
    pub fn settings(&self) -> Result<SettingsInput, Invalid> {
        let max_choices = self.max_choices.trim();
        let max_choices = if max_choices.is_empty() {
            None
        } else {
            Some(max_choices.parse::<u32>().map_err(|_| {
                Invalid("max_choices must be from 1 to the number of options".into())
            })?)
        };
        let results = ResultsVisibility::parse(&self.results).ok();
        let closes_at = self.closes_at.trim();
        let closes_at =
            (!closes_at.is_empty()).then(|| local_to_rfc3339(closes_at, self.tz_offset));
        Ok(SettingsInput {
            max_choices,
            allow_change: Some(self.allow_change),
            results,
            closes_at,
            listed: Some(self.listed),
        })
    }

    /// The kind fields as the API takes them; a field of another kind is
    /// left out (its inputs stay in the form, hidden).
    pub fn kind_input(&self) -> Result<KindInput, Invalid> {
        let number = |field: &str, text: &str| {
            text.trim()
                .parse::<u32>()
                .map_err(|_| Invalid(format!("{field} must be a whole number")))
        };
        let kind = kind_named(&self.kind);
        Ok(KindInput {
            kind: Some(kind),
            max_entries: match kind {
                KindName::Wordcloud => Some(number("max_entries", &self.max_entries)?),
                _ => None,
            },
            scale: match kind {
                KindName::Scale => Some(Scale {
                    min: number("scale.min", &self.scale_min)?,
                    max: number("scale.max", &self.scale_max)?,
                    min_label: Some(self.min_label.clone()),
                    max_label: Some(self.max_label.clone()),
                }),
                _ => None,
            },
        })
    }

    /// Whether the option fields count for the kind picked.
    pub fn takes_options(&self) -> bool {
        matches!(kind_named(&self.kind), KindName::Choice | KindName::Ranking)
    }

    /// The kinds the picker offers: (name, title, hint).
    pub fn kinds(&self, ui: &Ui) -> [(&'static str, &'static str, &'static str); 4] {
        let t = ui.t;
        [
            ("choice", t.kind_choice, t.kind_choice_hint),
            ("wordcloud", t.kind_wordcloud, t.kind_wordcloud_hint),
            ("scale", t.kind_scale, t.kind_scale_hint),
            ("ranking", t.kind_ranking, t.kind_ranking_hint),
        ]
    }

    /// Whether "more settings" starts open: a setting differs from its default.
    pub fn has_settings(&self) -> bool {
        self.max_choices.trim() != "1"
            || self.allow_change
            || self.results != "always"
            || !self.closes_at.is_empty()
            || self.listed
    }

    /// `Option 3`, in the visitor's language.
    pub fn option_label(&self, ui: &Ui, n: &usize) -> String {
        fill(ui.t.option_n, &[("n", &n.to_string())])
    }

    /// `Remove option 3`.
    pub fn remove_label(&self, ui: &Ui, n: &usize) -> String {
        fill(ui.t.remove_option_n, &[("n", &n.to_string())])
    }

    /// Whether field `index` gets `autofocus`: the one just added.
    pub fn focus(&self, index: &usize) -> bool {
        self.focus_last && *index + 1 == self.options.len()
    }
}

/// The kind a form field names; anything else is a choice poll.
fn kind_named(name: &str) -> KindName {
    [KindName::Wordcloud, KindName::Scale, KindName::Ranking]
        .into_iter()
        .find(|k| k.as_str() == name)
        .unwrap_or(KindName::Choice)
}

/// `2026-12-24T18:00` typed in a zone `offset_minutes` behind UTC (as
/// `Date.getTimezoneOffset()` says) → `2026-12-24T18:00:00+08:00`.
fn local_to_rfc3339(local: &str, offset_minutes: Option<i32>) -> String {
    let with_seconds = if local.len() == 16 {
        format!("{local}:00")
    } else {
        local.to_owned()
    };
    let east = -offset_minutes.unwrap_or(0).clamp(-18 * 60, 18 * 60);
    let sign = if east < 0 { '-' } else { '+' };
    let east = east.abs();
    format!("{with_seconds}{sign}{:02}:{:02}", east / 60, east % 60)
}

/// One line of the recent polls list.
pub struct PollSummary {
    pub id: String,
    pub question: String,
    pub total: String,
    pub closed: bool,
}

impl PollSummary {
    /// The line for `r`, its count in the visitor's language.
    pub fn new(r: &Results, ui: &Ui) -> Self {
        Self {
            id: r.id.clone(),
            question: r.question.clone(),
            total: total_text(r, ui),
            closed: r.closed,
        }
    }
}

/// `/`: the create form and the newest polls (`None`: the store could not
/// list them, which must not stop anyone from creating a poll).
#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub struct HomePage {
    pub ui: Ui,
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
    pub ui: Ui,
    pub id: String,
    pub question: String,
    /// The link to share.
    pub url: String,
    /// The poll's API address, for the close and delete examples.
    pub api_url: String,
    pub token: String,
    /// The manage page's absolute address, the token in its fragment.
    pub manage_url: String,
    /// The same, relative, for the button.
    pub manage_path: String,
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
    /// The vote button's screen-reader tail: ` for Red`.
    pub vote_for: String,
    /// Ranking: how many ranked it first (`3× first`).
    pub first: Option<String>,
}

/// The rows of `results`, `choice` marked as the visitor's. A ranking's
/// rows show points, their bars a share of all points given.
pub fn option_rows(results: &Results, ui: &Ui, choice: &[u32]) -> Vec<OptionRow> {
    let ranking = results.kind == KindName::Ranking;
    let total = if ranking {
        results.options.iter().filter_map(|o| o.points).sum()
    } else {
        results.total.unwrap_or(0)
    };
    results
        .options
        .iter()
        .map(|o| {
            let votes = o.votes.unwrap_or(0);
            OptionRow {
                id: o.id,
                label: o.label.clone(),
                votes: match o.votes {
                    Some(n) if ranking => ui.points(n),
                    Some(n) => ui.votes(n),
                    None => ui.t.hidden_count.to_owned(),
                },
                share: share_text(votes, total),
                width: width_class(votes, total),
                chosen: choice.contains(&o.id),
                vote_for: fill(ui.t.vote_for, &[("label", &o.label)]),
                first: o
                    .first
                    .map(|n| fill(ui.t.first_places, &[("n", &ui.number(n))])),
            }
        })
        .collect()
}

/// The total as shown: `1,117 votes`, or "hidden".
pub fn total_text(results: &Results, ui: &Ui) -> String {
    match results.total {
        Some(n) => ui.votes(n),
        None => ui.t.hidden_count.to_owned(),
    }
}

/// Why the counts are not shown to this visitor, if they are not.
pub fn hidden_because(results: &Results, ui: &Ui) -> Option<&'static str> {
    let why = match results.results {
        ResultsVisibility::AfterVote => ui.t.hidden_until_vote,
        _ => ui.t.hidden_until_close,
    };
    results.results_hidden.then_some(why)
}

/// A transport the poll page can follow changes with.
pub struct TransportLink {
    pub name: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// A one-line message about the last action (e.g. after a form vote).
pub struct Notice {
    pub text: String,
    /// `ok` or `warn`: how the notice looks.
    pub kind: &'static str,
}

/// `/polls/{id}`: the question, vote buttons and live result bars.
#[derive(Template, WebTemplate)]
#[template(path = "poll.html")]
pub struct PollPage {
    pub ui: Ui,
    pub id: String,
    pub question: String,
    pub closed: bool,
    pub one_per_voter: bool,
    pub version: u64,
    pub total: String,
    /// Why counts are not shown (hidden until a vote or the close).
    pub hidden: Option<&'static str>,
    /// Most options one vote may choose; above 1 the page shows checkboxes.
    pub max_choices: u32,
    /// `Choose up to 3`.
    pub choose_up_to: String,
    pub allow_change: bool,
    /// The page knows this visitor's choice (after a form vote).
    pub voted: bool,
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
    /// The oEmbed discovery link (`/oembed?url=…`), on the poll page.
    pub oembed_href: Option<String>,
    /// What the poll asks and how the template draws it.
    pub k: KindView,
}

/// A poll's kind as the templates draw it: the word cloud, the scale's
/// ends and statistics, the ranking's places.
pub struct KindView {
    /// The kind as the API names it.
    pub kind: &'static str,
    /// Word cloud: its top entries, each with a size class 1–5 by votes.
    pub words: Vec<CloudWord>,
    /// Word cloud: one text field per entry a vote may carry.
    pub entry_fields: Vec<u32>,
    /// Scale: end labels, mean and median as shown.
    pub min_label: String,
    pub max_label: String,
    pub mean: String,
    pub median: String,
    /// Ranking: the places an option may take (1 … n).
    pub places: Vec<usize>,
}

impl KindView {
    pub fn new(results: &Results) -> Self {
        let scale = results.scale.as_deref();
        let label = |l: Option<&Option<String>>| l.and_then(Clone::clone).unwrap_or_default();
        Self {
            kind: results.kind.as_str(),
            words: cloud_words(results),
            entry_fields: (0..u32::from(results.max_entries.unwrap_or(0))).collect(),
            min_label: label(scale.map(|s| &s.min_label)),
            max_label: label(scale.map(|s| &s.max_label)),
            mean: stat_text(results.mean.as_deref()),
            median: stat_text(results.median.as_deref()),
            places: (1..=results.options.len()).collect(),
        }
    }
}

/// A word cloud's top entries with their size classes (1–5, by votes
/// against the most voted); hidden ones (the host's view) are marked.
fn cloud_words(results: &Results) -> Vec<CloudWord> {
    let top = results.entries.as_deref().unwrap_or_default();
    let most = top.iter().map(|e| e.votes).max().unwrap_or(1).max(1);
    top.iter()
        .map(|e| CloudWord {
            text: e.text.clone(),
            votes: e.votes,
            size: (1 + e.votes * 4 / most) as u8,
        })
        .collect()
}

/// One word of a word cloud as drawn: larger for more votes (CSS classes,
/// no inline style under the page's CSP).
pub struct CloudWord {
    pub text: String,
    pub votes: u64,
    pub size: u8,
}

/// A statistic as shown: one decimal, or a dash with no votes.
fn stat_text(v: Option<&serde_json::Value>) -> String {
    v.and_then(serde_json::Value::as_f64)
        .map_or_else(|| "–".to_owned(), |x| format!("{x:.1}"))
}

impl PollPage {
    /// The view of `results` with `choice` marked as the visitor's vote.
    pub fn new(results: &Results, choice: &[u32], ui: Ui) -> Self {
        let options = option_rows(results, &ui, choice);
        Self {
            id: results.id.clone(),
            question: results.question.clone(),
            closed: results.closed,
            one_per_voter: results.vote_limit == VoteLimit::OnePerVoter,
            version: results.version,
            total: total_text(results, &ui),
            hidden: hidden_because(results, &ui),
            max_choices: results.max_choices,
            choose_up_to: fill(
                ui.t.choose_up_to,
                &[("n", &results.max_choices.to_string())],
            ),
            allow_change: results.allow_change,
            voted: !choice.is_empty(),
            options,
            transport: "ws",
            transport_chosen: false,
            transports: Vec::new(),
            instance: String::new(),
            notice: None,
            vote_key: IdempotencyKey::generate().as_str().to_owned(),
            results_json: serde_json::to_string(results).expect("results always serialise"),
            oembed_href: None,
            k: KindView::new(results),
            ui,
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
    pub ui: Ui,
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

/// `/polls/{id}/manage`: the host's page. The admin token is not in the
/// address the server sees; `token` is only filled in the answer to the
/// form (which had it in its body), so the next press needs no pasting.
#[derive(Template, WebTemplate)]
#[template(path = "manage.html")]
pub struct ManagePage {
    pub ui: Ui,
    pub id: String,
    pub question: String,
    pub closed: bool,
    pub deleted: bool,
    pub version: u64,
    pub total: String,
    pub hidden: Option<&'static str>,
    pub options: Vec<OptionRow>,
    /// `bars.html` at its normal size.
    pub big: bool,
    /// The link to share.
    pub poll_url: String,
    pub token: String,
    pub notice: Option<Notice>,
    pub results_json: String,
    /// What the poll asks: a word cloud gets the host's list of entries.
    pub k: KindView,
    /// The embed page's iframe, for the host to paste into another site.
    pub embed_snippet: String,
}

impl ManagePage {
    /// The page for `results`, the share link `poll_url`.
    pub fn new(results: &Results, ui: Ui, poll_url: String) -> Self {
        Self {
            embed_snippet: String::new(),
            id: results.id.clone(),
            question: results.question.clone(),
            closed: results.closed,
            deleted: false,
            version: results.version,
            total: total_text(results, &ui),
            hidden: hidden_because(results, &ui),
            options: option_rows(results, &ui, &[]),
            big: false,
            poll_url,
            token: String::new(),
            notice: None,
            results_json: serde_json::to_string(results).expect("results always serialise"),
            k: KindView::new(results),
            ui,
        }
    }

    /// The page after the poll `id` was deleted from it: nothing to press.
    pub fn deleted(id: &PollId, ui: Ui) -> Self {
        Self {
            embed_snippet: String::new(),
            id: id.to_string(),
            question: ui.t.poll_deleted.to_owned(),
            closed: true,
            deleted: true,
            version: 0,
            total: String::new(),
            hidden: None,
            options: Vec::new(),
            big: false,
            poll_url: String::new(),
            token: String::new(),
            notice: None,
            results_json: "null".into(),
            k: KindView::new(&Results::new(
                id,
                "",
                VoteLimit::Unlimited,
                true,
                0,
                &[],
                &[],
            )),
            ui,
        }
    }
}

/// `/polls/{id}/present`: the question, live bars, the count and the way
/// in (link and QR code), for a projector or a phone held up.
#[derive(Template, WebTemplate)]
#[template(path = "present.html")]
pub struct PresentPage {
    pub ui: Ui,
    pub id: String,
    pub question: String,
    pub closed: bool,
    pub total: String,
    pub hidden: Option<&'static str>,
    pub options: Vec<OptionRow>,
    pub big: bool,
    /// The link to join, in full and as shown (without the scheme).
    pub poll_url: String,
    pub poll_url_shown: String,
    pub results_json: String,
    pub k: KindView,
}

/// Any page-level failure: not found, unavailable, refused.
#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub ui: Ui,
    /// `Error 404`.
    pub eyebrow: String,
    pub title: &'static str,
    pub message: String,
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
    fn local_times_get_the_browsers_offset() {
        assert_eq!(
            local_to_rfc3339("2026-12-24T18:00", Some(-480)),
            "2026-12-24T18:00:00+08:00"
        );
        assert_eq!(
            local_to_rfc3339("2026-12-24T18:00", Some(300)),
            "2026-12-24T18:00:00-05:00"
        );
        assert_eq!(
            local_to_rfc3339("2026-12-24T18:00", None),
            "2026-12-24T18:00:00+00:00"
        );
    }

    #[test]
    fn shares_have_one_decimal_and_survive_zero_total() {
        assert_eq!(share_text(0, 0), "0.0");
        assert_eq!(share_text(600, 1100), "54.5");
        assert_eq!(width_class(600, 1100), 55);
        assert_eq!(width_class(1, 1), 100);
    }
}
