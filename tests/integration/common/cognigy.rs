//! A fake Cognigy (wiremock on 127.0.0.1) for the handover-ended calls.

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Answers every POST, on any path, with `status`.
pub async fn answering(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}
