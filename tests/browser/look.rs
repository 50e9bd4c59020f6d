//! How the pages look and work for a person: at phone and desktop width
//! they fit and stay readable, bars carry numbers, percentages and ARIA
//! values, the visitor's choice is marked, the keyboard alone can vote with
//! a visible focus, and the page says its language. Screenshots of the home
//! page and the demo poll are kept as artifacts.

use std::path::{Path, PathBuf};

use fantoccini::key::Key;
use serde_json::{Value, json};

use crate::driver::{Driver, Page, screenshot_dir};
use crate::helpers::{Backend, TestApp, WAIT, spawn_app, spawn_app_with};

/// The demo poll's counts at start (明凯, 厂长, 7酱).
const DEMO: [u64; 3] = [300, 200, 600];

/// The committed screenshot the README shows.
const README_SHOT: &str = "docs/screenshots/poll.png";

/// A viewport to check and photograph the pages at.
pub struct Screen {
    pub name: &'static str,
    width: u32,
    height: u32,
    scale: f64,
    mobile: bool,
}

pub const DESKTOP: Screen = Screen {
    name: "desktop",
    width: 1280,
    height: 900,
    scale: 1.0,
    mobile: false,
};

pub const PHONE: Screen = Screen {
    name: "phone",
    width: 390,
    height: 844,
    scale: 2.0,
    mobile: true,
};

/// What a person needs from any page at any width: nothing wider than the
/// screen, no text too small to read, every control fully on screen and
/// big enough to hit.
const LAYOUT_PROBLEMS: &str = r#"
const problems = [];
// Inside a scroll box (a <pre>), content may be wider than the screen.
function scrolls(e) {
  for (; e && e !== document.body; e = e.parentElement) {
    const x = getComputedStyle(e).overflowX;
    if (x === 'auto' || x === 'scroll') return true;
  }
  return false;
}
const width = document.documentElement.clientWidth;
if (document.documentElement.scrollWidth > width) {
  problems.push('page scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + width);
}
document.querySelectorAll('main *').forEach(function (e) {
  const style = getComputedStyle(e);
  if (style.display === 'none' || style.visibility === 'hidden' || e.closest('.sr-only, .default-submit')) return;
  const r = e.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) return;
  const own = Array.from(e.childNodes).some(function (n) { return n.nodeType === 3 && n.textContent.trim(); });
  if (own && parseFloat(style.fontSize) < 12) problems.push('text under 12px: ' + e.textContent.trim().slice(0, 40));
  const clipped = scrolls(e.parentElement) || !e.checkVisibility({contentVisibilityAuto: true});
  if (!clipped && (r.left < -0.5 || r.right > width + 0.5)) problems.push('off screen: <' + e.tagName.toLowerCase() + ' class=' + e.className + '> ' + Math.round(r.left) + '..' + Math.round(r.right));
  if (e.matches('button, a.button, input:not([type=radio]):not([type=checkbox]):not([type=hidden]), textarea, label.choice') && r.height < 36) problems.push('control under 36px high: ' + (e.textContent.trim() || e.name || e.id));
});
return problems;
"#;

pub async fn check_layout(page: &Page, what: &str) {
    let problems = page.js(LAYOUT_PROBLEMS, vec![]).await;
    assert_eq!(problems, json!([]), "{what}: layout problems");
}

pub async fn at(page: &Page, screen: &Screen) {
    page.viewport(screen.width, screen.height, screen.scale, screen.mobile)
        .await;
}

/// Opens the demo poll; votes for 7酱 when `vote`; checks what a reader
/// sees: the Chinese text, numbers, percentages, bars and the mark.
async fn demo_poll(page: &Page, app: &TestApp, vote: bool) {
    page.goto(&app.url("/polls/lpl")).await;
    page.wait_live().await;
    assert_eq!(page.text("#poll-question").await, "LPL第一打野投票");
    if vote {
        page.vote_for(2).await;
    }
    let counts = [DEMO[0], DEMO[1], DEMO[2] + 1];
    page.wait_counts(&counts, WAIT).await;
    page.assert_shows(&counts, 1).await;
    assert_eq!(
        page.marked().await,
        [2],
        "7酱 is marked as the visitor's vote"
    );
}

fn shot_name(page: &str, screen: &Screen) -> String {
    format!("{page}-{}.png", screen.name)
}

