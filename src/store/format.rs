//! The stored forms of the Redis store: its own types, versioned, separate from the engine's, so
//! that a refactor of the engine can never make live state unreadable or move it to other keys
//! after an upgrade (`docs/architecture.md`, "Storage formats").
//!
//! Format 1 is the JSON the first releases wrote (they wrote the engine's types as they were;
//! `tests/fixtures/redis-a2c0a0f.json` holds real data of one). Its writers add `"format": 1`,
//! which those releases ignore, so old and new replicas read each other's state during a rolling
//! upgrade. A later format gets a new number and a conversion from this one; a record of a format
//! this build does not know is refused, never misread.
//!
//! Field names are part of the format: change none of them.

use crate::engine::{
    AgentSummary, Candidate, CompactId, ConversationState, CustomerEnd, EndNotice, EndReason,
    LastEnd, Leg, LegAcw, LegEnd, SeenSet,
};
use crate::genesys::{ConversationKey, DisconnectType};
use crate::hash::Fnv1a;
use crate::plain_text::write_json_string;
use crate::store::Delivery;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cell::RefCell;

mod state_json;

/// The format this build writes.
pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("stored record is not valid format-1 JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("stored record has format {0}, newer than this build's {FORMAT}: upgrade this replica")]
    Newer(u32),
}

fn check(format: u32) -> Result<(), FormatError> {
    // 0: written before records carried their format; the same shape as 1.
    if format > FORMAT {
        return Err(FormatError::Newer(format));
    }
    Ok(())
}

fn is_false(value: &bool) -> bool {
    !*value
}

// Conversation state ------------------------------------------------------------------------------

// Ids and disconnect types are written by their own serde forms: their text, exactly as the first
// releases wrote it (`to_string`, `as_str`); the fixture of a real release's data pins that.
// The records borrow from the engine's state when writing (`Cow::Borrowed`, nothing copied) and
// own what they read. A conversation's state is written on every commit by `state_json`, byte
// for byte as serde_json writes these records (the tests below check that); serde_json writes
// it only in those tests.

#[derive(Serialize, Deserialize)]
struct StoredConversation<'a> {
    #[serde(default)]
    format: u32,
    genesys_organization_id: Cow<'a, CompactId>,
    bot_user_id: Option<Cow<'a, CompactId>>,
    episode: u32,
    last_end: Option<StoredLastEnd<'a>>,
    legs: Vec<StoredLeg<'a>>,
    customer_ends: Vec<StoredCustomerEnd<'a>>,
    candidate: Option<StoredCandidate<'a>>,
    seen: StoredSeen<'a>,
    #[serde(default, skip_serializing_if = "is_false")]
    too_large: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredLastEnd<'a> {
    at: i64,
    episode: u32,
    closed_legs: Cow<'a, [u64]>,
}

#[derive(Serialize, Deserialize)]
struct StoredLeg<'a> {
    key: Cow<'a, CompactId>,
    participant_id: Option<Cow<'a, CompactId>>,
    user_id: Option<Cow<'a, CompactId>>,
    queue_id: Option<Cow<'a, CompactId>>,
    started_at: Option<i64>,
    end: Option<StoredLegEnd<'a>>,
    acw: Option<StoredAcw<'a>>,
}

#[derive(Serialize, Deserialize)]
struct StoredLegEnd<'a> {
    at: i64,
    disconnect_type: Option<Cow<'a, DisconnectType>>,
    interacting_duration_ms: Option<i64>,
    correlation_id: Option<Cow<'a, CompactId>>,
}

#[derive(Serialize, Deserialize)]
struct StoredAcw<'a> {
    at: i64,
    wrapup_code: Option<Cow<'a, CompactId>>,
}

#[derive(Serialize, Deserialize)]
struct StoredCustomerEnd<'a> {
    at: i64,
    leg: Cow<'a, CompactId>,
    disconnect_type: Option<Cow<'a, DisconnectType>>,
    correlation_id: Option<Cow<'a, CompactId>>,
}

#[derive(Serialize, Deserialize)]
struct StoredCandidate<'a> {
    leg: Cow<'a, CompactId>,
    end_at: i64,
    due_at_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredSeen<'a> {
    current: Cow<'a, [u64]>,
    previous: Cow<'a, [u64]>,
    current_since_ms: u64,
}

