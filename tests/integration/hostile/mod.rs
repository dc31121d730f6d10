//! Hostile input and hostile peers (README "Limits and hostile input"): nothing a caller sends can misroute, wedge,
//! panic or exhaust the service. Each test names the defect it guards against; those that run the
//! executable can be pointed at another build with `HANDOVER_TEST_BINARY` (the previous release
//! fails them).

mod bodies;
mod cognigy;
mod connections;
mod fuzz;
mod intake;
mod memory;
mod passthrough;
mod secrets;
mod signals;

use serde_json::Value;

/// An EventBridge event of a test conversation with `edit` applied to its JSON.
pub fn edited(
    spec: &crate::common::events::Spec,
    conversation: &str,
    edit: impl FnOnce(&mut Value),
) -> Value {
    let mut event = spec.envelope(conversation);
    edit(&mut event);
    event
}
