//! Crash safety with the Redis store: the real binary killed with SIGKILL and started again.

use crate::common::app::KEY;
use crate::common::events::{ORG, customer_end, end};
use crate::common::process::Process;
use crate::common::redis_server::RedisServer;
use crate::common::running::eventually;
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CONVERSATION: &str = "c7a9e1d2-3b4c-4d5e-8f60-718293a4b5c6";
const WAIT: Duration = Duration::from_secs(20);

fn start(server: &RedisServer, cognigy: &MockServer, grace_ms: &str) -> Process {
    let url = format!("{}/ended", cognigy.uri());
    Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_STORE", &server.url()),
        ("FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST", "true"),
        ("HANDOVER_COGNIGY_URL", &url),
        ("HANDOVER_COGNIGY_TIMEOUT_MS", "1500"),
        ("HANDOVER_END_GRACE_MS", grace_ms),
    ])
}

async fn post(process: &Process, event: serde_json::Value) -> serde_json::Value {
    let (status, body) = process.post(event.to_string()).await;
    assert_eq!(status, 202);
    body
}

async fn received(cognigy: &MockServer) -> Vec<Request> {
    cognigy.received_requests().await.unwrap_or_default()
}

/// Work left in Redis: open grace windows and undelivered ends.
fn pending_work(server: &RedisServer) -> usize {
    let mut connection = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("hr:*")
        .query(&mut connection)
        .unwrap();
    let mut pending = 0;
    for key in keys
        .iter()
        .filter(|k| k.ends_with(":timers") || k.ends_with(":outbox"))
    {
        let size: usize = redis::cmd("ZCARD").arg(key).query(&mut connection).unwrap();
        pending += size;
    }
    pending
}

#[tokio::test]
async fn killed_inside_the_grace_window_the_end_is_still_delivered_once() {
    let server = RedisServer::start();
    let cognigy = crate::common::cognigy::answering(200).await;

    let first = start(&server, &cognigy, "1500");
    let answer = post(&first, end("A", 9_000, "CLIENT").envelope(CONVERSATION)).await;
    assert_eq!(answer["decision"], "end_candidate");
    first.kill_hard();
    assert!(
        received(&cognigy).await.is_empty(),
        "sent before the grace window closed"
    );
    assert_eq!(
        pending_work(&server),
        1,
        "the open grace window is kept in Redis"
    );

    let _second = start(&server, &cognigy, "1500");
    eventually(WAIT, "the end is delivered after the restart", || async {
        received(&cognigy).await.len() == 1 && pending_work(&server) == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let requests = received(&cognigy).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].headers["idempotency-key"],
        format!("{ORG}:{CONVERSATION}:1").as_str()
    );
}

#[tokio::test]
async fn killed_with_a_delivery_in_flight_the_end_is_delivered_again_with_the_same_key() {
    let server = RedisServer::start();
    let cognigy = MockServer::start().await;
    // Slow enough to kill the service while the call is in flight.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(1_000)))
        .mount(&cognigy)
        .await;

    let first = start(&server, &cognigy, "100");
    let answer = post(&first, customer_end(5_000).envelope(CONVERSATION)).await;
    assert_eq!(answer["decision"], "ended");
    eventually(WAIT, "the call to Cognigy has started", || async {
        !received(&cognigy).await.is_empty()
    })
    .await;
    first.kill_hard();
    assert_eq!(
        pending_work(&server),
        1,
        "the unconfirmed delivery is kept in Redis"
    );

    // The new process takes the delivery over once the dead one's lease has run out.
    let _second = start(&server, &cognigy, "100");
    eventually(
        WAIT,
        "the delivery is completed by the new process",
        || async { received(&cognigy).await.len() == 2 && pending_work(&server) == 0 },
    )
    .await;
    let requests = received(&cognigy).await;
    let key = format!("{ORG}:{CONVERSATION}:1");
    assert!(
        requests
            .iter()
            .all(|r| r.headers["idempotency-key"] == key.as_str())
    );
    assert_eq!(
        requests[0].body, requests[1].body,
        "a retry must send the same end"
    );
}