#[cfg(test)]
fn lend<T: Clone>(value: &Option<T>) -> Option<Cow<'_, T>> {
    value.as_ref().map(Cow::Borrowed)
}

fn own<T: Clone>(value: Option<Cow<'_, T>>) -> Option<T> {
    value.map(Cow::into_owned)
}

thread_local! {
    /// Each thread's buffer for the state's JSON: a commit writes the whole state (a few KB),
    /// and the Redis command copies it, so the buffer is reused instead of grown anew each time.
    static STATE_JSON: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A buffer larger than this (an unusually large state) is not kept for the next one.
const KEPT_STATE_JSON_CAPACITY: usize = 64 * 1024;

/// Runs `use_json` on a conversation's state as the store writes it (UTF-8 JSON).
pub fn with_conversation_json<R>(
    state: &ConversationState,
    use_json: impl FnOnce(&[u8]) -> R,
) -> R {
    STATE_JSON.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut json) => {
            json.clear();
            state_json::write(state, &mut json);
            let result = use_json(&json);
            if json.capacity() > KEPT_STATE_JSON_CAPACITY {
                *json = Vec::new();
            }
            result
        }
        // Only if `use_json` wrote a state itself: a buffer of its own rather than a panic.
        Err(_) => {
            let mut json = Vec::new();
            state_json::write(state, &mut json);
            use_json(&json)
        }
    })
}

/// A conversation's state as the store writes it.
pub fn write_conversation(state: &ConversationState) -> String {
    with_conversation_json(state, |json| {
        String::from_utf8(json.to_vec()).expect("the state's JSON is UTF-8")
    })
}

/// The state's JSON as serde_json writes the records: what `state_json` must give, byte for
/// byte.
#[cfg(test)]
fn write_conversation_through_serde(state: &ConversationState) -> String {
    let (current, previous, current_since_ms) = state.seen.parts();
    let stored = StoredConversation {
        format: FORMAT,
        genesys_organization_id: Cow::Borrowed(&state.genesys_organization_id),
        bot_user_id: lend(&state.bot_user_id),
        episode: state.episode,
        last_end: state.last_end.as_ref().map(|last| StoredLastEnd {
            at: last.at,
            episode: last.episode,
            closed_legs: Cow::Borrowed(&last.closed_legs),
        }),
        legs: state
            .legs
            .iter()
            .map(|leg| StoredLeg {
                key: Cow::Borrowed(&leg.key),
                participant_id: lend(&leg.participant_id),
                user_id: lend(&leg.user_id),
                queue_id: lend(&leg.queue_id),
                started_at: leg.started_at,
                end: leg.end.as_ref().map(|end| StoredLegEnd {
                    at: end.at,
                    disconnect_type: lend(&end.disconnect_type),
                    interacting_duration_ms: end.interacting_duration_ms,
                    correlation_id: lend(&end.correlation_id),
                }),
                acw: leg.acw.as_ref().map(|acw| StoredAcw {
                    at: acw.at,
                    wrapup_code: lend(&acw.wrapup_code),
                }),
            })
            .collect(),
        customer_ends: state
            .customer_ends
            .iter()
            .map(|customer| StoredCustomerEnd {
                at: customer.at,
                leg: Cow::Borrowed(&customer.leg),
                disconnect_type: lend(&customer.disconnect_type),
                correlation_id: lend(&customer.correlation_id),
            })
            .collect(),
        candidate: state.candidate.as_ref().map(|c| StoredCandidate {
            leg: Cow::Borrowed(&c.leg),
            end_at: c.end_at,
            due_at_ms: c.due_at_ms,
        }),
        seen: StoredSeen {
            current: Cow::Borrowed(current),
            previous: Cow::Borrowed(previous),
            current_since_ms,
        },
        too_large: state.too_large,
    };
    serde_json::to_string(&stored).expect("plain structs serialise")
}

