//! English and 简体中文: `Accept-Language` picks the pages' language, the
//! switch in the header changes it and a cookie keeps it, `<html lang>`
//! says which, and Chinese text renders with real CJK glyphs. Also the QR
//! code: `/polls/{id}/qr.svg` decodes to the poll's address.

use std::process::Command;

use serde_json::json;

use crate::driver::{Driver, Page};
use crate::helpers::{Backend, spawn_app, spawn_app_with};

async fn lang(page: &Page) -> String {
    page.js("return document.documentElement.lang", vec![])
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Whether each character of `text` is drawn with a real glyph in the
/// page's font: a character with no glyph is drawn as the same "missing"
/// box as a private-use character, so its pixels equal that box's.
const GLYPHS_DRAWN: &str = r#"
const font = getComputedStyle(document.querySelector(arguments[1])).font;
function pixels(ch) {
  const c = document.createElement('canvas');
  c.width = 64; c.height = 64;
  const g = c.getContext('2d');
  g.font = font.replace(/\d+(\.\d+)?px/, '40px');
  g.fillStyle = '#000';
  g.fillText(ch, 4, 48);
  return Array.from(g.getImageData(0, 0, 64, 64).data).join(',');
}
const missing = pixels('\uE000');
const blank = pixels(' ');
return Array.from(arguments[0]).map(function (ch) {
  const p = pixels(ch);
  return p !== missing && p !== blank;
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_language_and_the_switch_choose_the_language() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = spawn_app(&Backend::Memory).await;
    let page = driver.page_in("zh-CN").await;
    page.goto(&app.url("/")).await;
    assert_eq!(lang(&page).await, "zh-CN", "Accept-Language: zh-CN");
    assert_eq!(page.text("#create-title").await, "发起投票");
    let drawn = page
        .js(
            GLYPHS_DRAWN,
            vec![json!("发起投票"), json!("#create-title")],
        )
        .await;
    assert_eq!(drawn, json!([true, true, true, true]), "CJK glyphs render");
    let width = page
        .js(
            "const r = document.createRange(); r.selectNodeContents(document.getElementById('create-title')); \
             return r.getBoundingClientRect().width",
            vec![],
        )
        .await;
    assert!(
        width.as_f64() > Some(40.0),
        "the heading has width: {width}"
    );
    page.screenshot("home-zh.png").await;

    // The poll page and its script speak Chinese too.
    page.goto(&app.url("/polls/lpl")).await;
    page.wait_live().await;
    assert_eq!(page.text("[data-conn]").await, "实时");
    assert_eq!(
        page.text("#poll [data-option=\"0\"] [data-votes]").await,
        "300 票"
    );
    page.click("#poll [data-option=\"2\"] button[name=option]")
        .await;
    page.wait_text(
        "[data-notices] .notice.ok",
        "你投给“7酱”的票已计入。",
        crate::helpers::WAIT,
    )
    .await;

    // The switch: English, kept by a cookie on every page after.
    page.click("[data-lang-switch]").await;
    page.wait_until(
        "English after the switch",
        crate::helpers::WAIT,
        "return document.documentElement.lang === 'en' && document.readyState === 'complete'",
        vec![],
    )
    .await;
    assert!(page.url().await.ends_with("/polls/lpl"), "the same page");
    page.goto(&app.url("/")).await;
    assert_eq!(lang(&page).await, "en", "the cookie beats Accept-Language");
    assert_eq!(page.text("#create-title").await, "Create a poll");
    page.goto(&app.url("/polls/no-such")).await;
    assert_eq!(page.text("#error-title").await, "Poll not found");
    page.click("[data-lang-switch]").await;
    page.wait_until(
        "Chinese again",
        crate::helpers::WAIT,
        "return document.documentElement.lang === 'zh-CN'",
        vec![],
    )
    .await;
    assert_eq!(page.text("#error-title").await, "找不到这个投票");
    // The lab, the manage page and the presenter view too.
    page.goto(&app.url("/polls/lpl/lab")).await;
    assert_eq!(page.text("#lab .eyebrow").await, "传输实验室");
    assert_eq!(page.text("[data-lab-start]").await, "开始");
    page.goto(&app.url("/polls/lpl/manage")).await;
    assert_eq!(page.text("[data-manage=close]").await, "结束投票");
    page.goto(&app.url("/polls/lpl/present")).await;
    assert_eq!(lang(&page).await, "zh-CN");
    assert_eq!(page.text(".present-scan").await, "扫码投票");
    page.close().await;

    // Without the script the switch is a link that sets the cookie.
    let page = driver.page_without_js().await;
    page.goto(&app.url("/polls/lpl")).await;
    assert_eq!(lang(&page).await, "en");
    page.click("[data-lang-switch]").await;
    page.wait_until(
        "Chinese through the link",
        crate::helpers::WAIT,
        "return document.documentElement.lang === 'zh-CN'",
        vec![],
    )
    .await;
    assert!(page.url().await.ends_with("/polls/lpl"));
    assert!(page.text("main").await.contains("JavaScript 已关闭"));
    page.close().await;
}

/// Renders `svg` to PNG (`rsvg-convert`) and decodes it (`zbarimg`).
pub fn decode_qr(svg: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let (svg_path, png_path) = (dir.path().join("qr.svg"), dir.path().join("qr.png"));
    std::fs::write(&svg_path, svg).expect("write svg");
    let status = Command::new("rsvg-convert")
        .arg(&svg_path)
        .arg("-o")
        .arg(&png_path)
        .status()
        .expect("rsvg-convert (apt-get install -y librsvg2-bin)");
    assert!(status.success(), "rsvg-convert failed");
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&png_path)
        .output()
        .expect("zbarimg (apt-get install -y zbar-tools)");
    assert!(out.status.success(), "zbarimg found no code");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_qr_code_decodes_to_the_poll_address() {
    let app = spawn_app(&Backend::Memory).await;
    let (poll, _) = app.create_poll(&["A", "B"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    let res = reqwest::get(app.url(&format!("/polls/{id}/qr.svg")))
        .await
        .expect("qr");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    let svg = res.bytes().await.expect("body");
    assert_eq!(decode_qr(&svg), app.url(&format!("/polls/{id}")));
    let missing = reqwest::get(app.url("/polls/no-such/qr.svg"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Behind a proxy, TALLY_PUBLIC_URL names the address people use.
    let public = spawn_app_with(&Backend::Memory, |c| {
        c.public_url = Some("https://vote.example.com".into())
    })
    .await;
    let svg = reqwest::get(public.url("/polls/lpl/qr.svg"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(decode_qr(&svg), "https://vote.example.com/polls/lpl");
}
