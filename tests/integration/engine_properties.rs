//! Property tests of the engine over generated Open Messaging conversations: transfers with their
//! after-call work before or after the next agent's start, rejects, takeovers, optional
//! customer.end, and user.start events that the topic filter may have dropped.

use crate::common::events::*;
use crate::common::harness::{CONVERSATION, Harness};
use crate::common::shuffle::deliveries;
use handover_receiver::engine::{EndNotice, EndReason};
use handover_receiver::genesys::Topic;
use proptest::prelude::*;

/// How one agent's leg ends before the last agent takes over.
#[derive(Debug, Clone)]
enum Handoff {
    Transfer(&'static str),
    Takeover,
    Reject(&'static str),
}

#[derive(Debug, Clone)]
struct Conversation {
    handoffs: Vec<(Handoff, u32, u32)>,
    final_disconnect: &'static str,
    with_customer_end: bool,
    with_final_acw: bool,
    with_starts: bool,
}

fn handoff() -> impl Strategy<Value = Handoff> {
    prop_oneof![
        prop::sample::select(vec![
            "TRANSFER",
            "NO_ANSWER_TRANSFER",
            "FORWARD_TRANSFER",
            "NOT_AVAILABLE_TRANSFER",
            "CONSULT_TRANSFER",
            "DND_TRANSFER",
            "CONFERENCE_TRANSFER",
        ])
        .prop_map(Handoff::Transfer),
        Just(Handoff::Takeover),
        prop::sample::select(vec!["CLIENT", "NO_ANSWER_TRANSFER"]).prop_map(Handoff::Reject),
    ]
}

fn conversation() -> impl Strategy<Value = Conversation> {
    (
        prop::collection::vec((handoff(), 1_000u32..300_000, 100u32..6_000), 0..5),
        prop::sample::select(vec!["CLIENT", "ENDPOINT", "INACTIVITY", "SYSTEM", "PEER"]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(handoffs, final_disconnect, with_customer_end, with_final_acw, with_starts)| {
                Conversation {
                    handoffs,
                    final_disconnect,
                    with_customer_end,
                    with_final_acw,
                    with_starts,
                }
            },
        )
}

impl Conversation {
    fn leg(index: usize) -> String {
        format!("L{index}")
    }

    fn final_leg(&self) -> String {
        Self::leg(self.handoffs.len())
    }

    fn transfers(&self) -> u32 {
        let handing_on = self.handoffs.iter().filter(|(h, _, _)| match h {
            Handoff::Transfer(_) | Handoff::Takeover => true,
            Handoff::Reject(kind) => *kind == "NO_ANSWER_TRANSFER",
        });
        handing_on.count() as u32
    }

    /// The conversation's events in event-time order.
    fn events(&self) -> Vec<Spec> {
        let mut events = Vec::new();
        let mut t: i64 = 10_000;
        for (index, (handoff, duration, gap)) in self.handoffs.iter().enumerate() {
            let leg = Self::leg(index);
            if self.with_starts {
                events.push(start(&leg, t));
            }
            let end_at = t + i64::from(*duration);
            match handoff {
                Handoff::Transfer(kind) => {
                    events.push(end(&leg, end_at, kind));
                    // Wrap-up of 1.5 s or more: often after the next agent's start.
                    events.push(acw(&leg, end_at + 1_500 + i64::from(gap % 3_000)));
                }
                Handoff::Takeover => events.push(end(&leg, end_at, "TAKEOVER")),
                Handoff::Reject(kind) => events.push(reject(&leg, end_at, kind)),
            }
            t = end_at + i64::from(*gap);
        }
        let leg = self.final_leg();
        if self.with_starts {
            events.push(start(&leg, t));
        }
        let end_at = t + 60_000;
        events.push(end(&leg, end_at, self.final_disconnect));
        if self.with_customer_end {
            events.push(customer_end(end_at + 15));
        }
        if self.with_final_acw {
            events.push(acw(&leg, end_at + 1_000));
        }
        events.sort_by_key(|spec| spec.t);
        events
    }
}

/// Delivers all events within one grace window, then lets it close.
fn ends_at_once(events: &[Spec], seed: u64) -> Vec<EndNotice> {
    let mut h = Harness::default();
    for delivery in deliveries(events, CONVERSATION, seed) {
        h.post_with_id(&delivery.spec, &delivery.envelope_id);
    }
    h.settle();
    h.take_ends()
}

/// What must not depend on arrival order. A customer.end ends at once with what is known by
/// then, so which agent and how many transfers it names depends on what arrived before it.
fn order_independent(end: &EndNotice) -> impl PartialEq + std::fmt::Debug {
    let agent_known = end.reason == EndReason::UserEnd;
    (
        end.reason,
        end.disconnect_type.clone(),
        end.ended_at,
        end.episode,
        agent_known.then(|| (end.transfers, end.agent.clone(), end.correlation_id.clone())),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Any permutation and duplication of a conversation's events gives the same ends as the
    /// ordered stream.
    #[test]
    fn any_order_and_duplication_gives_the_same_ends(conv in conversation(), seed in 1u64..u64::MAX) {
        let events = conv.events();
        let ordered = ends_at_once(&events, 0);
        let shuffled = ends_at_once(&events, seed);
        prop_assert_eq!(ordered.len(), 1);
        prop_assert_eq!(
            ordered.iter().map(order_independent).collect::<Vec<_>>(),
            shuffled.iter().map(order_independent).collect::<Vec<_>>()
        );
    }

    /// In real time (wall clock following event time, every due timer firing), a conversation
    /// ends exactly once, never early, with the last agent and every transfer counted.
    #[test]
    fn in_real_time_a_conversation_ends_once_and_never_early(conv in conversation()) {
        let events = conv.events();
        let mut h = Harness::default();
        let origin = h.now_ms;
        let final_leg = Some(conv.final_leg());
        let mut final_end_seen = false;
        for spec in &events {
            let due = origin + spec.t as u64;
            h.advance(due - h.now_ms);
            if !final_end_seen {
                prop_assert!(h.ends.is_empty(), "ended before {:?}: {:#?}", spec, h.ends);
            }
            final_end_seen |= spec.topic == Topic::UserEnd && spec.leg == final_leg;
            h.post(spec);
        }
        h.settle();
        let ends = h.take_ends();
        prop_assert_eq!(ends.len(), 1);
        let end = &ends[0];
        let expected_reason = if conv.with_customer_end { EndReason::CustomerEnd } else { EndReason::UserEnd };
        prop_assert_eq!(end.reason, expected_reason);
        prop_assert_eq!(end.episode, 1);
        prop_assert_eq!(end.transfers, conv.transfers());
        prop_assert_eq!(end.user_id.as_deref(), Some(BOT_USER));
        let agent = end.agent.as_ref().and_then(|a| a.session_id.clone());
        prop_assert_eq!(agent, Some(session(&conv.final_leg())));
    }
}
