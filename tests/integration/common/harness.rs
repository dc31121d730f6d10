//! Drives the pure engine for one conversation with an explicit wall clock.

use super::events::Spec;
use handover_receiver::engine::{Applied, ConversationState, Decision, EndNotice, Engine};
use handover_receiver::genesys::ConversationKey;

pub const GRACE_MS: u64 = 10_000;
pub const CONVERSATION: &str = "8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d";

pub struct Harness {
    pub engine: Engine,
    pub state: Option<ConversationState>,
    pub now_ms: u64,
    pub ends: Vec<EndNotice>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new(GRACE_MS)
    }
}

impl Harness {
    pub fn new(grace_ms: u64) -> Self {
        Self {
            engine: Engine::new(grace_ms),
            state: None,
            now_ms: 1_700_000_000_000,
            ends: Vec::new(),
        }
    }

    pub fn key() -> ConversationKey {
        ConversationKey::new(super::events::ORG, CONVERSATION)
    }

    /// Applies an event now; ends it decides are collected.
    pub fn post(&mut self, spec: &Spec) -> Applied {
        let event = spec.event(CONVERSATION);
        self.apply(&event)
    }

    pub fn post_with_id(&mut self, spec: &Spec, envelope_id: &str) -> Applied {
        let event = spec.event_with_id(CONVERSATION, envelope_id);
        self.apply(&event)
    }

    fn apply(&mut self, event: &handover_receiver::genesys::ConversationEvent) -> Applied {
        let state = self
            .state
            .get_or_insert_with(|| Engine::initial_state(event));
        let applied = self.engine.apply(state, event, self.now_ms);
        self.ends.extend(applied.ends.iter().cloned());
        applied
    }

    pub fn decide(&mut self, spec: &Spec) -> Decision {
        self.post(spec).decision
    }

    /// Lets wall-clock time pass, firing grace windows as a timer would.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        if let Some(state) = self.state.as_mut() {
            let ends = self.engine.tick(state, &Self::key(), self.now_ms);
            self.ends.extend(ends);
        }
    }

    /// Lets every open grace window close.
    pub fn settle(&mut self) {
        self.advance(self.engine.grace_ms + 1);
    }

    pub fn take_ends(&mut self) -> Vec<EndNotice> {
        std::mem::take(&mut self.ends)
    }
}
