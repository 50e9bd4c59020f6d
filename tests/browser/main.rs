//! The pages in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver, against real instances on a
//! real Redis, with haproxy in front where a test needs a load balancer.
//!
//! Needs `apt-get install -y chromium chromium-driver fonts-noto-cjk`; the
//! tests fail with that hint when the browser is missing, unless
//! `TALLY_SKIP_BROWSER=1`. Screenshots land in `target/screenshots/` (or
//! `TALLY_SCREENSHOT_DIR`); `TALLY_UPDATE_SCREENSHOTS=1` also refreshes the
//! one committed for the README.

#[path = "../api/helpers.rs"]
#[allow(unused_imports, unused_macros)]
mod helpers;

mod driver;
mod lb;
mod poll_page;

mod a11y;
mod create;
mod embed;
mod escaping;
mod events;
mod failover;
mod host;
mod kinds;
mod lab;
mod languages;
mod live;
mod look;
mod no_js;
mod qa;
mod richer;
