//! The HTTP contract of `docs/contract.md` §2, through the real router.

use crate::common::app::{EVENTS, KEY, PREVIOUS_KEY, post_event, sample, send, service};
use crate::common::events::{customer_end, end, start};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

const CONVERSATION: &str = "0b7e9a52-1c1d-4c3e-9d70-6a1f0c2e3b4d";

// Authentication ------------------------------------------------------------------------------

#[tokio::test]
async fn missing_key_is_401_with_a_bare_body() {
    let svc = service(&[]);
    let answer = send(&svc, post_event(sample("user-end-client.json"), None)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body, json!({ "error": "unauthorized" }));
}

#[tokio::test]
async fn wrong_or_decorated_keys_are_401() {
    let svc = service(&[]);
    for presented in [
        "wrong",
        "Bearer dGVzdGtleTIzY2hhcmFjdGVyc2xvbmc=",
        &KEY[1..],
        &format!("{KEY} "),
    ] {
        let answer = send(
            &svc,
            post_event(sample("user-end-client.json"), Some(presented)),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{presented:?} was accepted"
        );
    }
}

#[tokio::test]
async fn key_is_checked_before_the_body() {
    // An unauthenticated caller learns nothing about what the service would do with the body.
    let svc = service(&[]);
    let answer = send(&svc, post_event("not json", Some("wrong"))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn previous_key_is_accepted_while_set() {
    let rotating = service(&["--api-key-previous", PREVIOUS_KEY]);
    let answer = send(
        &rotating,
        post_event(sample("user-end-client.json"), Some(PREVIOUS_KEY)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    let answer = send(
        &rotating,
        post_event(sample("customer-end.json"), Some(KEY)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);

    let rotated = service(&[]);
    let answer = send(
        &rotated,
        post_event(sample("user-end-client.json"), Some(PREVIOUS_KEY)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_and_unknown_routes_need_no_key_and_never_answer_401() {
    let svc = service(&[]);
    let livez = send(&svc, Request::get("/livez").body(Body::empty()).unwrap()).await;
    assert_eq!(livez.status, StatusCode::OK);
    let readyz = send(&svc, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(readyz.status, StatusCode::OK);
    let unknown = send(&svc, Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["error"], "not_found");
}

// Statuses of `docs/contract.md` §2.2 ------------------------------------------------------------------------

#[tokio::test]
async fn accepted_event_is_202() {
    let svc = service(&[]);
    let answer = send(&svc, post_event(sample("user-end-client.json"), Some(KEY))).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.body["status"], "accepted");
    assert_eq!(answer.body["decision"], "end_candidate");
    assert_eq!(
        answer.body["conversationId"],
        "8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d"
    );
}

#[tokio::test]
async fn duplicate_is_200_by_id_and_by_content() {
    let svc = service(&[]);
    let first = start("A", 1_000).envelope(CONVERSATION);
    assert_eq!(
        send(&svc, post_event(first.to_string(), Some(KEY)))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let again = send(&svc, post_event(first.to_string(), Some(KEY))).await;
    assert_eq!(
        (again.status, again.body.clone()),
        (StatusCode::OK, json!({ "status": "duplicate" }))
    );
    let republished = start("A", 1_000).envelope_with_id(CONVERSATION, "a-new-envelope-id");
    let answer = send(&svc, post_event(republished.to_string(), Some(KEY))).await;
    assert_eq!(
        (answer.status, answer.body),
        (StatusCode::OK, json!({ "status": "duplicate" }))
    );
}

#[tokio::test]
async fn nothing_to_do_is_200_ignored_with_a_reason() {
    let svc = service(&["--allowed-organisations", "handover-prod"]);
    let mut other_tenant = start("A", 1).envelope(CONVERSATION);
    other_tenant["source"] = json!("aws.partner/genesys.com/cloud/3f2c/someone-else");
    let mut other_source = start("A", 1).envelope(CONVERSATION);
    other_source["source"] = json!("aws.events");
    let mut whatsapp = start("A", 1).envelope(CONVERSATION);
    whatsapp["detail"]["eventBody"]["messageType"] = json!("WHATSAPP");
    let mut other_detail_topic = start("A", 1).envelope(CONVERSATION);
    other_detail_topic["detail"]["topicName"] = json!(format!(
        "v2.detail.events.conversation.{CONVERSATION}.acd.start"
    ));
    let cases = [
        (sample("other-topic-audit.json"), "other_topic"),
        (other_detail_topic.to_string().into_bytes(), "other_topic"),
        (sample("voice-user-end.json"), "other_media"),
        (other_tenant.to_string().into_bytes(), "other_organisation"),
        (other_source.to_string().into_bytes(), "other_source"),
        (whatsapp.to_string().into_bytes(), "other_message_type"),
    ];
    for (body, reason) in cases {
        let answer = send(&svc, post_event(body, Some(KEY))).await;
        assert_eq!(answer.status, StatusCode::OK, "{reason}");
        assert_eq!(
            answer.body,
            json!({ "status": "ignored", "reason": reason })
        );
    }
}

#[tokio::test]
async fn late_event_after_an_end_is_200_ignored() {
    let svc = service(&[]);
    let ended = send(
        &svc,
        post_event(
            customer_end(50_000).envelope(CONVERSATION).to_string(),
            Some(KEY),
        ),
    )
    .await;
    assert_eq!(ended.body["decision"], "ended");
    let late = send(
        &svc,
        post_event(
            end("A", 40_000, "TRANSFER")
                .envelope(CONVERSATION)
                .to_string(),
            Some(KEY),
        ),
    )
    .await;
    assert_eq!(late.status, StatusCode::OK);
    assert_eq!(late.body, json!({ "status": "ignored", "reason": "late" }));
}

#[tokio::test]
async fn configured_message_types_are_handled() {
    let svc = service(&["--message-types", "OPEN,WHATSAPP"]);
    let mut whatsapp = start("A", 1).envelope(CONVERSATION);
    whatsapp["detail"]["eventBody"]["messageType"] = json!("WHATSAPP");
    let answer = send(&svc, post_event(whatsapp.to_string(), Some(KEY))).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_what_is_wrong() {
    let svc = service(&[]);
    let mut no_conversation = start("A", 1).envelope(CONVERSATION);
    no_conversation["detail"]["eventBody"]
        .as_object_mut()
        .unwrap()
        .remove("conversationId");
    no_conversation["detail"]
        .as_object_mut()
        .unwrap()
        .remove("topicName");
    let cases = [
        ("{\"id\": ".to_owned(), "invalid_json", "not JSON"),
        (
            "\"a string\"".to_owned(),
            "not_an_eventbridge_event",
            "EventBridge",
        ),
        (
            json!({"id": "x", "source": "s", "detail": {}}).to_string(),
            "not_an_eventbridge_event",
            "detail-type",
        ),
        (
            no_conversation.to_string(),
            "missing_conversation_id",
            "conversationId",
        ),
    ];
    for (body, code, named) in cases {
        let answer = send(&svc, post_event(body.clone(), Some(KEY))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.body["error"], code, "{body}");
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(named), "{detail:?} does not name {named:?}");
    }
}

#[tokio::test]
async fn conversation_id_falls_back_to_the_topic_name() {
    let svc = service(&[]);
    let mut event = start("A", 1).envelope(CONVERSATION);
    event["detail"]["eventBody"]
        .as_object_mut()
        .unwrap()
        .remove("conversationId");
    let answer = send(&svc, post_event(event.to_string(), Some(KEY))).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.body["conversationId"], CONVERSATION);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let svc = service(&["--max-body-bytes", "1024"]);
    let mut event = start("A", 1).envelope(CONVERSATION);
    event["detail"]["padding"] = json!("x".repeat(2_000));
    let answer = send(&svc, post_event(event.to_string(), Some(KEY))).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.body["error"], "payload_too_large");
    // The default limit (512 KiB) takes EventBridge's largest events (256 KB).
    let svc = service(&[]);
    let mut event = start("A", 1).envelope(CONVERSATION);
    event["detail"]["padding"] = json!("x".repeat(256 * 1024));
    assert_eq!(
        send(&svc, post_event(event.to_string(), Some(KEY)))
            .await
            .status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn non_json_content_type_is_415_and_absent_or_json_variants_pass() {
    let svc = service(&[]);
    let request = |content_type: Option<&str>| {
        let mut builder = Request::post(EVENTS).header("authorization", KEY);
        if let Some(value) = content_type {
            builder = builder.header("content-type", value);
        }
        builder
            .body(Body::from(sample("other-topic-audit.json")))
            .unwrap()
    };
    for refused in [
        "text/plain",
        "json",
        "application/jsonx",
        "application/json+xml",
    ] {
        let answer = send(&svc, request(Some(refused))).await;
        assert_eq!(
            answer.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{refused}"
        );
        assert_eq!(answer.body["error"], "unsupported_media_type");
    }
    for passing in [
        None,
        Some("application/json"),
        Some("Application/JSON; charset=utf-8"),
        Some("application/cloudevents+json"),
        Some("application/problem+JSON"),
    ] {
        assert_eq!(
            send(&svc, request(passing)).await.status,
            StatusCode::OK,
            "{passing:?}"
        );
    }
}

#[tokio::test]
async fn full_store_is_503_with_retry_after_and_never_401() {
    let svc = service(&["--max-conversations", "1"]);
    let first = start("A", 1).envelope("conversation-1");
    assert_eq!(
        send(&svc, post_event(first.to_string(), Some(KEY)))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let second = start("A", 1).envelope("conversation-2");
    let answer = send(&svc, post_event(second.to_string(), Some(KEY))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["error"], "overloaded");
    assert!(answer.headers.contains_key("retry-after"));
    // The known conversation still gets its events.
    let known = end("A", 5, "CLIENT").envelope("conversation-1");
    assert_eq!(
        send(&svc, post_event(known.to_string(), Some(KEY)))
            .await
            .status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn too_many_events_in_flight_is_503() {
    let svc = service(&["--max-in-flight", "1"]);
    let permit = svc.state.in_flight.clone().try_acquire_owned().unwrap();
    let answer = send(&svc, post_event(sample("user-end-client.json"), Some(KEY))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers.contains_key("retry-after"));
    drop(permit);
    let answer = send(&svc, post_event(sample("user-end-client.json"), Some(KEY))).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn readyz_is_503_while_draining() {
    let svc = service(&[]);
    svc.state.traffic.cancel();
    let answer = send(&svc, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["status"], "draining");
    let livez = send(&svc, Request::get("/livez").body(Body::empty()).unwrap()).await;
    assert_eq!(livez.status, StatusCode::OK);
}

// The samples ---------------------------------------------------------------------------------

#[tokio::test]
async fn samples_in_conversation_order_give_the_documented_effects() {
    let svc = service(&[]);
    let expected = [
        ("user-end-transfer.json", StatusCode::ACCEPTED, "transfer"),
        (
            "acw-after-transfer.json",
            StatusCode::ACCEPTED,
            "acw_recorded",
        ),
        (
            "user-end-client.json",
            StatusCode::ACCEPTED,
            "end_candidate",
        ),
        ("customer-end.json", StatusCode::ACCEPTED, "ended"),
    ];
    for (name, status, decision) in expected {
        let answer = send(&svc, post_event(sample(name), Some(KEY))).await;
        assert_eq!(answer.status, status, "{name}");
        assert_eq!(answer.body["decision"], decision, "{name}");
    }
    let counts = svc.state.store.counts().await.unwrap();
    assert_eq!(
        (counts.conversations, counts.open_windows, counts.outbox),
        (Some(1), 0, 1)
    );
}
