//! The `tally_voter` cookie: who a one-vote-per-voter poll counts.
//!
//! It is a random id, neither secret nor signed — it keeps honest browsers
//! to one vote, which is all a cookie can do. Pages set it on first view;
//! a vote without it gets one.

use axum::http::{HeaderMap, HeaderValue};
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
    known_or_new(jar, |voter| cookie_for(voter, headers))
}

/// [`identify`] for a response built without a `CookieJar`: the cookie
/// comes as the `Set-Cookie` value itself. The vote answers this way; the
/// cookie crate's rendering through the jar was 3 % of a vote's CPU.
pub fn identify_for_header(jar: &CookieJar, headers: &HeaderMap) -> (VoterId, Option<HeaderValue>) {
    known_or_new(jar, |voter| set_cookie_value(voter, headers))
}

/// The known voter, or a new one with `cookie` made for it.
fn known_or_new<C>(jar: &CookieJar, cookie: impl FnOnce(&VoterId) -> C) -> (VoterId, Option<C>) {
    match known(jar) {
        Some(voter) => (voter, None),
        None => {
            let voter = VoterId::generate();
            let made = cookie(&voter);
            (voter, Some(made))
        }
    }
}

/// [`cookie_for`] as its `Set-Cookie` text, written out directly (a test
/// keeps the two equal).
pub fn set_cookie_value(voter: &VoterId, headers: &HeaderMap) -> HeaderValue {
    let secure = if is_https(headers) { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Lax{secure}; Path=/; Max-Age=31536000",
        voter.as_str()
    );
    HeaderValue::try_from(text).expect("a voter id is a token")
}

fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The cookie as set: HttpOnly, SameSite=Lax, a year, Secure over HTTPS.
pub fn cookie_for(voter: &VoterId, headers: &HeaderMap) -> Cookie<'static> {
    let https = is_https(headers);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_out_cookie_is_the_cookie_crates() {
        let voter = VoterId::generate();
        let mut headers = HeaderMap::new();
        for proto in ["http", "https"] {
            headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
            assert_eq!(
                set_cookie_value(&voter, &headers).to_str().unwrap(),
                cookie_for(&voter, &headers).to_string(),
                "over {proto}"
            );
        }
    }
}
