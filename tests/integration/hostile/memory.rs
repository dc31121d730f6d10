//! `docs/contract.md` §5: memory is bounded; nothing an event allocates outlives its refusal.

use crate::common::app::KEY;
use crate::common::events::*;
use crate::common::process::Process;
use serde_json::json;

/// Defect: 1,000 events with 200 KB ids added 210 MB for good.
#[tokio::test]
async fn long_ids_do_not_grow_the_process() {
    let process = Process::start(&[("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY)]);
    let post = |body: String| {
        let process = &process;
        async move { process.post(body).await.0 }
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

/// Defect: organisations were interned before the capacity check and never freed, so even events
/// refused with 503 leaked.
#[tokio::test]
async fn refused_conversations_intern_nothing_and_evicted_ones_free_their_organisation() {
    use handover_receiver::engine::ConversationState;
    use handover_receiver::genesys::ConversationKey;
    use handover_receiver::store::{MemoryStore, Store, StoreError, Transition};

    let store = MemoryStore::new(1_000, 1);
    let write = |organisation: String| {
        let store = &store;
        async move {
            store
                .update(
                    &ConversationKey::new(organisation, "c"),
                    10_000,
                    None,
                    &mut |_| {
                        Some(Transition {
                            state: ConversationState::new("g"),
                            ends: Vec::new(),
                        })
                    },
                )
                .await
        }
    };
    write("first".to_owned()).await.unwrap();
    for n in 0..1_000 {
        let refused = write(format!("{n:0>64}")).await;
        assert!(matches!(refused, Err(StoreError::Full(1))));
    }
    assert_eq!(
        store.organisations_held(),
        1,
        "refused events interned their organisation"
    );
    assert_eq!(store.evict_expired(20_000).await.unwrap(), 1);
    assert_eq!(
        store.organisations_held(),
        0,
        "an evicted conversation kept its organisation"
    );
}
