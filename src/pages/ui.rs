//! What every page needs to know about its visitor before it renders: the
//! language, its phrases, and where the language switch leads. Handlers
//! take a [`Ui`] as an extractor; `GET /lang` is the switch itself.

use std::sync::OnceLock;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::i18n::{COOKIE, Lang, Text, fill};

/// The visitor's language and the page chrome that depends on it.
pub struct Ui {
    pub lang: Lang,
    pub t: &'static Text,
    /// The language the switch offers.
    pub other: Lang,
    /// The switch's link (works without the script): sets the cookie,
    /// then comes back here.
    pub switch_href: String,
    /// Whether the script may switch by reloading this address (a GET
    /// page; a form's answer would be sent again).
    pub reload: bool,
    /// An embed page: the card alone, without the site's header and footer.
    pub embed: bool,
}

impl Ui {
    /// The chrome for a request to `uri` with `method` and `headers`.
    pub fn of(method: &Method, uri: &Uri, headers: &HeaderMap) -> Self {
        let lang = Lang::of_request(headers);
        let reload = *method == Method::GET;
        let back = if reload {
            uri.path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into())
        } else {
            // A form's own address: its page is the one without `/vote`.
            let path = uri.path();
            path.strip_suffix("/vote").unwrap_or(path).to_owned()
        };
        let other = lang.other();
        Self {
            lang,
            t: lang.text(),
            other,
            switch_href: format!(
                "/lang?to={}&back={}",
                other.tag(),
                crate::api::origin::encode_query(&back)
            ),
            reload,
            embed: false,
        }
    }

    /// `1,117 votes` / `1,117 票`.
    pub fn votes(&self, n: u64) -> String {
        self.count(n, self.t.vote_one, self.t.vote_many)
    }

    /// A ranking's `1,117 points` / `1,117 分`.
    pub fn points(&self, n: u64) -> String {
        self.count(n, self.t.points_one, self.t.points_many)
    }

    fn count(&self, n: u64, one: &str, many: &str) -> String {
        fill(
            if n == 1 { one } else { many },
            &[("n", &group_thousands(n))],
        )
    }

    /// A count as shown: `1,117`.
    pub fn number(&self, n: u64) -> String {
        group_thousands(n)
    }

    /// The phrases as JSON, for the script (an escaped attribute value).
    pub fn phrases(&self) -> &'static str {
        static EN: OnceLock<String> = OnceLock::new();
        static ZH: OnceLock<String> = OnceLock::new();
        let cell = match self.lang {
            Lang::En => &EN,
            Lang::Zh => &ZH,
        };
        cell.get_or_init(|| serde_json::to_string(self.t).expect("phrases serialise"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ui {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Ui::of(&parts.method, &parts.uri, &parts.headers))
    }
}

/// A `back` address the switch may send a visitor to: a path on this site
/// (never `//other.host` or a scheme), else the home page.
fn local(back: Option<&str>) -> &str {
    match back {
        Some(b)
            if b.starts_with('/')
                && !b.starts_with("//")
                && !b.starts_with("/\\")
                && b.len() <= 2048
                && !b.chars().any(char::is_control) =>
        {
            b
        }
        _ => "/",
    }
}

/// The switch's query.
#[derive(Deserialize)]
pub struct Switch {
    to: Option<String>,
    back: Option<String>,
}

/// `GET /lang?to=zh-CN&back=/polls/x`: keeps the language in a cookie for a
/// year and goes back (`303`). An unknown language changes nothing.
pub async fn switch(query: Result<Query<Switch>, QueryRejection>) -> Response {
    let (to, back) = match &query {
        Ok(Query(q)) => (q.to.as_deref().and_then(Lang::from_tag), q.back.as_deref()),
        Err(_) => (None, None),
    };
    let mut response = Redirect::to(local(back)).into_response();
    if let Some(lang) = to {
        let cookie = format!(
            "{COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            lang.tag()
        );
        response.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("ascii cookie"),
        );
    }
    response
}

/// `1117` → `1,117`; the script formats the same way (`en-US`).
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped_like_en_us() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1117), "1,117");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn the_switch_comes_back_only_to_this_site() {
        assert_eq!(
            local(Some("/polls/x?transport=sse")),
            "/polls/x?transport=sse"
        );
        assert_eq!(local(Some("//evil.example/")), "/");
        assert_eq!(local(Some("/\\evil.example")), "/");
        assert_eq!(local(Some("https://evil.example")), "/");
        assert_eq!(local(None), "/");
    }

    #[test]
    fn the_switch_link_carries_the_page_address() {
        let ui = Ui::of(
            &Method::GET,
            &"/polls/x?transport=sse".parse().unwrap(),
            &HeaderMap::new(),
        );
        assert_eq!(
            ui.switch_href,
            "/lang?to=zh-CN&back=/polls/x%3Ftransport%3Dsse"
        );
        let ui = Ui::of(
            &Method::POST,
            &"/polls/x/vote".parse().unwrap(),
            &HeaderMap::new(),
        );
        assert_eq!(ui.switch_href, "/lang?to=zh-CN&back=/polls/x");
        assert!(!ui.reload);
        assert_eq!(ui.votes(1117), "1,117 votes");
    }
}
