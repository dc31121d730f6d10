//! `POST /handover/genesysCloudOM`: one EventBridge event (or a batch of them) in, one answer out.

use super::AppState;
use super::answer::{Answer, AnswerBody, BatchItem, Outcome};
use super::error::ApiError;
use crate::clock::now_ms;
use crate::engine::Decision;
use crate::genesys::{Classified, classify};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::value::RawValue;
use std::io::Read;
use tokio::time::Instant;

/// `docs/contract.md` §5: events in one batch at most.
pub const MAX_BATCH: usize = 100;

/// An event (or a batch) from EventBridge, its key already checked, answered by `deadline`.
///
/// No timer wraps it: each wait is bounded by the deadline where it waits. The body's read gets
/// a timer of its own only when the body is still on its way, and the store gives up by the
/// deadline (`Store::update`). A timer around the whole cost a Redis event about 2,000
/// instructions, 2 % (benches/load/NOTES.md, twelfth round), since it was registered whenever
/// the store went to Redis.
pub async fn receive_event(app: &AppState, request: Request, deadline: Instant) -> Response {
    let (parts, body) = request.into_parts();
    match handle_request(app, &parts.headers, body, deadline).await {
        Ok(response) => response,
        Err(error) => {
            app.metrics.rejected(error.status().as_u16());
            if let ApiError::Store(_) = error {
                app.metrics.store_error("update");
            }
            error.into_response()
        }
    }
}

async fn handle_request(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
    deadline: Instant,
) -> Result<Response, ApiError> {
    require_json(headers)?;
    let encoding = content_encoding(headers)?;
    let _permit = app
        .in_flight
        .try_acquire()
        .map_err(|_| ApiError::Overloaded)?;
    let bytes = tokio::time::timeout_at(deadline, read_body(body, app.max_body_bytes))
        .await
        .map_err(|_| ApiError::Timeout)??;
    let bytes = decode(bytes, encoding, app.max_body_bytes)?;
    let answer = if starts_with_array(&bytes) {
        handle_batch(app, &bytes, deadline).await?
    } else {
        handle_event(app, &bytes, deadline).await?
    };
    Ok(answer.into_response())
}

/// `docs/contract.md` §5: each item as if posted alone, in order. A 503 of any item makes the batch 503 (the
/// items before it keep their effect and are duplicates on the retry); any other refusal is
/// that item's result.
async fn handle_batch(app: &AppState, bytes: &[u8], deadline: Instant) -> Result<Answer, ApiError> {
    let items: Vec<&RawValue> = serde_json::from_slice(bytes)
        .map_err(|e| crate::genesys::InvalidEvent::NotJson(e.to_string()))?;
    if items.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::BatchTooLarge(items.len()));
    }
    let mut results = Vec::with_capacity(items.len());
    let mut any_accepted = false;
    for item in items {
        let answer = match handle_event(app, item.get().as_bytes(), deadline).await {
            Ok(answer) => answer,
            Err(error) if error.status() == StatusCode::SERVICE_UNAVAILABLE => return Err(error),
            Err(error) => {
                app.metrics.rejected(error.status().as_u16());
                Answer {
                    status: error.status(),
                    body: AnswerBody::Refused(error.body()),
                }
            }
        };
        any_accepted |= answer.status == StatusCode::ACCEPTED;
        results.push(BatchItem {
            status: answer.status.as_u16(),
            body: answer.body,
        });
    }
    Ok(Answer {
        status: if any_accepted {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        },
        body: AnswerBody::Outcome(Outcome::Batch { results }),
    })
}

async fn handle_event(app: &AppState, bytes: &[u8], deadline: Instant) -> Result<Answer, ApiError> {
    let now = now_ms();
    let event = match classify(bytes, &app.filter, now)? {
        Classified::Handled(event) => event,
        Classified::Ignored { reason, topic } => {
            let topic = topic.map_or("other", |t| t.as_str());
            tracing::debug!(topic, reason = reason.as_str(), "event ignored");
            app.metrics.event(topic, "ignored", Some(reason.as_str()));
            return Ok(Answer::ignored(reason.as_str()));
        }
    };
    let applied = app.conversations.apply(&event, now, deadline).await?;
    Ok(match applied.decision {
        Decision::Duplicate => Answer {
            status: StatusCode::OK,
            body: AnswerBody::Outcome(Outcome::Duplicate),
        },
        decision if decision.is_ignored() => Answer::ignored(decision.as_str()),
        decision => Answer {
            status: StatusCode::ACCEPTED,
            body: AnswerBody::Outcome(Outcome::Accepted {
                decision: decision.as_str(),
                // Moved, not copied: the event is done with.
                conversation_id: event.key.conversation_id.into_string(),
            }),
        },
    })
}

/// A content type, when present, must be JSON (`application/json`, or any `+json`).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let mime = text.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case("application/json") || ends_with_ignoring_case(mime, "+json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            text.chars().take(100).collect(),
        ))
    }
}

/// Whether `text` ends with `suffix` (ASCII), in any case: a media type, compared without a
/// lowercased copy per request.
fn ends_with_ignoring_case(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text.as_bytes()[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

/// `docs/contract.md` §5: gzip and deflate are decoded; any other encoding is refused with 415.
fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let text = value.to_str().unwrap_or("?").trim().to_ascii_lowercase();
    match text.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        _ => Err(ApiError::UnsupportedEncoding(
            text.chars().take(50).collect(),
        )),
    }
}

/// The decoded body; more than `limit` decoded bytes (a compression bomb) is 413.
fn decode(bytes: Bytes, encoding: Encoding, limit: usize) -> Result<Bytes, ApiError> {
    let read_limited = |reader: &mut dyn Read| -> Result<Bytes, ApiError> {
        let mut decoded = Vec::new();
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut decoded)
            .map_err(|e| ApiError::UnreadableBody(format!("the body does not decode: {e}")))?;
        if decoded.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        Ok(Bytes::from(decoded))
    };
    match encoding {
        Encoding::Identity => Ok(bytes),
        Encoding::Gzip => read_limited(&mut flate2::read::MultiGzDecoder::new(&bytes[..])),
        // HTTP's "deflate" is zlib-wrapped, but some senders use raw deflate.
        Encoding::Deflate if bytes.first().is_some_and(|b| b & 0x0f == 8) => {
            read_limited(&mut flate2::read::ZlibDecoder::new(&bytes[..]))
        }
        Encoding::Deflate => read_limited(&mut flate2::read::DeflateDecoder::new(&bytes[..])),
    }
}

fn starts_with_array(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[')
}

pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge { limit }),
        Err(error) => Err(ApiError::UnreadableBody(error.to_string())),
    }
}
