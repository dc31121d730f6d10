//! Liveness and readiness.

use super::AppState;
use crate::store_health::Readiness;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// The process is up; checks nothing else, so that a slow store never gets the pod restarted.
pub async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to take traffic: the store accepts writes (as the store monitor last found, within
/// a few seconds) and the service is not draining. The store's error is logged by the monitor,
/// never shown here.
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    if app.traffic.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        );
    }
    let readiness = *app.readiness.borrow();
    match readiness {
        Readiness::Ready => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Readiness::Starting => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "starting" })),
        ),
        Readiness::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "store_unavailable" })),
        ),
    }
}
