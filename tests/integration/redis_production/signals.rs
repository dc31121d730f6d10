//! A store that lost its data (flushed, as a restart without persistence leaves it) and one whose
//! eviction policy may drop keys: each raises its metric and logs one ERROR line.

use crate::common::app::KEY;
use crate::common::process::Process;
use crate::common::redis_server::RedisServer;
use std::time::{Duration, Instant};

async fn metric(process: &Process, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", process.addr))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics answer");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn wait_for_metric(process: &Process, name: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(process, name).await != value {
        assert!(Instant::now() < deadline, "{name} never became {value}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn errors_containing(process: &mut Process, needle: &str) -> usize {
    process
        .all_lines()
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\"") && line.contains(needle))
        .count()
}

fn start(server: &RedisServer) -> Process {
    Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_STORE", &server.url()),
    ])
}

#[tokio::test]
async fn a_flushed_store_is_counted_and_logged_once() {
    let server = RedisServer::start();
    let mut process = start(&server);
    wait_for_metric(&process, "handover_store_ready", 1.0).await;
    assert_eq!(metric(&process, "handover_store_resets_total").await, 0.0);

    let _: String = redis::cmd("FLUSHALL")
        .query(&mut server.connection())
        .unwrap();
    wait_for_metric(&process, "handover_store_resets_total", 1.0).await;
    // Several more looks at the store: the reset is not counted or logged again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(metric(&process, "handover_store_resets_total").await, 1.0);
    assert_eq!(errors_containing(&mut process, "lost its data"), 1);
}

#[tokio::test]
async fn an_evicting_policy_is_exported_and_logged_once() {
    let server = RedisServer::start();
    let _: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("volatile-lru")
        .query(&mut server.connection())
        .unwrap();
    let mut process = start(&server);
    wait_for_metric(&process, "handover_store_eviction_unsafe", 1.0).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(errors_containing(&mut process, "may evict"), 1);

    let _: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut server.connection())
        .unwrap();
    wait_for_metric(&process, "handover_store_eviction_unsafe", 0.0).await;
    assert_eq!(errors_containing(&mut process, "may evict"), 1);
}
