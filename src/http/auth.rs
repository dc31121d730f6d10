//! The EventBridge API key (`Authorization: <key>`, compared in constant time), and who is
//! calling the events path.

use super::AppState;
use super::error::ApiError;
use super::passthrough::{self, Passthrough};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// The accepted keys: the current one and, during rotation, the previous one.
pub struct ApiKeys(Vec<SecretString>);

impl ApiKeys {
    pub fn new(keys: Vec<SecretString>) -> Self {
        Self(keys)
    }

    /// Compares against every key, without stopping at the first match, so that the time taken
    /// does not tell which key (or how much of one) matched.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let matched = self.0.iter().fold(subtle::Choice::from(0), |acc, key| {
            acc | key.expose_secret().as_bytes().ct_eq(presented)
        });
        bool::from(matched)
    }
}

/// The User-Agent EventBridge API destinations send.
const EVENTBRIDGE_USER_AGENT: &str = "Amazon/EventBridge/ApiDestinations";

/// Who is calling the events path.
pub enum Caller<'a> {
    /// EventBridge, with a valid API key.
    EventBridge,
    /// A signed Open Messaging webhook, with the pass-through set up to relay it.
    Webhook(&'a Passthrough),
    /// Anyone else: 401.
    Unknown,
}

/// Nothing about the request but these headers is looked at before the key is checked.
pub fn caller<'a>(app: &'a AppState, headers: &HeaderMap) -> Caller<'a> {
    let presented = headers.get(AUTHORIZATION).map(|v| v.as_bytes());
    if presented.is_some_and(|value| app.api_keys.accepts(value)) {
        return Caller::EventBridge;
    }
    match app.passthrough.as_deref() {
        Some(relay) if passthrough::is_webhook(headers) => Caller::Webhook(relay),
        _ => Caller::Unknown,
    }
}

/// Counts a 401: by caller, since only EventBridge's put its connection at risk.
pub fn unauthorized(app: &AppState, headers: &HeaderMap) -> ApiError {
    app.metrics.rejected(401);
    let from_eventbridge = headers.get(USER_AGENT).is_some_and(|agent| {
        agent
            .as_bytes()
            .starts_with(EVENTBRIDGE_USER_AGENT.as_bytes())
    });
    app.metrics.unauthorized(from_eventbridge);
    ApiError::Unauthorized
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_either_key_and_nothing_else() {
        let keys = ApiKeys::new(vec!["current".into(), "previous".into()]);
        assert!(keys.accepts(b"current"));
        assert!(keys.accepts(b"previous"));
        assert!(!keys.accepts(b"curren"));
        assert!(!keys.accepts(b"current "));
        assert!(!keys.accepts(b"Bearer current"));
        assert!(!keys.accepts(b""));
    }
}