/// A conversation's state as any release of format 1 (or before) wrote it.
pub fn read_conversation(json: &str) -> Result<ConversationState, FormatError> {
    let stored: StoredConversation = serde_json::from_str(json)?;
    check(stored.format)?;
    Ok(ConversationState {
        genesys_organization_id: stored.genesys_organization_id.into_owned(),
        bot_user_id: own(stored.bot_user_id),
        episode: stored.episode,
        last_end: stored.last_end.map(|last| LastEnd {
            at: last.at,
            episode: last.episode,
            closed_legs: last.closed_legs.into_owned(),
        }),
        legs: stored
            .legs
            .into_iter()
            .map(|leg| Leg {
                key: leg.key.into_owned(),
                participant_id: own(leg.participant_id),
                user_id: own(leg.user_id),
                queue_id: own(leg.queue_id),
                started_at: leg.started_at,
                end: leg.end.map(|end| LegEnd {
                    at: end.at,
                    disconnect_type: own(end.disconnect_type),
                    interacting_duration_ms: end.interacting_duration_ms,
                    correlation_id: own(end.correlation_id),
                }),
                acw: leg.acw.map(|acw| LegAcw {
                    at: acw.at,
                    wrapup_code: own(acw.wrapup_code),
                }),
            })
            .collect(),
        customer_ends: stored
            .customer_ends
            .into_iter()
            .map(|customer| CustomerEnd {
                at: customer.at,
                leg: customer.leg.into_owned(),
                disconnect_type: own(customer.disconnect_type),
                correlation_id: own(customer.correlation_id),
            })
            .collect(),
        candidate: stored.candidate.map(|c| Candidate {
            leg: c.leg.into_owned(),
            end_at: c.end_at,
            due_at_ms: c.due_at_ms,
        }),
        seen: SeenSet::from_parts(
            stored.seen.current.into_owned(),
            stored.seen.previous.into_owned(),
            stored.seen.current_since_ms,
        ),
        too_large: stored.too_large,
    })
}

// Deliveries ---------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct StoredDelivery {
    #[serde(default)]
    format: u32,
    id: String,
    notice: StoredEnd,
    attempts: u32,
    created_at_ms: u64,
    next_attempt_at_ms: u64,
    last_error: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredEnd {
    key: StoredKey,
    genesys_organization_id: String,
    user_id: Option<String>,
    /// `user.end` or `customer.end`.
    reason: String,
    disconnect_type: Option<DisconnectType>,
    ended_at: i64,
    episode: u32,
    transfers: u32,
    agent: Option<StoredAgent>,
    correlation_id: Option<String>,
    decided_at_ms: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredAgent {
    user_id: Option<String>,
    participant_id: Option<String>,
    session_id: Option<String>,
    queue_id: Option<String>,
    wrapup_code: Option<String>,
}

/// A conversation's key, as a timer member and inside a delivery.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    organisation_id: String,
    conversation_id: String,
}

impl From<&ConversationKey> for StoredKey {
    fn from(key: &ConversationKey) -> Self {
        Self {
            organisation_id: key.organisation_id.to_string(),
            conversation_id: key.conversation_id.to_string(),
        }
    }
}

impl From<StoredKey> for ConversationKey {
    fn from(key: StoredKey) -> Self {
        ConversationKey::new(key.organisation_id, key.conversation_id)
    }
}

/// A delivery (outbox entry or dead letter) as the store writes it.
pub fn write_delivery(delivery: &Delivery) -> String {
    let end = &delivery.notice;
    let stored = StoredDelivery {
        format: FORMAT,
        id: delivery.id.clone(),
        notice: StoredEnd {
            key: StoredKey::from(&end.key),
            genesys_organization_id: end.genesys_organization_id.clone(),
            user_id: end.user_id.clone(),
            reason: end.reason.as_str().to_owned(),
            disconnect_type: end.disconnect_type.clone(),
            ended_at: end.ended_at,
            episode: end.episode,
            transfers: end.transfers,
            agent: end.agent.as_ref().map(|agent| StoredAgent {
                user_id: agent.user_id.clone(),
                participant_id: agent.participant_id.clone(),
                session_id: agent.session_id.clone(),
                queue_id: agent.queue_id.clone(),
                wrapup_code: agent.wrapup_code.clone(),
            }),
            correlation_id: end.correlation_id.clone(),
            decided_at_ms: end.decided_at_ms,
        },
        attempts: delivery.attempts,
        created_at_ms: delivery.created_at_ms,
        next_attempt_at_ms: delivery.next_attempt_at_ms,
        last_error: delivery.last_error.clone(),
    };
    serde_json::to_string(&stored).expect("plain structs serialise")
}

