//! Redis Cluster: `CLUSTER FAILOVER` (the usual maintenance step) and a primary killed with
//! SIGKILL, mid-stream, with the service running throughout.

use super::services::Replicas;
use crate::common::redis_topology::Cluster;
use crate::common::traffic::Traffic;
use std::time::Duration;

const CONVERSATIONS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_then_a_primary_crash_end_every_conversation_exactly_once() {
    let mut cluster = Cluster::start();
    let service =
        Replicas::start(&["--store", &cluster.url(), "--redis-cluster", "true"], &[]).await;
    let traffic = Traffic::start(&service.urls(), CONVERSATIONS);

    traffic.reached(0.25).await;
    tokio::task::block_in_place(|| cluster.planned_failover());
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
    report.assert_exactly_once("cluster: CLUSTER FAILOVER, then a primary killed");
}
