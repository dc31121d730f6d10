//! The in-memory store: atomic updates, serialisation per conversation, timers, TTL (rule 8).

use crate::common::events::{end, start};
use crate::common::harness::CONVERSATION;
use crate::common::store::apply;
use handover_receiver::engine::{ConversationState, Engine};
use handover_receiver::genesys::ConversationKey;
use handover_receiver::store::{MemoryStore, Store};
use std::sync::Arc;

const TTL_MS: u64 = 60_000;

fn key(conversation: &str) -> ConversationKey {
    ConversationKey::new(crate::common::events::ORG, conversation)
}

#[tokio::test]
async fn rule8_state_is_forgotten_after_the_ttl_without_events() {
    let store = Arc::new(MemoryStore::new(TTL_MS, 100));
    let engine = Engine::new(10_000);
    apply(store.clone(), engine, &start("A", 1), CONVERSATION, 0).await;
    apply(
        store.clone(),
        engine,
        &start("B", 2),
        CONVERSATION,
        TTL_MS - 1,
    )
    .await;
    assert_eq!(
        store.evict_expired(TTL_MS + 10).await.unwrap(),
        0,
        "an event renewed the lifetime"
    );
    assert_eq!(store.evict_expired(2 * TTL_MS).await.unwrap(), 1);
    assert_eq!(store.load(&key(CONVERSATION)).await.unwrap(), None);
    assert_eq!(store.counts().await.unwrap().conversations, Some(0));
}

#[tokio::test]
async fn rule8_an_expired_conversation_starts_afresh_even_before_eviction() {
    let store = Arc::new(MemoryStore::new(TTL_MS, 100));
    let engine = Engine::new(10_000);
    apply(store.clone(), engine, &start("A", 1), CONVERSATION, 0).await;
    let mut seen: Option<Option<ConversationState>> = None;
    store
        .update(&key(CONVERSATION), TTL_MS + 1, None, &mut |current| {
            seen = Some(current);
            None
        })
        .await
        .unwrap();
    assert_eq!(seen, Some(None));
}

#[tokio::test]
async fn one_conversations_updates_are_serialised() {
    let store = Arc::new(MemoryStore::new(TTL_MS, 100));
    let engine = Engine::new(10_000);
    let mut tasks = Vec::new();
    for leg in 0..64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let spec = start(&format!("L{leg}"), 1_000 + leg);
            apply(store.clone(), engine, &spec, CONVERSATION, 5).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let state = store.load(&key(CONVERSATION)).await.unwrap().unwrap();
    assert_eq!(state.legs.len(), 64, "an update was lost");
}

#[tokio::test]
async fn many_conversations_at_once_each_end_once() {
    let store = Arc::new(MemoryStore::new(TTL_MS, 10_000));
    let engine = Engine::new(0);
    let mut tasks = Vec::new();
    for n in 0..500 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            apply(
                store.clone(),
                engine,
                &end("A", 1_000, "CLIENT"),
                &format!("c-{n}"),
                5,
            )
            .await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.conversations, counts.outbox), (Some(500), 500));
    let claimed = store
        .claim_deliveries(5, 1_000, 1_000)
        .await
        .into_result()
        .unwrap();
    assert_eq!(claimed.len(), 500);
    let mut ids: Vec<_> = claimed.iter().map(|d| d.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 500, "an end was queued twice");
}

#[tokio::test]
async fn grace_windows_are_due_when_their_time_comes() {
    let store = Arc::new(MemoryStore::new(TTL_MS, 100));
    let engine = Engine::new(10_000);
    apply(
        store.clone(),
        engine,
        &end("A", 1_000, "CLIENT"),
        CONVERSATION,
        100,
    )
    .await;
    assert_eq!(store.next_timer_at().await.unwrap(), Some(10_100));
    assert!(
        store
            .due_timers(10_099, 10)
            .await
            .into_result()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.due_timers(10_100, 10).await.into_result().unwrap(),
        vec![key(CONVERSATION)]
    );
    assert_eq!(
        store.counts().await.unwrap().open_windows,
        0,
        "a due timer is claimed once"
    );
}
