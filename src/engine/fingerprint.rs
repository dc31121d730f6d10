//! Compact, process-independent fingerprints for duplicate detection.
//!
//! Several replicas share state, so the hash must not depend on the process or the Rust release
//! (std's `DefaultHasher` promises neither): FNV-1a, 64 bits. Within one conversation a collision
//! is as likely as ~n²/2⁶⁴ for n events, which is nil for the tens of events a chat has.

use crate::genesys::Topic;
use crate::hash::fnv1a;

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

/// Fingerprints seen recently, in two generations: fingerprints go into `current`; once `current`
/// is a window old it becomes `previous` and the old `previous` is dropped. So every fingerprint
/// is remembered for at least one window (rule 6: 24 h) and about two at most, for 8 bytes each
/// instead of 16 with a timestamp apiece.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenSet {
    current: Vec<u64>,
    previous: Vec<u64>,
    /// Wall-clock time (epoch ms) at which `current` began.
    current_since_ms: u64,
}

impl SeenSet {
    pub fn contains(&self, print: u64) -> bool {
        self.current.contains(&print) || self.previous.contains(&print)
    }

    /// Remembers `print`. A generation holds at most `bound` prints: a full one is rotated
    /// early, so that memory stays bounded whatever a conversation receives (its oldest prints
    /// are then kept for less than a window).
    pub fn remember(&mut self, print: u64, now_ms: u64, bound: usize) {
        if self.current.is_empty() && self.previous.is_empty() {
            self.current_since_ms = now_ms;
        }
        if !self.contains(print) {
            if self.current.len() >= bound.max(1) {
                self.previous = std::mem::take(&mut self.current);
                self.current_since_ms = now_ms;
            }
            // Exact growth: a conversation sees tens of events, and every byte is per conversation.
            self.current.reserve_exact(1);
            self.current.push(print);
        }
    }

    /// Starts a new generation when the current one is `window_ms` old.
    pub fn rotate(&mut self, now_ms: u64, window_ms: u64) {
        if now_ms.saturating_sub(self.current_since_ms) >= window_ms {
            self.previous = std::mem::take(&mut self.current);
            self.previous.shrink_to_fit();
            self.current_since_ms = now_ms;
        }
    }

    /// The generations as stored: current, previous, and when current began.
    pub fn parts(&self) -> (&[u64], &[u64], u64) {
        (&self.current, &self.previous, self.current_since_ms)
    }

    pub fn from_parts(current: Vec<u64>, previous: Vec<u64>, current_since_ms: u64) -> Self {
        Self {
            current,
            previous,
            current_since_ms,
        }
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_do_not_run_together() {
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
    fn seen_set_remembers_for_at_least_one_window_and_at_most_two() {
        const WINDOW: u64 = 1_000;
        let mut seen = SeenSet::default();
        seen.remember(1, 0, 100);
        seen.remember(2, 900, 100);
        seen.remember(1, 950, 100);
        assert_eq!(seen.len(), 2);
        seen.rotate(999, WINDOW);
        assert!(seen.contains(1) && seen.contains(2), "rotated too early");
        seen.rotate(1_000, WINDOW);
        seen.remember(3, 1_000, 100);
        assert!(
            seen.contains(1) && seen.contains(2),
            "forgotten within a window"
        );
        seen.rotate(1_999, WINDOW);
        assert!(
            seen.contains(2),
            "2 was seen at 900: kept until at least 1,900"
        );
        seen.rotate(2_000, WINDOW);
        assert!(
            !seen.contains(1) && !seen.contains(2),
            "kept past two windows"
        );
        assert!(seen.contains(3));
    }

    #[test]
    fn a_full_generation_rotates_early_so_memory_stays_bounded() {
        let mut seen = SeenSet::default();
        for print in 0..10_000 {
            seen.remember(print, 0, 16);
            assert!(seen.len() <= 32, "{} prints kept", seen.len());
        }
        assert!(seen.contains(9_999) && seen.contains(9_984));
    }
}
