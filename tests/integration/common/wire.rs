//! An EventBridge envelope around a Genesys event body, as an API destination POSTs it. Shared by
//! the tests' event builder and the benchmark's generator (which includes this file by path).

use serde_json::{Value, json};

/// The Genesys organisation of every test and benchmark event.
pub const GENESYS_ORG: &str = "3f2c9d1e-7a44-4c1b-8e0f-5b6a7c8d9e01";

/// The envelope of one event of `topic` (e.g. `user.end`) for `conversation` of `organisation`.
pub fn envelope(
    organisation: &str,
    topic: &str,
    conversation: &str,
    envelope_id: &str,
    correlation_id: &str,
    body: Value,
) -> Value {
    json!({
        "version": "0",
        "id": envelope_id,
        "detail-type": format!("v2.detail.events.conversation.{{id}}.{topic}"),
        "source": format!("aws.partner/genesys.com/cloud/{GENESYS_ORG}/{organisation}"),
        "account": "123456789012",
        "time": "2025-11-04T10:15:42Z",
        "region": "eu-central-1",
        "resources": [],
        "detail": {
            "topicName": format!("v2.detail.events.conversation.{conversation}.{topic}"),
            "version": "2",
            "eventBody": body,
            "metadata": {"CorrelationId": correlation_id},
            "timestamp": "2025-11-04T10:15:41.907Z"
        }
    })
}
