//! The EventBridge envelope and the Genesys event body inside it, as they arrive on the wire.

use super::lenient;
use serde::Deserialize;
use serde_json::value::RawValue;

/// One EventBridge event, as an API destination POSTs it. Only `id`, `source`, `detail-type` and
/// `detail` are required: that is what makes a body an EventBridge event.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(borrow)]
    pub detail: Detail<'a>,
}

#[derive(Debug, Deserialize)]
pub struct Detail<'a> {
    #[serde(rename = "topicName", default, deserialize_with = "lenient::string")]
    pub topic_name: Option<String>,
    /// Kept raw: other topics carry bodies of other shapes (audits have a string `eventTime`),
    /// so the body is decoded only once the topic is known to be handled.
    #[serde(rename = "eventBody", borrow, default)]
    pub event_body: Option<&'a RawValue>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub timestamp: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    #[serde(
        rename = "CorrelationId",
        default,
        deserialize_with = "lenient::string"
    )]
    pub correlation_id: Option<String>,
}

/// The fields of a Genesys conversation detail event body that this service reads. Every field is
/// optional in Genesys' schema; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EventBody {
    #[serde(deserialize_with = "lenient::epoch_millis")]
    pub event_time: Option<i64>,
    #[serde(deserialize_with = "lenient::string")]
    pub conversation_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub participant_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub session_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub media_type: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub message_type: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub address_to: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub address_from: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub queue_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub disconnect_type: Option<String>,
    #[serde(deserialize_with = "lenient::integer")]
    pub interacting_duration_ms: Option<i64>,
    #[serde(deserialize_with = "lenient::string")]
    pub wrapup_code: Option<String>,
}
