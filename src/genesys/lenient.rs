//! Lenient field decoders. Genesys marks every body field optional and its types have drifted
//! over the years, so a field of an unexpected type becomes `None` instead of failing the event.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A string, or a number written as a string; anything else is `None`.
pub fn string<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(de)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// An integer, a float (truncated) or a numeric string; anything else is `None`.
pub fn integer<'de, D: Deserializer<'de>>(de: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(de)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// Epoch milliseconds as Genesys detail events send them, or an RFC 3339 string as other
/// Genesys topics do.
pub fn epoch_millis<'de, D: Deserializer<'de>>(de: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(de)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| parse_rfc3339_millis(&s)),
        _ => None,
    })
}

/// Parses an RFC 3339 timestamp (`2025-11-04T10:15:41.907Z`) to epoch milliseconds.
pub fn parse_rfc3339_millis(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(text.trim()).ok()?;
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "integer")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "string")]
        s: Option<String>,
        #[serde(default, deserialize_with = "epoch_millis")]
        t: Option<i64>,
    }

    fn probe(json: &str) -> Probe {
        serde_json::from_str(json).expect("probe parses")
    }

    #[test]
    fn integers_accept_numbers_floats_and_numeric_strings() {
        assert_eq!(probe(r#"{"n": 42}"#).n, Some(42));
        assert_eq!(probe(r#"{"n": 42.9}"#).n, Some(42));
        assert_eq!(probe(r#"{"n": " 7 "}"#).n, Some(7));
        assert_eq!(probe(r#"{"n": "x"}"#).n, None);
        assert_eq!(probe(r#"{"n": [1]}"#).n, None);
        assert_eq!(probe(r#"{}"#).n, None);
    }

    #[test]
    fn strings_accept_numbers_and_drop_other_types() {
        assert_eq!(probe(r#"{"s": "a"}"#).s.as_deref(), Some("a"));
        assert_eq!(probe(r#"{"s": 5}"#).s.as_deref(), Some("5"));
        assert_eq!(probe(r#"{"s": {"a": 1}}"#).s, None);
        assert_eq!(probe(r#"{"s": null}"#).s, None);
    }

    #[test]
    fn event_time_accepts_millis_and_rfc3339() {
        assert_eq!(probe(r#"{"t": 1762251341873}"#).t, Some(1_762_251_341_873));
        assert_eq!(
            probe(r#"{"t": "2025-11-04T10:15:41.873Z"}"#).t,
            Some(1_762_251_341_873)
        );
        assert_eq!(probe(r#"{"t": "yesterday"}"#).t, None);
    }
}
