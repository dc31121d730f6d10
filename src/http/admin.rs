//! Operator routes, off unless `HANDOVER_ADMIN_TOKEN` is set, then behind
//! `Authorization: Bearer <token>`. The EventBridge key never opens them.

use super::AppState;
use super::auth::ApiKeys;
use super::error::ApiError;
use crate::clock::{now_ms, rfc3339_millis};
use crate::engine::{ConversationState, idempotency_key};
use crate::genesys::{
    ConversationKey, MAX_IDENTIFIER_CHARS, MAX_ORGANISATION_ID_CHARS, is_identifier,
};
use crate::store::{Delivery, DeliveryStatus};
use axum::extract::{Path, Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use axum::{Json, Router, routing::get, routing::post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub fn routes(token: Arc<ApiKeys>) -> Router<AppState> {
    Router::new()
        .route(
            "/admin/conversations/{organisation_id}/{conversation_id}",
            get(conversation),
        )
        .route("/admin/dead-letters", get(dead_letters))
        .route("/admin/dead-letters/replay", post(replay))
        .route_layer(axum::middleware::from_fn_with_state(token, require_token))
}

async fn require_token(
    State(token): State<Arc<ApiKeys>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
    match bearer {
        Some(presented) if token.accepts(presented) => Ok(next.run(request).await),
        _ => Err(ApiError::Unauthorized),
    }
}

/// The state the engine holds for one conversation, and where each episode's end stands.
async fn conversation(
    State(app): State<AppState>,
    Path((organisation_id, conversation_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    // Only identifiers events could have created (`docs/contract.md` §5) can name a conversation.
    if !is_identifier(&organisation_id, MAX_ORGANISATION_ID_CHARS)
        || !is_identifier(&conversation_id, MAX_IDENTIFIER_CHARS)
    {
        return Err(ApiError::UnknownConversation);
    }
    let key = ConversationKey::new(organisation_id, conversation_id);
    let state = app
        .store
        .load(&key)
        .await?
        .ok_or(ApiError::UnknownConversation)?;
    let mut deliveries = Vec::new();
    for episode in 1..state.episode {
        let id = idempotency_key(&key, episode);
        let status = app.store.delivery_status(&key, &id).await?;
        deliveries.push(delivery_view(episode, &id, &status));
    }
    let candidate = state.candidate.as_ref().map(|c| {
        json!({
            "leg": c.leg,
            "endAt": rfc3339_millis(c.end_at),
            "graceWindowClosesAt": rfc3339_millis(epoch_ms(c.due_at_ms)),
        })
    });
    Ok(Json(json!({
        "organisationId": key.organisation_id,
        "conversationId": key.conversation_id,
        "openEpisode": state.episode,
        "pendingCandidate": candidate,
        "deliveries": deliveries,
        "state": state_view(&state),
    })))
}

/// What the engine holds, for an operator: its own shape (not the engine's or the store's types,
/// which may change), times as RFC 3339.
fn state_view(state: &ConversationState) -> Value {
    let time = |at: Option<i64>| at.map(rfc3339_millis);
    let legs: Vec<Value> = state
        .legs
        .iter()
        .map(|leg| {
            json!({
                "sessionId": leg.key,
                "participantId": leg.participant_id,
                "userId": leg.user_id,
                "queueId": leg.queue_id,
                "startedAt": time(leg.started_at),
                "end": leg.end.as_ref().map(|end| json!({
                    "at": rfc3339_millis(end.at),
                    "kind": format!("{:?}", end.kind()).to_lowercase(),
                    "disconnectType": end.disconnect_type,
                    "interactingDurationMs": end.interacting_duration_ms,
                })),
                "acw": leg.acw.as_ref().map(|acw| json!({
                    "at": rfc3339_millis(acw.at),
                    "wrapupCode": acw.wrapup_code,
                })),
            })
        })
        .collect();
    let customer_ends: Vec<Value> = state
        .customer_ends
        .iter()
        .map(|c| json!({ "at": rfc3339_millis(c.at), "sessionId": c.leg, "disconnectType": c.disconnect_type }))
        .collect();
    json!({
        "genesysOrganizationId": state.genesys_organization_id,
        "botUserId": state.bot_user_id,
        "episode": state.episode,
        "lastEnd": state.last_end.as_ref().map(|last| json!({
            "at": rfc3339_millis(last.at),
            "episode": last.episode,
        })),
        "legs": legs,
        "customerEnds": customer_ends,
        "tooLarge": state.too_large,
        "fingerprints": state.seen.len(),
    })
}

fn delivery_view(episode: u32, id: &str, status: &DeliveryStatus) -> Value {
    let (label, delivery) = match status {
        DeliveryStatus::Pending(d) => ("pending", Some(d)),
        DeliveryStatus::DeadLetter(d) => ("dead_letter", Some(d)),
        DeliveryStatus::Done => ("done", None),
    };
    json!({
        "episode": episode,
        "idempotencyKey": id,
        "status": label,
        "attempts": delivery.map(|d| d.attempts),
        "nextAttemptAt": delivery.map(|d| rfc3339_millis(epoch_ms(d.next_attempt_at_ms))),
        "lastError": delivery.and_then(|d| d.last_error.clone()),
    })
}

/// A dead letter, for an operator.
fn dead_letter_view(letter: &Delivery) -> Value {
    let end = &letter.notice;
    json!({
        "id": letter.id,
        "organisationId": end.key.organisation_id,
        "conversationId": end.key.conversation_id,
        "episode": end.episode,
        "reason": end.reason.as_str(),
        "endedAt": rfc3339_millis(end.ended_at),
        "attempts": letter.attempts,
        "firstDecidedAt": rfc3339_millis(epoch_ms(letter.created_at_ms)),
        "lastError": letter.last_error,
    })
}

fn epoch_ms(wall_clock_ms: u64) -> i64 {
    i64::try_from(wall_clock_ms).unwrap_or(i64::MAX)
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn dead_letters(
    State(app): State<AppState>,
    Query(query): Query<Limit>,
) -> Result<Json<Value>, ApiError> {
    let letters: Vec<Delivery> = app.store.dead_letters(query.limit.unwrap_or(100)).await?;
    let views: Vec<Value> = letters.iter().map(dead_letter_view).collect();
    Ok(Json(json!({ "count": views.len(), "deadLetters": views })))
}

#[derive(Deserialize)]
struct Only {
    id: Option<String>,
}

/// Puts dead letters (all, or `?id=<idempotency key>`) back in the outbox.
async fn replay(
    State(app): State<AppState>,
    Query(only): Query<Only>,
) -> Result<Json<Value>, ApiError> {
    let replayed = app
        .store
        .replay_dead_letters(now_ms(), only.id.as_deref())
        .await?;
    if replayed > 0 {
        app.conversations.wakers().deliveries.notify_one();
    }
    tracing::info!(replayed, "dead letters replayed by an operator");
    Ok(Json(json!({ "replayed": replayed })))
}