/// A delivery as any release of format 1 (or before) wrote it.
pub fn read_delivery(json: &str) -> Result<Delivery, FormatError> {
    let stored: StoredDelivery = serde_json::from_str(json)?;
    check(stored.format)?;
    let end = stored.notice;
    let reason = match end.reason.as_str() {
        "customer.end" => EndReason::CustomerEnd,
        _ => EndReason::UserEnd,
    };
    Ok(Delivery {
        id: stored.id,
        notice: EndNotice {
            key: end.key.into(),
            genesys_organization_id: end.genesys_organization_id,
            user_id: end.user_id,
            reason,
            disconnect_type: end.disconnect_type,
            ended_at: end.ended_at,
            episode: end.episode,
            transfers: end.transfers,
            agent: end.agent.map(|agent| AgentSummary {
                user_id: agent.user_id,
                participant_id: agent.participant_id,
                session_id: agent.session_id,
                queue_id: agent.queue_id,
                wrapup_code: agent.wrapup_code,
            }),
            correlation_id: end.correlation_id,
            decided_at_ms: end.decided_at_ms,
        },
        attempts: stored.attempts,
        created_at_ms: stored.created_at_ms,
        next_attempt_at_ms: stored.next_attempt_at_ms,
        last_error: stored.last_error,
    })
}

/// A conversation as a member of a bucket's timer set: a [`StoredKey`], written as serde_json
/// writes it (a test checks that byte for byte) without copying the ids into one first.
pub fn write_timer_member(key: &ConversationKey) -> String {
    let (organisation, conversation) = (key.organisation_id.as_str(), key.conversation_id.as_str());
    let mut json = Vec::with_capacity(48 + organisation.len() + conversation.len());
    json.extend_from_slice(b"{\"organisation_id\":");
    write_json_string(&mut json, organisation);
    json.extend_from_slice(b",\"conversation_id\":");
    write_json_string(&mut json, conversation);
    json.push(b'}');
    String::from_utf8(json).expect("JSON written from text is UTF-8")
}

pub fn read_timer_member(member: &str) -> Result<ConversationKey, FormatError> {
    Ok(serde_json::from_str::<StoredKey>(member)?.into())
}

// Keys ---------------------------------------------------------------------------------------------

/// Hash tags the keys are spread over. Part of the format: changing it moves every key.
pub const BUCKETS: u32 = 16;

