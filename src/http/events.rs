//! `POST /handover/genesysCloudOM`: one EventBridge event in, one decision out.

use super::AppState;
use super::error::ApiError;
use crate::clock::now_ms;
use crate::engine::{Applied, Decision, Engine};
use crate::genesys::{Classified, ConversationEvent, classify};
use crate::report;
use crate::store::Transition;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

pub async fn receive_event(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let answer = handle_event(&app, &headers, body).await;
    if let Err(error) = &answer {
        app.metrics.rejected(error.status().as_u16());
        if let ApiError::Store(_) = error {
            app.metrics.store_error("update");
        }
    }
    answer
}

async fn handle_event(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(headers)?;
    let _permit = app
        .in_flight
        .try_acquire()
        .map_err(|_| ApiError::Overloaded)?;
    let bytes = read_body(body, app.max_body_bytes).await?;

    let event = match classify(&bytes, &app.filter)? {
        Classified::Handled(event) => event,
        Classified::Ignored { reason, topic } => {
            let topic = topic.map_or("other", |t| t.as_str());
            tracing::debug!(topic, reason = reason.as_str(), "event ignored");
            app.metrics.event(topic, "ignored", Some(reason.as_str()));
            return Ok(ignored(reason.as_str()));
        }
    };
    let (applied, wake_at) = apply(app, &event).await?;
    log_decision(&event, &applied);
    app.metrics
        .decision(applied.decision, applied.candidate_cancelled);
    for end in &applied.ends {
        report::end_decided(&app.metrics, end);
    }
    if !applied.ends.is_empty() {
        app.delivery_wake.notify_one();
    }
    // Waking the timer worker costs a thread wake-up: only when a grace window is open (the worker
    // also polls, so a window opened elsewhere is never missed).
    if wake_at.is_some() {
        app.timer_wake.notify_one();
    }

    let topic = event.topic.as_str();
    Ok(match applied.decision {
        Decision::Duplicate => {
            app.metrics.event(topic, "duplicate", None);
            (StatusCode::OK, Json(json!({ "status": "duplicate" }))).into_response()
        }
        decision if decision.is_ignored() => {
            app.metrics.event(topic, "ignored", Some(decision.as_str()));
            ignored(decision.as_str())
        }
        decision => {
            app.metrics.event(topic, "accepted", None);
            let body = json!({
                "status": "accepted",
                "decision": decision.as_str(),
                "conversationId": event.key.conversation_id,
            });
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    })
}

/// Runs the engine on the conversation's state through the store; returns what the committed
/// run decided, and when the conversation's grace window closes (if one is open).
async fn apply(
    app: &AppState,
    event: &ConversationEvent,
) -> Result<(Applied, Option<u64>), ApiError> {
    let now = now_ms();
    let engine = app.engine;
    let mut outcome = None;
    app.store
        .update(&event.key, now, &mut |current| {
            let mut state = current.unwrap_or_else(|| Engine::initial_state(event));
            let applied = engine.apply(&mut state, event, now);
            let ends = applied.ends.clone();
            outcome = Some((applied, state.wake_at_ms()));
            Some(Transition { state, ends })
        })
        .await?;
    Ok(outcome.expect("the store ran the transition"))
}

/// A content type, when present, must be JSON (`application/json`, or any `+json`).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let mime = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || mime.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            text.chars().take(100).collect(),
        ))
    }
}

pub async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge { limit }),
        Err(error) => Err(ApiError::UnreadableBody(error.to_string())),
    }
}

fn ignored(reason: &str) -> Response {
    (
        StatusCode::OK,
        Json(json!({ "status": "ignored", "reason": reason })),
    )
        .into_response()
}

fn log_decision(event: &ConversationEvent, applied: &Applied) {
    tracing::info!(
        organisationId = %event.key.organisation_id,
        conversationId = %event.key.conversation_id,
        topic = event.topic.as_str(),
        correlationId = event.correlation_id.as_deref().unwrap_or_default(),
        eventTime = event.event_time,
        decision = applied.decision.as_str(),
        candidateCancelled = applied.candidate_cancelled,
        "event processed"
    );
}
