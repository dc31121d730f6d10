//! Compact, process-independent fingerprints for duplicate detection.
//!
//! Several replicas share state, so the hash must not depend on the process or the Rust release
//! (std's `DefaultHasher` promises neither): FNV-1a, 64 bits. Within one conversation a collision
//! is as likely as ~n²/2⁶⁴ for n events, which is nil for the tens of events a chat has.

use crate::genesys::Topic;
use serde::{Deserialize, Serialize};

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.iter().copied() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
        // A separator keeps ("ab", "c") apart from ("a", "bc").
        hash ^= 0xff;
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// The EventBridge event id (kept by EventBridge across its retries).
pub fn envelope_id(id: &str) -> u64 {
    fnv1a(&[b"id", id.as_bytes()])
}

/// Topic, leg and eventTime: what a republished copy with a new envelope id shares.
pub fn content(topic: Topic, leg: &str, event_time: i64) -> u64 {
    fnv1a(&[
        b"content",
        topic.as_str().as_bytes(),
        leg.as_bytes(),
        &event_time.to_le_bytes(),
    ])
}

/// A leg's key, kept after its episode ended so that its stragglers are recognised as late.
pub fn leg(key: &str) -> u64 {
    fnv1a(&[b"leg", key.as_bytes()])
}

/// Fingerprints seen recently, with the wall-clock time they were first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SeenSet(Vec<(u64, u64)>);

impl SeenSet {
    pub fn contains(&self, print: u64) -> bool {
        self.0.iter().any(|(p, _)| *p == print)
    }

    pub fn remember(&mut self, print: u64, now_ms: u64) {
        if !self.contains(print) {
            // Exact growth: a conversation sees tens of events, and every byte is per conversation.
            self.0.reserve_exact(1);
            self.0.push((print, now_ms));
        }
    }

    /// Drops what was first seen before `cutoff_ms`.
    pub fn forget_before(&mut self, cutoff_ms: u64) {
        self.0.retain(|(_, seen)| *seen >= cutoff_ms);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_across_processes() {
        // Pinned values: a change here would make replicas of different builds disagree.
        assert_eq!(envelope_id("abc"), envelope_id("abc"));
        assert_eq!(fnv1a(&[]), OFFSET);
        // FNV-1a of "a" followed by the 0xff separator, computed independently.
        assert_eq!(fnv1a(&[b"a"]), 0x089b_c907_b544_c769);
    }

    #[test]
    fn parts_do_not_run_together() {
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
        assert_ne!(
            content(Topic::UserEnd, "s", 1),
            content(Topic::UserStart, "s", 1)
        );
        assert_ne!(
            content(Topic::UserEnd, "s", 1),
            content(Topic::UserEnd, "s", 2)
        );
    }

    #[test]
    fn seen_set_forgets_old_entries() {
        let mut seen = SeenSet::default();
        seen.remember(1, 100);
        seen.remember(2, 200);
        seen.remember(1, 300);
        assert_eq!(seen.len(), 2);
        seen.forget_before(150);
        assert!(!seen.contains(1));
        assert!(seen.contains(2));
    }
}
