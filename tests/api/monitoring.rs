//! The operator's side: the alert rules (`deploy/prometheus/alerts.yml`)
//! and the Grafana dashboard (`deploy/grafana/tally.json`) name only
//! metrics a running instance exports, so no panel stays empty and no
//! alert waits on a series that never comes; the dashboard's expressions
//! are valid PromQL (checked by promtool, which `scripts/test` installs).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::helpers::*;

/// Metrics the rules use before the code exports them, each with the work
/// that adds it: the rule is written and tested (promtool) already.
const PENDING: &[(&str, &str)] = &[];

fn repo_file(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every `tally_…` metric name in `text` (an expression, a rules file).
fn tally_names(text: &str) -> BTreeSet<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("tally_") {
        if text[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let name: String = text[at..].chars().take_while(|&c| is_ident(c)).collect();
        names.insert(name);
    }
    names
}

/// The series names in Prometheus text exposition.
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// The dashboard's expressions, with the panel each belongs to.
fn dashboard_exprs() -> Vec<(String, String)> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/grafana/tally.json")).expect("dashboard is JSON");
    assert!(
        dashboard["__inputs"][0]["pluginId"] == "prometheus",
        "importable: asks for its Prometheus data source"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("panel title").to_owned();
        let targets = panel["targets"].as_array().expect("panel targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            assert!(!expr.trim().is_empty(), "panel {title}: empty expr");
            exprs.push((title.clone(), expr.to_owned()));
        }
    }
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_alerts_and_the_dashboard_is_exported() {
    // On Redis: the bus heartbeat, Redis latency and group commit exist
    // only there.
    let backend = Backend::redis().await;
    let app = spawn_app(&backend).await;
    wait_until_ready(&app).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap();
    assert_eq!(app.vote(id, 0, None).await.0, 200);
    let text = app.get("/metrics").await.text().await.unwrap();
    let exported = exported_names(&text);

    let mut used: Vec<(String, String)> = Vec::new();
    for (panel, expr) in dashboard_exprs() {
        for name in tally_names(&expr) {
            used.push((format!("dashboard panel {panel:?}"), name));
        }
    }
    for name in tally_names(&repo_file("deploy/prometheus/alerts.yml")) {
        used.push(("deploy/prometheus/alerts.yml".into(), name));
    }
    let distinct: BTreeSet<&str> = used.iter().map(|(_, n)| n.as_str()).collect();
    assert!(
        distinct.len() >= 10,
        "the files name the metrics they chart and alert on: {distinct:?}"
    );
    let missing: Vec<String> = used
        .iter()
        .filter(|(_, name)| !exported.contains(name))
        .filter(|(_, name)| !PENDING.iter().any(|(p, _)| p == name))
        .map(|(place, name)| format!("{place}: {name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "named but not exported: {missing:#?}\nexported: {exported:#?}"
    );
    for (name, _) in PENDING {
        assert!(
            distinct.contains(name),
            "{name} is pending but no longer used"
        );
    }
    // The heartbeat gauge is a recent Unix time, not a placeholder.
    let heard: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tally_bus_heartbeat_last_heard_seconds "))
        .expect("heartbeat gauge")
        .trim()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - heard).abs() < 10.0, "heard {heard}, now {now}");
    assert!(text.contains("# TYPE tally_vote_duration_seconds histogram"));
}

#[test]
fn the_dashboard_expressions_are_valid_promql() {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in dashboard_exprs().iter().enumerate() {
        // Grafana's variables, as Grafana fills them in.
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$job", "tally");
        let quoted = serde_json::to_string(&expr).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {quoted}\n"
        ));
    }
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool (scripts/test installs Debian's prometheus package)");
    assert!(
        out.status.success(),
        "{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
