//! The one error type of the HTTP layer, and the status each case maps to (`docs/contract.md` §2.2).
//!
//! EventBridge de-authorizes its whole connection on 401 or 407, so only `Unauthorized` may ever
//! produce 401, and nothing produces 407.

use crate::genesys::InvalidEvent;
use crate::store::StoreError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::borrow::Cow;

/// Seconds EventBridge is asked to wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong API key")]
    Unauthorized,
    #[error(transparent)]
    InvalidEvent(#[from] InvalidEvent),
    #[error("request body could not be read: {0}")]
    UnreadableBody(String),
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("content type {0:?} is not JSON")]
    UnsupportedMediaType(String),
    #[error("content encoding {0:?} is not supported (gzip, deflate or none)")]
    UnsupportedEncoding(String),
    #[error("a batch holds {0} events; at most {max} are accepted", max = super::events::MAX_BATCH)]
    BatchTooLarge(usize),
    #[error("the batch is an empty array")]
    EmptyBatch,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("too many events in flight; retry later")]
    Overloaded,
    #[error("the event took too long to process; retry later")]
    Timeout,
    #[error("no such route")]
    NotFound,
    #[error("X-Hub-Signature-256 does not match the body")]
    BadSignature,
    #[error("the Open Messaging pass-through target did not answer")]
    BadGateway,
    #[error(
        "no state for this conversation: never seen, or forgotten after HANDOVER_STATE_TTL_SECS"
    )]
    UnknownConversation,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::InvalidEvent(_) | ApiError::UnreadableBody(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } | ApiError::BatchTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::EmptyBatch => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::Store(_) | ApiError::Overloaded | ApiError::Timeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::NotFound | ApiError::UnknownConversation => StatusCode::NOT_FOUND,
            ApiError::BadSignature => StatusCode::FORBIDDEN,
            ApiError::BadGateway => StatusCode::BAD_GATEWAY,
        }
    }

    /// A stable machine-readable code for the `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidEvent(invalid) => invalid.code(),
            ApiError::UnreadableBody(_) => "unreadable_body",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::UnsupportedEncoding(_) => "unsupported_encoding",
            ApiError::BatchTooLarge(_) => "batch_too_large",
            ApiError::EmptyBatch => "empty_batch",
            ApiError::Store(StoreError::Full(_)) | ApiError::Overloaded => "overloaded",
            ApiError::Store(StoreError::Unavailable(_)) => "store_unavailable",
            ApiError::Timeout => "timeout",
            ApiError::NotFound | ApiError::UnknownConversation => "not_found",
            ApiError::BadSignature => "bad_signature",
            ApiError::BadGateway => "bad_gateway",
        }
    }
}

/// The JSON body of a refusal: `{"error": code, "detail": why}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Cow<'static, str>>,
}

impl ApiError {
    /// The JSON body of this error's answer.
    pub fn body(&self) -> ErrorBody {
        let detail = match self {
            // The 401 body says nothing more: an unauthenticated caller learns nothing.
            ApiError::Unauthorized => None,
            // The cause is logged; a Redis error names keys that carry conversation ids.
            ApiError::Store(_) => Some(Cow::Borrowed(
                "the state store is unavailable or full; retry later",
            )),
            _ => Some(Cow::Owned(self.to_string())),
        };
        ErrorBody {
            error: self.code(),
            detail,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // One line per 503, with its reason: EventBridge retries, so it is not an error.
            tracing::warn!(reason = self.code(), cause = %self, "answered 503; the sender will retry");
        }
        let mut response = (status, Json(self.body())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}
