//! `/metrics`: values change as events flow, on the main listener or on its own.

use crate::common::app::{KEY, post_event, sample, send, service};
use crate::common::events::customer_end;
use crate::common::running::{Running, eventually};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use handover_receiver::Service;
use http_body_util::BodyExt;
use std::time::Duration;
use tower::ServiceExt;

async fn scrape(service: &Service) -> String {
    let response = service
        .router()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The value of one series, by its exact name and labels; 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn counters_and_gauges_follow_the_events() {
    let svc = service(&[]);
    let before = scrape(&svc).await;
    assert_eq!(value(&before, "handover_outbox_depth"), 0.0);

    for name in [
        "user-end-transfer.json",
        "acw-after-transfer.json",
        "user-end-client.json",
    ] {
        assert_eq!(
            send(&svc, post_event(sample(name), Some(KEY))).await.status,
            StatusCode::ACCEPTED
        );
    }
    let during = scrape(&svc).await;
    assert_eq!(value(&during, "handover_open_grace_windows"), 1.0);
    assert_eq!(value(&during, "handover_conversations_tracked"), 1.0);

    send(&svc, post_event(sample("customer-end.json"), Some(KEY))).await;
    send(&svc, post_event(sample("customer-end.json"), Some(KEY))).await;
    send(&svc, post_event(sample("voice-user-end.json"), Some(KEY))).await;
    send(
        &svc,
        post_event(sample("other-topic-audit.json"), Some(KEY)),
    )
    .await;
    send(&svc, post_event(sample("customer-end.json"), Some("wrong"))).await;
    send(&svc, post_event("not json", Some(KEY))).await;

    let text = scrape(&svc).await;
    let events = |labels: &str| value(&text, &format!("handover_events_total{{{labels}}}"));
    assert_eq!(
        events(r#"topic="user.end",outcome="accepted",reason="""#),
        2.0
    );
    assert_eq!(events(r#"topic="acw",outcome="accepted",reason="""#), 1.0);
    assert_eq!(
        events(r#"topic="customer.end",outcome="accepted",reason="""#),
        1.0
    );
    assert_eq!(
        events(r#"topic="customer.end",outcome="duplicate",reason="""#),
        1.0
    );
    assert_eq!(
        events(r#"topic="user.end",outcome="ignored",reason="other_media""#),
        1.0
    );
    assert_eq!(
        events(r#"topic="other",outcome="ignored",reason="other_topic""#),
        1.0
    );
    assert_eq!(
        events(r#"topic="unknown",outcome="rejected",reason="401""#),
        1.0
    );
    assert_eq!(
        events(r#"topic="unknown",outcome="rejected",reason="400""#),
        1.0
    );

    let decisions = |d: &str| {
        value(
            &text,
            &format!("handover_decisions_total{{decision=\"{d}\"}}"),
        )
    };
    assert_eq!(decisions("transfer"), 1.0);
    assert_eq!(decisions("acw_recorded"), 1.0);
    assert_eq!(decisions("end_candidate"), 1.0);
    assert_eq!(decisions("ended"), 1.0);
    assert_eq!(
        value(
            &text,
            r#"handover_ends_total{reason="customer.end",organisation="handover-prod"}"#
        ),
        1.0
    );
    assert_eq!(value(&text, "handover_open_grace_windows"), 0.0);
    assert_eq!(
        value(&text, "handover_outbox_depth"),
        1.0,
        "not delivered: no worker runs here"
    );
    assert_eq!(
        value(
            &text,
            r#"handover_http_request_duration_seconds_count{route="/handover/genesysCloudOM",status="202"}"#
        ),
        4.0
    );
    assert!(
        !text.contains("8a1b2c3d"),
        "a conversation id became a label"
    );
}

#[tokio::test]
async fn forward_attempts_are_counted_and_timed() {
    let cognigy = crate::common::cognigy::answering(404).await;
    let url = format!("{}/ended", cognigy.uri());
    let running = Running::start(&["--forward", "true", "--cognigy-url", &url]).await;
    running.post_spec(&customer_end(5_000), "c-1").await;
    let metrics_url = format!("{}/metrics", running.base_url);
    let client = running.client.clone();
    let fetch = || async {
        client
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    eventually(
        Duration::from_secs(10),
        "the attempt is counted",
        || async {
            value(
                &fetch().await,
                r#"handover_forward_attempts_total{result="not_found"}"#,
            ) == 1.0
        },
    )
    .await;
    let text = fetch().await;
    assert_eq!(value(&text, "handover_forward_duration_seconds_count"), 1.0);
    assert_eq!(value(&text, "handover_outbox_depth"), 0.0);
    running.shutdown().await;
}

#[tokio::test]
async fn a_metrics_address_moves_metrics_to_their_own_listener() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let running = Running::start(&["--metrics-addr", &addr]).await;
    running.post_spec(&customer_end(5_000), "c-1").await;
    let main = running
        .client
        .get(format!("{}/metrics", running.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status().as_u16(), 404);
    let own = running
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status().as_u16(), 200);
    let text = own.text().await.unwrap();
    assert_eq!(
        value(
            &text,
            r#"handover_events_total{topic="customer.end",outcome="accepted",reason=""}"#
        ),
        1.0
    );
    running.shutdown().await;
}
