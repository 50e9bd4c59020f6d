//! `/`: create a poll and see the newest ones; `POST /polls`: the create
//! form, which works without JavaScript.
//!
//! The form's "add option" and "remove" buttons are ordinary submit buttons
//! that come back to this handler, so a browser without JavaScript can build
//! a poll of any size; the script does the same in place.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;

use super::i18n::{Text, fill};
use super::ui::Ui;
use super::view::{CreateForm, CreatedPage, HomePage, PollSummary};
use super::{PageError, no_store, voter_jar};
use crate::api::AppState;
use crate::error::Error;
use crate::poll::{KindName, MAX_OPTIONS, NewPoll, VoteLimit, now_ms};
use crate::service::DEMO_POLL_ID;
use crate::visibility::Viewer;

/// How many polls the home page lists.
const RECENT: usize = 20;

/// `GET /`.
pub async fn show(
    State(app): State<AppState>,
    ui: Ui,
    jar: CookieJar,
    headers: HeaderMap,
) -> Response {
    let page = home_page(&app, ui, CreateForm::default(), None).await;
    (voter_jar(jar, &headers), page).into_response()
}

/// `GET /polls`: the create form lives on the home page.
pub async fn to_home() -> Redirect {
    Redirect::to("/")
}

async fn home_page(app: &AppState, ui: Ui, form: CreateForm, error: Option<String>) -> HomePage {
    let recent = match app.service.list(RECENT).await {
        Ok(polls) => Some(
            polls
                .into_iter()
                .map(|p| PollSummary::new(&Viewer::anonymous().view(p), &ui))
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not list recent polls");
            None
        }
    };
    HomePage {
        ui,
        form,
        error,
        recent,
        lab_url: app
            .config
            .demo
            .then(|| format!("/polls/{DEMO_POLL_ID}/lab")),
    }
}

/// What the create form's submit meant.
enum Intent {
    Create,
    AddOption,
    RemoveOption(usize),
}

/// Reads the urlencoded form (repeated `option` fields) into the form as
/// typed and what the pressed button asked for.
fn read_form(fields: Vec<(String, String)>) -> (CreateForm, Intent) {
    let mut form = CreateForm {
        options: Vec::new(),
        ..CreateForm::default()
    };
    let mut intent = Intent::Create;
    for (name, value) in fields {
        match name.as_str() {
            "question" => form.question = value,
            // Bounded so a crafted body cannot make a huge form to re-render.
            "option" if form.options.len() <= MAX_OPTIONS => form.options.push(value),
            "vote_limit" => form.unlimited = value == VoteLimit::Unlimited.as_str(),
            "max_choices" => form.max_choices = value.chars().take(8).collect(),
            "allow_change" => form.allow_change = value == "true",
            "results" if ["always", "after_vote", "after_close"].contains(&value.as_str()) => {
                form.results = value
            }
            "closes_at" => form.closes_at = value.chars().take(40).collect(),
            "tz_offset" => form.tz_offset = value.trim().parse().ok(),
            "listed" => form.listed = value == "true",
            "kind" => form.kind = value.chars().take(12).collect(),
            "max_entries" => form.max_entries = value.chars().take(8).collect(),
            "scale_min" => form.scale_min = value.chars().take(8).collect(),
            "scale_max" => form.scale_max = value.chars().take(8).collect(),
            // Longer than the API allows, so its message says so.
            "min_label" => form.min_label = value.chars().take(60).collect(),
            "max_label" => form.max_label = value.chars().take(60).collect(),
            "action" if value == "add" => intent = Intent::AddOption,
            "remove" => {
                if let Ok(i) = value.parse() {
                    intent = Intent::RemoveOption(i);
                }
            }
            _ => {}
        }
    }
    (form, intent)
}

/// `POST /polls`: creates the poll and shows its link and admin token once,
/// or shows the form again with the reason it was refused (nothing created).
#[tracing::instrument(skip_all)]
pub async fn create(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ui: Ui,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(fields) = form.map_err(form_error)?;
    let jar = voter_jar(jar, &headers);
    let (mut form, intent) = read_form(fields);
    match intent {
        Intent::AddOption => {
            if form.can_add() {
                form.options.push(String::new());
                form.focus_last = true;
            }
            return Ok((jar, home_page(&app, ui, form, None).await).into_response());
        }
        Intent::RemoveOption(i) => {
            if form.can_remove() && i < form.options.len() {
                form.options.remove(i);
            }
            return Ok((jar, home_page(&app, ui, form, None).await).into_response());
        }
        Intent::Create => {}
    }
    // Blank fields are spare fields left empty, not options; a word cloud
    // or a scale has none (its hidden option fields are ignored).
    let options: Vec<String> = form
        .options
        .iter()
        .filter(|o| form.takes_options() && !o.trim().is_empty())
        .cloned()
        .collect();
    let limit = if form.unlimited {
        VoteLimit::Unlimited
    } else {
        VoteLimit::OnePerVoter
    };
    let parsed = form.settings().and_then(|mut settings| {
        let kind = form.kind_input()?;
        if !form.takes_options() || kind.kind == Some(KindName::Ranking) {
            // "Choose up to" is a choice poll's; its hidden field is ignored.
            settings.max_choices = None;
        }
        NewPoll::parse_kind(&form.question, &options, limit, &kind)?
            .with_settings(&settings, now_ms())
    });
    let poll = match parsed {
        Ok(poll) => poll,
        Err(e) => {
            let message = explain(ui.t, &e.0, &options);
            let page = home_page(&app, ui, form, Some(message)).await;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, jar, page).into_response());
        }
    };
    let client = app.create_limiter.client_ip(peer, &headers);
    if let Err(e) = app.create_limiter.check(client) {
        // The form comes back as typed, saying when to try again.
        let wait = e.retry_after().unwrap_or(1);
        let message = fill(ui.t.err_create_rate, &[("s", &wait.to_string())]);
        let page = home_page(&app, ui, form, Some(message)).await;
        let retry_after = (header::RETRY_AFTER, HeaderValue::from(wait));
        return Ok((e.status(), [retry_after], jar, page).into_response());
    }
    let (results, token) = app.service.create(poll).await?;
    let origin = app
        .config
        .public_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| super::site_origin(&headers));
    let manage_path = format!("/polls/{}/manage#token={}", results.id, token.as_str());
    let page = CreatedPage {
        ui,
        url: format!("{origin}/polls/{}", results.id),
        api_url: format!("{origin}/api/polls/{}", results.id),
        manage_url: format!("{origin}{manage_path}"),
        manage_path,
        id: results.id,
        question: results.question,
        token: token.as_str().to_owned(),
    };
    let location = format!("/polls/{}", page.id);
    Ok((
        StatusCode::CREATED,
        [
            no_store(),
            (header::LOCATION, location.parse().expect("valid")),
        ],
        jar,
        page,
    )
        .into_response())
}

