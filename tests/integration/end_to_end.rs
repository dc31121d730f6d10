//! The service on a real port, a wiremock Cognigy, and conversations posted as EventBridge
//! delivers them. Every scenario runs on both stores: in memory and on a real redis-server.

use crate::common::backend::Backend;
use crate::common::events::*;
use crate::common::running::{Running, eventually};
use crate::common::shuffle::deliveries;
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CONVERSATION: &str = "5d6e7f80-9a0b-4c1d-8e2f-3a4b5c6d7e8f";
const COGNIGY_AUTH: &str = "Basic Y29nbmlneTpzZWNyZXQ=";
const WAIT: Duration = Duration::from_secs(10);

async fn cognigy(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/handover/ended"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

/// Forwarding to `server` with a grace window of 300 ms and quick retries.
fn forwarding(server: &MockServer, extra: &[&'static str]) -> Vec<String> {
    forwarding_with_grace(server, "300", extra)
}

fn forwarding_with_grace(
    server: &MockServer,
    grace_ms: &str,
    extra: &[&'static str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "--forward",
        "true",
        "--cognigy-authorization",
        COGNIGY_AUTH,
        "--end-grace-ms",
        grace_ms,
        "--retry-base-ms",
        "50",
        "--retry-max-ms",
        "200",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("--cognigy-url".into());
    args.push(format!("{}/handover/ended", server.uri()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

crate::on_both_stores!(
    transfer_conversation_out_of_order_with_duplicates_gives_exactly_one_call,
    retries_503_then_delivers_once_with_the_same_idempotency_key,
    cognigy_404_is_not_retried,
    cognigy_401_is_retried_and_never_reaches_eventbridge,
    undeliverable_end_becomes_a_dead_letter_after_the_give_up_time,
    shadow_mode_sends_nothing,
    cognigy_webhook_format_and_organisation_in_the_url,
    a_reused_conversation_sends_one_call_per_episode,
    grace_window_closes_without_a_request,
);

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

async fn wait_for_requests(server: &MockServer, count: usize) -> Vec<Request> {
    eventually(
        WAIT,
        &format!("Cognigy received {count} requests"),
        || async { received(server).await.len() >= count },
    )
    .await;
    received(server).await
}

/// Waits until nothing is left to do: no grace window open, the outbox empty.
async fn wait_until_idle(running: &Running) {
    eventually(WAIT, "the service is idle", || async {
        let counts = running.state.store.counts().await.unwrap();
        counts.open_windows == 0 && counts.outbox == 0
    })
    .await;
}

fn transfer_conversation() -> Vec<Spec> {
    vec![
        start("A", 1_000),
        end("A", 60_000, "TRANSFER"),
        start("B", 62_000),
        acw("A", 63_500),
        end("B", 120_000, "CLIENT"),
        acw("B", 121_000),
    ]
}

async fn transfer_conversation_out_of_order_with_duplicates_gives_exactly_one_call(
    backend: Backend,
) {
    let server = cognigy(200).await;
    let running = backend.start(&forwarding(&server, &[])).await;
    for delivery in deliveries(&transfer_conversation(), CONVERSATION, 42) {
        let envelope = delivery
            .spec
            .envelope_with_id(CONVERSATION, &delivery.envelope_id);
        let (status, _) = running.post(&envelope).await;
        assert!(status == 202 || status == 200, "status {status}");
    }
    let requests = wait_for_requests(&server, 1).await;
    wait_until_idle(&running).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let requests_after = received(&server).await;
    assert_eq!(
        requests_after.len(),
        1,
        "more than one call: {requests_after:?}"
    );

    let request = &requests[0];
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["authorization"], COGNIGY_AUTH);
    assert_eq!(
        request.headers["idempotency-key"],
        format!("{ORG}:{CONVERSATION}:1").as_str()
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "type": "handover.ended",
            "organisationId": ORG,
            "genesysOrganizationId": GENESYS_ORG,
            "conversationId": CONVERSATION,
            "userId": BOT_USER,
            "reason": "user.end",
            "disconnectType": "CLIENT",
            "endedAt": handover_receiver::clock::rfc3339_millis(EPOCH_MS + 120_000),
            "episode": 1,
            "transfers": 1,
            "agent": {
                "userId": "agent-B",
                "participantId": "participant-B",
                "sessionId": session("B"),
                "queueId": "queue-1",
                "wrapupCode": WRAPUP,
            },
            "correlationId": format!("corr-{}", end("B", 120_000, "CLIENT").envelope_id(CONVERSATION)),
        })
    );
    running.shutdown().await;
}

async fn retries_503_then_delivers_once_with_the_same_idempotency_key(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "0"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let running = backend.start(&forwarding(&server, &[])).await;
    let (status, body) = running.post_spec(&customer_end(5_000), CONVERSATION).await;
    assert_eq!((status, body["decision"].as_str()), (202, Some("ended")));

    wait_for_requests(&server, 3).await;
    wait_until_idle(&running).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = received(&server).await;
    assert_eq!(requests.len(), 3, "expected 2 failures and 1 success");
    let keys: Vec<_> = requests
        .iter()
        .map(|r| r.headers["idempotency-key"].clone())
        .collect();
    assert!(
        keys.iter()
            .all(|k| k == format!("{ORG}:{CONVERSATION}:1").as_str()),
        "{keys:?}"
    );
    let bodies: Vec<_> = requests.iter().map(|r| r.body.clone()).collect();
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "retries changed the body"
    );
    assert_eq!(running.state.store.counts().await.unwrap().dead_letters, 0);
    running.shutdown().await;
}

async fn cognigy_404_is_not_retried(backend: Backend) {
    let server = cognigy(404).await;
    let running = backend.start(&forwarding(&server, &[])).await;
    running.post_spec(&customer_end(5_000), CONVERSATION).await;
    wait_for_requests(&server, 1).await;
    wait_until_idle(&running).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received(&server).await.len(), 1);
    assert_eq!(running.state.store.counts().await.unwrap().dead_letters, 0);
    running.shutdown().await;
}

async fn cognigy_401_is_retried_and_never_reaches_eventbridge(backend: Backend) {
    let server = cognigy(401).await;
    let running = backend.start(&forwarding(&server, &[])).await;
    let (status, _) = running.post_spec(&customer_end(5_000), CONVERSATION).await;
    assert_eq!(status, 202);
    wait_for_requests(&server, 3).await;
    // Later events of the conversation still answer normally.
    let (status, body) = running.post_spec(&customer_end(5_000), CONVERSATION).await;
    assert_eq!((status, body), (200, json!({ "status": "duplicate" })));
    assert_eq!(running.state.store.counts().await.unwrap().outbox, 1);
}

async fn undeliverable_end_becomes_a_dead_letter_after_the_give_up_time(backend: Backend) {
    let server = cognigy(500).await;
    let running = backend
        .start(&forwarding(&server, &["--delivery-give-up-secs", "1"]))
        .await;
    running.post_spec(&customer_end(5_000), CONVERSATION).await;
    eventually(WAIT, "the end is a dead letter", || async {
        running.state.store.counts().await.unwrap().dead_letters == 1
    })
    .await;
    let dead = running.state.store.dead_letters(10).await.unwrap();
    assert_eq!(dead[0].id, format!("{ORG}:{CONVERSATION}:1"));
    assert!(dead[0].attempts >= 2, "attempts {}", dead[0].attempts);
    assert_eq!(dead[0].last_error.as_deref(), Some("Cognigy answered 500"));
    let before = received(&server).await.len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        received(&server).await.len(),
        before,
        "a dead letter was retried"
    );
    running.shutdown().await;
}

