//! Liveness and readiness.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// The process is up; checks nothing else, so that a slow store never gets the pod restarted.
pub async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to take traffic: the store answers and the service is not draining.
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    if app.traffic.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        );
    }
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(error) => {
            app.metrics.store_error("ping");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "store_unavailable", "detail": error.to_string() })),
            )
        }
    }
}
