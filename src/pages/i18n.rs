//! The pages' two languages, English and 简体中文: which one a visitor
//! gets, and every word the pages and their script show, one table per
//! language (`en`, `zh`).
//!
//! The catalogue is a plain struct ([`Text`]) with one field per phrase,
//! so a phrase missing from a language does not compile. Phrases with
//! values in them carry `{name}` placeholders, filled by [`fill`] on the
//! server and by the same rule in `static/app.js`, which gets its phrases
//! as JSON in a `data-` attribute (the CSP allows no inline script).
//!
//! The language is the `tally_lang` cookie when it names one (set by the
//! switch in every page's header), else the best match in
//! `Accept-Language`, else English.

mod en;
mod zh;

use axum::http::{HeaderMap, header};
use serde::Serialize;

pub use en::EN;
pub use zh::ZH;

/// The cookie that keeps a visitor's chosen language.
pub const COOKIE: &str = "tally_lang";

/// A language the pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// The BCP 47 tag, for `<html lang>`, the cookie and `Intl` in the script.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// Every phrase in this language.
    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::Zh => &ZH,
        }
    }

    /// The language the switch offers.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// The language's own name, as the switch shows it.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "中文",
        }
    }

    /// The language a tag names: `en`, `en-GB`, `zh`, `zh-CN`, `zh-Hans`…
    /// Every Chinese tag gets the simplified Chinese pages, the only
    /// Chinese there is (a reader of traditional characters reads them more
    /// easily than English, most of the time).
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next()?.trim();
        if primary.eq_ignore_ascii_case("zh") {
            Some(Lang::Zh)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The visitor's language: the cookie, else `Accept-Language`, else English.
    pub fn of_request(headers: &HeaderMap) -> Lang {
        cookie_lang(headers)
            .or_else(|| {
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(accept_language)
            })
            .unwrap_or(Lang::En)
    }
}

/// The language the `tally_lang` cookie names, if it names one.
fn cookie_lang(headers: &HeaderMap) -> Option<Lang> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| Lang::from_tag(value.trim()))
}

/// The best of our languages in an `Accept-Language` value: the highest
/// `q` among the tags we have (the first listed wins a tie); `*` and tags
/// we lack are skipped, `q=0` means "not this one".
pub fn accept_language(value: &str) -> Option<Lang> {
    let mut best: Option<(Lang, f32)> = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let Some(lang) = Lang::from_tag(tag) else {
            continue;
        };
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((lang, q));
        }
    }
    best.map(|(lang, _)| lang)
}

