//! This site's own addresses as the world reaches it: the origin behind a
//! proxy (`TALLY_PUBLIC_URL`) or from the request, and the links built on
//! it (the oEmbed discovery link). Used by the API and the pages alike.

use axum::http::{HeaderMap, header};

use super::AppState;

/// This site's origin as the world reaches it: `TALLY_PUBLIC_URL` when
/// set, else the request's scheme and `Host` (empty when unusable).
pub fn public_origin(app: &AppState, headers: &HeaderMap) -> String {
    match app.config.public_url.as_deref() {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => site_origin(headers),
    }
}

/// The origin the visitor used (scheme from `X-Forwarded-Proto`), if its
/// `Host` is a plain host\[:port\]; empty otherwise (never echo a forged one).
pub fn site_origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    let Some(host) = host else {
        return String::new();
    };
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// The discovery link of a page at `path` (`/polls/{id}`): `/oembed?url=`
/// with the page's absolute address, or `None` without a usable origin.
pub fn oembed_href(app: &AppState, headers: &HeaderMap, path: &str) -> Option<String> {
    let origin = public_origin(app, headers);
    (!origin.is_empty()).then(|| {
        format!(
            "{origin}/oembed?url={}&format=json",
            encode_query(&format!("{origin}{path}"))
        )
    })
}

/// Percent-encodes a value for a query string (addresses keep their `/`).
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
