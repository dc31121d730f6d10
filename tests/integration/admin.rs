//! The operator routes: off without a token, closed to the EventBridge key, and useful.

use crate::common::app::{KEY, post_event, sample, send, service};
use crate::common::backend::Backend;
use crate::common::events::{ORG, customer_end};
use crate::common::running::eventually;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

const TOKEN: &str = "admin-token-for-tests";
const CONVERSATION: &str = "8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d";

fn get(path: &str, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(path);
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    builder.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn admin_routes_do_not_exist_without_a_token() {
    let svc = service(&[]);
    let answer = send(
        &svc,
        get("/admin/dead-letters", Some(&format!("Bearer {TOKEN}"))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admin_routes_refuse_anything_but_the_bearer_token() {
    let svc = service(&["--admin-token", TOKEN]);
    let bearer_key = format!("Bearer {KEY}");
    for presented in [
        None,
        Some(KEY),
        Some(bearer_key.as_str()),
        Some(TOKEN),
        Some("Bearer nope"),
    ] {
        let answer = send(&svc, get("/admin/dead-letters", presented)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{presented:?} was let in"
        );
    }
    let answer = send(
        &svc,
        get("/admin/dead-letters", Some(&format!("Bearer {TOKEN}"))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["count"], 0);
}

#[tokio::test]
async fn conversation_inspection_shows_legs_candidate_and_episodes() {
    let svc = service(&["--admin-token", TOKEN]);
    for name in [
        "user-end-transfer.json",
        "acw-after-transfer.json",
        "user-end-client.json",
    ] {
        send(&svc, post_event(sample(name), Some(KEY))).await;
    }
    let path = format!("/admin/conversations/{ORG}/{CONVERSATION}");
    let view = send(&svc, get(&path, Some(&format!("Bearer {TOKEN}")))).await;
    assert_eq!(view.status, StatusCode::OK);
    assert_eq!(view.body["openEpisode"], 1);
    assert_eq!(
        view.body["pendingCandidate"]["leg"],
        "f2e1d0c9-b8a7-4965-8473-62514a3b2c1d"
    );
    assert_eq!(view.body["state"]["legs"].as_array().unwrap().len(), 2);
    assert_eq!(view.body["deliveries"], Value::Array(vec![]));

    send(&svc, post_event(sample("customer-end.json"), Some(KEY))).await;
    let view = send(&svc, get(&path, Some(&format!("Bearer {TOKEN}")))).await;
    assert_eq!(view.body["openEpisode"], 2);
    assert_eq!(view.body["pendingCandidate"], Value::Null);
    assert_eq!(view.body["deliveries"][0]["status"], "pending");
    assert_eq!(
        view.body["deliveries"][0]["idempotencyKey"],
        format!("{ORG}:{CONVERSATION}:1")
    );

    let unknown = send(
        &svc,
        get(
            &format!("/admin/conversations/{ORG}/nope"),
            Some(&format!("Bearer {TOKEN}")),
        ),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

crate::on_both_stores!(dead_letters_are_listed_and_replayed);

async fn dead_letters_are_listed_and_replayed(backend: Backend) {
    let cognigy = crate::common::cognigy::answering(500).await;
    let url = format!("{}/ended", cognigy.uri());
    let args: Vec<String> = [
        "--forward",
        "true",
        "--cognigy-url",
        &url,
        "--retry-base-ms",
        "50",
        "--delivery-give-up-secs",
        "1",
        "--admin-token",
        TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let running = backend.start(&args).await;
    running.post_spec(&customer_end(5_000), CONVERSATION).await;

    let admin = |path: &str| {
        running
            .client
            .get(format!("{}{path}", running.base_url))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
    };
    eventually(
        Duration::from_secs(15),
        "the end is a dead letter",
        || async {
            let body: Value = admin("/admin/dead-letters")
                .await
                .unwrap()
                .json_body()
                .await;
            body["count"] == 1
        },
    )
    .await;
    let listed: Value = admin("/admin/dead-letters")
        .await
        .unwrap()
        .json_body()
        .await;
    assert_eq!(
        listed["deadLetters"][0]["id"],
        format!("{ORG}:{CONVERSATION}:1")
    );
    assert_eq!(
        listed["deadLetters"][0]["lastError"],
        "Cognigy answered 500"
    );

    // Cognigy is back: replay.
    cognigy.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&cognigy)
        .await;
    let replayed: Value = running
        .client
        .post(format!("{}/admin/dead-letters/replay", running.base_url))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap()
        .json_body()
        .await;
    assert_eq!(replayed["replayed"], 1);
    eventually(
        Duration::from_secs(15),
        "the replayed end is delivered",
        || async {
            let view: Value = admin(&format!("/admin/conversations/{ORG}/{CONVERSATION}"))
                .await
                .unwrap()
                .json_body()
                .await;
            view["deliveries"][0]["status"] == "done"
        },
    )
    .await;
    let requests = cognigy.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "one successful call after the replay");
    let listed: Value = admin("/admin/dead-letters")
        .await
        .unwrap()
        .json_body()
        .await;
    assert_eq!(listed["count"], 0);
    running.shutdown().await;
}

/// Reads a reqwest response body as JSON (reqwest's own `json` feature is not enabled).
trait JsonBody {
    async fn json_body(self) -> Value;
}

impl JsonBody for reqwest::Response {
    async fn json_body(self) -> Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}
