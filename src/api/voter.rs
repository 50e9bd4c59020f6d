//! The `tally_voter` cookie: who a one-vote-per-voter poll counts.
//!
//! It is a random id, neither secret nor signed — it keeps honest browsers
//! to one vote, which is all a cookie can do. Pages set it on first view;
//! a vote without it gets one.

use axum::http::{HeaderMap, HeaderValue, header};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use crate::poll::VoterId;

pub const COOKIE: &str = "tally_voter";

/// The voter a request's cookie names, if it carries a valid one.
pub fn known(jar: &CookieJar) -> Option<VoterId> {
    jar.get(COOKIE).and_then(|c| VoterId::parse(c.value()))
}

/// [`known`] read from the headers in place, for handlers that set no
/// cookie through a jar: building a `CookieJar` copies every cookie. Cookies
/// are read as the jar reads them (every `Cookie` header, split on `;`,
/// percent-decoded), and as in the jar the last one of the name counts.
pub fn from_headers(headers: &HeaderMap) -> Option<VoterId> {
    let cookie = headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|cookie| Cookie::parse_encoded(cookie).ok())
        .rfind(|cookie| cookie.name() == COOKIE)?;
    VoterId::parse(cookie.value())
}

/// The voter of a request, and the cookie to set when it had none.
pub fn identify(jar: &CookieJar, headers: &HeaderMap) -> (VoterId, Option<Cookie<'static>>) {
    known_or_new(known(jar), |voter| cookie_for(voter, headers))
}

/// [`identify`] for a response built without a `CookieJar`: the cookie
/// comes as the `Set-Cookie` value itself. The vote answers this way; the
/// cookie crate's rendering through the jar was 3 % of a vote's CPU.
pub fn identify_for_header(headers: &HeaderMap) -> (VoterId, Option<HeaderValue>) {
    known_or_new(from_headers(headers), |voter| {
        set_cookie_value(voter, headers)
    })
}

/// The known voter, or a new one with `cookie` made for it.
fn known_or_new<C>(
    known: Option<VoterId>,
    cookie: impl FnOnce(&VoterId) -> C,
) -> (VoterId, Option<C>) {
    match known {
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

/// The voter cookie of an embed page, for a cross-site frame: partitioned
/// (CHIPS), so the browser keeps it per embedding site, which needs
/// `SameSite=None` and `Secure` (browsers accept `Secure` from
/// `http://localhost` too, a trustworthy origin).
pub fn partitioned_cookie(voter: &VoterId) -> HeaderValue {
    let text = format!(
        "{COOKIE}={}; HttpOnly; SameSite=None; Secure; Partitioned; Path=/; Max-Age=31536000",
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

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn reads_the_voter_as_the_cookie_jar_does() {
        let id = VoterId::generate();
        let other = VoterId::generate();
        let cases = [
            vec![],
            vec![(header::COOKIE, format!("tally_voter={}", id.as_str()))],
            vec![(
                header::COOKIE,
                format!("a=1; tally_voter={}; b=2", id.as_str()),
            )],
            // Two headers, and the name twice: the last one counts.
            vec![
                (header::COOKIE, format!("tally_voter={}", other.as_str())),
                (header::COOKIE, format!("x=y;tally_voter={}", id.as_str())),
            ],
            // The last one is invalid: no voter, as with the jar.
            vec![(
                header::COOKIE,
                format!("tally_voter={}; tally_voter=%%", id.as_str()),
            )],
            vec![(header::COOKIE, "tally_voter=".to_owned())],
            vec![(header::COOKIE, "tally_voterx=abc; =; ;;".to_owned())],
            vec![(header::COOKIE, format!("tally_voter=%{}", id.as_str()))],
        ];
        for case in cases {
            let pairs: Vec<_> = case.iter().map(|(n, v)| (n.clone(), v.as_str())).collect();
            let map = headers(&pairs);
            let jar = CookieJar::from_headers(&map);
            assert_eq!(from_headers(&map), known(&jar), "cookies {case:?}");
        }
    }

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
