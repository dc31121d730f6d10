//! The decision rules of `docs/contract.md` §4, as a pure function over one conversation's state.
//!
//! No I/O, no clock, no async: `apply` takes an event and the wall-clock time, `tick` takes the
//! time alone (for grace windows), and both return what happened. Both stores run this code.

pub mod compact;
mod end;
pub mod fingerprint;
mod state;

pub use compact::CompactId;
pub use end::{AgentSummary, EndNotice, EndReason, idempotency_key};
pub use fingerprint::SeenSet;
pub use state::{
    Candidate, ConversationState, CustomerEnd, LastEnd, Leg, LegAcw, LegEnd, LegEndKind,
};

use crate::genesys::{ConversationEvent, ConversationKey, Topic};
use compact::{IdText, compact};
use serde::Serialize;

/// Rule 7: a `customer.end` this soon after a decided end belongs to it.
pub const CUSTOMER_END_BELONGS_MS: i64 = 60_000;
/// Rule 6: duplicates are recognised for at least EventBridge's retry window.
pub const DEDUP_MEMORY_MS: u64 = 24 * 60 * 60 * 1000;
/// `docs/contract.md` §5: `HANDOVER_MAX_LEGS` by default.
pub const DEFAULT_MAX_LEGS: usize = 200;
/// Fingerprints kept per leg: an id and a content print for each of a leg's start, end and
/// after-call work, with room for retries with new ids.
const FINGERPRINTS_PER_LEG: usize = 8;

/// What one event did to its conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Same envelope id, or same topic, leg and eventTime, as an event already processed.
    Duplicate,
    /// Not later than the last end, or from a leg of the ended episode.
    Late,
    /// After-call work arriving after the end, with no new episode begun.
    AcwAfterEnd,
    /// The same conversation id, sent by another Genesys organisation than its first event.
    OtherGenesysOrganisation,
    /// The event would open one more leg than `HANDOVER_MAX_LEGS` allows.
    ConversationTooLarge,
    /// A `customer.end` just after a decided end: part of that end.
    BelongsToPreviousEnd,
    LegStarted,
    AcwRecorded,
    Transfer,
    Takeover,
    Reject,
    /// A final `user.end` that another leg's activity holds back.
    EndHeld,
    /// A final `user.end` whose grace window runs.
    EndCandidate,
    /// The handover ended (possibly a candidate that this event confirmed or released).
    Ended,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Duplicate => "duplicate",
            Decision::Late => "late",
            Decision::AcwAfterEnd => "acw_after_end",
            Decision::OtherGenesysOrganisation => "other_genesys_organisation",
            Decision::ConversationTooLarge => "conversation_too_large",
            Decision::BelongsToPreviousEnd => "belongs_to_previous_end",
            Decision::LegStarted => "leg_started",
            Decision::AcwRecorded => "acw_recorded",
            Decision::Transfer => "transfer",
            Decision::Takeover => "takeover",
            Decision::Reject => "reject",
            Decision::EndHeld => "end_held",
            Decision::EndCandidate => "end_candidate",
            Decision::Ended => "ended",
        }
    }

    /// Answered 200 `ignored`: valid, but it changed nothing.
    pub fn is_ignored(self) -> bool {
        matches!(
            self,
            Decision::Late
                | Decision::AcwAfterEnd
                | Decision::BelongsToPreviousEnd
                | Decision::OtherGenesysOrganisation
                | Decision::ConversationTooLarge
        )
    }
}

/// The result of applying one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub decision: Decision,
    /// A pending end candidate was withdrawn without ending.
    pub candidate_cancelled: bool,
    /// This event made the conversation reach `HANDOVER_MAX_LEGS` for the first time (warn once).
    pub first_too_large: bool,
    pub ends: Vec<EndNotice>,
}

