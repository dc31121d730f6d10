//! Small identifiers. Genesys ids are UUIDs: kept as 16 bytes inline instead of a 36-byte string on
//! the heap, they take a third of the memory of a conversation's state. Anything that is not a
//! canonical lowercase UUID is kept as text, so every id reads back exactly as it came in.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CompactId {
    Uuid([u8; 16]),
    Text(Box<str>),
}

const UUID_LEN: usize = 36;
const DASHES: [usize; 4] = [8, 13, 18, 23];

/// Each byte's value as a lowercase hex digit, or `NOT_HEX`.
const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        table[b"0123456789abcdef"[digit] as usize] = digit as u8;
        digit += 1;
    }
    table
};
const NOT_HEX: u8 = 0xFF;

/// Where each of a UUID's 16 bytes has its two hex digits in the canonical text.
const BYTE_AT: [usize; 16] = {
    let mut byte_at = [0; 16];
    let (mut byte, mut at) = (0, 0);
    while byte < 16 {
        if at == DASHES[0] || at == DASHES[1] || at == DASHES[2] || at == DASHES[3] {
            at += 1;
        }
        byte_at[byte] = at;
        at += 2;
        byte += 1;
    }
    byte_at
};

/// The 16 bytes of a canonical lowercase UUID (`8-4-4-4-12`), or `None`.
///
/// Every event parses its conversation and leg ids here, and the engine compares the event's
/// leg with the stored ones through it (`is`): one table look-up per digit, no branch per byte.
fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let bytes: &[u8; UUID_LEN] = text.as_bytes().try_into().ok()?;
    if DASHES.iter().any(|&at| bytes[at] != b'-') {
        return None;
    }
    let mut out = [0u8; 16];
    // Digits are below 16; one `NOT_HEX` anywhere leaves its high bits set here.
    let mut seen = 0u8;
    for (slot, at) in out.iter_mut().zip(BYTE_AT) {
        let high = HEX_VALUE[usize::from(bytes[at])];
        let low = HEX_VALUE[usize::from(bytes[at + 1])];
        seen |= high | low;
        *slot = high << 4 | low;
    }
    (seen < 16).then_some(out)
}

impl CompactId {
    pub fn new(text: &str) -> Self {
        match parse_uuid(text) {
            Some(bytes) => CompactId::Uuid(bytes),
            None => CompactId::Text(text.into()),
        }
    }

    /// Whether this id reads as `text`, without allocating.
    pub fn is(&self, text: &str) -> bool {
        match self {
            CompactId::Text(own) => &**own == text,
            CompactId::Uuid(bytes) => parse_uuid(text).as_ref() == Some(bytes),
        }
    }

    /// Runs `f` on the id's text (a UUID is written to a stack buffer, not the heap).
    pub fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            CompactId::Text(own) => f(own),
            CompactId::Uuid(bytes) => {
                let text = uuid_text(bytes);
                f(std::str::from_utf8(&text).expect("hex digits and dashes"))
            }
        }
    }

    /// The canonical text of an id kept as a UUID (ASCII hex digits and dashes, nothing to
    /// escape anywhere), or `None` for an id kept as text.
    pub fn uuid_text(&self) -> Option<[u8; UUID_LEN]> {
        match self {
            CompactId::Uuid(bytes) => Some(uuid_text(bytes)),
            CompactId::Text(_) => None,
        }
    }
}

/// Each byte's two lowercase hex digits.
const HEX_PAIR: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
        byte += 1;
    }
    table
};

/// A UUID's 16 bytes as its canonical lowercase text: one look-up per byte, because every
/// stored state writes each of its ids this way.
fn uuid_text(bytes: &[u8; 16]) -> [u8; UUID_LEN] {
    let mut text = [b'-'; UUID_LEN];
    for (byte, at) in bytes.iter().zip(BYTE_AT) {
        text[at..at + 2].copy_from_slice(&HEX_PAIR[usize::from(*byte)]);
    }
    text
}

/// An id's text read once, to compare with many stored ids: [`CompactId::is`] reads the text
/// again at every comparison, and an event's leg is compared with each of its conversation's.
#[derive(Clone, Copy)]
pub struct IdText<'a> {
    text: &'a str,
    uuid: Option<[u8; 16]>,
}

impl<'a> IdText<'a> {
    pub fn new(text: &'a str) -> Self {
        IdText {
            text,
            uuid: parse_uuid(text),
        }
    }

    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The same answer as `id.is(text)`.
    pub fn is(&self, id: &CompactId) -> bool {
        match id {
            CompactId::Text(own) => **own == *self.text,
            CompactId::Uuid(bytes) => self.uuid.as_ref() == Some(bytes),
        }
    }

    /// The id itself, as `CompactId::new` would make it.
    pub fn to_id(&self) -> CompactId {
        match self.uuid {
            Some(bytes) => CompactId::Uuid(bytes),
            None => CompactId::Text(self.text.into()),
        }
    }
}

