//! Who is asking: the admin token of `Authorization: Bearer` and the voter
//! of the `tally_voter` cookie, read from the request's headers in place.
//!
//! The followers' handlers need only these two. Taking a `HeaderMap` and a
//! `CookieJar` instead copies every header and every cookie, and a waiting
//! long poll kept those copies — and with them the request bytes they
//! point into — for as long as it waited.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::poll::VoterId;

use super::voter;

/// The credentials a request carries; extracting it never fails.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The bearer token, trimmed, if the request has one.
    pub bearer: Option<String>,
    /// The voter its cookie names, if it carries a valid one.
    pub voter: Option<VoterId>,
}

impl Caller {
    /// Reads both from `headers`, copying only what it keeps.
    pub fn of(headers: &HeaderMap) -> Self {
        Self {
            bearer: bearer(headers).map(str::to_owned),
            voter: voter::from_headers(headers),
        }
    }

    /// The token as the service's checks take it.
    pub fn token(&self) -> Option<&str> {
        self.bearer.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::of(&parts.headers))
    }
}

/// The token of `Authorization: Bearer <token>`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn authorization(value: &'static str) -> HeaderMap {
        HeaderMap::from_iter([(header::AUTHORIZATION, HeaderValue::from_static(value))])
    }

    #[test]
    fn reads_a_bearer_token_of_any_case_trimmed() {
        assert_eq!(
            Caller::of(&authorization("bEaReR  tok-1 ")).token(),
            Some("tok-1")
        );
        for other in ["Basic abc", "Bearer", "tok"] {
            assert_eq!(Caller::of(&authorization(other)).bearer, None, "{other}");
        }
        assert_eq!(Caller::of(&HeaderMap::new()), Caller::default());
    }
}
