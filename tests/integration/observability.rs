//! The Grafana dashboard and the alert rules only use metrics the service really exports.

use crate::common::events::customer_end;
use crate::common::running::{Running, eventually};
use handover_receiver::metrics::NAMES;
use std::collections::BTreeSet;
use std::time::Duration;

fn repo_file(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// `handover_*` metric names in a PromQL expression.
fn names_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("handover_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// Metric names (series names without labels) exported after real traffic of every kind.
async fn exported() -> BTreeSet<String> {
    let cognigy = crate::common::cognigy::answering(200).await;
    let url = format!("{}/ended", cognigy.uri());
    let running = Running::start(&["--forward", "true", "--cognigy-url", &url]).await;
    running.post_spec(&customer_end(5_000), "c-1").await;
    eventually(Duration::from_secs(10), "the end is delivered", || async {
        !cognigy
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    running.post(&serde_json::json!({})).await;
    let text = running
        .client
        .get(format!("{}/metrics", running.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    running.shutdown().await;
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// A series name of one of the service's metric families.
fn is_ours(name: &str) -> bool {
    let family = ["_bucket", "_count", "_sum"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|family| NAMES.contains(family))
        .unwrap_or(name);
    NAMES.contains(&family)
}

#[tokio::test]
async fn dashboard_and_alerts_use_only_exported_metrics() {
    let exported = exported().await;
    assert!(exported.len() >= 8, "{exported:?}");
    let strays: Vec<_> = exported.iter().filter(|name| !is_ours(name)).collect();
    assert!(
        strays.is_empty(),
        "exported but not listed in metrics::NAMES: {strays:?}"
    );

    let dashboard: serde_json::Value = serde_json::from_str(&repo_file(
        "helm/handover-receiver/files/grafana-dashboard.json",
    ))
    .expect("dashboard is JSON");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            used.extend(names_in(target["expr"].as_str().expect("expr")));
        }
    }
    let rules = repo_file("helm/handover-receiver/files/prometheus-rules.yaml");
    let expressions: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .collect();
    assert!(expressions.len() >= 6, "expected the suggested alerts");
    for expr in expressions {
        used.extend(names_in(expr));
    }
    assert!(used.len() >= 8, "{used:?}");
    let unknown: Vec<_> = used.iter().filter(|name| !is_ours(name)).collect();
    assert!(
        unknown.is_empty(),
        "not exported by the service: {unknown:?}"
    );
}
