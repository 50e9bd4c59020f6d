//! Headless Chromium driven over WebDriver: Debian's `chromedriver` started
//! per test on a free loopback port, one browser session per [`Page`].
//!
//! Every browser call and every wait is bounded; waits poll a DOM condition
//! (a script returning a truthy value) instead of sleeping. A driver that
//! goes out of scope takes its whole process group down with it, so a
//! failed test leaves no browser behind.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions, MouseActions, PointerAction};
use fantoccini::key::Key;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::helpers::{START_WAIT, WAIT, free_port, within, within_for};

/// The Debian packages the browser tests need.
pub const PACKAGES: &str = "chromium chromium-driver fonts-noto-cjk";

/// How often a wait re-checks its condition.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Whether the browser tests are switched off (`TALLY_SKIP_BROWSER=1`).
fn skipped() -> bool {
    std::env::var("TALLY_SKIP_BROWSER").is_ok_and(|v| v == "1")
}

fn binary(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn chromium() -> PathBuf {
    binary("TALLY_CHROMIUM", "/usr/bin/chromium")
}

fn chromedriver() -> PathBuf {
    binary("TALLY_CHROMEDRIVER", "/usr/bin/chromedriver")
}

/// A running `chromedriver`, killed (with its browsers) when dropped.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver, or `None` when `TALLY_SKIP_BROWSER=1`. Panics,
    /// naming the packages to install, when the browser is missing.
    pub async fn start() -> Option<Self> {
        if skipped() {
            eprintln!("TALLY_SKIP_BROWSER=1: browser test skipped");
            return None;
        }
        for (path, what) in [(chromium(), "chromium"), (chromedriver(), "chromedriver")] {
            assert!(
                path.exists(),
                "{what} not found at {}: the browser tests need Debian's packages \
                 (apt-get install -y {PACKAGES}), or set TALLY_SKIP_BROWSER=1 to skip them",
                path.display()
            );
        }
        let port = free_port();
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            // Its own process group: dropping the driver kills the browsers too.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}); install {PACKAGES}"));
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        driver.wait_ready().await;
        Some(driver)
    }

    async fn wait_ready(&self) {
        let status = format!("{}/status", self.url);
        let client = reqwest::Client::new();
        within_for(START_WAIT, "chromedriver to be ready", async {
            loop {
                if let Ok(res) = client.get(&status).send().await
                    && res.status() == 200
                {
                    return;
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
        })
        .await;
    }

    /// A new browser session with JavaScript on.
    pub async fn page(&self) -> Page {
        self.session(true, "en-US").await
    }

    /// A new browser session whose language (and so `Accept-Language`)
    /// is `lang`, e.g. `zh-CN`.
    pub async fn page_in(&self, lang: &str) -> Page {
        self.session(true, lang).await
    }

    /// A new browser session with JavaScript switched off in its settings,
    /// as a visitor who blocks scripts has it.
    pub async fn page_without_js(&self) -> Page {
        self.session(false, "en-US").await
    }

    async fn session(&self, javascript: bool, lang: &str) -> Page {
        let caps = capabilities(javascript, lang);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = within_for(
            START_WAIT,
            "browser session to start",
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&self.url),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}"));
        let page = Page { client };
        page.viewport(1280, 900, 1.0, false).await;
        page
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group id is the driver's pid (process_group(0)).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capabilities(javascript: bool, lang: &str) -> Capabilities {
    let mut prefs = json!({"intl.accept_languages": lang});
    if !javascript {
        prefs["profile.managed_default_content_settings.javascript"] = json!(2);
    }
    let caps = json!({
        "browserName": "chrome",
        "timeouts": {"pageLoad": 10_000, "script": 5_000, "implicit": 0},
        "goog:chromeOptions": {
            "binary": chromium(),
            "args": [
                "--headless=new",
                // Tests run as root in containers, where the sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--no-first-run",
                "--hide-scrollbars",
                format!("--lang={lang}"),
                // Bars jump to their width: screenshots and geometry are final.
                "--force-prefers-reduced-motion",
            ],
            "prefs": prefs,
        },
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!("capabilities are an object"),
    }
}

/// A Chrome DevTools command sent through chromedriver's passthrough.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (http::Method::POST, Some(body.to_string()))
    }
}

/// One browser session (one tab, its own profile and cookies).
pub struct Page {
    pub client: Client,
}

/// Whether a script's answer counts as "condition met".
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

impl Page {
    /// Loads `url` and waits for its `load` event.
    pub async fn goto(&self, url: &str) {
        within(&format!("load {url}"), self.client.goto(url))
            .await
            .unwrap_or_else(|e| panic!("load {url}: {e}"));
    }

    /// The current address.
    pub async fn url(&self) -> String {
        within("current url", self.client.current_url())
            .await
            .expect("current url")
            .to_string()
    }

    /// Runs `body` (a function body; `arguments[i]` are `args`) in the page.
    pub async fn js(&self, body: &str, args: Vec<Value>) -> Value {
        within("script", self.client.execute(body, args))
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{body}"))
    }

    /// Re-runs `body` until it returns a truthy value and returns that; fails
    /// with `what` (and the last answer) after `bound`.
    pub async fn wait_until(
        &self,
        what: &str,
        bound: Duration,
        body: &str,
        args: Vec<Value>,
    ) -> Value {
        let started = Instant::now();
        loop {
            let v = self.js(body, args.clone()).await;
            if truthy(&v) {
                return v;
            }
            assert!(
                started.elapsed() < bound,
                "not within {bound:?}: {what} (last answer: {v})"
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Waits (up to [`WAIT`]) until an element matches `css`.
    pub async fn wait_for(&self, css: &str) {
        self.wait_until(
            &format!("an element matching {css}"),
            WAIT,
            "return document.querySelector(arguments[0]) !== null",
            vec![json!(css)],
        )
        .await;
    }

    /// Waits (up to `bound`) until the text of `css` is `expected`.
    pub async fn wait_text(&self, css: &str, expected: &str, bound: Duration) {
        self.wait_until(
            &format!("text of {css} to be {expected:?}"),
            bound,
            "const e = document.querySelector(arguments[0]); \
             return e !== null && e.textContent.trim() === arguments[1];",
            vec![json!(css), json!(expected)],
        )
        .await;
    }

    /// The trimmed text content of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let v = self
            .js(
                "const e = document.querySelector(arguments[0]); \
                 return e === null ? null : e.textContent.trim();",
                vec![json!(css)],
            )
            .await;
        v.as_str()
            .unwrap_or_else(|| panic!("no element matches {css}"))
            .to_owned()
    }

    /// Clicks the element matching `css` as a user would (real pointer
    /// events at its centre, after scrolling it into view).
    pub async fn click(&self, css: &str) {
        let el = within(&format!("find {css}"), self.client.find(Locator::Css(css)))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"));
        within(&format!("click {css}"), el.click())
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types `text` into the field matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = within(&format!("find {css}"), self.client.find(Locator::Css(css)))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"));
        within(&format!("type into {css}"), el.send_keys(text))
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Presses and releases `key` on the keyboard (to whatever has focus).
    pub async fn press(&self, key: Key) {
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key.into() })
            .then(KeyAction::Up { value: key.into() });
        within("key press", self.client.perform_actions(keys))
            .await
            .expect("key press");
    }

    /// Moves the mouse to the top left corner, so that no hover effect
    /// stays on what was clicked last (for screenshots).
    pub async fn move_pointer_away(&self) {
        let mouse = MouseActions::new("mouse".into()).then(PointerAction::MoveTo {
            duration: None,
            x: 0.0,
            y: 0.0,
        });
        within("pointer move", self.client.perform_actions(mouse))
            .await
            .expect("pointer move");
    }

    /// Makes the viewport exactly `width`×`height` CSS pixels at `scale`
    /// device pixels each; `mobile` emulates a phone (viewport meta, touch).
    pub async fn viewport(&self, width: u32, height: u32, scale: f64, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile}),
        )
        .await;
        self.cdp(
            "Emulation.setTouchEmulationEnabled",
            json!({"enabled": mobile}),
        )
        .await;
    }

    /// Emulates the visitor's colour scheme preference (`light`/`dark`).
    pub async fn color_scheme(&self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await;
    }

    /// Emulates CSS media features, e.g. `[("prefers-reduced-motion",
    /// "reduce")]`; replaces whatever was emulated before (the colour
    /// scheme included).
    pub async fn emulate_media(&self, features: &[(&str, &str)]) {
        let features: Vec<Value> = features
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": features }),
        )
        .await;
    }

    async fn cdp(&self, cmd: &'static str, params: Value) {
        within(cmd, self.client.issue_cmd(Cdp { cmd, params }))
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    }

    /// A PNG of the viewport, saved as `name` in the screenshot folder.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = within("screenshot", self.client.screenshot())
            .await
            .expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the session (the browser exits).
    pub async fn close(self) {
        let _ = tokio::time::timeout(WAIT, self.client.close()).await;
    }
}

/// Where screenshots go: `TALLY_SCREENSHOT_DIR`, else `target/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("TALLY_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
            target.join("screenshots")
        })
}
