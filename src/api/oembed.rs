//! oEmbed 1.0 (oembed.com): `GET /oembed?url=…&format=json` turns a poll's
//! or an event's link into the iframe of its embed page, so a blog, a
//! course page or a slide tool that speaks oEmbed embeds it from the link
//! alone.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::errors::QueryParams;
use super::schema::ErrorBody;
use super::{AppState, poll_id};
use crate::error::Error;
use crate::event::EventId;

/// The iframe's size when the consumer sets no bound (a poll, an event).
pub const POLL_SIZE: (u32, u32) = (480, 420);
pub const EVENT_SIZE: (u32, u32) = (480, 560);

/// The iframe of an embed page: what oEmbed answers and what the manage
/// pages offer to copy.
pub fn iframe_html(origin: &str, path: &str, title: &str, (width, height): (u32, u32)) -> String {
    format!(
        "<iframe src=\"{origin}{path}\" width=\"{width}\" height=\"{height}\" title=\"{}\" \
         style=\"border:0\" loading=\"lazy\"></iframe>",
        attr(title)
    )
}

#[derive(Debug, Deserialize)]
pub struct OembedQuery {
    url: Option<String>,
    format: Option<String>,
    maxwidth: Option<String>,
    maxheight: Option<String>,
}

/// A `maxwidth`/`maxheight`: a positive integer, or absent.
fn bound(name: &str, value: Option<&str>) -> Result<Option<u32>, Error> {
    value
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| Error::BadRequest(format!("{name} must be a positive integer")))
        })
        .transpose()
}

/// Escapes text for an HTML attribute value.
fn attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What a link on this site names: `/polls/{id}…` or `/events/{id}…`.
enum Target {
    Poll(String),
    Event(String),
}

fn target_of(url: &str, origin: &str) -> Option<Target> {
    let path = url.strip_prefix(origin)?;
    let path = path.split(['?', '#']).next()?;
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next()?, parts.next()?) {
        ("polls", id) => Some(Target::Poll(id.to_owned())),
        ("events", id) => Some(Target::Event(id.to_owned())),
        _ => None,
    }
}

/// Embed a poll or an event (oEmbed 1.0)
///
/// `url` is a poll's or an event's link on this site; the answer is a
/// `rich` oEmbed object whose `html` is an iframe of its embed page,
/// within `maxwidth` × `maxheight` when given.
#[utoipa::path(get, path = "/oembed", tag = "embed",
    params(("url" = String, Query, description = "A poll's or event's link on this site"),
        ("format" = Option<String>, Query, description = "json (the default); xml is not implemented"),
        ("maxwidth" = Option<u32>, Query, minimum = 1), ("maxheight" = Option<u32>, Query, minimum = 1)),
    responses(
        (status = 200, description = "`{\"version\":\"1.0\",\"type\":\"rich\",\"html\",\"width\",\"height\",…}`"),
        (status = 400, description = "`bad_request`: no url, or a bad maxwidth or maxheight", body = ErrorBody),
        (status = 404, description = "`not_found`: not a poll or event of this site", body = ErrorBody),
        (status = 501, description = "`not_implemented`: a format other than json", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
pub async fn oembed(
    State(app): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<OembedQuery>,
) -> Result<Response, Error> {
    // An empty `format` is no format: JSON.
    if q.format
        .as_deref()
        .is_some_and(|f| !f.is_empty() && f != "json")
    {
        return Err(Error::NotImplemented);
    }
    let maxwidth = bound("maxwidth", q.maxwidth.as_deref())?;
    let maxheight = bound("maxheight", q.maxheight.as_deref())?;
    let url = q
        .url
        .ok_or_else(|| Error::BadRequest("url is required".into()))?;
    let origin = super::origin::public_origin(&app, &headers);
    let (title, path, (width, height)) = match target_of(&url, &origin) {
        Some(Target::Poll(id)) => {
            let id = poll_id(&id).map_err(|_| Error::NotFound)?;
            let poll = app.service.get(&id).await.map_err(not_found)?;
            (poll.question, format!("/polls/{id}/embed"), POLL_SIZE)
        }
        Some(Target::Event(id)) => {
            let id = EventId::parse(&id).map_err(|_| Error::NotFound)?;
            let event = app.service.get_event(&id).await.map_err(not_found)?;
            (event.title, format!("/events/{id}/embed"), EVENT_SIZE)
        }
        None => return Err(Error::NotFound),
    };
    let width = maxwidth.map_or(width, |m| m.min(width));
    let height = maxheight.map_or(height, |m| m.min(height));
    let html = iframe_html(&origin, &path, &title, (width, height));
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "version": "1.0", "type": "rich", "provider_name": "tally", "provider_url": origin,
            "title": title, "html": html, "width": width, "height": height,
        })),
    )
        .into_response())
}

/// An unknown poll or event is the oEmbed 404; a store fault stays 503.
fn not_found(e: Error) -> Error {
    match e {
        Error::PollNotFound | Error::EventNotFound => Error::NotFound,
        other => other,
    }
}
