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
/// `docs/contract.md` §5: key identifiers are 1 to this many characters of `A-Z a-z 0-9 . _ -`.
pub const MAX_IDENTIFIER_CHARS: usize = 128;
/// The organisationId is an EventBridge event source suffix: at most 64 characters.
pub const MAX_ORGANISATION_ID_CHARS: usize = 64;
/// `docs/contract.md` §5: other strings are at most this many bytes.
pub const MAX_FIELD_BYTES: usize = 256;
/// `docs/contract.md` §5: no event is dated before 2000-01-01T00:00:00Z.
pub const EARLIEST_EVENT_TIME_MS: i64 = 946_684_800_000;
/// `HANDOVER_MAX_FUTURE_MS` by default.
pub const DEFAULT_MAX_FUTURE_MS: u64 = 300_000;

/// Which events the service cares about, beyond the topic (`docs/contract.md` §3).
#[derive(Debug, Clone)]
pub struct EventFilter {
    /// `None` accepts every organisation.
    pub allowed_organisations: Option<HashSet<String>>,
    /// Upper-case Genesys `messageType`s handled, e.g. `OPEN`.
    pub message_types: HashSet<String>,
    /// `HANDOVER_MAX_FUTURE_MS`: an event dated further ahead of the clock is refused.
    pub max_future_ms: u64,
}

impl Default for EventFilter {
    fn default() -> Self {
        Self {
            allowed_organisations: None,
            message_types: HashSet::from(["OPEN".to_owned()]),
            max_future_ms: DEFAULT_MAX_FUTURE_MS,
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
    #[error("{field} {problem}")]
    InvalidIdentifier {
        field: &'static str,
        problem: String,
    },
    #[error("{field} is {bytes} bytes long; at most {MAX_FIELD_BYTES} are accepted")]
    InvalidField { field: &'static str, bytes: usize },
    #[error(
        "eventTime {event_time} is before 2000-01-01 or more than {max_future_ms} ms ahead of this receiver's clock (HANDOVER_MAX_FUTURE_MS)"
    )]
    EventTimeOutOfRange { event_time: i64, max_future_ms: u64 },
}

impl InvalidEvent {
    /// A stable machine-readable code for the `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            InvalidEvent::NotJson(_) => "invalid_json",
            InvalidEvent::NotAnEnvelope(_) => "not_an_eventbridge_event",
            InvalidEvent::MissingConversationId { .. } => "missing_conversation_id",
            InvalidEvent::MissingEventTime { .. } => "missing_event_time",
            InvalidEvent::InvalidIdentifier { .. } => "invalid_identifier",
            InvalidEvent::InvalidField { .. } => "invalid_field",
            InvalidEvent::EventTimeOutOfRange { .. } => "event_time_out_of_range",
        }
    }
}

/// Parses a request body, applies the filters of `docs/contract.md` §3, then its limits (§5)
/// (identifiers, field sizes, time against `now_ms`), before any state is touched.
pub fn classify(
    body: &[u8],
    filter: &EventFilter,
    now_ms: u64,
) -> Result<Classified, InvalidEvent> {
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
    if let Some(allowed) = &filter.allowed_organisations {
        if !allowed.contains(organisation_id) {
            return Ok(ignored(IgnoreReason::OtherOrganisation, Some(topic)));
        }
    }

    let body: EventBody = match envelope.detail.event_body {
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|err| InvalidEvent::NotAnEnvelope(format!("detail.eventBody: {err}")))?,
        None => EventBody::default(),
    };
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

    // The topic name carries the id too; the pattern in `detail-type` does not.
    let conversation_id = body
        .conversation_id
        .clone()
        .filter(|id| !id.is_empty())
        .or_else(|| Some(topic_name.conversation_id.to_owned()))
        .filter(|id| !id.is_empty() && id != "{id}")
        .ok_or(InvalidEvent::MissingConversationId { topic })?;

    // `docs/contract.md` §5: so that no key, URL or log line built from them can be forged or ambiguous.
    identifier("organisationId", organisation_id, MAX_ORGANISATION_ID_CHARS)?;
    identifier(
        "genesysOrganizationId",
        genesys_organization_id,
        MAX_IDENTIFIER_CHARS,
    )?;
    identifier("conversationId", &conversation_id, MAX_IDENTIFIER_CHARS)?;
    let session_id = optional_identifier("sessionId", body.session_id)?;
    let participant_id = optional_identifier("participantId", body.participant_id)?;
    let correlation_id = envelope.detail.metadata.and_then(|m| m.correlation_id);
    for (field, value) in [
        ("id", Some(&envelope.id)),
        ("addressTo", body.address_to.as_ref()),
        ("addressFrom", body.address_from.as_ref()),
        ("userId", body.user_id.as_ref()),
        ("queueId", body.queue_id.as_ref()),
        ("wrapupCode", body.wrapup_code.as_ref()),
        ("detail.metadata.CorrelationId", correlation_id.as_ref()),
        ("disconnectType", body.disconnect_type.as_ref()),
    ] {
        if let Some(bytes) = value.map(String::len).filter(|len| *len > MAX_FIELD_BYTES) {
            return Err(InvalidEvent::InvalidField { field, bytes });
        }
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
    let latest = i64::try_from(now_ms.saturating_add(filter.max_future_ms)).unwrap_or(i64::MAX);
    if !(EARLIEST_EVENT_TIME_MS..=latest).contains(&event_time) {
        return Err(InvalidEvent::EventTimeOutOfRange {
            event_time,
            max_future_ms: filter.max_future_ms,
        });
    }

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
        session_id,
        participant_id,
        user_id: body.user_id,
        queue_id: body.queue_id,
        bot_user_id,
        disconnect_type: body.disconnect_type.as_deref().map(DisconnectType::parse),
        interacting_duration_ms: body.interacting_duration_ms,
        wrapup_code: body.wrapup_code,
        correlation_id,
    })))
}

/// Whether `value` is a key identifier of `docs/contract.md` §5: 1 to `max` characters of
/// `A-Z a-z 0-9 . _ -`, and not `.` or `..`.
pub fn is_identifier(value: &str, max: usize) -> bool {
    (1..=max).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && value != "."
        && value != ".."
}

fn identifier(field: &'static str, value: &str, max: usize) -> Result<(), InvalidEvent> {
    if is_identifier(value, max) {
        return Ok(());
    }
    // The value itself is not repeated: it may be huge, or written to forge a log line.
    Err(InvalidEvent::InvalidIdentifier {
        field,
        problem: format!(
            "must be 1 to {max} characters of A-Z a-z 0-9 . _ - (and not . or ..); got {} bytes",
            value.len()
        ),
    })
}

/// An optional identifier: absent or empty is `None`, anything else must be valid.
fn optional_identifier(
    field: &'static str,
    value: Option<String>,
) -> Result<Option<String>, InvalidEvent> {
    match value.filter(|v| !v.is_empty()) {
        Some(value) => identifier(field, &value, MAX_IDENTIFIER_CHARS).map(|()| Some(value)),
        None => Ok(None),
    }
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
