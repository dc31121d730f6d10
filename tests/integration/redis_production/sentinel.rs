//! A primary and a replica behind three Sentinels, the service on `redis+sentinel://`: a planned
//! `SENTINEL FAILOVER`, then the primary killed with SIGKILL, mid-stream. With one replica
//! required per commit, nothing answered 2xx can be lost by either.

use super::services::Replicas;
use crate::common::redis_topology::{MASTER_NAME, SentinelGroup};
use crate::common::traffic::Traffic;
use std::time::Duration;

const CONVERSATIONS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_then_a_primary_crash_lose_nothing() {
    let mut group = SentinelGroup::start();
    let service = Replicas::start(
        &["--store", &group.url()],
        &[
            "--redis-min-replicas",
            "1",
            "--redis-replica-timeout-ms",
            "300",
        ],
    )
    .await;
    let traffic = Traffic::start(&service.urls(), CONVERSATIONS);

    traffic.reached(0.25).await;
    tokio::task::block_in_place(|| {
        let before = group.primary();
        let _: String = group.sentinels[0].query(&["SENTINEL", "FAILOVER", MASTER_NAME]);
        crate::common::redis_topology::wait_until(
            Duration::from_secs(20),
            "the Sentinels promoted the replica",
            || group.primary() != before,
        );
        group.wait_until_stable();
    });
    traffic.reached(0.6).await;
    tokio::task::block_in_place(|| {
        let primary = group.primary();
        group.data[primary].kill_hard();
        crate::common::redis_topology::wait_until(
            Duration::from_secs(20),
            "the Sentinels promoted the replica",
            || group.primary() != primary,
        );
        // Back with its data; the Sentinels make it a replica of the new primary.
        group.data[primary].restart();
        group.wait_until_stable();
    });

    let report = traffic
        .finish(&service.cognigy, Duration::from_secs(2))
        .await;
    report.assert_exactly_once("sentinel: SENTINEL FAILOVER, then the primary killed");
}
