//! Redis Cluster: `CLUSTER FAILOVER` (the usual maintenance step), live resharding (slots and
//! their keys moving: ASK, TRYAGAIN) and a primary killed with SIGKILL, mid-stream, with the
//! service running throughout.

use super::services::Replicas;
use crate::common::events::{acw, end, start};
use crate::common::redis_topology::Cluster;
use crate::common::running::{Running, eventually};
use crate::common::traffic::Traffic;
use std::collections::HashSet;
use std::time::Duration;

const CONVERSATIONS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_resharding_and_a_primary_crash_end_every_conversation_exactly_once() {
    let mut cluster = Cluster::start();
    let service =
        Replicas::start(&["--store", &cluster.url(), "--redis-cluster", "true"], &[]).await;
    let traffic = Traffic::start(&service.urls(), CONVERSATIONS);

    traffic.reached(0.2).await;
    tokio::task::block_in_place(|| cluster.planned_failover());
    traffic.reached(0.4).await;
    // 3,000 slots from slot 0 on: three of the service's sixteen buckets among them.
    tokio::task::block_in_place(|| cluster.reshard(3_000));
    traffic.reached(0.6).await;
    let primary = cluster.primaries()[0];
    tokio::task::block_in_place(|| {
        cluster.nodes[primary].kill_hard();
        // Until its replica is promoted, that primary's slots fail; then the cluster heals.
        std::thread::sleep(Duration::from_millis(2_500));
        cluster.nodes[primary].restart();
    });

    let report = traffic
        .finish(&service.cognigy, Duration::from_secs(2))
        .await;
    report.assert_exactly_once("cluster: CLUSTER FAILOVER, resharding, then a primary killed");
}

/// A shard (a primary and its replica) dies while grace windows are open on every bucket: the
/// windows of the healthy buckets still close on time and their ends are delivered. (With
/// Redis' default `cluster-require-full-coverage yes`, the whole cluster would refuse writes
/// instead: this is the setting under which the healthy slots go on.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_shard_does_not_hold_back_the_healthy_ones() {
    let mut cluster = Cluster::start_with(&["--cluster-require-full-coverage", "no"]);
    let cognigy = crate::common::cognigy::answering(200).await;
    let url = format!("{}/ended", cognigy.uri());
    let running = Running::start(&[
        "--store",
        &cluster.url(),
        "--redis-cluster",
        "true",
        "--redis-timeout-ms",
        "300",
        "--forward",
        "true",
        "--cognigy-url",
        &url,
        "--end-grace-ms",
        "1500",
    ])
    .await;
    let conversations: Vec<String> = (0..64).map(|n| format!("conversation-{n:02}")).collect();
    for id in &conversations {
        for spec in [
            start("A", 1_000),
            end("A", 60_000, "CLIENT"),
            acw("A", 61_000),
        ] {
            assert_eq!(running.post_spec(&spec, id).await.0, 202);
        }
    }
    let (primary, replica) = cluster.shard_of_slot_zero();
    let lost: HashSet<String> = {
        let keys: Vec<String> = cluster.nodes[primary].query(&["KEYS", "hr:*:c:*"]);
        keys.iter()
            .filter_map(|key| key.rsplit(':').next().map(str::to_owned))
            .collect()
    };
    assert!(
        !lost.is_empty(),
        "the dead shard holds none of the conversations"
    );
    tokio::task::block_in_place(|| {
        cluster.nodes[replica].kill_hard();
        cluster.nodes[primary].kill_hard();
    });

    let healthy: HashSet<&String> = conversations
        .iter()
        .filter(|c| !lost.contains(*c))
        .collect();
    eventually(
        Duration::from_secs(8),
        "the healthy buckets' ends are delivered",
        || async {
            let delivered: HashSet<String> = cognigy
                .received_requests()
                .await
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r.headers.get("idempotency-key"))
                .filter_map(|k| k.to_str().ok()?.split(':').nth(1).map(str::to_owned))
                .collect();
            healthy.iter().all(|c| delivered.contains(*c))
        },
    )
    .await;
    println!(
        "dead shard: {} healthy conversations delivered, {} waiting for their shard",
        healthy.len(),
        lost.len()
    );
    drop(running);
}
