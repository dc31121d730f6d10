//! The HTTP interface of spec section 2: router, API-key middleware, handlers, errors.

mod auth;
mod error;
mod events;
mod health;

pub use auth::ApiKeys;
pub use error::ApiError;
pub use events::log_end;

use crate::engine::Engine;
use crate::genesys::EventFilter;
use crate::store::Store;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tower_http::trace::TraceLayer;

pub const EVENTS_PATH: &str = "/handover/genesysCloudOM";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    pub filter: Arc<EventFilter>,
    pub api_keys: Arc<ApiKeys>,
    /// Wakes the timer worker: a grace window may have opened.
    pub timer_wake: Arc<Notify>,
    /// Wakes the delivery worker: the outbox has a new end.
    pub delivery_wake: Arc<Notify>,
    /// Set on SIGTERM: readiness turns 503.
    pub draining: Arc<AtomicBool>,
    pub in_flight: Arc<Semaphore>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

/// The whole HTTP interface; tests drive it without a socket.
pub fn router(state: AppState) -> Router {
    let events = Router::new()
        .route(EVENTS_PATH, post(events::receive_event))
        .route_layer(middleware::from_fn_with_state(
            state.request_timeout,
            enforce_timeout,
        ))
        // Outermost: nothing about the request is looked at before the key is checked.
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state.api_keys),
            auth::require_api_key,
        ));
    Router::new()
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .merge(events)
        .fallback(not_found)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Answers 503 (retried by EventBridge) rather than letting its 5 s client timeout expire.
async fn enforce_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    tokio::time::timeout(limit, next.run(request))
        .await
        .map_err(|_| ApiError::Timeout)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}
