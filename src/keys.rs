//! API keys as Cognigy's guide prescribes them: a securely random 23-character alphanumeric
//! string, base64-encoded.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const KEY_CHARACTERS: usize = 23;

/// A new key, from the operating system's secure random source.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut raw = Vec::with_capacity(KEY_CHARACTERS);
    let mut bytes = [0u8; 64];
    while raw.len() < KEY_CHARACTERS {
        getrandom::fill(&mut bytes)?;
        // Rejection sampling: 248 = 4 × 62, so every character is equally likely.
        raw.extend(
            bytes
                .iter()
                .filter(|b| **b < 248)
                .map(|b| ALPHANUMERIC[usize::from(*b % 62)])
                .take(KEY_CHARACTERS - raw.len()),
        );
    }
    Ok(STANDARD.encode(raw))
}

/// What `gen-key` prints: the key alone on the first line (for scripts), then how to store it.
pub fn instructions(key: &str) -> String {
    format!(
        "{key}\n\n\
         Store it where the Helm chart reads it:\n  \
         kubectl create secret generic genesys-handover-secret \\\n    \
         --from-literal=GENESYS_EVENTBRIDGE_HANDOVER_API_KEY='{key}'\n\n\
         Use the same value as the API key of the EventBridge connection (API key name: Authorization).\n\
         To rotate without losing events, set the old key as GENESYS_EVENTBRIDGE_HANDOVER_API_KEY_PREVIOUS\n\
         until EventBridge sends the new one.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_to_23_alphanumeric_characters_and_differ() {
        let first = generate().unwrap();
        let second = generate().unwrap();
        assert_ne!(first, second);
        for key in [first, second] {
            let raw = STANDARD.decode(&key).unwrap();
            assert_eq!(raw.len(), KEY_CHARACTERS);
            assert!(raw.iter().all(u8::is_ascii_alphanumeric), "{key}");
        }
    }
}
