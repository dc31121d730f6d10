//! The EventBridge API key: `Authorization: <key>`, compared in constant time.

use super::error::ApiError;
use super::{AppState, passthrough};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::middleware::Next;
use axum::response::Response;
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

/// The events path has two kinds of caller: EventBridge with the API key, and (when
/// `HANDOVER_PASSTHROUGH_URL` is set) Genesys' signed Open Messaging webhooks, relayed as they are.
/// Anyone else gets 401.
pub async fn require_api_key(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    if presented.is_some_and(|value| app.api_keys.accepts(value)) {
        return Ok(next.run(request).await);
    }
    if let Some(relay) = app
        .passthrough
        .as_ref()
        .filter(|_| passthrough::is_webhook(request.headers()))
    {
        return Ok(passthrough::relay(&app, relay, request).await);
    }
    app.metrics.rejected(401);
    app.metrics
        .unauthorized(from_eventbridge(request.headers()));
    Err(ApiError::Unauthorized)
}

fn from_eventbridge(headers: &HeaderMap) -> bool {
    headers.get(USER_AGENT).is_some_and(|agent| {
        agent
            .as_bytes()
            .starts_with(EVENTBRIDGE_USER_AGENT.as_bytes())
    })
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
