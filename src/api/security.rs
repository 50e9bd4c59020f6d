//! Same-origin rules for state-changing requests and WebSocket handshakes.
//!
//! A browser tells where a request comes from (`Origin`, `Sec-Fetch-Site`);
//! a non-browser client sends neither and is let through, since it could
//! forge them anyway. What this stops is another site making a visitor's
//! browser vote or close polls with the visitor's cookie.

use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tower::{Layer, Service};

use super::AppState;
use crate::error::Error;

/// Whether a browser `Origin` may act on this host: its host\[:port\] equals
/// the request's `Host`, or the whole origin is configured as allowed.
pub fn origin_allowed(origin: &str, headers: &HeaderMap, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
        return true;
    }
    let Some(authority) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(authority))
}

/// Whether a request is a cross-site one that must not change state.
///
/// `Origin: null` with `Sec-Fetch-Site: same-origin` is this site's own
/// form on a page sent with `Referrer-Policy: no-referrer` (the manage
/// page): browsers hide the origin there but still say, in a header no
/// page can set, that the request comes from this origin.
pub fn is_cross_site(headers: &HeaderMap, allowed: &[String]) -> bool {
    let same_origin = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"same-origin"));
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.as_bytes() == b"null" && same_origin {
            return false;
        }
        return !origin
            .to_str()
            .is_ok_and(|o| origin_allowed(o, headers, allowed));
    }
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
}

/// Whether `req` is a cross-site request that could change state, which
/// every state-changing route refuses. No route takes a method other than
/// these four, so TRACE, QUERY or a made-up one gets its 404/405 from
/// routing.
pub fn is_refused(req: &Request, allowed: &[String]) -> bool {
    matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && is_cross_site(req.headers(), allowed)
}

/// The layer refusing cross-site state-changing API requests with 403
/// `cross_site_request`. The page routes (the form fallbacks) have their
/// own layer inside the pages' router, so that their refusal is a page in
/// the visitor's language.
///
/// A plain tower layer rather than `axum::middleware::from_fn`, which
/// boxes the inner service and the future of every request: that was 5 %
/// of tally's CPU per vote for a check of two headers.
#[derive(Clone)]
pub struct RefuseCrossSiteLayer {
    app: AppState,
}

impl RefuseCrossSiteLayer {
    pub fn new(app: AppState) -> Self {
        Self { app }
    }
}

impl<S> Layer<S> for RefuseCrossSiteLayer {
    type Service = RefuseCrossSite<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefuseCrossSite {
            inner,
            app: self.app.clone(),
        }
    }
}

/// The service of [`RefuseCrossSiteLayer`].
#[derive(Clone)]
pub struct RefuseCrossSite<S> {
    inner: S,
    app: AppState,
}

impl<S> Service<Request> for RefuseCrossSite<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // A method the matched route does not have never gets here: its 405
        // is answered outside this layer (see `crate::app`).
        if !req.uri().path().starts_with("/api/")
            || !is_refused(&req, &self.app.config.allowed_origins)
        {
            return Either::Right(self.inner.call(req));
        }
        tracing::info!(path = %req.uri().path(), "cross-site request refused");
        Either::Left(ready(Ok(Error::CrossSite.into_response())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_host_origin_is_allowed_other_hosts_are_not() {
        let h = headers(&[("host", "127.0.0.1:8080")]);
        assert!(origin_allowed("http://127.0.0.1:8080", &h, &[]));
        assert!(!origin_allowed("http://evil.example", &h, &[]));
        assert!(!origin_allowed("null", &h, &[]));
        let allowed = vec!["https://vote.example.com".to_string()];
        assert!(origin_allowed("https://vote.example.com", &h, &allowed));
    }

    #[test]
    fn requests_without_browser_headers_are_not_cross_site() {
        assert!(!is_cross_site(&headers(&[("host", "a")]), &[]));
        assert!(is_cross_site(
            &headers(&[("host", "a"), ("sec-fetch-site", "cross-site")]),
            &[]
        ));
        assert!(!is_cross_site(
            &headers(&[("host", "a"), ("sec-fetch-site", "same-origin")]),
            &[]
        ));
        assert!(is_cross_site(
            &headers(&[("host", "a"), ("origin", "http://b")]),
            &[]
        ));
        // A no-referrer page's own form: the origin hidden, the site told.
        assert!(!is_cross_site(
            &headers(&[
                ("host", "a"),
                ("origin", "null"),
                ("sec-fetch-site", "same-origin")
            ]),
            &[]
        ));
        assert!(is_cross_site(
            &headers(&[
                ("host", "a"),
                ("origin", "null"),
                ("sec-fetch-site", "cross-site")
            ]),
            &[]
        ));
        assert!(is_cross_site(
            &headers(&[("host", "a"), ("origin", "null")]),
            &[]
        ));
    }
}
