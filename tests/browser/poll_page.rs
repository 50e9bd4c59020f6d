//! What the poll page shows, read from the DOM the way a person (or a
//! screen reader) sees it: the numbers, the percentages, the bars' widths
//! and ARIA values, the connection state and the visitor's own choice.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::driver::Page;
use crate::helpers::WAIT;

/// One result row as rendered.
#[derive(Debug, Deserialize)]
pub struct Row {
    pub label: String,
    pub votes: String,
    pub percent: String,
    pub valuenow: String,
    pub valuetext: String,
    pub labelled_by: String,
    /// The filled part of the bar, in percent of the track's width.
    pub fill: f64,
    /// "Your vote" is visible on this row.
    pub mine: bool,
}

const READ_ROWS: &str = r#"
return Array.from(document.querySelectorAll('#poll [data-option]')).map(function (r) {
  const bar = r.querySelector('[role=meter]');
  const labelId = bar.getAttribute('aria-labelledby');
  const label = document.getElementById(labelId);
  const track = bar.getBoundingClientRect().width;
  const fill = r.querySelector('[data-fill]').getBoundingClientRect().width;
  const mine = r.querySelector('[data-mine]');
  return {
    label: r.querySelector('.result-label').textContent,
    votes: r.querySelector('[data-votes]').textContent.trim(),
    percent: r.querySelector('[data-percent]').textContent.trim(),
    valuenow: bar.getAttribute('aria-valuenow'),
    valuetext: bar.getAttribute('aria-valuetext'),
    labelled_by: label === null ? '' : label.textContent,
    fill: track > 0 ? fill * 100 / track : -1,
    mine: !mine.hidden && getComputedStyle(mine).display !== 'none' && getComputedStyle(mine).visibility === 'visible' && r.classList.contains('chosen'),
  };
});
"#;

/// `1117` → `1,117 votes`, as the page writes it.
pub fn votes_text(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped} {}", if n == 1 { "vote" } else { "votes" })
}

impl Page {
    /// Every result row as shown now.
    pub async fn rows(&self) -> Vec<Row> {
        serde_json::from_value(self.js(READ_ROWS, vec![]).await).expect("rows")
    }

    /// Waits until the connection indicator says `live`.
    pub async fn wait_live(&self) {
        self.wait_until(
            "the connection to be live",
            WAIT,
            "return document.querySelector('[data-conn]').dataset.state === 'live'",
            vec![],
        )
        .await;
    }

