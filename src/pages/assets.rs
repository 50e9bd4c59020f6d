//! The scripts (the pages' `app.js`, the transport lab's `lab.js`, the
//! event pages' `event.js`), the
//! stylesheet and the icon, embedded in the binary and
//! served under `/static/` — no CDN, no build step, works offline.
//!
//! Pages link each file as `/static/NAME?v=HASH`, where the hash is of the
//! file's content, computed at compile time. A request naming the current
//! hash may be cached for a year (a new build changes the URL); any other
//! request revalidates against the same hash as `ETag`.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::AppState;
use crate::error::Error;

/// One embedded file.
struct Asset {
    name: &'static str,
    body: &'static str,
    content_type: &'static str,
    version: u64,
}

/// FNV-1a over the file: a cache-busting tag, not a security measure.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {{
        const BODY: &str = include_str!(concat!("../../static/", $name));
        Asset {
            name: $name,
            body: BODY,
            content_type: $content_type,
            version: fnv1a(BODY.as_bytes()),
        }
    }};
}

const APP_JS: Asset = asset!("app.js", "text/javascript; charset=utf-8");
const STYLE_CSS: Asset = asset!("style.css", "text/css; charset=utf-8");
const ICON_SVG: Asset = asset!("icon.svg", "image/svg+xml");
const LAB_JS: Asset = asset!("lab.js", "text/javascript; charset=utf-8");
const EVENT_JS: Asset = asset!("event.js", "text/javascript; charset=utf-8");
const ASSETS: [Asset; 5] = [APP_JS, STYLE_CSS, ICON_SVG, LAB_JS, EVENT_JS];

/// Content tag of `app.js`, for its URL in the pages.
pub const APP_JS_VERSION: u64 = APP_JS.version;
/// Content tag of `style.css`.
pub const STYLE_VERSION: u64 = STYLE_CSS.version;
/// Content tag of `icon.svg`.
pub const ICON_VERSION: u64 = ICON_SVG.version;
/// Content tag of `lab.js`, the transport lab's own script.
pub const LAB_JS_VERSION: u64 = LAB_JS.version;
/// Content tag of `event.js`, the event pages' script.
pub const EVENT_JS_VERSION: u64 = EVENT_JS.version;

/// `GET /static/{name}` for the embedded files.
pub fn routes() -> Router<AppState> {
    Router::new().route("/static/{name}", get(serve))
}

/// `GET /static/{name}`.
async fn serve(
    Path(name): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return Error::NotFound.into_response();
    };
    let etag = format!("\"{:016x}\"", asset.version);
    let pinned = query
        .map(|Query(q)| {
            q.iter()
                .any(|(k, v)| k == "v" && v.parse() == Ok(asset.version))
        })
        .unwrap_or(false);
    let cache = if pinned {
        "public, max-age=31536000, immutable"
    } else {
        "public, no-cache"
    };
    let common = [
        (header::ETAG, HeaderValue::from_str(&etag).expect("hex tag")),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    )];
    (common, content_type, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_tags_differ_per_file_and_follow_content() {
        assert_ne!(APP_JS_VERSION, STYLE_VERSION);
        assert_ne!(APP_JS_VERSION, LAB_JS_VERSION);
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }
}
