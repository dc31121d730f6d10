//! Open Messaging pass-through. Cognigy's deployment receives Genesys' Open Messaging outbound
//! webhooks on the same path as EventBridge events; they carry `X-Hub-Signature-256` instead of
//! the API key. With `HANDOVER_PASSTHROUGH_URL` set they are relayed unchanged and the upstream
//! answer is returned; with `HANDOVER_OM_WEBHOOK_SECRET` set, the signature is checked first.

use super::AppState;
use super::error::ApiError;
use super::events::read_body;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// `docs/contract.md` §5: at most this much of the upstream's answer is read.
pub const MAX_UPSTREAM_ANSWER_BYTES: usize = 1024 * 1024;

pub struct Passthrough {
    client: reqwest::Client,
    url: String,
    secret: Option<SecretString>,
}

impl Passthrough {
    pub fn new(url: String, secret: Option<SecretString>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            url,
            secret,
        })
    }
}

/// Whether a request looks like an Open Messaging webhook.
pub fn is_webhook(headers: &HeaderMap) -> bool {
    headers.contains_key(SIGNATURE_HEADER)
}

/// `sha256=` + base64 of HMAC-SHA256(secret, raw body), compared in constant time.
pub fn signature_is_valid(secret: &str, body: &[u8], header_value: &[u8]) -> bool {
    let Some(encoded) = header_value.strip_prefix(b"sha256=") else {
        return false;
    };
    let Ok(expected) = STANDARD.decode(encoded) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Relays one webhook, within the same body limit, request timeout (the router's) and in-flight
/// limit as events.
pub async fn relay(app: &AppState, relay: &Passthrough, request: Request) -> Response {
    let Ok(_permit) = app.in_flight.try_acquire() else {
        app.metrics.passthrough("overloaded");
        return ApiError::Overloaded.into_response();
    };
    let (parts, body) = request.into_parts();
    let body = match read_body(body, app.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let signature = parts.headers.get(SIGNATURE_HEADER).cloned();
    if let Some(secret) = &relay.secret {
        let valid = signature
            .as_ref()
            .is_some_and(|s| signature_is_valid(secret.expose_secret(), &body, s.as_bytes()));
        if !valid {
            app.metrics.passthrough("bad_signature");
            return ApiError::BadSignature.into_response();
        }
    }
    let mut upstream = relay.client.post(&relay.url).body(body);
    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
        upstream = upstream.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(signature) = signature {
        upstream = upstream.header(SIGNATURE_HEADER, signature);
    }
    let mut answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(error) => {
            app.metrics.passthrough("upstream_error");
            tracing::warn!(error = %crate::forward::cause_of(&error), "Open Messaging pass-through failed");
            return ApiError::BadGateway.into_response();
        }
    };
    // 401 and 407 on this path would de-authorize the EventBridge connection.
    if matches!(answer.status().as_u16(), 401 | 407) {
        app.metrics.passthrough("upstream_error");
        tracing::warn!(
            status = answer.status().as_u16(),
            "Open Messaging pass-through target refused the webhook; answered 502"
        );
        return ApiError::BadGateway.into_response();
    }
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let mut bytes = Vec::new();
    loop {
        match answer.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() <= MAX_UPSTREAM_ANSWER_BYTES => {
                bytes.extend_from_slice(&chunk)
            }
            Ok(Some(_)) => {
                app.metrics.passthrough("upstream_error");
                tracing::warn!(
                    limit = MAX_UPSTREAM_ANSWER_BYTES,
                    "Open Messaging pass-through answer too large; answered 502"
                );
                return ApiError::BadGateway.into_response();
            }
            Ok(None) => break,
            Err(error) => {
                app.metrics.passthrough("upstream_error");
                tracing::warn!(error = %crate::forward::cause_of(&error), "Open Messaging pass-through answer unreadable");
                return ApiError::BadGateway.into_response();
            }
        }
    }
    app.metrics.passthrough("relayed");
    let mut response = (status, Body::from(bytes)).into_response();
    if let Some(value) = content_type.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_against_the_raw_body() {
        let body = br#"{"id":"1","channel":{"platform":"Open"}}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(body);
        let header = format!("sha256={}", STANDARD.encode(mac.finalize().into_bytes()));
        assert!(signature_is_valid("secret", body, header.as_bytes()));
        assert!(!signature_is_valid("other", body, header.as_bytes()));
        assert!(!signature_is_valid("secret", b"{}", header.as_bytes()));
        assert!(!signature_is_valid(
            "secret",
            body,
            header.trim_start_matches("sha256=").as_bytes()
        ));
        assert!(!signature_is_valid("secret", body, b"sha256=!!!"));
    }
}
