//! From a request body to either a typed conversation event or the reason it is not one.

use super::envelope::{Envelope, EventBody};
use super::ids::ConversationKey;
use super::topic::{Topic, parse_topic_name};
use super::{DisconnectType, lenient};
use serde::Serialize;
use std::collections::HashSet;
use thiserror::Error;

/// Every Genesys partner event source starts so; test environments add `.test`.
const GENESYS_SOURCE_PREFIX: &str = "aws.partner/genesys.com";
const MESSAGE_MEDIA: &str = "MESSAGE";

/// Which events the service cares about, beyond the topic (spec section 3).
#[derive(Debug, Clone)]
pub struct EventFilter {
    /// `None` accepts every organisation.
    pub allowed_organisations: Option<HashSet<String>>,
    /// Upper-case Genesys `messageType`s handled, e.g. `OPEN`.
    pub message_types: HashSet<String>,
}

impl Default for EventFilter {
    fn default() -> Self {
        Self {
            allowed_organisations: None,
            message_types: HashSet::from(["OPEN".to_owned()]),
        }
    }
}

/// A handled event, decoded and filtered: what the decision engine consumes.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationEvent {
    pub envelope_id: String,
    pub key: ConversationKey,
    pub genesys_organization_id: String,
    pub topic: Topic,
    /// `eventBody.eventTime`, epoch milliseconds: the only order that counts.
    pub event_time: i64,
    pub session_id: Option<String>,
    pub participant_id: Option<String>,
    /// The agent (`user.*`, `acw`).
    pub user_id: Option<String>,
    pub queue_id: Option<String>,
    /// The bot platform's Open Messaging user: `addressTo` on agent events, `addressFrom` on
    /// customer events.
    pub bot_user_id: Option<String>,
    pub disconnect_type: Option<DisconnectType>,
    pub interacting_duration_ms: Option<i64>,
    pub wrapup_code: Option<String>,
    pub correlation_id: Option<String>,
}

/// A valid event with nothing to do: answered 200 `ignored` with this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    OtherTopic,
    OtherSource,
    OtherOrganisation,
    OtherMedia,
    OtherMessageType,
}

impl IgnoreReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::OtherTopic => "other_topic",
            IgnoreReason::OtherSource => "other_source",
            IgnoreReason::OtherOrganisation => "other_organisation",
            IgnoreReason::OtherMedia => "other_media",
            IgnoreReason::OtherMessageType => "other_message_type",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Classified {
    Handled(Box<ConversationEvent>),
    /// Valid but not for us; the topic is kept for logs and metrics.
    Ignored {
        reason: IgnoreReason,
        topic: Option<Topic>,
    },
}

/// Why a body is not an event this service can take: answered 400, not retried by EventBridge.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidEvent {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not an EventBridge event: {0}")]
    NotAnEnvelope(String),
    #[error("{topic} event has no conversationId")]
    MissingConversationId { topic: Topic },
    #[error("{topic} event has no eventTime (nor detail.timestamp)")]
    MissingEventTime { topic: Topic },
}

impl InvalidEvent {
    /// A stable machine-readable code for the `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            InvalidEvent::NotJson(_) => "invalid_json",
            InvalidEvent::NotAnEnvelope(_) => "not_an_eventbridge_event",
            InvalidEvent::MissingConversationId { .. } => "missing_conversation_id",
            InvalidEvent::MissingEventTime { .. } => "missing_event_time",
        }
    }
}

