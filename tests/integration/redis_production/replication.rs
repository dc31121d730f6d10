//! `HANDOVER_REDIS_MIN_REPLICAS`: a commit counts once a replica holds it. With the replica
//! stalled (SIGSTOP: connected, acknowledging nothing), a primary crash would lose what it
//! acknowledged, so events get 503 (EventBridge retries) instead of a 202 that is no promise.

use crate::common::events::start;
use crate::common::redis_topology::{Node, wait_until};
use crate::common::running::{Running, eventually};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_keep_up_gets_events_503_not_202() {
    let primary = Node::start(&[]);
    let replica = Node::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    wait_until(Duration::from_secs(10), "the replica is in sync", || {
        replica.info("replication", "master_link_status") == "up"
    });
    let running = Running::start(&[
        "--store",
        &primary.url(),
        "--redis-min-replicas",
        "1",
        "--redis-replica-timeout-ms",
        "200",
        "--redis-timeout-ms",
        "1000",
    ])
    .await;
    assert_eq!(running.post_spec(&start("A", 1_000), "c-1").await.0, 202);

    tokio::task::block_in_place(|| replica.pause());
    let (status, body) = running.post_spec(&start("A", 1_000), "c-2").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "store_unavailable");
    // A duplicate of an event whose commit no replica holds is no promise either.
    let (status, _) = running.post_spec(&start("A", 1_000), "c-2").await;
    assert_eq!(
        status, 503,
        "a retry found the unreplicated state and answered 2xx"
    );

    tokio::task::block_in_place(|| replica.resume());
    // Its retry now finds the state replicated: a duplicate, acknowledged.
    eventually(
        Duration::from_secs(10),
        "events are accepted again",
        || async { running.post_spec(&start("A", 1_000), "c-2").await.0 == 200 },
    )
    .await;
    let state = running
        .state
        .store
        .load(&handover_receiver::genesys::ConversationKey::new(
            crate::common::events::ORG,
            "c-2",
        ))
        .await
        .unwrap()
        .expect("the event's state is kept");
    assert_eq!(state.legs.len(), 1);
    running.shutdown().await;
}
