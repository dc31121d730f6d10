//! The conversation step: the one owner of "apply and announce" (`docs/architecture.md`).
//!
//! An event (from the HTTP handler) or a tick (from the timer worker) goes in; the engine runs on
//! the conversation's stored state inside the store's atomic update; the committed outcome comes
//! out. What follows a committed step happens here, once: the decision's log line and counts,
//! each decided end's report, and waking the delivery worker (an end is in the outbox) or the
//! timer worker (a grace window is open).

use crate::engine::{Applied, Decision, EndNotice, Engine};
use crate::genesys::{ConversationEvent, ConversationKey};
use crate::metrics::Metrics;
use crate::report;
use crate::store::{Store, StoreError, Transition, transact};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Who to wake after a step.
#[derive(Clone, Default)]
pub struct Wakers {
    /// The timer worker: a grace window may have opened.
    pub timers: Arc<Notify>,
    /// The delivery worker: the outbox has a new end.
    pub deliveries: Arc<Notify>,
}

pub struct Conversations {
    store: Arc<dyn Store>,
    engine: Engine,
    metrics: Arc<Metrics>,
    wakers: Wakers,
}

impl Conversations {
    pub fn new(
        store: Arc<dyn Store>,
        engine: Engine,
        metrics: Arc<Metrics>,
        wakers: Wakers,
    ) -> Self {
        Self {
            store,
            engine,
            metrics,
            wakers,
        }
    }

    pub fn wakers(&self) -> &Wakers {
        &self.wakers
    }

    /// Applies one event at `now_ms` and announces what the committed run decided, giving up
    /// by `deadline` (the request's).
    pub async fn apply(
        &self,
        event: &ConversationEvent,
        now_ms: u64,
        deadline: Instant,
    ) -> Result<Applied, StoreError> {
        let engine = self.engine;
        let (applied, grace_window_open) = transact(
            &*self.store,
            &event.key,
            now_ms,
            Some(deadline),
            |current| {
                let mut state = current.unwrap_or_else(|| Engine::initial_state(event));
                let applied = engine.apply(&mut state, event, now_ms);
                let window = state.wake_at_ms().is_some();
                let transition = applied.changed_state().then(|| Transition {
                    state,
                    ends: applied.ends.clone(),
                });
                (transition, (applied, window))
            },
        )
        .await?;
        self.announce_event(event, &applied);
        self.announce_ends(&applied.ends);
        // Waking the timer worker costs a thread wake-up: only when a grace window is open (the
        // worker also polls, so a window opened by another replica is never missed).
        if grace_window_open {
            self.wakers.timers.notify_one();
        }
        Ok(applied)
    }

    /// Closes the conversation's grace window if it is due at `now_ms`; returns the ends decided.
    pub async fn tick(
        &self,
        key: &ConversationKey,
        now_ms: u64,
    ) -> Result<Vec<EndNotice>, StoreError> {
        let engine = self.engine;
        let ends = transact(&*self.store, key, now_ms, None, |current| {
            // A timer can outlive its conversation's state (TTL): nothing to close then.
            let Some(mut state) = current else {
                return (None, Vec::new());
            };
            let ends = engine.tick(&mut state, key, now_ms);
            let transition = Transition {
                state,
                ends: ends.clone(),
            };
            (Some(transition), ends)
        })
        .await?;
        self.announce_ends(&ends);
        Ok(ends)
    }

    fn announce_ends(&self, ends: &[EndNotice]) {
        for end in ends {
            report::end_decided(&self.metrics, end);
        }
        if !ends.is_empty() {
            self.wakers.deliveries.notify_one();
        }
    }

    /// The decision's log line and counts.
    fn announce_event(&self, event: &ConversationEvent, applied: &Applied) {
        let topic = event.topic.as_str();
        let decision = applied.decision;
        self.metrics.decision(decision, applied.candidate_cancelled);
        match decision {
            Decision::Duplicate => self.metrics.event(topic, "duplicate", None),
            _ if decision.is_ignored() => {
                self.metrics
                    .event(topic, "ignored", Some(decision.as_str()))
            }
            _ => self.metrics.event(topic, "accepted", None),
        }
        if decision == Decision::ConversationTooLarge {
            self.metrics.conversation_too_large();
        }
        let correlation_id = event.correlation_id.as_deref().unwrap_or_default();
        match decision {
            Decision::OtherGenesysOrganisation => tracing::warn!(
                organisationId = %event.key.organisation_id,
                conversationId = %event.key.conversation_id,
                topic,
                correlationId = correlation_id,
                genesysOrganizationId = %event.genesys_organization_id,
                "event ignored: this conversation belongs to another Genesys organisation"
            ),
            Decision::ConversationTooLarge if applied.first_too_large => tracing::warn!(
                organisationId = %event.key.organisation_id,
                conversationId = %event.key.conversation_id,
                topic,
                correlationId = correlation_id,
                "conversation reached HANDOVER_MAX_LEGS; events that would open more legs are ignored"
            ),
            // The ids as `&str` (not `%`): a string field is written as it is, without a pass
            // through `Display` and the formatter, on the line every event writes.
            _ => tracing::info!(
                organisationId = event.key.organisation_id.as_str(),
                conversationId = event.key.conversation_id.as_str(),
                topic,
                correlationId = correlation_id,
                eventTime = event.event_time,
                decision = decision.as_str(),
                candidateCancelled = applied.candidate_cancelled,
                "event processed"
            ),
        }
    }
}
