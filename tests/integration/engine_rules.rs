//! One test per decision rule of `docs/contract.md` §4 (and its corners), through the pure engine.

use crate::common::events::*;
use crate::common::harness::{GRACE_MS, Harness};
use handover_receiver::engine::{Decision, EndReason};

// Rule 1 -------------------------------------------------------------------------------------

#[test]
fn rule1_customer_end_ends_at_once() {
    let mut h = Harness::default();
    h.post(&start("A", 0));
    let applied = h.post(&customer_end(5_000));
    assert_eq!(applied.decision, Decision::Ended);
    let end = &applied.ends[0];
    assert_eq!(end.reason, EndReason::CustomerEnd);
    assert_eq!(end.disconnect_type.as_ref().unwrap().as_str(), "PEER");
    assert_eq!(end.ended_at, 5_000);
    assert_eq!(end.episode, 1);
    assert_eq!(end.user_id.as_deref(), Some(BOT_USER));
    assert_eq!(end.agent.as_ref().unwrap().session_id, Some(session("A")));
}

#[test]
fn rule1_customer_end_confirms_a_pending_candidate_without_waiting() {
    let mut h = Harness::default();
    assert_eq!(h.decide(&end("B", 9_000, "CLIENT")), Decision::EndCandidate);
    h.advance(100);
    let applied = h.post(&customer_end(9_015));
    assert_eq!(applied.decision, Decision::Ended);
    assert_eq!(applied.ends.len(), 1);
    assert_eq!(
        applied.ends[0].agent.as_ref().unwrap().session_id,
        Some(session("B"))
    );
    h.settle();
    assert_eq!(
        h.take_ends().len(),
        1,
        "the grace window must not end it again"
    );
}

// Rule 2 -------------------------------------------------------------------------------------

#[test]
fn rule2_transfers_of_every_kind_are_not_an_end() {
    for kind in [
        "TRANSFER",
        "CONSULT_TRANSFER",
        "CONFERENCE_TRANSFER",
        "FORWARD_TRANSFER",
        "NO_ANSWER_TRANSFER",
        "NOT_AVAILABLE_TRANSFER",
        "DND_TRANSFER",
    ] {
        let mut h = Harness::default();
        assert_eq!(
            h.decide(&end("A", 1_000, kind)),
            Decision::Transfer,
            "{kind}"
        );
        h.settle();
        assert!(h.take_ends().is_empty(), "{kind} ended the handover");
    }
}

#[test]
fn rule2_takeover_is_not_an_end_and_counts_as_a_transfer() {
    let mut h = Harness::default();
    assert_eq!(h.decide(&end("A", 1_000, "TAKEOVER")), Decision::Takeover);
    h.settle();
    assert!(h.take_ends().is_empty());
    h.post(&start("S", 1_100));
    h.post(&end("S", 30_000, "CLIENT"));
    h.settle();
    let ends = h.take_ends();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].transfers, 1);
    assert_eq!(
        ends[0].agent.as_ref().unwrap().session_id,
        Some(session("S"))
    );
}

// Rule 3 -------------------------------------------------------------------------------------

#[test]
fn rule3_reject_with_zero_interaction_is_not_an_end() {
    let mut h = Harness::default();
    h.post(&start("A", 0));
    assert_eq!(h.decide(&reject("A", 8_000, "CLIENT")), Decision::Reject);
    h.settle();
    assert!(h.take_ends().is_empty());
    h.post(&start("B", 20_000));
    h.post(&end("B", 90_000, "CLIENT"));
    h.settle();
    let ends = h.take_ends();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].transfers, 0, "a reject is not a transfer");
}

#[test]
fn rule3_alert_timeout_is_a_transfer_not_an_end() {
    let mut h = Harness::default();
    assert_eq!(
        h.decide(&reject("A", 8_000, "NO_ANSWER_TRANSFER")),
        Decision::Transfer
    );
    h.settle();
    assert!(h.take_ends().is_empty());
}

