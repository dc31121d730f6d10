//! Open Messaging pass-through: signed webhooks on the events path, relayed byte for byte.

use crate::common::app::{EVENTS, KEY, sample, send, service};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "om-webhook-secret";
/// An Open Messaging outbound message, with bytes a re-serialisation would change.
const WEBHOOK: &str = "{\"id\":\"a1\",\"channel\":{\"platform\":\"Open\",\"type\":\"Private\"},\n  \"text\":\"Gr\u{fc}\u{df}e \\u00e9\",\"type\":\"Text\",\"direction\":\"Outbound\"}";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fn webhook(signature: &str) -> Request<Body> {
    Request::post(EVENTS)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-hub-signature-256", signature)
        .body(Body::from(WEBHOOK))
        .unwrap()
}

async fn upstream() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/om"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string("{\"relayed\":true}"),
        )
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn signed_webhooks_are_relayed_byte_for_byte_and_the_answer_returned() {
    let server = upstream().await;
    let url = format!("{}/om", server.uri());
    let svc = service(&["--passthrough-url", &url, "--om-webhook-secret", SECRET]);
    let signature = sign(WEBHOOK.as_bytes());
    let answer = send(&svc, webhook(&signature)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, serde_json::json!({ "relayed": true }));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].body,
        WEBHOOK.as_bytes(),
        "the body changed on the way"
    );
    assert_eq!(
        requests[0].headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(
        requests[0].headers["x-hub-signature-256"],
        signature.as_str()
    );
}

#[tokio::test]
async fn a_bad_signature_is_403_and_nothing_is_relayed() {
    let server = upstream().await;
    let url = format!("{}/om", server.uri());
    let svc = service(&["--passthrough-url", &url, "--om-webhook-secret", SECRET]);
    for bad in [
        sign(b"another body"),
        "sha256=".to_owned(),
        "not-a-signature".to_owned(),
    ] {
        let answer = send(&svc, webhook(&bad)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{bad}");
        assert_eq!(answer.body["error"], "bad_signature");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn without_a_secret_webhooks_are_relayed_unchecked() {
    let server = upstream().await;
    let url = format!("{}/om", server.uri());
    let svc = service(&["--passthrough-url", &url]);
    let answer = send(&svc, webhook("sha256=anything")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn without_a_passthrough_url_webhooks_get_401() {
    let svc = service(&["--om-webhook-secret", SECRET]);
    let answer = send(&svc, webhook(&sign(WEBHOOK.as_bytes()))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_event_with_the_api_key_is_never_relayed() {
    let server = upstream().await;
    let url = format!("{}/om", server.uri());
    let svc = service(&["--passthrough-url", &url]);
    let request = Request::post(EVENTS)
        .header("authorization", KEY)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", "sha256=whatever")
        .body(Body::from(sample("user-end-client.json")))
        .unwrap();
    let answer = send(&svc, request).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_upstream_is_502() {
    let svc = service(&["--passthrough-url", "http://127.0.0.1:9/om"]);
    let answer = send(&svc, webhook("sha256=x")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
}
