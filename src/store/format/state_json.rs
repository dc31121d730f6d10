//! A conversation state's stored JSON (format 1), written straight into a byte buffer.
//!
//! Every commit to Redis writes the whole state. Through serde_json that cost about 35,000
//! instructions per event: every id formatted and then scanned for escapes a byte at a time,
//! every field name scanned too, the text grown by doubling. Here the names and punctuation are
//! constants, an id kept as a UUID is copied in as it is (it has nothing to escape), and numbers
//! go through `itoa`, as in serde_json.
//!
//! The format's definition stays the `Stored*` records of the parent module, which also read it.
//! A test there checks that this writer gives, byte for byte, what serde_json writes for them.

use super::FORMAT;
use crate::engine::{
    Candidate, CompactId, ConversationState, CustomerEnd, LastEnd, Leg, LegAcw, LegEnd,
};
use crate::genesys::DisconnectType;
use crate::plain_text::write_json_string as string;

pub fn write(state: &ConversationState, out: &mut Vec<u8>) {
    let (current, previous, current_since_ms) = state.seen.parts();
    out.extend_from_slice(b"{\"format\":");
    number(out, FORMAT);
    out.extend_from_slice(b",\"genesys_organization_id\":");
    id(out, &state.genesys_organization_id);
    out.extend_from_slice(b",\"bot_user_id\":");
    optional(out, state.bot_user_id.as_ref(), id);
    out.extend_from_slice(b",\"episode\":");
    number(out, state.episode);
    out.extend_from_slice(b",\"last_end\":");
    optional(out, state.last_end.as_ref(), last_end);
    out.extend_from_slice(b",\"legs\":");
    list(out, &state.legs, leg);
    out.extend_from_slice(b",\"customer_ends\":");
    list(out, &state.customer_ends, customer_end);
    out.extend_from_slice(b",\"candidate\":");
    optional(out, state.candidate.as_ref(), candidate);
    out.extend_from_slice(b",\"seen\":{\"current\":");
    list(out, current, |out, print| number(out, *print));
    out.extend_from_slice(b",\"previous\":");
    list(out, previous, |out, print| number(out, *print));
    out.extend_from_slice(b",\"current_since_ms\":");
    number(out, current_since_ms);
    out.push(b'}');
    // Written only when set, as the first releases did.
    if state.too_large {
        out.extend_from_slice(b",\"too_large\":true");
    }
    out.push(b'}');
}

fn last_end(out: &mut Vec<u8>, last: &LastEnd) {
    out.extend_from_slice(b"{\"at\":");
    number(out, last.at);
    out.extend_from_slice(b",\"episode\":");
    number(out, last.episode);
    out.extend_from_slice(b",\"closed_legs\":");
    list(out, &last.closed_legs, |out, print| number(out, *print));
    out.push(b'}');
}

fn leg(out: &mut Vec<u8>, leg: &Leg) {
    out.extend_from_slice(b"{\"key\":");
    id(out, &leg.key);
    out.extend_from_slice(b",\"participant_id\":");
    optional(out, leg.participant_id.as_ref(), id);
    out.extend_from_slice(b",\"user_id\":");
    optional(out, leg.user_id.as_ref(), id);
    out.extend_from_slice(b",\"queue_id\":");
    optional(out, leg.queue_id.as_ref(), id);
    out.extend_from_slice(b",\"started_at\":");
    optional(out, leg.started_at.as_ref(), |out, at| number(out, *at));
    out.extend_from_slice(b",\"end\":");
    optional(out, leg.end.as_ref(), leg_end);
    out.extend_from_slice(b",\"acw\":");
    optional(out, leg.acw.as_ref(), acw);
    out.push(b'}');
}

fn leg_end(out: &mut Vec<u8>, end: &LegEnd) {
    out.extend_from_slice(b"{\"at\":");
    number(out, end.at);
    out.extend_from_slice(b",\"disconnect_type\":");
    optional(out, end.disconnect_type.as_ref(), disconnect_type);
    out.extend_from_slice(b",\"interacting_duration_ms\":");
    optional(out, end.interacting_duration_ms.as_ref(), |out, ms| {
        number(out, *ms)
    });
    out.extend_from_slice(b",\"correlation_id\":");
    optional(out, end.correlation_id.as_ref(), id);
    out.push(b'}');
}

fn acw(out: &mut Vec<u8>, acw: &LegAcw) {
    out.extend_from_slice(b"{\"at\":");
    number(out, acw.at);
    out.extend_from_slice(b",\"wrapup_code\":");
    optional(out, acw.wrapup_code.as_ref(), id);
    out.push(b'}');
}

fn customer_end(out: &mut Vec<u8>, customer: &CustomerEnd) {
    out.extend_from_slice(b"{\"at\":");
    number(out, customer.at);
    out.extend_from_slice(b",\"leg\":");
    id(out, &customer.leg);
    out.extend_from_slice(b",\"disconnect_type\":");
    optional(out, customer.disconnect_type.as_ref(), disconnect_type);
    out.extend_from_slice(b",\"correlation_id\":");
    optional(out, customer.correlation_id.as_ref(), id);
    out.push(b'}');
}

fn candidate(out: &mut Vec<u8>, candidate: &Candidate) {
    out.extend_from_slice(b"{\"leg\":");
    id(out, &candidate.leg);
    out.extend_from_slice(b",\"end_at\":");
    number(out, candidate.end_at);
    out.extend_from_slice(b",\"due_at_ms\":");
    number(out, candidate.due_at_ms);
    out.push(b'}');
}

fn disconnect_type(out: &mut Vec<u8>, kind: &DisconnectType) {
    string(out, kind.as_str());
}

/// An id as its text: a UUID copied in, any other id as a JSON string.
fn id(out: &mut Vec<u8>, id: &CompactId) {
    match id.uuid_text() {
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(&text);
            out.push(b'"');
        }
        None => id.with_str(|text| string(out, text)),
    }
}

fn number(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn optional<T>(out: &mut Vec<u8>, value: Option<&T>, write: impl FnOnce(&mut Vec<u8>, &T)) {
    match value {
        Some(value) => write(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn list<T>(out: &mut Vec<u8>, items: &[T], mut write: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (at, item) in items.iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}
