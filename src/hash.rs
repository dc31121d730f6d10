//! FNV-1a, 64 bits: a hash that depends on neither the process nor the Rust release (std's
//! `DefaultHasher` promises neither), for values that several replicas, or several releases,
//! must compute alike: the engine's duplicate fingerprints and the Redis store's buckets.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `parts`, each followed by a 0xff separator so that ("ab", "c") and ("a", "bc")
/// differ.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.iter().copied() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(PRIME);
    }
    hash
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
}