// Rule 4 -------------------------------------------------------------------------------------

#[test]
fn rule4_final_end_waits_for_the_grace_window() {
    let mut h = Harness::default();
    assert_eq!(h.decide(&end("A", 1_000, "CLIENT")), Decision::EndCandidate);
    h.advance(GRACE_MS - 1);
    assert!(
        h.take_ends().is_empty(),
        "ended before the grace window closed"
    );
    h.advance(1);
    let ends = h.take_ends();
    assert_eq!(ends.len(), 1);
    let end = &ends[0];
    assert_eq!(end.reason, EndReason::UserEnd);
    assert_eq!(end.disconnect_type.as_ref().unwrap().as_str(), "CLIENT");
    assert_eq!((end.ended_at, end.episode, end.transfers), (1_000, 1, 0));
}

#[test]
fn rule4_later_activity_of_another_leg_cancels_the_candidate() {
    let mut h = Harness::default();
    h.post(&end("A", 1_000, "CLIENT"));
    h.advance(5_000);
    let applied = h.post(&start("B", 1_500));
    assert!(applied.candidate_cancelled);
    h.settle();
    assert!(h.take_ends().is_empty());
    h.post(&end("B", 30_000, "CLIENT"));
    h.settle();
    assert_eq!(
        h.take_ends()[0].agent.as_ref().unwrap().session_id,
        Some(session("B"))
    );
}

#[test]
fn rule4_a_leg_open_at_the_time_holds_the_decision() {
    let mut h = Harness::default();
    h.post(&start("A", 0));
    h.post(&start("B", 1_000));
    assert_eq!(h.decide(&end("A", 5_000, "CLIENT")), Decision::EndHeld);
    h.settle();
    assert!(h.take_ends().is_empty());
    h.post(&end("B", 20_000, "CLIENT"));
    h.settle();
    assert_eq!(h.take_ends().len(), 1);
}

#[test]
fn rule4_a_new_candidate_restarts_the_window() {
    let mut h = Harness::default();
    h.post(&start("B", 500));
    h.post(&end("A", 1_000, "CLIENT"));
    h.advance(GRACE_MS - 100);
    // B's end (later) arrives: B is the candidate now, with a window of its own.
    h.post(&end("B", 2_000, "CLIENT"));
    h.advance(200);
    assert!(
        h.take_ends().is_empty(),
        "the old window must not end the new candidate"
    );
    h.settle();
    let ends = h.take_ends();
    assert_eq!(ends.len(), 1);
    assert_eq!(
        ends[0].agent.as_ref().unwrap().session_id,
        Some(session("B"))
    );
}

#[test]
fn rule4_an_event_that_leaves_the_candidate_unchanged_keeps_its_window() {
    let mut h = Harness::default();
    h.post(&end("A", 1_000, "CLIENT"));
    h.advance(GRACE_MS - 100);
    assert_eq!(h.decide(&acw("A", 2_000)), Decision::AcwRecorded);
    h.advance(100);
    let ends = h.take_ends();
    assert_eq!(ends.len(), 1, "acw restarted the grace window");
    assert_eq!(
        ends[0].agent.as_ref().unwrap().wrapup_code.as_deref(),
        Some(WRAPUP)
    );
}

#[test]
fn rule4_zero_grace_ends_at_once() {
    let mut h = Harness::new(0);
    let applied = h.post(&end("A", 1_000, "CLIENT"));
    assert_eq!(applied.decision, Decision::Ended);
    assert_eq!(applied.ends.len(), 1);
}

#[test]
fn rule4_missing_disconnect_type_counts_as_final() {
    let mut h = Harness::default();
    let mut spec = end("A", 1_000, "CLIENT");
    spec.disconnect_type = None;
    assert_eq!(h.decide(&spec), Decision::EndCandidate);
    h.settle();
    assert_eq!(h.take_ends().len(), 1);
}

// Rule 5 -------------------------------------------------------------------------------------

