//! The EventBridge API key: `Authorization: <key>`, compared in constant time.

use super::error::ApiError;
use super::{AppState, passthrough};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
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

pub async fn require_api_key(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    match presented {
        Some(value) if app.api_keys.accepts(value) => Ok(next.run(request).await),
        _ if passthrough::is_webhook(request.headers()) && app.passthrough.is_some() => {
            let relay = app.passthrough.clone().expect("checked above");
            Ok(passthrough::relay(&app, &relay, request).await)
        }
        _ => {
            app.metrics.rejected(401);
            Err(ApiError::Unauthorized)
        }
    }
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
