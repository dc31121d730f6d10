//! Building the real service for tests, from command-line style settings.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::Parser;
use handover_receiver::Service;
use handover_receiver::cli::Cli;
use handover_receiver::config::Settings;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const KEY: &str = "dGVzdGtleTIzY2hhcmFjdGVyc2xvbmc=";
pub const PREVIOUS_KEY: &str = "cHJldmlvdXNrZXkyM2NoYXJzbG9uZzE=";
pub const EVENTS: &str = "/handover/genesysCloudOM";

/// Settings with the API key set and `extra` flags, as `--flag value` pairs.
pub fn settings(extra: &[&str]) -> Settings {
    let mut argv = vec!["handover-receiver", "--api-key", KEY];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv)
        .expect("arguments parse")
        .settings
        .settings()
        .expect("settings are valid")
}

/// The service (not yet serving) with the API key set and `extra` flags.
pub fn service(extra: &[&str]) -> Service {
    Service::build(settings(extra)).expect("service builds")
}

/// A response, with its body read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

/// Sends one request through the router (no socket).
pub async fn send(service: &Service, request: Request<Body>) -> Answer {
    let response = service
        .router()
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body reads")
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{status}: body is not JSON: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A POST of `body` to the events path with the given Authorization header.
pub fn post_event(body: impl Into<Body>, authorization: Option<&str>) -> Request<Body> {
    let mut builder =
        Request::post(EVENTS).header("content-type", "application/json; charset=utf-8");
    if let Some(key) = authorization {
        builder = builder.header("authorization", key);
    }
    builder.body(body.into()).expect("request builds")
}

pub fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
