//! The HTTP interface of `docs/contract.md` §2: router, API-key middleware, handlers, errors.

mod admin;
mod answer;
mod auth;
mod error;
mod events;
mod health;
mod passthrough;
mod timing;

pub use auth::ApiKeys;
pub use error::ApiError;
pub use passthrough::{Passthrough, SIGNATURE_HEADER, signature_is_valid};

use crate::conversation::Conversations;
use crate::genesys::EventFilter;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store_health::ReadinessWatch;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

pub const EVENTS_PATH: &str = "/handover/genesysCloudOM";

/// What the handlers share. One `Arc`: axum clones the state for every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    /// Applies events and announces what they decided.
    pub conversations: Arc<Conversations>,
    /// Read directly only by metrics and the admin routes.
    pub store: Arc<dyn Store>,
    /// Whether the store accepts writes, as the store monitor last found.
    pub readiness: ReadinessWatch,
    pub filter: Arc<EventFilter>,
    pub api_keys: Arc<ApiKeys>,
    /// Cancelled on SIGTERM: no new traffic, readiness turns 503.
    pub traffic: CancellationToken,
    pub in_flight: Arc<Semaphore>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub metrics: Arc<Metrics>,
    /// `/metrics` is served on the main listener (no `HANDOVER_METRICS_ADDR`).
    pub metrics_on_main_listener: bool,
    /// `HANDOVER_ADMIN_TOKEN`: the admin routes exist only when it is set.
    pub admin_token: Option<Arc<ApiKeys>>,
    /// `HANDOVER_PASSTHROUGH_URL`: where Open Messaging webhooks are relayed.
    pub passthrough: Option<Arc<Passthrough>>,
}

/// The whole HTTP interface; tests drive it without a socket.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route(EVENTS_PATH, post(events_path));
    if state.metrics_on_main_listener {
        router = router.route("/metrics", get(render_metrics));
    }
    if let Some(token) = &state.admin_token {
        router = router.merge(admin::routes(Arc::clone(token)));
    }
    let router = router
        .fallback(not_found)
        .layer(timing::TimeRequestsLayer::new(Arc::clone(&state.metrics)));
    // Request spans and their start and end lines are DEBUG: the layer that makes them is added
    // only when they would be written. Below DEBUG it did nothing but cost every event a span
    // check, two clock reads and a wrapped response body.
    let router = if request_tracing_enabled() {
        // 5xx answers log themselves once, with their reason (a 503 is a WARN: it is retried).
        router.layer(TraceLayer::new_for_http().on_failure(()))
    } else {
        router
    };
    router.with_state(state)
}

/// Whether the current subscriber writes tower-http's DEBUG request spans or lines (for example
/// `RUST_LOG=debug` or `RUST_LOG=info,tower_http=debug`). The log filter is fixed at start-up,
/// so asking once, when the router is built, is enough.
fn request_tracing_enabled() -> bool {
    tracing::enabled!(target: "tower_http::trace::make_span", tracing::Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_request", tracing::Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_response", tracing::Level::DEBUG)
}

/// The events path has two callers: EventBridge with the API key, and (with
/// `HANDOVER_PASSTHROUGH_URL`) Genesys' signed Open Messaging webhooks, relayed as they are.
/// Anyone else gets 401, and nothing about the request but its headers is looked at first.
///
/// Events and relayed webhooks alike are answered within the request timeout: a 503 (retried by
/// EventBridge) rather than letting its 5 s client timeout expire. Events carry the deadline to
/// where they wait ([`events::receive_event`]); a relay, rare, is wrapped in a timer. Neither is
/// a middleware layer, which would cost a boxed future and a service clone per event.
async fn events_path(State(app): State<AppState>, request: Request) -> Response {
    let deadline = Instant::now() + app.request_timeout;
    match auth::caller(&app, request.headers()) {
        auth::Caller::EventBridge => events::receive_event(&app, request, deadline).await,
        auth::Caller::Webhook(relay) => {
            tokio::time::timeout_at(deadline, passthrough::relay(&app, relay, request))
                .await
                .unwrap_or_else(|_| ApiError::Timeout.into_response())
        }
        auth::Caller::Unknown => auth::unauthorized(&app, request.headers()).into_response(),
    }
}

/// `/metrics` alone, for its own listener (`HANDOVER_METRICS_ADDR`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .fallback(not_found)
        .with_state(state)
}

/// Prometheus text format; the store's sizes are read at scrape time.
async fn render_metrics(State(app): State<AppState>) -> Response {
    match app.store.counts().await {
        Ok(counts) => app.metrics.store_counts(&counts),
        Err(_) => app.metrics.store_error("counts"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

#[cfg(test)]
mod tests {
    use super::request_tracing_enabled;
    use tracing_subscriber::EnvFilter;

    fn enabled_under(filter: &str) -> bool {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(filter))
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, request_tracing_enabled)
    }

    #[test]
    fn request_spans_are_made_only_when_debug_would_write_them() {
        assert!(!enabled_under("info"));
        assert!(!enabled_under("warn,handover_receiver=debug"));
        assert!(enabled_under("debug"));
        assert!(enabled_under("info,tower_http=debug"));
        assert!(enabled_under("info,tower_http::trace::on_response=debug"));
    }
}