/// The bucket of a conversation: FNV-1a over `"leg"` and `<organisationId> 0x1f
/// <conversationId>`, modulo [`BUCKETS`]. Frozen: the first releases placed keys so, whatever the
/// engine's own fingerprints become.
pub fn bucket_of(key: &ConversationKey) -> u32 {
    let hash = Fnv1a::new()
        .bytes(b"leg")
        .end_part()
        .bytes(key.organisation_id.as_str().as_bytes())
        .bytes(b"\x1f")
        .bytes(key.conversation_id.as_str().as_bytes())
        .end_part()
        .finish();
    (hash % u64::from(BUCKETS)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random states of every shape: ids as UUIDs and as text needing escapes, every optional
    /// part present or absent, numbers at their extremes.
    struct States(fastrand::Rng);

    impl States {
        fn id(&mut self) -> CompactId {
            let rng = &mut self.0;
            match rng.u8(0..6) {
                0 => CompactId::new("cognigy-user-5f0d8c2e"),
                1 => CompactId::new("quote \" backslash \\ tab \t nul \u{0} del \u{7f} é ✓"),
                2 => CompactId::new(""),
                3 => CompactId::new("8A1B2C3D-4E5F-4A6B-9C7D-0E1F2A3B4C5D"),
                _ => CompactId::Uuid(std::array::from_fn(|_| rng.u8(..))),
            }
        }

        fn maybe<T>(&mut self, make: impl FnOnce(&mut Self) -> T) -> Option<T> {
            self.0.bool().then(|| make(self))
        }

        fn time(&mut self) -> i64 {
            match self.0.u8(0..4) {
                0 => i64::MIN,
                1 => -1,
                2 => i64::MAX,
                _ => self.0.i64(1_700_000_000_000..1_900_000_000_000),
            }
        }

        fn prints(&mut self) -> Vec<u64> {
            let rng = &mut self.0;
            (0..rng.usize(0..6))
                .map(|_| match rng.u8(0..3) {
                    0 => 0,
                    1 => u64::MAX,
                    _ => rng.u64(..),
                })
                .collect()
        }

        fn disconnect_type(&mut self) -> DisconnectType {
            let text = self
                .0
                .choice(["TRANSFER", "client", "PEER", "new \"kind\"\n", ""])
                .unwrap();
            DisconnectType::parse(text)
        }

        fn state(&mut self) -> ConversationState {
            let legs = (0..self.0.usize(0..5))
                .map(|_| Leg {
                    key: self.id(),
                    participant_id: self.maybe(Self::id),
                    user_id: self.maybe(Self::id),
                    queue_id: self.maybe(Self::id),
                    started_at: self.maybe(Self::time),
                    end: self.maybe(|s| LegEnd {
                        at: s.time(),
                        disconnect_type: s.maybe(Self::disconnect_type),
                        interacting_duration_ms: s.maybe(Self::time),
                        correlation_id: s.maybe(Self::id),
                    }),
                    acw: self.maybe(|s| LegAcw {
                        at: s.time(),
                        wrapup_code: s.maybe(Self::id),
                    }),
                })
                .collect();
            let customer_ends = (0..self.0.usize(0..3))
                .map(|_| CustomerEnd {
                    at: self.time(),
                    leg: self.id(),
                    disconnect_type: self.maybe(Self::disconnect_type),
                    correlation_id: self.maybe(Self::id),
                })
                .collect();
            ConversationState {
                genesys_organization_id: self.id(),
                bot_user_id: self.maybe(Self::id),
                episode: self.0.choice([0, 1, 7, u32::MAX]).unwrap(),
                last_end: self.maybe(|s| LastEnd {
                    at: s.time(),
                    episode: s.0.u32(..),
                    closed_legs: s.prints(),
                }),
                legs,
                customer_ends,
                candidate: self.maybe(|s| Candidate {
                    leg: s.id(),
                    end_at: s.time(),
                    due_at_ms: s.0.u64(..),
                }),
                seen: SeenSet::from_parts(self.prints(), self.prints(), self.0.u64(..)),
                too_large: self.0.bool(),
            }
        }
    }

    #[test]
    fn the_state_is_written_byte_for_byte_as_serde_json_writes_its_records() {
        let mut states = States(fastrand::Rng::with_seed(11));
        for _ in 0..20_000 {
            let state = states.state();
            let written = write_conversation(&state);
            assert_eq!(written, write_conversation_through_serde(&state));
            assert_eq!(read_conversation(&written).unwrap(), state);
        }
    }

    #[test]
    fn a_timer_member_is_written_as_serde_json_writes_its_record_and_reads_back() {
        let ids = [
            "handover-prod",
            "8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d",
            "",
            "quote \" backslash \\ tab \t nul \u{0} del \u{7f} c1 \u{85} é ✓ 🎉",
            "</script><script>alert(1)</script>",
        ];
        for organisation in ids {
            for conversation in ids {
                let key = ConversationKey::new(organisation, conversation);
                let written = write_timer_member(&key);
                assert_eq!(
                    written,
                    serde_json::to_string(&StoredKey::from(&key)).unwrap()
                );
                assert_eq!(read_timer_member(&written).unwrap(), key);
            }
        }
    }

    #[test]
    fn a_state_larger_than_the_kept_buffer_is_written_whole_and_the_next_one_too() {
        let mut states = States(fastrand::Rng::with_seed(12));
        let mut large = states.state();
        large.legs = (0..2_000)
            .map(|n| Leg::new(CompactId::new(&format!("leg-{n}"))))
            .collect();
        let small = states.state();
        let written = write_conversation(&large);
        assert!(written.len() > KEPT_STATE_JSON_CAPACITY);
        // The thread's buffer did not keep the large state's room.
        STATE_JSON.with(|json| assert!(json.borrow().capacity() <= KEPT_STATE_JSON_CAPACITY));
        assert_eq!(read_conversation(&written).unwrap(), large);
        assert_eq!(
            write_conversation(&small),
            write_conversation_through_serde(&small)
        );
    }
}