/// A validation message as a person filling the form reads it, in their
/// language: options named by their text rather than by a 0-based index
/// into the non-blank fields. A message this page has no words for (a rule
/// added later) is shown as the API words it.
fn explain(t: &Text, message: &str, options: &[String]) -> String {
    let option = || -> Option<(String, String)> {
        let (index, rest) = message.strip_prefix("option ")?.split_once(' ')?;
        let label = options.get(index.parse::<usize>().ok()?)?.trim();
        let short: String = label.chars().take(24).collect();
        let ellipsis = if short.len() < label.len() { "…" } else { "" };
        Some((format!("{short}{ellipsis}"), rest.to_owned()))
    };
    if message.starts_with("question must not be empty") {
        return t.err_question_empty.to_owned();
    }
    if message.starts_with("question must be at most") {
        return t.err_question_long.to_owned();
    }
    if message.starts_with("a poll needs") {
        return t.err_options_count.to_owned();
    }
    if message.starts_with("max_choices") {
        return fill(t.err_max_choices, &[("n", &options.len().to_string())]);
    }
    if message.starts_with("allow_change") {
        return t.err_allow_change.to_owned();
    }
    if message.starts_with("closes_at must be in the future") {
        return t.err_closes_past.to_owned();
    }
    if message.starts_with("closes_at must be at most") {
        return t.err_closes_far.to_owned();
    }
    if message.starts_with("closes_at") {
        return t.err_closes_bad.to_owned();
    }
    if let Some((label, rest)) = option() {
        if rest.starts_with("repeats") {
            return fill(t.err_option_repeat, &[("label", &label)]);
        }
        if rest.starts_with("must be at most") {
            return fill(t.err_option_long, &[("label", &label)]);
        }
    }
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => message.to_owned(),
    }
}

/// The form body could not be read: wrong type, too large or malformed.
fn form_error(rejection: FormRejection) -> PageError {
    let error = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge(super::MAX_FORM_BYTES),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::BadRequest(
            "expected a form (Content-Type: application/x-www-form-urlencoded)".into(),
        ),
        _ => Error::BadRequest(rejection.body_text()),
    };
    PageError(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn repeated_option_fields_keep_their_order() {
        let (form, intent) = read_form(pairs(&[
            ("question", "Q"),
            ("option", "b"),
            ("option", "a"),
            ("vote_limit", "unlimited"),
        ]));
        assert_eq!(form.options, vec!["b", "a"]);
        assert!(form.unlimited);
        assert!(matches!(intent, Intent::Create));
    }

    #[test]
    fn kind_fields_are_read_and_only_the_picked_kind_counts() {
        let (form, _) = read_form(pairs(&[
            ("kind", "scale"),
            ("scale_min", "0"),
            ("scale_max", "10"),
            ("min_label", "no"),
            ("max_entries", "3"),
        ]));
        let input = form.kind_input().unwrap();
        assert_eq!(input.kind, Some(KindName::Scale));
        assert_eq!(input.max_entries, None);
        let scale = input.scale.unwrap();
        assert_eq!((scale.min, scale.max), (0, 10));
        assert!(!form.takes_options());
        let (form, _) = read_form(pairs(&[("kind", "<b>")]));
        assert_eq!(form.kind_input().unwrap().kind, Some(KindName::Choice));
        assert!(form.takes_options());
    }

    #[test]
    fn buttons_become_intents() {
        let (_, intent) = read_form(pairs(&[("action", "add")]));
        assert!(matches!(intent, Intent::AddOption));
        let (_, intent) = read_form(pairs(&[("remove", "2")]));
        assert!(matches!(intent, Intent::RemoveOption(2)));
    }

    #[test]
    fn messages_name_options_by_their_text_in_both_languages() {
        use crate::pages::i18n::{EN, ZH};
        let options = vec!["Green".to_owned(), "Green".to_owned()];
        assert_eq!(
            explain(&EN, "option 1 repeats an earlier option", &options),
            "The option “Green” repeats an earlier option."
        );
        assert_eq!(
            explain(&ZH, "option 1 repeats an earlier option", &options),
            "选项“Green”和前面的选项重复了。"
        );
        let long = vec!["x".repeat(101)];
        assert!(
            explain(&EN, "option 0 must be at most 100 characters", &long)
                .ends_with("…” must be at most 100 characters.")
        );
        assert_eq!(
            explain(&EN, "a poll needs 2 to 20 options", &options),
            "A poll needs 2 to 20 options."
        );
        assert_eq!(
            explain(&EN, "a rule added later", &options),
            "A rule added later"
        );
    }
}
