//! Where a text stops being plain, for the JSON this service writes by hand: the log line's
//! fields and the stored state's strings. Both copy plain text as it is and look closer only at
//! the rest.
//!
//! The scan reads eight bytes at a time as one `u64`. A byte at a time, it was the largest part
//! of writing the decision line (about 1,300 instructions per event) and of writing a
//! conversation's ids into Redis commands (benches/load/NOTES.md).

/// Every byte of a word set to `byte`.
const fn repeated(byte: u8) -> u64 {
    u64::from_le_bytes([byte; 8])
}

const ONES: u64 = repeated(0x01);
const HIGH: u64 = repeated(0x80);

/// The high bit of each byte of `word` that is below `limit` (at most 0x80), for bytes below
/// 0x80. Above the lowest such byte, a borrow can mark others: only the lowest mark is exact.
const fn below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(ONES * limit as u64) & !word & HIGH
}

/// The high bit of each byte of `word` equal to `byte` (the lowest mark is exact, as above).
const fn equal(word: u64, byte: u8) -> u64 {
    below(word ^ repeated(byte), 1)
}

/// Whether `byte` is plain: printable ASCII other than `"` and `\`.
pub const fn is_plain(byte: u8) -> bool {
    byte >= 0x20 && byte < 0x7F && byte != b'"' && byte != b'\\'
}

/// The index of the first byte of `bytes` that is not plain ([`is_plain`]): a control
/// character, `"`, `\`, DEL, or a byte of a non-ASCII character.
pub fn first_not_plain(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("a chunk of eight bytes"));
        if let Some(at) = first_in_word(word) {
            return Some(offset + at);
        }
        offset += 8;
    }
    // The last few bytes, filled up with plain ones: most texts here are short (a status, an
    // id), and a byte at a time they cost more than a word.
    let rest = chunks.remainder();
    let mut last = [b'a'; 8];
    last[..rest.len()].copy_from_slice(rest);
    first_in_word(u64::from_le_bytes(last)).map(|at| offset + at)
}

/// The first byte of `word` (little-endian) that is not plain.
const fn first_in_word(word: u64) -> Option<usize> {
    // Each term's lowest mark is exact and any other mark of it lies above that one, so the
    // lowest mark of all of them is the first byte that is not plain.
    let marks = below(word, 0x20)
        | equal(word, b'"')
        | equal(word, b'\\')
        | equal(word, 0x7F)
        | (word & HIGH);
    if marks == 0 {
        None
    } else {
        Some(marks.trailing_zeros() as usize / 8)
    }
}

/// `text` as a JSON string. Plain text (ids, statuses, known disconnect types) is copied in;
/// anything else goes through serde_json itself, so that it is escaped exactly as serde_json
/// escapes it.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    if first_not_plain(text.as_bytes()).is_none() {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("a string serialises into memory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn byte_at_a_time(bytes: &[u8]) -> Option<usize> {
        bytes.iter().position(|byte| !is_plain(*byte))
    }

    #[test]
    fn every_byte_value_at_every_place_of_a_word() {
        for byte in 0..=255u8 {
            for at in 0..20 {
                let mut bytes = vec![b'a'; 20];
                bytes[at] = byte;
                assert_eq!(
                    first_not_plain(&bytes),
                    byte_at_a_time(&bytes),
                    "{byte:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn a_byte_that_borrows_does_not_hide_an_earlier_one() {
        // 0x00 then 0x01: the borrow out of the zero byte marks the next one as well.
        let bytes = [b'a', b'a', 0x00, 0x01, b'a', b'a', b'a', b'a'];
        assert_eq!(first_not_plain(&bytes), Some(2));
        assert_eq!(first_not_plain(b"plain text, no stop"), None);
        assert_eq!(first_not_plain(b""), None);
    }

    #[test]
    fn a_json_string_is_what_serde_json_writes() {
        for text in [
            "",
            "plain",
            "a \"quote\"",
            "back\\slash",
            "line\nbreak",
            "\u{7f}",
            "é",
            "\u{9b}",
        ] {
            let mut out = Vec::new();
            write_json_string(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn agrees_with_a_byte_at_a_time(bytes in proptest::collection::vec(
            prop_oneof![0x20..0x7Fu8, any::<u8>()], 0..64)) {
            prop_assert_eq!(first_not_plain(&bytes), byte_at_a_time(&bytes));
        }

        #[test]
        fn json_strings_are_what_serde_json_writes(text in any::<String>()) {
            let mut out = Vec::new();
            write_json_string(&mut out, &text);
            prop_assert_eq!(out, serde_json::to_vec(&text).unwrap());
        }
    }
}
