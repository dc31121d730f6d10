//! Every case of the decision vectors, each phase delivered in several shuffled orders with
//! duplicates, through the pure engine.

use crate::common::events::session;
use crate::common::harness::{CONVERSATION, Harness};
use crate::common::shuffle::deliveries;
use crate::common::vectors::{Case, ExpectedEnd, load};
use handover_receiver::engine::EndNotice;

const ORDERS_PER_PHASE: u64 = 12;

#[test]
fn every_decision_vector_holds_in_any_order_with_duplicates() {
    let vectors = load();
    let mut checked = 0;
    for case in &vectors.cases {
        for seed in 0..ORDERS_PER_PHASE {
            run_case(case, seed);
            checked += 1;
        }
    }
    assert_eq!(checked, vectors.cases.len() as u64 * ORDERS_PER_PHASE);
}

fn run_case(case: &Case, seed: u64) {
    let mut h = Harness::default();
    for (index, phase) in case.phases.iter().enumerate() {
        let specs: Vec<_> = phase.events.iter().map(|e| e.spec()).collect();
        for delivery in deliveries(&specs, CONVERSATION, seed * 31 + index as u64) {
            h.post_with_id(&delivery.spec, &delivery.envelope_id);
            // Deliveries of one phase come close together: well inside the grace window.
            h.advance(10);
        }
        h.settle();
        let ends = h.take_ends();
        let context = format!("case {:?}, phase {index}, seed {seed}", case.name);
        assert_eq!(
            ends.len(),
            phase.ends.len(),
            "{context}: got ends {ends:#?}"
        );
        for (got, want) in ends.iter().zip(&phase.ends) {
            check_end(got, want, &context);
        }
    }
}

fn check_end(got: &EndNotice, want: &ExpectedEnd, context: &str) {
    if let Some(reason) = &want.reason {
        assert_eq!(got.reason.as_str(), reason, "{context}: reason");
    }
    if let Some(episode) = want.episode {
        assert_eq!(got.episode, episode, "{context}: episode");
    }
    if let Some(leg) = &want.leg {
        let agent = got.agent.as_ref().and_then(|a| a.session_id.clone());
        assert_eq!(agent, Some(session(leg)), "{context}: leg");
    }
    if let Some(kind) = &want.disconnect_type {
        let got_kind = got.disconnect_type.as_ref().map(|k| k.as_str().to_owned());
        assert_eq!(
            got_kind.as_deref(),
            Some(kind.as_str()),
            "{context}: disconnectType"
        );
    }
    if let Some(transfers) = want.transfers {
        assert_eq!(got.transfers, transfers, "{context}: transfers");
    }
}
