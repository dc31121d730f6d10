//! `docs/contract.md` §5: the Open Messaging pass-through obeys the events' limits and never answers 401/407.

use crate::common::app::{EVENTS, send, service};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn webhook(body: Vec<u8>) -> Request<Body> {
    Request::post(EVENTS)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", "sha256=unchecked")
        .body(Body::from(body))
        .unwrap()
}

async fn upstream(answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

/// Defect: the pass-through relayed an upstream 401 as 401, which de-authorizes EventBridge's
/// connection to this path.
#[tokio::test]
async fn an_upstream_401_or_407_is_502() {
    for status in [401, 407] {
        let server = upstream(ResponseTemplate::new(status)).await;
        let url = format!("{}/om", server.uri());
        let svc = service(&["--passthrough-url", &url]);
        let answer = send(&svc, webhook(b"{}".to_vec())).await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{status}");
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }
}

/// At most 1 MiB of the upstream's answer is read.
#[tokio::test]
async fn an_upstream_answer_over_1_mib_is_502() {
    let server =
        upstream(ResponseTemplate::new(200).set_body_bytes(vec![b'a'; 1024 * 1024 + 1])).await;
    let svc = service(&["--passthrough-url", &format!("{}/om", server.uri())]);
    let answer = send(&svc, webhook(b"{}".to_vec())).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    let fits = upstream(ResponseTemplate::new(200).set_body_string("{\"ok\":true}")).await;
    let svc = service(&["--passthrough-url", &format!("{}/om", fits.uri())]);
    assert_eq!(
        send(&svc, webhook(b"{}".to_vec())).await.status,
        StatusCode::OK
    );
}

/// Defect: the pass-through buffered stalled bodies and waited on its upstream without the
/// request timeout, and without the in-flight limit.
#[tokio::test]
async fn the_pass_through_obeys_the_request_timeout_body_limit_and_in_flight_limit() {
    let hung = upstream(ResponseTemplate::new(200).set_delay(Duration::from_secs(30))).await;
    let url = format!("{}/om", hung.uri());
    let svc = service(&[
        "--passthrough-url",
        &url,
        "--request-timeout-ms",
        "500",
        "--max-in-flight",
        "1",
        "--max-body-bytes",
        "1024",
    ]);
    let answer = tokio::time::timeout(Duration::from_secs(5), send(&svc, webhook(b"{}".to_vec())))
        .await
        .expect("answered within the request timeout");
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers.contains_key("retry-after"));

    let answer = send(&svc, webhook(vec![b' '; 2048])).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    let relayed_before = hung.received_requests().await.unwrap().len();
    let router = svc.router();
    let first = tokio::spawn(async move {
        use tower::ServiceExt;
        router
            .oneshot(webhook(b"{}".to_vec()))
            .await
            .unwrap()
            .status()
    });
    crate::common::running::eventually(
        Duration::from_secs(5),
        "the first webhook is upstream",
        || async { hung.received_requests().await.unwrap().len() > relayed_before },
    )
    .await;
    let second = send(&svc, webhook(b"{}".to_vec())).await;
    assert_eq!(
        second.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the in-flight limit"
    );
    assert_eq!(
        first.await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the first timed out"
    );
}