#[test]
fn rule5_acw_never_decides_even_when_it_arrives_while_the_next_agent_works() {
    let mut h = Harness::default();
    h.post(&end("A", 1_000, "TRANSFER"));
    h.post(&start("B", 2_000));
    assert_eq!(h.decide(&acw("A", 3_000)), Decision::AcwRecorded);
    h.settle();
    assert!(h.take_ends().is_empty());
    // ... and before the next agent's start, too.
    let mut h = Harness::default();
    h.post(&end("A", 1_000, "TRANSFER"));
    h.post(&acw("A", 2_500));
    h.settle();
    assert!(h.take_ends().is_empty());
}

// Rule 6 -------------------------------------------------------------------------------------

#[test]
fn rule6_same_envelope_id_is_a_duplicate() {
    let mut h = Harness::default();
    h.post(&start("A", 0));
    assert_eq!(h.decide(&start("A", 0)), Decision::Duplicate);
}

#[test]
fn rule6_republished_event_with_a_new_id_is_a_duplicate() {
    let mut h = Harness::default();
    let spec = end("A", 1_000, "CLIENT");
    h.post_with_id(&spec, "first-id");
    assert_eq!(
        h.post_with_id(&spec, "second-id").decision,
        Decision::Duplicate
    );
    assert_eq!(
        h.post_with_id(&spec, "second-id").decision,
        Decision::Duplicate
    );
    h.settle();
    assert_eq!(h.take_ends().len(), 1);
}

#[test]
fn rule6_duplicates_are_remembered_for_24_hours() {
    let mut h = Harness::default();
    h.post(&customer_end(5_000));
    h.advance(24 * 60 * 60 * 1000 - 1);
    assert_eq!(h.decide(&customer_end(5_000)), Decision::Duplicate);
    assert_eq!(h.take_ends().len(), 1);
}

#[test]
fn rule6_a_duplicate_of_an_end_after_the_end_is_still_a_duplicate() {
    let mut h = Harness::default();
    h.post(&end("A", 1_000, "CLIENT"));
    h.settle();
    assert_eq!(h.decide(&end("A", 1_000, "CLIENT")), Decision::Duplicate);
    assert_eq!(h.take_ends().len(), 1);
}

// Rule 7 -------------------------------------------------------------------------------------

#[test]
fn rule7_events_not_later_than_the_end_are_late() {
    let mut h = Harness::default();
    h.post(&end("A", 10_000, "CLIENT"));
    h.settle();
    assert_eq!(h.take_ends().len(), 1);
    assert_eq!(h.decide(&end("X", 5_000, "TRANSFER")), Decision::Late);
    assert_eq!(h.decide(&end("Y", 10_000, "CLIENT")), Decision::Late);
    assert_eq!(
        h.decide(&acw("A", 12_000)),
        Decision::Late,
        "the ended leg's own wrap-up"
    );
    assert_eq!(h.decide(&acw("Z", 12_500)), Decision::AcwAfterEnd);
    h.settle();
    assert!(h.take_ends().is_empty());
}

#[test]
fn rule7_customer_end_just_after_the_end_belongs_to_it() {
    let mut h = Harness::default();
    h.post(&end("F", 9_000, "CLIENT"));
    h.settle();
    assert_eq!(h.take_ends().len(), 1);
    assert_eq!(
        h.decide(&customer_end(9_015)),
        Decision::BelongsToPreviousEnd
    );
    assert_eq!(h.decide(&acw("F", 10_000)), Decision::Late);
    h.settle();
    assert!(h.take_ends().is_empty());
}

#[test]
fn rule7_customer_end_long_after_the_end_ends_a_new_episode() {
    let mut h = Harness::default();
    h.post(&end("A", 1_000, "CLIENT"));
    h.settle();
    let applied = h.post(&customer_end(1_000 + 60_001));
    assert_eq!(applied.decision, Decision::Ended);
    assert_eq!(applied.ends[0].episode, 2);
    assert_eq!(applied.ends[0].reason, EndReason::CustomerEnd);
}

