//! The `tally_voter` cookie: who a one-vote-per-voter poll counts.
//!
//! It is a random id, neither secret nor signed — it keeps honest browsers
//! to one vote, which is all a cookie can do. Pages set it on first view;
//! a vote without it gets one.

use axum::http::HeaderMap;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use crate::poll::VoterId;

pub const COOKIE: &str = "tally_voter";

/// The voter a request's cookie names, if it carries a valid one.
pub fn known(jar: &CookieJar) -> Option<VoterId> {
    jar.get(COOKIE).and_then(|c| VoterId::parse(c.value()))
}

/// The voter of a request, and the cookie to set when it had none.
pub fn identify(jar: &CookieJar, headers: &HeaderMap) -> (VoterId, Option<Cookie<'static>>) {
    if let Some(voter) = jar.get(COOKIE).and_then(|c| VoterId::parse(c.value())) {
        return (voter, None);
    }
    let voter = VoterId::generate();
    let cookie = cookie_for(&voter, headers);
    (voter, Some(cookie))
}

/// The cookie as set: HttpOnly, SameSite=Lax, a year, Secure over HTTPS.
pub fn cookie_for(voter: &VoterId, headers: &HeaderMap) -> Cookie<'static> {
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    Cookie::build((COOKIE, voter.as_str().to_owned()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time_year())
        .secure(https)
        .build()
}

fn time_year() -> time::Duration {
    time::Duration::days(365)
}

/// Adds the cookie to the jar when one must be set.
pub fn with_cookie(jar: CookieJar, cookie: Option<Cookie<'static>>) -> CookieJar {
    match cookie {
        Some(c) => jar.add(c),
        None => jar,
    }
}