impl Applied {
    /// Whether the state must be written back: refusals leave it as it was (but for the mark
    /// that a conversation is too large, so that it is warned about once).
    pub fn changed_state(&self) -> bool {
        match self.decision {
            Decision::OtherGenesysOrganisation => false,
            Decision::ConversationTooLarge => self.first_too_large,
            _ => true,
        }
    }

    fn only(decision: Decision) -> Self {
        Self {
            decision,
            candidate_cancelled: false,
            first_too_large: false,
            ends: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engine {
    /// `HANDOVER_END_GRACE_MS`.
    pub grace_ms: u64,
    /// `HANDOVER_MAX_LEGS`: agent legs and customer sessions of one open episode.
    pub max_legs: usize,
}

impl Engine {
    pub fn new(grace_ms: u64) -> Self {
        Self {
            grace_ms,
            max_legs: DEFAULT_MAX_LEGS,
        }
    }

    pub fn with_max_legs(self, max_legs: usize) -> Self {
        Self {
            max_legs: max_legs.max(1),
            ..self
        }
    }

    /// A fresh state for the conversation an event opens.
    pub fn initial_state(event: &ConversationEvent) -> ConversationState {
        ConversationState::new(&event.genesys_organization_id)
    }

    /// Applies one event at wall-clock time `now_ms`.
    pub fn apply(
        &self,
        state: &mut ConversationState,
        event: &ConversationEvent,
        now_ms: u64,
    ) -> Applied {
        // `docs/contract.md` §5: a conversation belongs to the Genesys organisation of its first event.
        if !state
            .genesys_organization_id
            .is(&event.genesys_organization_id)
        {
            return Applied::only(Decision::OtherGenesysOrganisation);
        }
        state.seen.rotate(now_ms, DEDUP_MEMORY_MS);
        let leg_key = IdText::new(leg_key(event));
        let by_id = fingerprint::envelope_id(&event.envelope_id);
        let by_content = fingerprint::content(event.topic, leg_key.as_str(), event.event_time);
        let duplicate = state.seen.contains(by_id) || state.seen.contains(by_content);
        if !duplicate && self.opens_one_leg_too_many(state, event, &leg_key) {
            let first = !state.too_large;
            state.too_large = true;
            return Applied {
                first_too_large: first,
                ..Applied::only(Decision::ConversationTooLarge)
            };
        }
        // Remember the new id even of a duplicate, so that its own retries are duplicates too.
        let bound = self.max_legs.saturating_mul(FINGERPRINTS_PER_LEG);
        state.seen.remember(by_id, now_ms, bound);
        state.seen.remember(by_content, now_ms, bound);
        if duplicate {
            return Applied::only(Decision::Duplicate);
        }
        if state.bot_user_id.is_none() {
            state.bot_user_id = compact(&event.bot_user_id);
        }
        if let Some(decision) = lateness(state, event, leg_key.as_str()) {
            return Applied::only(decision);
        }

        let before = state.candidate.clone();
        let recorded = record(state, event, &leg_key);
        let ends = self.evaluate(state, &event.key, now_ms);
        let candidate_cancelled = ends.is_empty()
            && before.is_some_and(|old| {
                state
                    .candidate
                    .as_ref()
                    .is_none_or(|new| (&new.leg, new.end_at) != (&old.leg, old.end_at))
            });
        let decision = match recorded {
            _ if !ends.is_empty() => Decision::Ended,
            // A customer.end that ended nothing belongs to the previous end (rule 7).
            Recorded::CustomerEnd => Decision::BelongsToPreviousEnd,
            Recorded::LegStarted => Decision::LegStarted,
            Recorded::Acw => Decision::AcwRecorded,
            Recorded::LegEnd(LegEndKind::Transfer) => Decision::Transfer,
            Recorded::LegEnd(LegEndKind::Takeover) => Decision::Takeover,
            Recorded::LegEnd(LegEndKind::Reject) => Decision::Reject,
            Recorded::LegEnd(LegEndKind::Final) => {
                if state.candidate.as_ref().is_some_and(|c| leg_key.is(&c.leg)) {
                    Decision::EndCandidate
                } else {
                    Decision::EndHeld
                }
            }
        };
        Applied {
            decision,
            candidate_cancelled,
            first_too_large: false,
            ends,
        }
    }

    /// `docs/contract.md` §5: whether this event would add an agent leg beyond `max_legs` (or a customer
    /// session beyond as many), so that one conversation's size, and the cost of its events,
    /// stay bounded. Events of known legs always pass: a conversation at the bound still ends.
    fn opens_one_leg_too_many(
        &self,
        state: &ConversationState,
        event: &ConversationEvent,
        leg_key: &IdText,
    ) -> bool {
        if event.topic == Topic::CustomerEnd {
            return state.customer_ends.len() >= self.max_legs;
        }
        state.legs.len() >= self.max_legs && !state.legs.iter().any(|leg| leg_key.is(&leg.key))
    }

    /// Closes grace windows that are due at `now_ms`.
    pub fn tick(
        &self,
        state: &mut ConversationState,
        key: &ConversationKey,
        now_ms: u64,
    ) -> Vec<EndNotice> {
        self.evaluate(state, key, now_ms)
    }

    /// Re-reads the whole state: events arrive in any order, so a verdict can only come from
    /// everything known, never from the event that just arrived. Loops because an end can leave
    /// later events that decide the next episode.
    fn evaluate(
        &self,
        state: &mut ConversationState,
        key: &ConversationKey,
        now_ms: u64,
    ) -> Vec<EndNotice> {
        let mut ends = Vec::new();
        loop {
            // Rule 1 and 7: a customer.end ends at once, unless it belongs to the last end.
            if let Some(customer) = state
                .deciding_customer_end(CUSTOMER_END_BELONGS_MS)
                .cloned()
            {
                ends.push(end_by_customer(state, key, &customer, now_ms));
                state.close_episode(customer.at);
                continue;
            }
            // Rule 4: the end candidate, confirmed once its grace window has closed.
            let Some((leg, end_at)) = state.end_candidate() else {
                state.candidate = None;
                break;
            };
            let leg_key = leg.key.clone();
            let due_at_ms = match &state.candidate {
                Some(c) if c.leg == leg_key && c.end_at == end_at => c.due_at_ms,
                _ => now_ms.saturating_add(self.grace_ms),
            };
            state.candidate = Some(Candidate {
                leg: leg_key.clone(),
                end_at,
                due_at_ms,
            });
            if now_ms < due_at_ms {
                break;
            }
            ends.push(end_by_agent(state, key, &leg_key, end_at, now_ms));
            state.close_episode(end_at);
        }
        ends
    }
}

/// The leg an agent event belongs to: its session, else its participant.
fn leg_key(event: &ConversationEvent) -> &str {
    event
        .session_id
        .as_deref()
        .or(event.participant_id.as_deref())
        .unwrap_or_default()
}

/// Rule 7: what arrives for an episode that already ended.
fn lateness(state: &ConversationState, event: &ConversationEvent, leg: &str) -> Option<Decision> {
    let last = state.last_end.as_ref()?;
    if event.event_time <= last.at {
        return Some(Decision::Late);
    }
    if event.topic.is_agent_event() && state.leg_was_closed(leg) {
        // E.g. the agent's own user.end just after the customer's end decided: not a new episode.
        return Some(Decision::Late);
    }
    if event.topic == Topic::Acw && !state.has_agent_activity() {
        return Some(Decision::AcwAfterEnd);
    }
    None
}

/// What an event added to the open episode; the decision follows from it and the evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    LegStarted,
    Acw,
    LegEnd(LegEndKind),
    CustomerEnd,
}

/// Merges an event into the open episode. Merges keep the earliest start and the latest end and
/// wrap-up, so the state does not depend on arrival order.
fn record(state: &mut ConversationState, event: &ConversationEvent, leg_key: &IdText) -> Recorded {
    let at = event.event_time;
    if event.topic == Topic::CustomerEnd {
        let customer = CustomerEnd {
            at,
            leg: leg_key.to_id(),
            disconnect_type: event.disconnect_type.clone(),
            correlation_id: compact(&event.correlation_id),
        };
        let index = state
            .customer_ends
            .partition_point(|c| (c.at, &c.leg) < (at, &customer.leg));
        state.customer_ends.reserve_exact(1);
        state.customer_ends.insert(index, customer);
        return Recorded::CustomerEnd;
    }

    let leg = state.leg_mut(leg_key);
    fill(&mut leg.participant_id, &event.participant_id);
    fill(&mut leg.user_id, &event.user_id);
    fill(&mut leg.queue_id, &event.queue_id);
    match event.topic {
        Topic::UserStart => {
            leg.started_at = Some(leg.started_at.map_or(at, |start| start.min(at)));
            Recorded::LegStarted
        }
        Topic::Acw => {
            if leg.acw.as_ref().is_none_or(|acw| acw.at < at) {
                leg.acw = Some(LegAcw {
                    at,
                    wrapup_code: compact(&event.wrapup_code),
                });
            }
            Recorded::Acw
        }
        Topic::UserEnd => {
            let end = LegEnd {
                at,
                disconnect_type: event.disconnect_type.clone(),
                interacting_duration_ms: event.interacting_duration_ms,
                correlation_id: compact(&event.correlation_id),
            };
            let kind = end.kind();
            if leg.end.as_ref().is_none_or(|old| old.at < at) {
                leg.end = Some(end);
            }
            Recorded::LegEnd(kind)
        }
        Topic::CustomerEnd => unreachable!("handled above"),
    }
}

fn fill(slot: &mut Option<CompactId>, value: &Option<String>) {
    if slot.is_none() {
        *slot = compact(value);
    }
}

fn text(id: &Option<CompactId>) -> Option<String> {
    id.as_ref().map(CompactId::to_string)
}

fn summary(leg: &Leg) -> AgentSummary {
    AgentSummary {
        user_id: text(&leg.user_id),
        participant_id: text(&leg.participant_id),
        session_id: (!leg.key.is("")).then(|| leg.key.to_string()),
        queue_id: text(&leg.queue_id),
        wrapup_code: leg.acw.as_ref().and_then(|acw| text(&acw.wrapup_code)),
    }
}

fn end_by_agent(
    state: &ConversationState,
    key: &ConversationKey,
    leg_key: &CompactId,
    at: i64,
    now_ms: u64,
) -> EndNotice {
    let leg = state.leg(leg_key);
    let end = leg.and_then(|leg| leg.end.as_ref());
    EndNotice {
        key: key.clone(),
        genesys_organization_id: state.genesys_organization_id.to_string(),
        user_id: text(&state.bot_user_id),
        reason: EndReason::UserEnd,
        disconnect_type: end.and_then(|end| end.disconnect_type.clone()),
        ended_at: at,
        episode: state.episode,
        transfers: state.transfers_until(at),
        agent: leg.map(summary),
        correlation_id: end.and_then(|end| text(&end.correlation_id)),
        decided_at_ms: now_ms,
    }
}

fn end_by_customer(
    state: &ConversationState,
    key: &ConversationKey,
    customer: &CustomerEnd,
    now_ms: u64,
) -> EndNotice {
    EndNotice {
        key: key.clone(),
        genesys_organization_id: state.genesys_organization_id.to_string(),
        user_id: text(&state.bot_user_id),
        reason: EndReason::CustomerEnd,
        disconnect_type: customer.disconnect_type.clone(),
        ended_at: customer.at,
        episode: state.episode,
        transfers: state.transfers_until(customer.at),
        agent: state.last_agent_until(customer.at).map(summary),
        correlation_id: text(&customer.correlation_id),
        decided_at_ms: now_ms,
    }
}

#[cfg(test)]
mod tests;
