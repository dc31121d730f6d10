//! The Redis store against a real redis-server: atomic decisions across replicas, exactly one
//! call per end, Redis going away and coming back, memory per conversation, expiry.

use crate::common::app::KEY;
use crate::common::events::*;
use crate::common::redis_server::RedisServer;
use crate::common::redis_topology::Cluster;
use crate::common::running::{Running, eventually};
use crate::common::shuffle::deliveries;
use crate::common::store::{apply, apply_event};
use crate::common::traffic::conversation;
use handover_receiver::engine::{ConversationState, Engine};
use handover_receiver::genesys::ConversationKey;
use handover_receiver::store::{RedisOptions, RedisStore, RedisTarget, Store, Transition};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&RedisTarget::single(server.url()), RedisOptions::default())
        .expect("store connects")
}

#[tokio::test]
async fn concurrent_updates_from_two_replicas_never_overwrite_each_other() {
    let server = RedisServer::start();
    let replicas = [Arc::new(store(&server)), Arc::new(store(&server))];
    let mut tasks = Vec::new();
    for leg in 0..64 {
        let replica = Arc::clone(&replicas[leg % 2]);
        tasks.push(tokio::spawn(async move {
            apply(
                replica,
                Engine::new(10_000),
                &start(&format!("L{leg}"), 1_000 + leg as i64),
                "shared",
                5,
            )
            .await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let state = replicas[0]
        .load(&ConversationKey::new(ORG, "shared"))
        .await
        .unwrap()
        .expect("state is stored");
    assert_eq!(state.legs.len(), 64, "a concurrent update was lost");
}

/// The legs of a conversation as the store holds it.
async fn stored_legs(store: &RedisStore, conversation: &str) -> Vec<String> {
    let state = store
        .load(&ConversationKey::new(ORG, conversation))
        .await
        .unwrap()
        .expect("state is stored");
    let mut legs: Vec<String> = state.legs.iter().map(|leg| leg.key.to_string()).collect();
    legs.sort();
    legs
}

/// The Redis key of a conversation's state.
fn state_key(server: &RedisServer, conversation: &str) -> String {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*:c:{ORG}:{conversation}"))
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_replica_starts_from_what_it_committed_last_only_while_redis_still_holds_it() {
    let server = RedisServer::start();
    let (a, b) = (Arc::new(store(&server)), Arc::new(store(&server)));
    let engine = Engine::new(10_000);
    apply(a.clone(), engine, &start("A", 1_000), "c", 5).await;
    apply(b.clone(), engine, &start("B", 2_000), "c", 5).await;
    // A's last commit is no longer what Redis holds: it must start from B's.
    apply(a.clone(), engine, &start("C", 3_000), "c", 5).await;
    assert_eq!(
        stored_legs(&a, "c").await,
        [session("A"), session("B"), session("C")]
    );
}

/// How many times Redis ran `command` (`INFO commandstats`), commands run by scripts included.
fn calls_of(server: &RedisServer, command: &str) -> u64 {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.connection())
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |rest| {
            rest.split(',').next().unwrap().parse().expect("a count")
        })
}

/// A conversation this replica has no record of is most often a new one: its first event is
/// committed on the guess that Redis holds nothing, in one round trip, instead of a read first.
/// The commit script checks the guess, so a conversation Redis does hold is still found (the
/// test above, and the one after it).
#[tokio::test]
async fn a_new_conversation_is_committed_without_reading_it_first() {
    let server = RedisServer::start();
    let a = Arc::new(store(&server));
    let engine = Engine::new(10_000);
    // The first commit loads the script (NOSCRIPT, then EVALSHA again): counted from after it.
    apply(a.clone(), engine, &start("A", 1_000), "first", 5).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut server.connection())
        .unwrap();
    for n in 0..8 {
        apply(
            a.clone(),
            engine,
            &start("A", 1_000),
            &format!("new-{n}"),
            5,
        )
        .await;
    }
    // Each commit script reads the stored stamp with one HMGET; a read before it would be another.
    assert_eq!(calls_of(&server, "evalsha"), 8);
    assert_eq!(
        calls_of(&server, "hmget"),
        8,
        "one read per commit, none before"
    );
    for n in 0..8 {
        assert_eq!(stored_legs(&a, &format!("new-{n}")).await, [session("A")]);
    }
}

/// A failover that loses writes can bring a conversation's version number back to one a
/// replica committed, with another state: say A committed version 1, the primary lost it, and a
/// replica of the release before write tokens wrote another version 1. The version matches A's
/// last commit; the state does not.
#[tokio::test]
async fn a_version_reached_again_after_lost_writes_is_not_taken_for_the_same_record() {
    let server = RedisServer::start();
    let (a, other) = (Arc::new(store(&server)), Arc::new(store(&server)));
    let engine = Engine::new(10_000);
    apply(a.clone(), engine, &start("A", 1_000), "c", 5).await;
    apply(other.clone(), engine, &start("B", 2_000), "elsewhere", 5).await;
    let mut redis = server.connection();
    let (key, elsewhere) = (state_key(&server, "c"), state_key(&server, "elsewhere"));
    let (version, only_b): (String, String) = redis::cmd("HMGET")
        .arg(&elsewhere)
        .arg("v")
        .arg("s")
        .query(&mut redis)
        .unwrap();
    assert_eq!(version, "1");
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg(&key)
        .arg("v")
        .arg("1")
        .arg("s")
        .arg(&only_b)
        .ignore()
        .cmd("HDEL")
        .arg(&key)
        .arg("t")
        .ignore()
        .query(&mut redis)
        .unwrap();

    apply(a.clone(), engine, &start("C", 3_000), "c", 5).await;
    assert_eq!(stored_legs(&a, "c").await, [session("B"), session("C")]);
}

/// An event refused because of the state (here: from another Genesys organisation than the
/// conversation's) is refused only by the state Redis holds: after Redis lost the conversation,
/// it starts the conversation anew, whatever this replica committed before.
#[tokio::test]
async fn a_refusal_is_judged_on_what_redis_holds_not_on_what_this_replica_committed_last() {
    let server = RedisServer::start();
    let a = Arc::new(store(&server));
    let engine = Engine::new(10_000);
    apply(a.clone(), engine, &start("A", 1_000), "c", 5).await;
    let _: () = redis::cmd("FLUSHALL")
        .query(&mut server.connection())
        .unwrap();
    let mut elsewhere = start("B", 2_000).event("c");
    elsewhere.genesys_organization_id = "another-genesys-organisation".into();
    apply_event(a.clone(), engine, &elsewhere, 5).await;
    assert_eq!(stored_legs(&a, "c").await, [session("B")]);
}

/// A node that lost its script cache (restarted, or a replica promoted that never saw the
/// scripts) answers NOSCRIPT: the store loads the script and commits, and nothing is lost.
#[tokio::test]
async fn a_commit_after_redis_forgot_its_scripts_loads_them_again() {
    let server = RedisServer::start();
    let a = Arc::new(store(&server));
    let engine = Engine::new(10_000);
    apply(a.clone(), engine, &start("A", 1_000), "c", 5).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.connection())
        .unwrap();
    apply(a.clone(), engine, &start("B", 2_000), "c", 5).await;
    assert_eq!(stored_legs(&a, "c").await, [session("A"), session("B")]);
}

#[tokio::test]
async fn two_replicas_on_one_redis_send_exactly_one_call_per_conversation() {
    let server = RedisServer::start();
    two_replicas_send_one_call_per_conversation(&["--store", &server.url()], 300).await;
}

#[tokio::test]
async fn two_replicas_on_a_redis_cluster_send_exactly_one_call_per_conversation() {
    let cluster = Cluster::start();
    let store = ["--store", &cluster.url(), "--redis-cluster", "true"];
    two_replicas_send_one_call_per_conversation(&store, 120).await;
    let keys: Vec<usize> = cluster
        .primaries()
        .into_iter()
        .map(|p| cluster.nodes[p].query::<usize>(&["DBSIZE"]))
        .collect();
    assert!(
        keys.iter().all(|n| *n > 0),
        "conversations did not spread over the primaries: {keys:?}"
    );
}

/// Conversations with transfers, posted in random order with duplicates, split at random between
/// two replicas on the given store: every conversation gets exactly one call.
async fn two_replicas_send_one_call_per_conversation(store: &[&str], conversations: usize) {
    let cognigy = crate::common::cognigy::answering(200).await;
    let url = format!("{}/ended", cognigy.uri());
    let mut args = store.to_vec();
    args.extend([
        "--forward",
        "true",
        "--cognigy-url",
        &url,
        "--end-grace-ms",
        "500",
        "--retry-base-ms",
        "50",
    ]);
    let replicas = Arc::new([Running::start(&args).await, Running::start(&args).await]);

    // Every conversation's events, shuffled with duplicates, then interleaved across
    // conversations and split at random between the replicas.
    let mut rng = fastrand::Rng::with_seed(2026);
    let mut posts: Vec<(usize, serde_json::Value)> = Vec::new();
    for n in 0..conversations {
        let id = format!("conversation-{n:04}");
        for delivery in deliveries(&conversation(n), &id, n as u64 + 1) {
            posts.push((
                rng.usize(0..2),
                delivery.spec.envelope_with_id(&id, &delivery.envelope_id),
            ));
        }
    }
    rng.shuffle(&mut posts);
    let total = posts.len();
    let mut lanes: Vec<Vec<_>> = (0..8).map(|_| Vec::new()).collect();
    for (index, post) in posts.into_iter().enumerate() {
        lanes[index % 8].push(post);
    }
    let mut tasks = Vec::new();
    for lane in lanes {
        let replicas = Arc::clone(&replicas);
        tasks.push(tokio::spawn(async move {
            for (replica, event) in lane {
                let (status, body) = replicas[replica].post(&event).await;
                assert!(status == 200 || status == 202, "{status}: {body}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    eventually(WAIT, "every conversation's end was delivered", || async {
        let counts = replicas[0].state.store.counts().await.unwrap();
        let requests = cognigy.received_requests().await.unwrap_or_default();
        counts.open_windows == 0 && counts.outbox == 0 && requests.len() >= conversations
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut calls: HashMap<String, usize> = HashMap::new();
    for request in cognigy.received_requests().await.unwrap() {
        let key = request.headers["idempotency-key"]
            .to_str()
            .unwrap()
            .to_owned();
        *calls.entry(key).or_default() += 1;
    }
    assert_eq!(calls.len(), conversations, "{total} posts");
    let repeated: Vec<_> = calls.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        repeated.is_empty(),
        "conversations called more than once: {repeated:?}"
    );
    assert!(calls.keys().all(|k| k.ends_with(":1")));
}

#[tokio::test]
async fn redis_down_gives_503_and_not_ready_then_recovers_by_itself() {
    let mut server = RedisServer::start();
    let running = Running::start(&["--store", &server.url(), "--redis-timeout-ms", "300"]).await;
    eventually(
        WAIT,
        "the service is ready once it has looked at Redis",
        || async { running.ready_status().await == 200 },
    )
    .await;
    assert_eq!(running.post_spec(&start("A", 1_000), "c-1").await.0, 202);

    server.stop();
    let response = running
        .client
        .post(format!("{}/handover/genesysCloudOM", running.base_url))
        .header("authorization", KEY)
        .header("content-type", "application/json")
        .body(start("A", 2_000).envelope("c-2").to_string())
        .send()
        .await
        .expect("the service still answers");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "store_unavailable");
    eventually(WAIT, "not ready while Redis is down", || async {
        running.ready_status().await == 503
    })
    .await;
    let livez = running
        .client
        .get(format!("{}/livez", running.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(livez.status().as_u16(), 200, "the process must stay alive");

    server.restart();
    eventually(WAIT, "the service is ready again", || async {
        running.ready_status().await == 200
    })
    .await;
    // Sent again, as EventBridge does after a 503: the commit that timed out may have landed
    // once Redis woke up, and then the event is a duplicate (200); either way it is accepted.
    eventually(WAIT, "events are accepted again", || async {
        let (status, _) = running.post_spec(&start("A", 2_000), "c-2").await;
        status == 200 || status == 202
    })
    .await;
    assert_eq!(running.post_spec(&start("A", 3_000), "c-3").await.0, 202);
    running.shutdown().await;
}

/// The service on `server` with these timeouts (ms), ready, and connected: one event committed
/// (conversation `c-1`), so that a test that then stops Redis finds a connection already made.
async fn serving_on(
    server: &RedisServer,
    redis_timeout_ms: &str,
    request_timeout_ms: &str,
) -> Running {
    let running = Running::start(&[
        "--store",
        &server.url(),
        "--redis-timeout-ms",
        redis_timeout_ms,
        "--request-timeout-ms",
        request_timeout_ms,
    ])
    .await;
    eventually(WAIT, "the service is ready", || async {
        running.ready_status().await == 200
    })
    .await;
    assert_eq!(running.post_spec(&start("A", 1_000), "c-1").await.0, 202);
    running
}

/// A primary that hangs (connected, answering nothing) must not hold an event past the store's
/// budget: the store's own timeout gives up on the command and on the connections it tries next,
/// and the event gets the store's 503 (EventBridge sends it again), not the request timeout's.
#[tokio::test]
async fn a_hung_redis_gives_the_stores_503_within_its_budget_then_recovers() {
    let server = RedisServer::start();
    // Budget: 3/4 of the request timeout, 1.5 s; each try 300 ms.
    let running = serving_on(&server, "300", "2000").await;

    server.pause();
    let sent = std::time::Instant::now();
    let (status, body) = running.post_spec(&start("A", 2_000), "c-2").await;
    let waited = sent.elapsed();
    server.resume();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "store_unavailable", "{body}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(1_950),
        "answered after {waited:?}: the budget is 1.5 s"
    );

    // Sent again, as EventBridge does after a 503: the commit that timed out may have landed
    // once Redis woke up, and then the event is a duplicate (200); either way it is accepted.
    eventually(WAIT, "events are accepted again", || async {
        let (status, _) = running.post_spec(&start("A", 2_000), "c-2").await;
        status == 200 || status == 202
    })
    .await;
    assert_eq!(running.post_spec(&start("A", 3_000), "c-3").await.0, 202);
    running.shutdown().await;
}

/// An update for a request gives up by the request's deadline, not by the store's longer budget:
/// the events path has no timer of its own around the store. That holds on a hung Redis for the
/// command itself, and for the wait behind an earlier update of the same conversation, which
/// holds it for its whole budget (3 s by default).
#[tokio::test]
async fn an_update_gives_up_by_its_callers_deadline_on_a_hung_redis() {
    let server = RedisServer::start();
    let store = Arc::new(store(&server));
    let write = |store: Arc<RedisStore>, conversation: &'static str, within: Option<Duration>| {
        tokio::spawn(async move {
            let deadline = within.map(|within| tokio::time::Instant::now() + within);
            let started = std::time::Instant::now();
            let result = store
                .update(
                    &ConversationKey::new(ORG, conversation),
                    1_000,
                    deadline,
                    &mut |_| {
                        Some(Transition {
                            state: ConversationState::new("g"),
                            ends: Vec::new(),
                        })
                    },
                )
                .await;
            (result, started.elapsed())
        })
    };
    // Connected first: the connection is made on first use.
    let (connected, _) = write(Arc::clone(&store), "warm-up", None).await.unwrap();
    connected.expect("Redis answers before it hangs");

    server.pause();
    let holder = write(Arc::clone(&store), "c-1", None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let behind = write(Arc::clone(&store), "c-1", Some(Duration::from_millis(300)));
    let alone = write(Arc::clone(&store), "c-2", Some(Duration::from_millis(300)));
    let (behind, behind_took) = behind.await.unwrap();
    let (alone, alone_took) = alone.await.unwrap();
    server.resume();
    for (name, result, took) in [
        ("behind", behind, behind_took),
        ("alone", alone, alone_took),
    ] {
        assert!(result.is_err(), "{name}: Redis was hung, yet {result:?}");
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_millis(1_200),
            "{name}: gave up after {took:?}; its deadline was 300 ms, the store's budget 3 s"
        );
    }
    // Whether the first update landed depends on when Redis woke; its task must not hang.
    let _landed_or_not = tokio::time::timeout(Duration::from_secs(10), holder)
        .await
        .expect("the first update ends within its budget")
        .unwrap();
}

/// The request's deadline reaches the store through a batch: with the store's budget (1.5 s,
/// the Redis timeout) longer than the request timeout (1 s), a hung Redis gets the batch a 503
/// by the request timeout, not by the store's budget. No timer wraps the handler any more.
#[tokio::test]
async fn a_batch_against_a_hung_redis_is_answered_by_the_request_timeout() {
    let server = RedisServer::start();
    let running = serving_on(&server, "1500", "1000").await;

    server.pause();
    let batch = serde_json::Value::Array(vec![
        start("A", 2_000).envelope("c-2"),
        start("A", 2_000).envelope("c-3"),
    ]);
    let sent = std::time::Instant::now();
    let (status, body) = running.post(&batch).await;
    let waited = sent.elapsed();
    server.resume();
    assert_eq!(status, 503, "{body}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(1_400),
        "answered after {waited:?}: the request timeout is 1 s, the store's budget 1.5 s"
    );
    running.shutdown().await;
}

/// Runs a realistic mix of conversations through the store to completion (grace windows closed,
/// ends delivered), then measures Redis' memory per conversation and checks that every key left
/// expires. The figure is printed for the README (`cargo test --test redis_store -- --nocapture`).
#[tokio::test]
async fn conversation_state_stays_small_and_every_key_expires() {
    const CONVERSATIONS: usize = 200;
    let server = RedisServer::start();
    let store = Arc::new(store(&server));
    let engine = Engine::new(10_000);
    let now = 1_700_000_000_000;
    for n in 0..CONVERSATIONS {
        let id = format!("8a1b2c3d-4e5f-4a6b-9c7d-{n:012}");
        for spec in conversation(n) {
            apply(store.clone(), engine, &spec, &id, now).await;
        }
    }
    let later = now + 10_001;
    for key in store.due_timers(later, 1_000).await.into_result().unwrap() {
        store
            .update(&key, later, None, &mut |current| {
                let mut state = current?;
                let ends = engine.tick(&mut state, &key, later);
                Some(Transition { state, ends })
            })
            .await
            .unwrap();
    }
    let deliveries = store
        .claim_deliveries(later, 1_000, 1_000)
        .await
        .into_result()
        .unwrap();
    assert_eq!(
        deliveries.len(),
        CONVERSATIONS,
        "every conversation ended once"
    );
    for delivery in &deliveries {
        store
            .settle(delivery, handover_receiver::store::Settlement::Done)
            .await
            .unwrap();
    }

    let mut connection = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
    assert_eq!(
        keys.len(),
        CONVERSATIONS,
        "only the conversations' state is left: {keys:?}"
    );
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut connection).unwrap();
        assert!(ttl > 0, "{key} does not expire");
    }
    let per_conversation = server.bytes_per_conversation() as usize;
    println!("Redis MEMORY USAGE per ended conversation: {per_conversation} bytes");
    assert!(
        per_conversation < 2_048,
        "{per_conversation} bytes per conversation"
    );
}

/// The grace-window loop and the outbox loop share the buckets' breaker, and each logs a failure
/// only when its text changes. A bucket resting after one loop's failure must therefore give the
/// other loop that same failure, not a text of its own: otherwise both loops log on every round.
#[tokio::test]
async fn a_resting_bucket_gives_every_loop_the_failure_that_made_it_rest() {
    let server = RedisServer::start();
    // A replica of nothing: it answers, and refuses every write.
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(1)
        .query(&mut server.connection())
        .unwrap();
    let store = store(&server);
    let now_ms = 1_000;
    let timers = store.due_timers(now_ms, 10).await;
    let failure = timers
        .failure
        .expect("a read-only replica refuses the claim");
    assert!(!timers.answered);
    assert!(
        failure.to_string().contains("ReadOnly"),
        "the claim fails for what Redis says: {failure}"
    );
    let deliveries = store.claim_deliveries(now_ms, 10, 1_000).await;
    assert_eq!(
        deliveries.failure.map(|f| f.to_string()),
        Some(failure.to_string()),
        "the outbox loop, skipping the resting buckets, reports the same failure"
    );
}
