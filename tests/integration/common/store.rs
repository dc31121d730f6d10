//! Applying events through a store directly, through the same conversation step the HTTP handler
//! uses.

use super::events::Spec;
use handover_receiver::conversation::{Conversations, Wakers};
use handover_receiver::engine::Engine;
use handover_receiver::genesys::ConversationEvent;
use handover_receiver::metrics::Metrics;
use handover_receiver::store::Store;
use std::sync::Arc;

pub async fn apply(
    store: Arc<dyn Store>,
    engine: Engine,
    spec: &Spec,
    conversation: &str,
    now: u64,
) {
    apply_event(store, engine, &spec.event(conversation), now).await;
}

pub async fn apply_event(
    store: Arc<dyn Store>,
    engine: Engine,
    event: &ConversationEvent,
    now: u64,
) {
    let conversations =
        Conversations::new(store, engine, Arc::new(Metrics::new()), Wakers::default());
    conversations
        .apply(
            event,
            now,
            tokio::time::Instant::now() + std::time::Duration::from_secs(10),
        )
        .await
        .expect("the store accepts the update");
}
