//! Applying events through a store directly, as the HTTP handler does.

use super::events::Spec;
use handover_receiver::engine::Engine;
use handover_receiver::store::{Store, Transition};

pub async fn apply(store: &dyn Store, engine: Engine, spec: &Spec, conversation: &str, now: u64) {
    let event = spec.event(conversation);
    store
        .update(&event.key, now, &mut |current| {
            let mut state = current.unwrap_or_else(|| Engine::initial_state(&event));
            let applied = engine.apply(&mut state, &event, now);
            Some(Transition {
                state,
                ends: applied.ends,
            })
        })
        .await
        .expect("the store accepts the update");
}
