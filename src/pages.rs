//! HTML pages: the home page (create a poll, recent polls), the poll page
//! (vote, live results), their no-JavaScript form fallbacks, and the
//! transport lab (all four transports measured side by side).
//!
//! Pages are rendered on the server with askama and work without
//! JavaScript; `static/app.js` then follows the poll live over the chosen
//! transport. Every page carries a strict Content-Security-Policy: scripts
//! and styles come only from `/static/`, never inline, and page data for the
//! script travels in escaped `data-` attributes.

mod assets;
mod home;
mod lab;
mod poll;
mod view;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::api::{AppState, voter};
use crate::error::Error;
use view::ErrorPage;

/// Most bytes a form body may have: 20 options of 100 CJK characters,
/// percent-encoded, fit well below it.
const MAX_FORM_BYTES: usize = 32 * 1024;

/// What a page may load: only this origin's own script, styles, images and
/// connections; no inline script or style, no framing, no foreign forms.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The page routes, the form fallbacks and the embedded static files.
pub fn routes() -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(home::show))
        .route("/polls", get(home::to_home).post(home::create))
        .route("/polls/{id}", get(poll::show))
        .route("/polls/{id}/vote", post(poll::vote))
        .route("/polls/{id}/lab", get(lab::show))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        ));
    Router::new()
        .merge(pages)
        .merge(assets::routes())
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // `same-origin`, not `no-referrer`: under `no-referrer` browsers send
        // `Origin: null` on form posts, which the cross-site check refuses.
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}

/// The voter cookie to add to a page response when the request had none,
/// so that the first vote from this page is already attributed.
fn voter_jar(jar: CookieJar, headers: &HeaderMap) -> CookieJar {
    let (_, cookie) = voter::identify(&jar, headers);
    voter::with_cookie(jar, cookie)
}

/// An error rendered as an HTML page instead of the API's JSON.
pub struct PageError(pub Error);

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self.0 {
            Error::PollNotFound | Error::NotFound => (
                StatusCode::NOT_FOUND,
                "Poll not found",
                "There is no poll at this address. It may have been deleted, or the link may be mistyped.".to_owned(),
            ),
            Error::StoreUnavailable | Error::TooManyConnections | Error::ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The poll store cannot be reached right now. Please try again in a moment."
                    .to_owned(),
            ),
            other => (other.status(), "Request refused", other.to_string()),
        };
        let page = ErrorPage {
            title,
            message,
            status: status.as_u16(),
        };
        let mut response = (status, page).into_response();
        if let Some(secs) = self.0.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// `Cache-Control` that keeps a response out of every cache and history
/// snapshot — for the page that shows an admin token.
fn no_store() -> (HeaderName, HeaderValue) {
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}