impl From<&str> for CompactId {
    fn from(text: &str) -> Self {
        CompactId::new(text)
    }
}

impl fmt::Display for CompactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_str(|text| f.write_str(text))
    }
}

impl fmt::Debug for CompactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_str(|text| write!(f, "{text:?}"))
    }
}

impl Serialize for CompactId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_str(|text| serializer.serialize_str(text))
    }
}

impl<'de> Deserialize<'de> for CompactId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(CompactId::new(&text))
    }
}

/// `Option<&String>` as an optional compact id.
pub fn compact(text: &Option<String>) -> Option<CompactId> {
    text.as_deref().map(CompactId::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_inline_and_read_back_exactly() {
        let text = "8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d";
        let id = CompactId::new(text);
        assert!(matches!(id, CompactId::Uuid(_)));
        assert_eq!(id.to_string(), text);
        assert!(id.is(text));
        assert!(!id.is("8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5e"));
        assert_eq!(std::mem::size_of::<CompactId>(), 24);
    }

    #[test]
    fn anything_else_is_kept_as_text() {
        for text in [
            "cognigy-user-5f0d8c2e",
            "8A1B2C3D-4E5F-4A6B-9C7D-0E1F2A3B4C5D",
            "",
            "8a1b2c3d4e5f4a6b9c7d0e1f2a3b4c5d00000",
        ] {
            let id = CompactId::new(text);
            assert!(matches!(id, CompactId::Text(_)), "{text}");
            assert_eq!(id.to_string(), text);
            assert!(id.is(text));
        }
    }

    /// The plain definition: 36 bytes, dashes at 8, 13, 18 and 23, lowercase hex elsewhere.
    fn is_canonical_uuid(text: &str) -> bool {
        text.len() == UUID_LEN
            && text.bytes().enumerate().all(|(at, byte)| {
                if DASHES.contains(&at) {
                    byte == b'-'
                } else {
                    byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)
                }
            })
    }

    #[test]
    fn exactly_the_canonical_uuids_are_inline_and_every_id_reads_back() {
        let canonical = "8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d";
        let pool = [
            '0', '9', 'a', 'f', 'g', 'A', 'F', '-', ' ', '/', ':', '`', '\u{0}', 'é', '\u{ff}',
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..50_000 {
            // A canonical UUID with a few characters changed, sometimes one longer or shorter.
            let mut chars: Vec<char> = canonical.chars().collect();
            for _ in 0..rng.usize(0..3) {
                let at = rng.usize(0..chars.len());
                chars[at] = pool[rng.usize(0..pool.len())];
            }
            match rng.u8(0..10) {
                0 => chars.push(pool[rng.usize(0..pool.len())]),
                1 => {
                    chars.pop();
                }
                _ => {}
            }
            let text: String = chars.into_iter().collect();
            let id = CompactId::new(&text);
            assert_eq!(
                matches!(id, CompactId::Uuid(_)),
                is_canonical_uuid(&text),
                "{text:?}"
            );
            assert_eq!(id.to_string(), text);
            assert!(id.is(&text), "{text:?}");
            assert_eq!(
                CompactId::new(canonical).is(&text),
                text == canonical,
                "{text:?}"
            );
        }
    }

    /// `IdText` answers as `CompactId::is` and makes the id `CompactId::new` makes, for texts
    /// near a UUID and ids both inline and kept as text.
    #[test]
    fn an_id_text_read_once_compares_as_the_text_does() {
        let canonical = "8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d";
        let pool = ['0', 'a', 'f', 'g', 'A', '-', ' ', 'é'];
        let mut rng = fastrand::Rng::with_seed(11);
        let mut texts: Vec<String> = vec![canonical.into(), String::new(), "leg-1".into()];
        for _ in 0..2_000 {
            let mut chars: Vec<char> = canonical.chars().collect();
            for _ in 0..rng.usize(0..2) {
                let at = rng.usize(0..chars.len());
                chars[at] = pool[rng.usize(0..pool.len())];
            }
            if rng.bool() {
                chars.truncate(rng.usize(0..chars.len()));
            }
            texts.push(chars.into_iter().collect());
        }
        let ids: Vec<CompactId> = texts
            .iter()
            .step_by(40)
            .map(|text| CompactId::new(text))
            .collect();
        for text in &texts {
            let read = IdText::new(text);
            assert_eq!(read.as_str(), text);
            assert_eq!(read.to_id(), CompactId::new(text), "{text:?}");
            for id in &ids {
                assert_eq!(read.is(id), id.is(text), "{text:?} against {id:?}");
            }
        }
    }

    #[test]
    fn serialises_as_the_original_string() {
        let id = CompactId::new("0e9d8c7b-6a59-4483-9271-605f4e3d2c1b");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0e9d8c7b-6a59-4483-9271-605f4e3d2c1b\"");
        assert_eq!(serde_json::from_str::<CompactId>(&json).unwrap(), id);
    }
}