#[test]
fn rule7_customer_end_after_new_activity_ends_the_new_episode() {
    let mut h = Harness::default();
    h.post(&end("A", 1_000, "CLIENT"));
    h.settle();
    h.take_ends();
    h.post(&start("C", 5_000));
    let applied = h.post(&customer_end(20_000));
    assert_eq!(applied.ends.len(), 1);
    assert_eq!(applied.ends[0].episode, 2);
}

#[test]
fn rule7_new_activity_arriving_after_an_absorbed_customer_end_releases_it() {
    // The customer.end arrives first and looks like part of the last end; the user.start that
    // came before it (by event time) arrives later and shows it ended a new episode.
    let mut h = Harness::default();
    h.post(&end("A", 1_000, "CLIENT"));
    h.settle();
    h.take_ends();
    assert_eq!(
        h.decide(&customer_end(20_000)),
        Decision::BelongsToPreviousEnd
    );
    assert_eq!(h.decide(&start("C", 5_000)), Decision::Ended);
    let ends = h.take_ends();
    assert_eq!(ends.len(), 1);
    assert_eq!((ends[0].episode, ends[0].ended_at), (2, 20_000));
}

#[test]
fn rule7_reused_conversation_gets_a_second_episode() {
    let mut h = Harness::default();
    h.post(&end("A", 1_000, "CLIENT"));
    h.settle();
    h.post(&start("C", 3_600_000));
    h.post(&end("C", 3_700_000, "CLIENT"));
    h.settle();
    let ends = h.take_ends();
    assert_eq!(ends.iter().map(|e| e.episode).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        ends[0].idempotency_key(),
        format!("{ORG}:{}:1", crate::common::harness::CONVERSATION)
    );
    assert_eq!(
        ends[1].idempotency_key(),
        format!("{ORG}:{}:2", crate::common::harness::CONVERSATION)
    );
}

#[test]
fn rule7_the_agents_own_end_after_a_customer_end_is_not_a_new_episode() {
    // The customer's session ends first; the agent who was with them disconnects a moment later.
    let mut h = Harness::default();
    h.post(&start("A", 0));
    assert_eq!(h.decide(&customer_end(1_000)), Decision::Ended);
    assert_eq!(h.decide(&end("A", 1_003, "CLIENT")), Decision::Late);
    assert_eq!(h.decide(&acw("A", 2_500)), Decision::Late);
    h.settle();
    assert_eq!(h.take_ends().len(), 1, "a phantom second episode was ended");
}

#[test]
fn rule7_an_end_decided_out_of_order_carries_later_events_into_the_next_episode() {
    // Arrival order differs from event order: the second episode's start is already known when
    // the first episode's customer.end arrives.
    let mut h = Harness::default();
    h.post(&start("A", 0));
    h.post(&start("C", 3_600_000));
    let applied = h.post(&customer_end(1_000));
    assert_eq!(applied.ends.len(), 1);
    assert_eq!(applied.ends[0].episode, 1);
    h.post(&end("C", 3_700_000, "CLIENT"));
    h.settle();
    let ends = h.take_ends();
    assert_eq!(ends.iter().map(|e| e.episode).collect::<Vec<_>>(), [1, 2]);
}

// Transfers and the forwarded fields ---------------------------------------------------------

#[test]
fn transfers_count_the_transfer_ends_of_the_episode() {
    let mut h = Harness::default();
    h.post(&end("A", 5_000, "TRANSFER"));
    h.post(&end("B", 15_000, "TRANSFER"));
    h.post(&reject("X", 17_000, "CLIENT"));
    h.post(&end("C", 25_000, "NO_ANSWER_TRANSFER"));
    h.post(&end("E", 60_000, "ENDPOINT"));
    h.settle();
    let ends = h.take_ends();
    assert_eq!(ends[0].transfers, 3);
    assert_eq!(
        ends[0]
            .correlation_id
            .as_deref()
            .map(|c| c.starts_with("corr-")),
        Some(true)
    );
}