/// Every page at `screen`: laid out well, and photographed (home, poll,
/// created); the first call casts the demo vote.
async fn sweep(page: &Page, app: &TestApp, screen: &Screen, vote: bool) -> Vec<PathBuf> {
    let mut shots = Vec::new();
    at(page, screen).await;
    page.goto(&app.url("/")).await;
    let inner = page.js("return [innerWidth, innerHeight]", vec![]).await;
    assert_eq!(inner, json!([screen.width, screen.height]), "viewport");
    check_layout(page, &format!("home, {}", screen.name)).await;
    shots.push(page.screenshot(&shot_name("home", screen)).await);

    demo_poll(page, app, vote).await;
    check_layout(page, &format!("poll, {}", screen.name)).await;
    page.move_pointer_away().await;
    shots.push(page.screenshot(&shot_name("poll", screen)).await);

    page.goto(&app.url("/polls/no-such-poll")).await;
    assert_eq!(page.text("#error-title").await, "Poll not found");
    check_layout(page, &format!("error page, {}", screen.name)).await;

    page.goto(&app.url("/")).await;
    let question = "A question long enough to wrap on a phone, and then some more words";
    page.type_into("#question", question).await;
    page.type_into("#option-1", "Yes").await;
    page.type_into("#option-2", "No").await;
    page.click(".create-form .actions button.primary").await;
    page.wait_for("#created-title").await;
    check_layout(page, &format!("created page, {}", screen.name)).await;
    shots.push(page.screenshot(&shot_name("created", screen)).await);
    shots
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_phone_and_desktop_and_are_photographed() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    assert_cjk_font();
    let app = spawn_app_with(&Backend::Memory, |c| c.instance_id = Some("app-1".into())).await;
    let page = driver.page().await;
    let mut shots = sweep(&page, &app, &DESKTOP, true).await;
    shots.extend(sweep(&page, &app, &PHONE, false).await);
    // The dark scheme too, at phone width (the page follows the system's).
    page.color_scheme("dark").await;
    demo_poll(&page, &app, false).await;
    check_layout(&page, "poll, phone, dark").await;
    shots.push(page.screenshot("poll-phone-dark.png").await);
    eprintln!("screenshots: {shots:?}");
    if std::env::var("TALLY_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join(README_SHOT);
        std::fs::create_dir_all(readme.parent().unwrap()).expect("docs/screenshots");
        let poll = screenshot_dir().join(shot_name("poll", &DESKTOP));
        std::fs::copy(poll, &readme).expect("copy the README screenshot");
    }
    page.close().await;
}

/// Chinese text needs a CJK font, or it renders as empty boxes.
fn assert_cjk_font() {
    let fonts = std::process::Command::new("fc-list")
        .arg(":lang=zh")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        !fonts.trim().is_empty(),
        "no Chinese font: install fonts-noto-cjk (apt-get install -y {})",
        crate::driver::PACKAGES
    );
}

/// The focus ring of the focused element: whether `:focus-visible` holds
/// and its outline's style and width.
pub async fn focus_ring(page: &Page) -> Value {
    page.js(
        "const e = document.activeElement; const s = getComputedStyle(e); \
         return {tag: e.tagName.toLowerCase(), text: e.textContent.trim(), \
                 visible: e.matches(':focus-visible'), style: s.outlineStyle, \
                 width: parseFloat(s.outlineWidth)};",
        vec![],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyboard_alone_votes_with_a_visible_focus() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let page = driver.page().await;
    page.goto(&app.url("/polls/lpl")).await;
    page.wait_live().await;
    let lang = page
        .js("return document.documentElement.lang", vec![])
        .await;
    assert!(
        lang.as_str().is_some_and(|l| !l.is_empty()),
        "<html lang> is set"
    );

    // The first Tab reaches the skip link, which shows itself.
    page.press(Key::Tab).await;
    let first = focus_ring(&page).await;
    assert_eq!(first["text"], "Skip to content", "{first}");
    let on_screen = page
        .js(
            "return document.activeElement.getBoundingClientRect().top >= 0",
            vec![],
        )
        .await;
    assert_eq!(on_screen, json!(true), "the focused skip link is on screen");

    // Tab on until the first vote button; every stop shows a focus ring.
    let mut ring = first;
    for _ in 0..30 {
        assert_eq!(ring["visible"], true, "focus is visible: {ring}");
        assert!(
            ring["style"] != "none" && ring["width"].as_f64() >= Some(2.0),
            "a focus ring of at least 2px: {ring}"
        );
        if ring["tag"] == "button" && ring["text"].as_str().unwrap_or("").starts_with("Vote") {
            break;
        }
        page.press(Key::Tab).await;
        ring = focus_ring(&page).await;
    }
    assert_eq!(
        ring["text"], "Vote for 明凯",
        "Tab reaches the first vote button"
    );

    page.press(Key::Enter).await;
    page.wait_counts(&[301, 200, 600], WAIT).await;
    assert_eq!(
        page.marked().await,
        [0],
        "Enter voted, and the choice is marked"
    );
    page.press(Key::Tab).await;
    assert_eq!(focus_ring(&page).await["text"], "Vote for 厂长");
    page.press(Key::Space).await;
    page.wait_counts(&[301, 201, 600], WAIT).await;
    assert_eq!(
        page.marked().await,
        [1],
        "Space voted, and the choice moved"
    );
    page.wait_text(
        "[data-notices] .notice.ok",
        "Your vote for “厂长” was counted.",
        WAIT,
    )
    .await;
    page.close().await;
}

/// Where every vote button is on screen now.
async fn button_positions(page: &Page) -> Value {
    page.js(
        "return Array.from(document.querySelectorAll('#poll button[name=option]'), function (b) { \
           const r = b.getBoundingClientRect(); \
           return [Math.round(r.left), Math.round(r.top + scrollY), Math.round(r.width), Math.round(r.height)]; \
         })",
        vec![],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voting_moves_no_button_under_the_pointer() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let page = driver.page().await;
    let mut counts = DEMO;
    for screen in [DESKTOP, PHONE] {
        at(&page, &screen).await;
        page.goto(&app.url("/polls/lpl")).await;
        page.wait_live().await;
        let before = button_positions(&page).await;
        // The first vote brings a notice and a mark; the next moves the mark.
        for option in [2, 0] {
            page.vote_for(option).await;
            counts[option as usize] += 1;
            page.wait_counts(&counts, WAIT).await;
            page.wait_for("[data-notices] .notice.ok").await;
            assert_eq!(page.marked().await, [option as usize]);
            assert_eq!(
                button_positions(&page).await,
                before,
                "{}: the vote buttons stay where they were after voting for {option}",
                screen.name
            );
        }
    }
    page.close().await;
}
