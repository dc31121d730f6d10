//! The conversation records this replica committed last, so that the next update of the same
//! conversation can start from one instead of reading it from Redis first: one round trip per
//! event instead of two, and no state to parse.
//!
//! A kept record is only a guess. The commit script compares the stored version and write token
//! with the guess's and commits only when both match; otherwise it answers with the stored
//! record, and the transition runs again on that. The write token is random per commit, so a
//! record that matches is the very record the guess was taken from, even after a failover lost
//! writes and the version numbers were reached again by other writes.

use crate::engine::ConversationState;
// hashbrown's map with its default hasher (foldhash) rather than std's SipHash: a key is hashed
// up to three times per event here, and SipHash over a conversation's key cost about 100
// instructions more each time. A stripe keeps at most 32 records, so no choice of keys can make
// a lookup slow.
use hashbrown::HashMap;

/// Records kept per stripe, over two generations; with 256 stripes a replica keeps at most
/// 8,192 (about 1 KiB each).
const PER_STRIPE: usize = 32;

/// What a commit must find stored to go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// `v`: counts commits; "0" for an absent record. Releases before the write token use only
    /// this.
    pub version: String,
    /// `t`: random per commit; empty when the record has none (absent, or written by a release
    /// before it).
    pub token: String,
}

/// A conversation's stored record: its stamp and state (`None`: absent).
pub struct Record {
    pub stamp: Stamp,
    pub state: Option<ConversationState>,
}

impl Record {
    /// No record: what Redis holds for a conversation it never stored (or let expire).
    pub fn absent() -> Self {
        Record {
            stamp: Stamp {
                version: "0".into(),
                token: String::new(),
            },
            state: None,
        }
    }
}

/// One stripe's kept records, in two generations: when the newer one is full it becomes the
/// older and the older is dropped, so the most recently committed stay and memory is bounded.
#[derive(Default)]
pub struct Recent {
    newer: HashMap<String, (Stamp, ConversationState)>,
    older: HashMap<String, (Stamp, ConversationState)>,
}

impl Recent {
    /// The record kept for `key`, taken out: the update that takes it commits a new one or
    /// leaves none (a failed update must not leave a guess it may have made stale).
    pub fn take(&mut self, key: &str) -> Option<Record> {
        let (stamp, state) = self.newer.remove(key).or_else(|| self.older.remove(key))?;
        Some(Record {
            stamp,
            state: Some(state),
        })
    }

    /// Keeps what a commit just wrote.
    pub fn keep(&mut self, key: String, stamp: Stamp, state: ConversationState) {
        if self.newer.len() >= PER_STRIPE / 2 {
            // The older generation's records go, and its table is kept for the next newer one:
            // a fresh table would grow (and rehash) four times on its way to sixteen.
            std::mem::swap(&mut self.older, &mut self.newer);
            self.newer.clear();
        }
        self.newer.insert(key, (stamp, state));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }
}

/// A new write token: a random positive 63-bit number, in decimal, which Redis keeps in a
/// small hash as an integer (8 bytes) rather than as a string.
pub fn new_token() -> String {
    itoa::Buffer::new()
        .format(fastrand::i64(1..=i64::MAX))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(version: &str) -> Stamp {
        Stamp {
            version: version.into(),
            token: new_token(),
        }
    }

    #[test]
    fn a_kept_record_is_taken_once() {
        let mut recent = Recent::default();
        let kept = stamp("3");
        recent.keep("a".into(), kept.clone(), ConversationState::new("org"));
        let record = recent.take("a").expect("kept");
        assert_eq!(record.stamp, kept);
        assert!(record.state.is_some());
        assert!(recent.take("a").is_none(), "taken out, not copied");
    }

    #[test]
    fn memory_is_bounded_and_the_newest_stay() {
        let mut recent = Recent::default();
        for n in 0..10 * PER_STRIPE {
            recent.keep(n.to_string(), stamp("1"), ConversationState::new("org"));
            assert!(recent.len() <= PER_STRIPE);
        }
        let newest = (10 * PER_STRIPE - 1).to_string();
        assert!(recent.take(&newest).is_some());
        assert!(recent.take("0").is_none());
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(new_token(), new_token());
        let token: i64 = new_token().parse().expect("a decimal number");
        assert!(token > 0);
    }
}
