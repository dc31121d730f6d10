//! FNV-1a, 64 bits: a hash that depends on neither the process nor the Rust release (std's
//! `DefaultHasher` promises neither), for values that several replicas, or several releases,
//! must compute alike: the engine's duplicate fingerprints and the Redis store's buckets.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `parts`, each followed by a 0xff separator so that ("ab", "c") and ("a", "bc")
/// differ.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .fold(Fnv1a::new(), |hash, part| hash.bytes(part).end_part())
        .finish()
}

/// [`fnv1a`] fed a piece at a time, for a part made of several pieces that would otherwise be
/// copied into one first.
#[derive(Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a {
    pub const fn new() -> Self {
        Self(OFFSET)
    }

    /// More bytes of the current part.
    pub fn bytes(self, bytes: &[u8]) -> Self {
        let mut hash = self.0;
        for byte in bytes.iter().copied() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
        Self(hash)
    }

    /// Ends the current part with the 0xff separator.
    pub fn end_part(self) -> Self {
        self.bytes(&[0xff])
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_values() {
        // A change here would make replicas of different builds disagree.
        assert_eq!(fnv1a(&[]), OFFSET);
        // FNV-1a of "a" followed by the 0xff separator, computed independently.
        assert_eq!(fnv1a(&[b"a"]), 0x089b_c907_b544_c769);
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }

    #[test]
    fn a_part_fed_in_pieces_hashes_as_the_part_whole() {
        let pieced = Fnv1a::new()
            .bytes(b"leg")
            .end_part()
            .bytes(b"org")
            .bytes(b"\x1f")
            .bytes(b"conversation")
            .end_part()
            .finish();
        assert_eq!(pieced, fnv1a(&[b"leg", b"org\x1fconversation"]));
        assert_ne!(pieced, fnv1a(&[b"leg", b"org", b"\x1f", b"conversation"]));
    }
}