/// `template` with each `{name}` replaced by its value.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// Every phrase of the pages in one language. Field names say where the
/// phrase is used; `{…}` marks a value filled in.
#[derive(Debug, Serialize)]
pub struct Text {
    // -- Every page --
    pub skip_link: &'static str,
    pub tagline: &'static str,
    pub footer: &'static str,
    pub switch_label: &'static str,
    // -- Numbers --
    /// `{n} vote` / `{n} votes` (one form in Chinese).
    pub vote_one: &'static str,
    pub vote_many: &'static str,
    // -- Home --
    pub home_title: &'static str,
    pub create_title: &'static str,
    pub create_lead: &'static str,
    pub question: &'static str,
    pub question_placeholder: &'static str,
    pub options: &'static str,
    pub options_hint: &'static str,
    /// `Option {n}`.
    pub option_n: &'static str,
    /// `Remove option {n}`.
    pub remove_option_n: &'static str,
    pub add_option: &'static str,
    pub who_votes: &'static str,
    pub one_per_voter: &'static str,
    pub one_per_voter_hint: &'static str,
    pub unlimited: &'static str,
    pub unlimited_hint: &'static str,
    pub create_button: &'static str,
    pub lab_title: &'static str,
    pub lab_intro: &'static str,
    pub lab_open_demo: &'static str,
    pub lab_every_poll: &'static str,
    pub recent_title: &'static str,
    pub recent_none: &'static str,
    pub recent_unavailable: &'static str,
    pub badge_open: &'static str,
    pub badge_closed: &'static str,
    pub badge_deleted: &'static str,
    // -- Create form messages --
    pub err_question_empty: &'static str,
    pub err_question_long: &'static str,
    pub err_options_count: &'static str,
    /// `The option “{label}” …`.
    pub err_option_long: &'static str,
    pub err_option_repeat: &'static str,
    pub err_max_choices: &'static str,
    pub err_allow_change: &'static str,
    pub err_closes_past: &'static str,
    pub err_closes_far: &'static str,
    pub err_closes_bad: &'static str,
    pub err_create_rate: &'static str,
    // -- Created --
    pub created_title: &'static str,
    pub created_eyebrow: &'static str,
    pub share_link: &'static str,
    pub copy: &'static str,
    /// The manage pages' embed snippet: its label and what it is for.
    pub embed_label: &'static str,
    pub embed_hint: &'static str,
    pub copied: &'static str,
    pub admin_token: &'static str,
    pub token_keep: &'static str,
    pub token_note: &'static str,
    pub how_to_api: &'static str,
    pub open_poll: &'static str,
    pub create_another: &'static str,
    // -- Poll --
    pub one_vote_per_person: &'static str,
    pub unlimited_votes: &'static str,
    pub your_vote: &'static str,
    pub vote: &'static str,
    /// Screen-reader tail of a vote button: ` for {label}`.
    pub vote_for: &'static str,
    pub notice_voted: &'static str,
    /// `Your vote for “{label}” was counted.`
    pub notice_voted_for: &'static str,
    pub notice_already_voted: &'static str,
    pub notice_closed_refused: &'static str,
    pub notice_no_option: &'static str,
    pub notice_bad_choice: &'static str,
    /// Word cloud: the entry field's label.
    pub cloud_entry: &'static str,
    /// Word cloud: the cap of distinct entries is reached.
    pub notice_too_many_entries: &'static str,
    /// Scale: "Mean" and "Median".
    pub scale_mean: &'static str,
    pub scale_median: &'static str,
    /// Ranking: the place field's label ("Place").
    pub rank_label: &'static str,
    /// Create form: the kind picker and each kind with its hint.
    pub kind_field: &'static str,
    pub kind_choice: &'static str,
    pub kind_choice_hint: &'static str,
    pub kind_wordcloud: &'static str,
    pub kind_wordcloud_hint: &'static str,
    pub kind_scale: &'static str,
    pub kind_scale_hint: &'static str,
    pub kind_ranking: &'static str,
    pub kind_ranking_hint: &'static str,
    /// Create form: under the options, for the kinds without them.
    pub options_kinds_hint: &'static str,
    /// Create form: the word cloud's and the scale's fields.
    pub max_entries_field: &'static str,
    pub scale_min_field: &'static str,
    pub scale_max_field: &'static str,
    pub scale_min_label_field: &'static str,
    pub scale_max_label_field: &'static str,
    /// Ranking: points and first places of an option.
    pub points_one: &'static str,
    pub points_many: &'static str,
    pub first_places: &'static str,
    /// Ranking input: the hint, the move buttons (screen readers) and what a move announces.
    pub rank_hint: &'static str,
    pub rank_move_up: &'static str,
    pub rank_move_down: &'static str,
    pub rank_moved: &'static str,
    /// Word cloud: nothing yet; nothing typed.
    pub cloud_empty: &'static str,
    pub cloud_entry_first: &'static str,
    /// Manage page: the word cloud's entries, each with a hide or show button.
    pub host_entries_title: &'static str,
    pub host_entries_lead: &'static str,
    pub entry_hide: &'static str,
    pub entry_show: &'static str,
    pub entry_hidden: &'static str,
    pub entry_hide_label: &'static str,
    pub entry_show_label: &'static str,
    pub done_hidden: &'static str,
    pub done_shown: &'static str,
    pub notice_key_reused: &'static str,
    pub notice_rate_limited: &'static str,
    pub notice_unavailable: &'static str,
    pub notice_network: &'static str,
    pub notice_refused: &'static str,
    pub poll_closed_final: &'static str,
    pub poll_deleted: &'static str,
    pub transport: &'static str,
    /// `{used} ({asked} unavailable)`.
    pub transport_fallback: &'static str,
    pub version: &'static str,
    pub served_by: &'static str,
    pub connection: &'static str,
    pub conn_connecting: &'static str,
    pub conn_live: &'static str,
    pub conn_reconnecting: &'static str,
    /// `reconnecting in {s} s`.
    pub conn_retry_in: &'static str,
    pub conn_deleted: &'static str,
    pub no_js_poll: &'static str,
    pub follow_with: &'static str,
    pub t_ws: &'static str,
    pub t_sse: &'static str,
    pub t_longpoll: &'static str,
    pub t_poll: &'static str,
    pub lab_link: &'static str,
    pub lab_link_tail: &'static str,
    // -- Richer polls --
    /// `Choose up to {n}`.
    pub choose_up_to: &'static str,
    pub send_vote: &'static str,
    pub change_vote: &'static str,
    pub can_change: &'static str,
    /// `You can choose at most {n}.`
    pub too_many_choices: &'static str,
    pub choose_one_first: &'static str,
    pub hidden_until_vote: &'static str,
    pub hidden_until_close: &'static str,
    pub hidden_count: &'static str,
    /// `Closes {time}`.
    pub closes_at: &'static str,
    pub max_choices: &'static str,
    pub max_choices_hint: &'static str,
    pub allow_change: &'static str,
    pub allow_change_hint: &'static str,
    pub results_visibility: &'static str,
    pub results_always: &'static str,
    pub results_after_vote: &'static str,
    pub results_after_close: &'static str,
    pub closes_at_field: &'static str,
    pub closes_at_hint: &'static str,
    pub listed: &'static str,
    pub listed_hint: &'static str,
    pub more_settings: &'static str,
    // -- Manage --
    pub manage_title: &'static str,
    pub manage_eyebrow: &'static str,
    pub manage_lead: &'static str,
    pub manage_link: &'static str,
    pub manage_link_note: &'static str,
    pub token_field: &'static str,
    pub token_hint: &'static str,
    pub token_from_link: &'static str,
    pub close_poll: &'static str,
    pub reopen_poll: &'static str,
    pub delete_poll: &'static str,
    pub delete_confirm_box: &'static str,
    pub delete_confirm: &'static str,
    pub delete_yes: &'static str,
    pub cancel: &'static str,
    pub export_csv: &'static str,
    pub open_present: &'static str,
    pub qr_alt: &'static str,
    pub live_results: &'static str,
    pub done_closed: &'static str,
    pub done_reopened: &'static str,
    pub done_deleted: &'static str,
    pub done_exported: &'static str,
    pub wrong_token: &'static str,
    pub missing_token: &'static str,
    pub need_confirm: &'static str,
    pub manage_failed: &'static str,
    pub no_js_manage: &'static str,
    // -- Present --
    pub present_title: &'static str,
    pub join_at: &'static str,
    pub scan_to_vote: &'static str,
    pub theme_toggle: &'static str,
    pub fullscreen: &'static str,
    // -- Transport lab --
    pub lab_page_title: &'static str,
    pub lab_lead: &'static str,
    pub lab_back: &'static str,
    pub lab_no_js: &'static str,
    pub lab_rate: &'static str,
    pub lab_rate_hint: &'static str,
    pub lab_start: &'static str,
    pub lab_stop: &'static str,
    pub lab_try_demo: &'static str,
    pub lab_try_demo_tail: &'static str,
    pub lab_idle: &'static str,
    pub lab_votes_cast: &'static str,
    pub lab_accepted: &'static str,
    pub lab_failed: &'static str,
    pub lab_running_for: &'static str,
    pub lab_served_by: &'static str,
    pub lab_server_counted: &'static str,
    pub lab_transports: &'static str,
    pub lab_updates: &'static str,
    pub lab_requests: &'static str,
    pub lab_p50: &'static str,
    pub lab_p99: &'static str,
    pub lab_received: &'static str,
    pub lab_per_update: &'static str,
    pub lab_chart_title: &'static str,
    pub lab_chart_desc: &'static str,
    pub lab_howto_title: &'static str,
    pub lab_why_closed: &'static str,
    pub lab_why_one: &'static str,
    pub lab_ws_label: &'static str,
    pub lab_ws_explain: &'static str,
    pub lab_sse_label: &'static str,
    pub lab_sse_explain: &'static str,
    pub lab_longpoll_label: &'static str,
    pub lab_longpoll_explain: &'static str,
    pub lab_poll_label: &'static str,
    pub lab_poll_explain: &'static str,
    pub lab_say_rate: &'static str,
    pub lab_say_running: &'static str,
    pub lab_say_following: &'static str,
    pub lab_say_stopping: &'static str,
    pub lab_say_stopped: &'static str,
    // -- Events (join, audience, presenter, manage, create) --
    pub ev_home_title: &'static str,
    pub ev_home_lead: &'static str,
    pub ev_home_create: &'static str,
    pub ev_home_join: &'static str,
    pub join_title: &'static str,
    pub join_lead: &'static str,
    pub join_code: &'static str,
    pub join_button: &'static str,
    pub join_err_format: &'static str,
    pub join_err_unknown: &'static str,
    pub join_err_rate: &'static str,
    pub ev_code: &'static str,
    pub ev_join_code_is: &'static str,
    pub ev_lobby: &'static str,
    pub ev_lobby_hint: &'static str,
    pub ev_no_js: &'static str,
    pub ev_needs_js: &'static str,
    pub ev_question_of: &'static str,
    pub ev_results_hidden: &'static str,
    pub ev_vote_closed: &'static str,
    pub ev_deleted: &'static str,
    pub ev_qa: &'static str,
    pub qa_tab_poll: &'static str,
    pub qa_tabs: &'static str,
    pub qa_ask_title: &'static str,
    pub qa_text_label: &'static str,
    pub qa_name_label: &'static str,
    pub qa_name_hint: &'static str,
    pub qa_count: &'static str,
    pub qa_ask_button: &'static str,
    pub qa_err_text_empty: &'static str,
    pub qa_err_text_long: &'static str,
    pub qa_err_name_long: &'static str,
    pub qa_err_wait: &'static str,
    pub qa_err_full: &'static str,
    pub qa_done_posted: &'static str,
    pub qa_done_pending: &'static str,
    pub qa_board_title: &'static str,
    pub qa_public_one: &'static str,
    pub qa_public_many: &'static str,
    pub qa_empty: &'static str,
    pub qa_none: &'static str,
    pub qa_anonymous: &'static str,
    pub qa_pinned: &'static str,
    pub qa_answered: &'static str,
    pub qa_waiting: &'static str,
    pub qa_yours: &'static str,
    pub qa_upvote: &'static str,
    pub qa_hidden: &'static str,
    pub qa_more: &'static str,
    pub qa_gone: &'static str,
    pub qa_own: &'static str,
    pub qa_moderation_label: &'static str,
    pub qa_moderation_hint: &'static str,
    pub qa_moderation_on: &'static str,
    pub qa_moderation_off: &'static str,
    pub qa_held_title: &'static str,
    pub qa_held_empty: &'static str,
    pub qa_public_title: &'static str,
    pub qa_approve: &'static str,
    pub qa_hide: &'static str,
    pub qa_answer: &'static str,
    pub qa_pin: &'static str,
    pub qa_unpin: &'static str,
    pub qa_item_n: &'static str,
    pub qa_done_moderated: &'static str,
    pub ev_qr_alt: &'static str,
    pub ev_keys_help: &'static str,
    pub ev_keys_need_token: &'static str,
    pub ev_manage_title: &'static str,
    pub ev_manage_eyebrow: &'static str,
    pub ev_drive: &'static str,
    pub ev_prev: &'static str,
    pub ev_next: &'static str,
    pub ev_lobby_button: &'static str,
    pub ev_show_results: &'static str,
    pub ev_hide_results: &'static str,
    pub ev_open_voting: &'static str,
    pub ev_close_voting: &'static str,
    pub ev_goto: &'static str,
    pub ev_go: &'static str,
    pub ev_goto_range: &'static str,
    pub ev_status_on: &'static str,
    pub ev_status_lobby: &'static str,
    pub ev_deck: &'static str,
    pub ev_deck_empty: &'static str,
    pub ev_on_screen: &'static str,
    pub ev_show_now: &'static str,
    pub ev_edit: &'static str,
    pub ev_save: &'static str,
    pub ev_move_up: &'static str,
    pub ev_move_down: &'static str,
    pub ev_remove: &'static str,
    pub ev_question_n: &'static str,
    pub ev_remove_question: &'static str,
    pub ev_add_title: &'static str,
    pub ev_add_button: &'static str,
    pub ev_options_hint: &'static str,
    pub ev_has_votes: &'static str,
    pub ev_wrong_token: &'static str,
    pub ev_missing_token: &'static str,
    pub ev_delete_q_confirm: &'static str,
    pub ev_delete_event_confirm: &'static str,
    pub ev_done_added: &'static str,
    pub ev_done_edited: &'static str,
    pub ev_done_removed: &'static str,
    pub ev_done_deleted: &'static str,
    pub ev_open_audience: &'static str,
    pub ev_open_present: &'static str,
    pub ev_delete_event: &'static str,
    pub ev_new_title: &'static str,
    pub ev_new_lead: &'static str,
    pub ev_title_label: &'static str,
    pub ev_title_placeholder: &'static str,
    pub ev_add_question: &'static str,
    pub ev_create_button: &'static str,
    pub ev_create_failed: &'static str,
    pub ev_created: &'static str,
    pub ev_manage_link: &'static str,
    pub ev_manage_note: &'static str,
    // -- Errors --
    /// `Error {status}`.
    pub error_n: &'static str,
    pub err_not_found_title: &'static str,
    pub err_not_found: &'static str,
    pub err_unavailable_title: &'static str,
    pub err_unavailable: &'static str,
    pub err_refused_title: &'static str,
    pub err_form_body: &'static str,
    pub err_too_large: &'static str,
    /// A form posted from another site.
    pub err_cross_site: &'static str,
    pub go_home: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn accept_language_picks_the_highest_q_we_have() {
        assert_eq!(accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Some(Lang::Zh));
        assert_eq!(accept_language("en-US,en;q=0.9"), Some(Lang::En));
        assert_eq!(
            accept_language("fr-FR, zh-Hans;q=0.5, en;q=0.4"),
            Some(Lang::Zh)
        );
        assert_eq!(accept_language("de, fr;q=0.5"), None);
        assert_eq!(accept_language("zh;q=0, en;q=0.1"), Some(Lang::En));
        assert_eq!(accept_language("*"), None);
        assert_eq!(accept_language("zh-TW"), Some(Lang::Zh));
    }

    #[test]
    fn the_cookie_beats_accept_language() {
        let h = headers(&[
            ("accept-language", "zh-CN"),
            ("cookie", "tally_voter=x; tally_lang=en"),
        ]);
        assert_eq!(Lang::of_request(&h), Lang::En);
        let h = headers(&[("accept-language", "en"), ("cookie", "tally_lang=zh-CN")]);
        assert_eq!(Lang::of_request(&h), Lang::Zh);
        let h = headers(&[("accept-language", "zh"), ("cookie", "tally_lang=klingon")]);
        assert_eq!(Lang::of_request(&h), Lang::Zh);
        assert_eq!(Lang::of_request(&HeaderMap::new()), Lang::En);
    }

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(fill("{n} votes", &[("n", "3")]), "3 votes");
        assert_eq!(Lang::Zh.tag(), "zh-CN");
        assert_eq!(Lang::from_tag(Lang::Zh.tag()), Some(Lang::Zh));
    }
}
