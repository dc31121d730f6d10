//! `/readyz` means writable: 503 against a read-only replica and while a cluster is down, 200
//! again once writes work.

use crate::common::redis_topology::{Cluster, Node, wait_until};
use crate::common::running::{Running, eventually};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_on_a_read_only_replica_ready_once_it_is_promoted() {
    let primary = Node::start(&[]);
    let replica = Node::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    wait_until(Duration::from_secs(10), "the replica is in sync", || {
        replica.info("replication", "master_link_status") == "up"
    });
    let running = Running::start(&["--store", &replica.url(), "--redis-timeout-ms", "300"]).await;
    // Long enough for several looks at the store.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        running.ready_status().await,
        503,
        "ready while pointed at a replica"
    );
    let (status, body) = running
        .post_spec(&crate::common::events::start("A", 1_000), "c-1")
        .await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "store_unavailable");
    assert!(!body.to_string().contains("READONLY"), "{body}");

    tokio::task::block_in_place(|| {
        let _: String = replica.query(&["REPLICAOF", "NO", "ONE"]);
    });
    eventually(
        Duration::from_secs(10),
        "ready on the promoted node",
        || async { running.ready_status().await == 200 },
    )
    .await;
    assert_eq!(
        running
            .post_spec(&crate::common::events::start("A", 1_000), "c-1")
            .await
            .0,
        202
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_while_a_cluster_is_down_ready_once_it_heals() {
    let mut cluster = Cluster::start();
    let running = Running::start(&[
        "--store",
        &cluster.url(),
        "--redis-cluster",
        "true",
        "--redis-timeout-ms",
        "300",
    ])
    .await;
    eventually(
        Duration::from_secs(10),
        "ready on a healthy cluster",
        || async { running.ready_status().await == 200 },
    )
    .await;

    // A primary and its replica gone: their slots are served by nobody.
    let primary = cluster.primaries()[0];
    let replica = cluster.replica_of(primary);
    tokio::task::block_in_place(|| {
        cluster.nodes[replica].kill_hard();
        cluster.nodes[primary].kill_hard();
    });
    eventually(
        Duration::from_secs(15),
        "not ready on a broken cluster",
        || async { running.ready_status().await == 503 },
    )
    .await;

    tokio::task::block_in_place(|| {
        cluster.nodes[primary].restart();
        cluster.nodes[replica].restart();
        cluster.wait_until_healthy();
    });
    eventually(Duration::from_secs(20), "ready again", || async {
        running.ready_status().await == 200
    })
    .await;
    running.shutdown().await;
}