/// Parses a request body and applies the filters of spec section 3, before any state is touched.
pub fn classify(body: &[u8], filter: &EventFilter) -> Result<Classified, InvalidEvent> {
    let envelope: Envelope<'_> = serde_json::from_slice(body).map_err(|err| {
        if err.is_data() {
            InvalidEvent::NotAnEnvelope(err.to_string())
        } else {
            InvalidEvent::NotJson(err.to_string())
        }
    })?;

    let topic_source = envelope
        .detail
        .topic_name
        .as_deref()
        .unwrap_or(&envelope.detail_type);
    let Some(topic_name) = parse_topic_name(topic_source) else {
        return Ok(ignored(IgnoreReason::OtherTopic, None));
    };
    let topic = topic_name.topic;

    let Some((genesys_organization_id, organisation_id)) = parse_source(&envelope.source) else {
        return Ok(ignored(IgnoreReason::OtherSource, Some(topic)));
    };

    let body: EventBody = match envelope.detail.event_body {
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|err| InvalidEvent::NotAnEnvelope(format!("detail.eventBody: {err}")))?,
        None => EventBody::default(),
    };

    // The topic name carries the id too; the pattern in `detail-type` does not.
    let conversation_id = body
        .conversation_id
        .clone()
        .filter(|id| !id.is_empty())
        .or_else(|| Some(topic_name.conversation_id.to_owned()))
        .filter(|id| !id.is_empty() && id != "{id}")
        .ok_or(InvalidEvent::MissingConversationId { topic })?;

    if let Some(allowed) = &filter.allowed_organisations {
        if !allowed.contains(organisation_id) {
            return Ok(ignored(IgnoreReason::OtherOrganisation, Some(topic)));
        }
    }
    if !body
        .media_type
        .as_deref()
        .is_some_and(|media| media.eq_ignore_ascii_case(MESSAGE_MEDIA))
    {
        return Ok(ignored(IgnoreReason::OtherMedia, Some(topic)));
    }
    if !body
        .message_type
        .as_deref()
        .is_some_and(|kind| filter.message_types.contains(&kind.to_ascii_uppercase()))
    {
        return Ok(ignored(IgnoreReason::OtherMessageType, Some(topic)));
    }

    let event_time = body
        .event_time
        .or_else(|| {
            envelope
                .detail
                .timestamp
                .as_deref()
                .and_then(lenient::parse_rfc3339_millis)
        })
        .ok_or(InvalidEvent::MissingEventTime { topic })?;

    let bot_user_id = if topic.is_agent_event() {
        body.address_to
    } else {
        body.address_from
    };
    Ok(Classified::Handled(Box::new(ConversationEvent {
        envelope_id: envelope.id,
        key: ConversationKey::new(organisation_id, conversation_id),
        genesys_organization_id: genesys_organization_id.to_owned(),
        topic,
        event_time,
        session_id: body.session_id,
        participant_id: body.participant_id,
        user_id: body.user_id,
        queue_id: body.queue_id,
        bot_user_id,
        disconnect_type: body.disconnect_type.as_deref().map(DisconnectType::parse),
        interacting_duration_ms: body.interacting_duration_ms,
        wrapup_code: body.wrapup_code,
        correlation_id: envelope.detail.metadata.and_then(|m| m.correlation_id),
    })))
}

fn ignored(reason: IgnoreReason, topic: Option<Topic>) -> Classified {
    Classified::Ignored { reason, topic }
}

/// Splits `aws.partner/genesys.com/cloud/<genesys-org-id>/<suffix>` into the Genesys
/// organisation id and the suffix, which is the tenant's organisationId.
pub fn parse_source(source: &str) -> Option<(&str, &str)> {
    if !source.starts_with(GENESYS_SOURCE_PREFIX) {
        return None;
    }
    let (before, organisation_id) = source.rsplit_once('/')?;
    let genesys_organization_id = before.rsplit('/').next().unwrap_or_default();
    if organisation_id.is_empty() {
        return None;
    }
    Some((genesys_organization_id, organisation_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_both_organisations() {
        assert_eq!(
            parse_source("aws.partner/genesys.com/cloud/3f2c/handover-prod"),
            Some(("3f2c", "handover-prod"))
        );
        assert_eq!(
            parse_source("aws.partner/genesys.com.test/cloud/3f2c/tenant_1"),
            Some(("3f2c", "tenant_1"))
        );
        assert_eq!(parse_source("aws.partner/genesys.com/cloud/3f2c/"), None);
        assert_eq!(parse_source("aws.partner/other.com/cloud/3f2c/x"), None);
        assert_eq!(parse_source("aws.events"), None);
    }
}