async fn shadow_mode_sends_nothing(backend: Backend) {
    let server = cognigy(200).await;
    let url = format!("{}/handover/ended", server.uri());
    let running = backend
        .start(&strings(&["--cognigy-url", &url, "--end-grace-ms", "100"]))
        .await;
    for spec in transfer_conversation() {
        running.post_spec(&spec, CONVERSATION).await;
    }
    running
        .post_spec(&customer_end(5_000), "another-conversation")
        .await;
    eventually(WAIT, "both ends were decided", || async {
        let counts = running.state.store.counts().await.unwrap();
        counts.open_windows == 0 && counts.outbox == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        received(&server).await.is_empty(),
        "shadow mode sent a request"
    );
    running.shutdown().await;
}

async fn cognigy_webhook_format_and_organisation_in_the_url(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{ORG}/handover")))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let url = format!("{}/{{organisationId}}/handover", server.uri());
    let running = backend
        .start(&strings(&[
            "--forward",
            "true",
            "--cognigy-url",
            &url,
            "--forward-format",
            "cognigy-webhook",
            "--end-grace-ms",
            "100",
        ]))
        .await;
    running
        .post_spec(&end("A", 9_000, "CLIENT"), CONVERSATION)
        .await;
    let requests = wait_for_requests(&server, 1).await;
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "userId": BOT_USER,
            "topic": format!("v2.detail.events.conversation.{CONVERSATION}.user.end"),
            "disconnectType": "CLIENT",
        })
    );
    assert!(
        !requests[0].headers.contains_key("authorization"),
        "no Authorization was configured"
    );
    running.shutdown().await;
}

async fn a_reused_conversation_sends_one_call_per_episode(backend: Backend) {
    let server = cognigy(200).await;
    let running = backend.start(&forwarding(&server, &[])).await;
    running
        .post_spec(&end("A", 1_000, "CLIENT"), CONVERSATION)
        .await;
    wait_for_requests(&server, 1).await;
    running.post_spec(&customer_end(1_015), CONVERSATION).await;
    running
        .post_spec(&start("C", 3_600_000), CONVERSATION)
        .await;
    running
        .post_spec(&end("C", 3_700_000, "CLIENT"), CONVERSATION)
        .await;
    let requests = wait_for_requests(&server, 2).await;
    wait_until_idle(&running).await;
    let keys: Vec<_> = requests
        .iter()
        .map(|r| r.headers["idempotency-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            format!("{ORG}:{CONVERSATION}:1"),
            format!("{ORG}:{CONVERSATION}:2")
        ]
    );
    running.shutdown().await;
}

async fn grace_window_closes_without_a_request(backend: Backend) {
    let server = cognigy(200).await;
    let running = backend.start(&forwarding(&server, &[])).await;
    let (_, body) = running
        .post_spec(&end("A", 9_000, "CLIENT"), CONVERSATION)
        .await;
    assert_eq!(body["decision"], "end_candidate");
    let requests = wait_for_requests(&server, 1).await;
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        (body["reason"].as_str(), body["episode"].as_u64()),
        (Some("user.end"), Some(1))
    );
    running.shutdown().await;
}

/// With the in-memory store, shutdown waits for open grace windows (Redis keeps them instead).
#[tokio::test]
async fn memory_shutdown_waits_for_an_open_grace_window_and_delivers_its_end() {
    let backend = Backend::memory();
    let server = cognigy(200).await;
    let running = backend
        .start(&forwarding_with_grace(&server, "700", &[]))
        .await;
    let (_, body) = running
        .post_spec(&end("A", 9_000, "CLIENT"), CONVERSATION)
        .await;
    assert_eq!(body["decision"], "end_candidate");
    assert!(received(&server).await.is_empty());
    running.shutdown().await;
    assert_eq!(
        received(&server).await.len(),
        1,
        "the open window was lost on shutdown"
    );
}