    /// The connection indicator's state (`connecting`, `live`, `reconnecting`…).
    pub async fn conn_state(&self) -> String {
        self.js(
            "return document.querySelector('[data-conn]').dataset.state",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Clicks the vote button of `option`.
    pub async fn vote_for(&self, option: u32) {
        self.click(&format!(
            "#poll [data-option=\"{option}\"] button[name=option]"
        ))
        .await;
    }

    /// Waits (up to `bound`) until the rows show `counts` votes.
    pub async fn wait_counts(&self, counts: &[u64], bound: Duration) {
        let expected: Vec<String> = counts.iter().map(|&n| votes_text(n)).collect();
        self.wait_until(
            &format!("the page to show {expected:?}"),
            bound,
            "const shown = Array.from(document.querySelectorAll('#poll [data-votes]'), \
               function (e) { return e.textContent.trim(); }); \
             return JSON.stringify(shown) === JSON.stringify(arguments[0]);",
            vec![json!(expected)],
        )
        .await;
    }

    /// Waits (up to `bound`) until the bars inside `root` show `counts`.
    pub async fn wait_counts_in(&self, root: &str, counts: &[u64], bound: Duration) {
        let expected: Vec<String> = counts.iter().map(|&n| votes_text(n)).collect();
        self.wait_until(
            &format!("{root} to show {expected:?}"),
            bound,
            "const shown = Array.from(document.querySelectorAll(arguments[1] + ' [data-votes]'), \
               function (e) { return e.textContent.trim(); }); \
             return JSON.stringify(shown) === JSON.stringify(arguments[0]);",
            vec![json!(expected), json!(root)],
        )
        .await;
    }

    /// Asserts the whole results view agrees with `counts`: numbers,
    /// percentages, bar widths, ARIA values, total and `version`.
    pub async fn assert_shows(&self, counts: &[u64], version: u64) {
        let total: u64 = counts.iter().sum();
        let rows = self.rows().await;
        assert_eq!(rows.len(), counts.len(), "one row per option");
        for (i, (row, &n)) in rows.iter().zip(counts).enumerate() {
            let share = if total == 0 {
                0.0
            } else {
                n as f64 * 100.0 / total as f64
            };
            let percent = format!("{share:.1}");
            assert_eq!(row.votes, votes_text(n), "votes of option {i}");
            assert_eq!(row.percent, format!("{percent}%"), "percent of option {i}");
            assert_eq!(row.valuenow, percent, "aria-valuenow of option {i}");
            assert_eq!(
                row.valuetext,
                format!("{}, {percent}%", votes_text(n)),
                "aria-valuetext of option {i}"
            );
            assert_eq!(
                row.labelled_by, row.label,
                "bar {i} is labelled by its option"
            );
            assert!(
                (row.fill - share).abs() < 1.0,
                "bar {i} is {:.1}% full, expected {share:.1}%",
                row.fill
            );
        }
        assert_eq!(self.text("[data-total]").await, votes_text(total), "total");
        assert_eq!(
            self.text("[data-version]").await,
            version.to_string(),
            "version"
        );
    }

    /// Which options carry the "Your vote" mark.
    pub async fn marked(&self) -> Vec<usize> {
        let rows = self.rows().await;
        rows.iter()
            .enumerate()
            .filter(|(_, r)| r.mine)
            .map(|(i, _)| i)
            .collect()
    }

    /// Starts recording every connection state the page goes through, and
    /// the words it shows for each (a state can be shorter than a poll of
    /// the DOM).
    pub async fn record_conn_states(&self) {
        self.js(
            "const el = document.querySelector('[data-conn]'); \
             window.__connStates = [el.dataset.state]; \
             window.__connTexts = [el.textContent]; \
             new MutationObserver(function () { \
               window.__connStates.push(el.dataset.state); \
               window.__connTexts.push(el.textContent); \
             }).observe(el, {attributes: true, attributeFilter: ['data-state']});",
            vec![],
        )
        .await;
    }

    /// The words the connection indicator showed since
    /// [`Page::record_conn_states`].
    pub async fn conn_texts(&self) -> Vec<String> {
        serde_json::from_value(self.js("return window.__connTexts", vec![]).await)
            .expect("recorded texts")
    }

    /// The connection states recorded since [`Page::record_conn_states`].
    pub async fn conn_states(&self) -> Vec<String> {
        serde_json::from_value(self.js("return window.__connStates", vec![]).await)
            .expect("recorded states")
    }
}

impl Page {
    /// Starts a clock in the page: the time (`Date.now()`) at which the
    /// votes of `option` first read `n`, as [`Page::seen_at`] tells.
    pub async fn watch_for_votes(&self, option: u32, n: u64) {
        self.js(
            "const el = document.querySelector('#poll [data-option=\"' + arguments[0] + '\"] [data-votes]'); \
             const want = arguments[1]; \
             window.__seenAt = null; \
             new MutationObserver(function (_, observer) { \
               if (el.textContent.trim() === want) { window.__seenAt = Date.now(); observer.disconnect(); } \
             }).observe(el, {childList: true, characterData: true, subtree: true});",
            vec![json!(option), json!(votes_text(n))],
        )
        .await;
    }

    /// When the change awaited by [`Page::watch_for_votes`] showed (ms).
    pub async fn seen_at(&self) -> f64 {
        self.js("return window.__seenAt", vec![])
            .await
            .as_f64()
            .expect("the watched change was seen")
    }

    /// Starts a clock in the page: the time of the next click, as
    /// [`Page::clicked_at`] tells.
    pub async fn watch_for_click(&self) {
        self.js(
            "window.__clickedAt = null; \
             document.addEventListener('click', function () { window.__clickedAt = Date.now(); }, \
               {capture: true, once: true});",
            vec![],
        )
        .await;
    }

    /// When the click awaited by [`Page::watch_for_click`] happened (ms).
    pub async fn clicked_at(&self) -> f64 {
        self.js("return window.__clickedAt", vec![])
            .await
            .as_f64()
            .expect("the click was seen")
    }
}
