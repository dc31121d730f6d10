//! Spec 8.3: memory is bounded; nothing an event allocates outlives its refusal.

use crate::common::app::{EVENTS, KEY};
use crate::common::events::*;
use crate::common::process::Process;
use serde_json::json;

/// Defect: 1,000 events with 200 KB ids added 210 MB for good.
#[tokio::test]
async fn long_ids_do_not_grow_the_process() {
    let process = Process::start(&[("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY)]);
    let client = reqwest::Client::new();
    let post = |body: String| {
        let request = client
            .post(format!("http://{}{EVENTS}", process.addr))
            .header("authorization", KEY)
            .header("content-type", "application/json")
            .body(body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Warm up: the allocator, the runtime and the first conversation.
    for n in 0..20 {
        post(start("A", 1_000).envelope(&format!("warm-{n}")).to_string()).await;
    }
    let before = process.rss_bytes();
    let long = "x".repeat(200 * 1024);
    for n in 0..1_000 {
        let mut event = start("A", 1_000 + n).envelope(&format!("{long}{n}"));
        event["id"] = json!(format!("id-{n}"));
        event["detail"]["metadata"]["CorrelationId"] = json!("c");
        if n % 2 == 1 {
            event = start("A", 1_000 + n).envelope(&format!("c-{n}"));
            event["detail"]["metadata"]["CorrelationId"] = json!(format!("{long}{n}"));
            event["id"] = json!(format!("{long}-id-{n}"));
        }
        assert_eq!(post(event.to_string()).await, 400);
    }
    let grown = process.rss_bytes().saturating_sub(before);
    // 1,000 × 200 KB would be 200 MB; allow the allocator its caches.
    assert!(
        grown < 40 * 1024 * 1024,
        "grew by {} MB",
        grown / 1024 / 1024
    );
}
