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
mod embed;
mod event;
mod home;
pub mod i18n;
mod join;
mod lab;
mod manage;
mod poll;
mod present;
mod qr;
mod ui;
mod view;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::api::{AppState, security, voter};
use crate::error::Error;
use i18n::fill;
use ui::Ui;
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
pub fn routes(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(home::show))
        .route("/polls", get(home::to_home).post(home::create))
        .route("/polls/{id}", get(poll::show))
        .route("/polls/{id}/vote", post(poll::vote))
        .route("/polls/{id}/lab", get(lab::show))
        .route("/polls/{id}/manage", get(manage::show).post(manage::act))
        .route("/polls/{id}/present", get(present::show))
        .route("/polls/{id}/qr.svg", get(qr::show))
        .route("/polls/{id}/embed", get(embed::poll_embed))
        .route("/events/{id}/embed", get(embed::event_embed))
        .route("/events/new", get(event::new_event))
        .route("/events/{id}", get(event::audience))
        .route("/events/{id}/present", get(event::present))
        .route("/events/{id}/manage", get(event::manage))
        .route("/events/{id}/qr.svg", get(event::qr))
        .route("/join", get(join::show))
        .route("/j/{code}", get(join::short_link))
        .route("/lang", get(ui::switch))
        // A route layer: a method the route lacks still answers 405.
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            refuse_cross_site_forms,
        ))
        .layer(axum::middleware::from_fn(render_error_pages))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        ));
    Router::new()
        .merge(pages)
        .merge(assets::routes())
        // One `layer` call (each call boxes one more future per request).
        .layer(
            tower::ServiceBuilder::new()
                // Unless the page set its own (only the embed pages do).
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CONTENT_SECURITY_POLICY),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                // `same-origin`, not `no-referrer`: under `no-referrer`
                // browsers send `Origin: null` on form posts, which the
                // cross-site check refuses. The manage page sets its own
                // (`no-referrer`).
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("same-origin"),
                )),
        )
}

/// Refuses a cross-site form post (403, nothing changes) with an error
/// page in the visitor's language.
async fn refuse_cross_site_forms(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if !security::is_refused(&req, &app.config.allowed_origins) {
        return next.run(req).await;
    }
    tracing::info!(path = %req.uri().path(), "cross-site form refused");
    PageError(Error::CrossSite).into_response()
}

/// The voter cookie to add to a page response when the request had none,
/// so that the first vote from this page is already attributed.
fn voter_jar(jar: CookieJar, headers: &HeaderMap) -> CookieJar {
    let (_, cookie) = voter::identify(&jar, headers);
    voter::with_cookie(jar, cookie)
}

/// An error rendered as an HTML page instead of the API's JSON, in the
/// visitor's language: the response carries the error, and
/// `render_error_pages` (which knows the request) writes the page.
pub struct PageError(pub Error);

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

/// The error a response is to show as a page.
#[derive(Clone)]
struct PendingErrorPage(Error);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            Error::PollNotFound | Error::NotFound => StatusCode::NOT_FOUND,
            Error::StoreUnavailable | Error::TooManyConnections | Error::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            other => other.status(),
        };
        let mut response = status.into_response();
        if let Some(secs) = self.0.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(PendingErrorPage(self.0));
        response
    }
}

/// The page for `error`, in the language `ui` says.
fn error_page(ui: Ui, error: &Error, status: StatusCode) -> ErrorPage {
    let t = ui.t;
    let (title, message) = match error {
        Error::PollNotFound | Error::NotFound => {
            (t.err_not_found_title, t.err_not_found.to_owned())
        }
        Error::StoreUnavailable | Error::TooManyConnections | Error::ShuttingDown => {
            (t.err_unavailable_title, t.err_unavailable.to_owned())
        }
        Error::PayloadTooLarge(_) => (t.err_refused_title, t.err_too_large.to_owned()),
        Error::CrossSite => (t.err_refused_title, t.err_cross_site.to_owned()),
        Error::BadRequest(_) if ui.lang != i18n::Lang::En => {
            (t.err_refused_title, t.err_form_body.to_owned())
        }
        other => (t.err_refused_title, other.to_string()),
    };
    ErrorPage {
        eyebrow: fill(t.error_n, &[("status", &status.as_u16().to_string())]),
        title,
        message,
        ui,
    }
}

/// Writes the page of any [`PageError`] answer, keeping its status and
/// headers (a voter cookie, `Retry-After`).
async fn render_error_pages(req: Request, next: Next) -> Response {
    let ui = Ui::of(req.method(), req.uri(), req.headers());
    let response = next.run(req).await;
    let Some(PendingErrorPage(error)) = response.extensions().get::<PendingErrorPage>().cloned()
    else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let page = error_page(ui, &error, parts.status).into_response();
    let (page_parts, body) = page.into_parts();
    if let Some(content_type) = page_parts.headers.get(header::CONTENT_TYPE) {
        parts
            .headers
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

/// `Cache-Control` that keeps a response out of every cache and history
/// snapshot — for the page that shows an admin token.
fn no_store() -> (HeaderName, HeaderValue) {
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

/// `scheme://host` as the visitor reached this site, for a link to share;
/// empty (a relative link) when the `Host` header is not a plain host.
pub use crate::api::origin::{public_origin, site_origin};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_link_uses_a_plain_host_only() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "vote.example:8080".parse().unwrap());
        assert_eq!(site_origin(&h), "http://vote.example:8080");
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(site_origin(&h), "https://vote.example:8080");
        h.insert(header::HOST, "a/b\"c".parse().unwrap());
        assert_eq!(site_origin(&h), "");
    }
}
