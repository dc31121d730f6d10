//! Genesys Cloud events as EventBridge delivers them: wire types, topics, filters.

mod classify;
mod disconnect;
mod envelope;
mod ids;
pub mod lenient;
mod topic;

pub use classify::{
    Classified, ConversationEvent, EARLIEST_EVENT_TIME_MS, EventFilter, IgnoreReason, InvalidEvent,
    MAX_FIELD_BYTES, MAX_IDENTIFIER_CHARS, MAX_ORGANISATION_ID_CHARS, classify, is_identifier,
    parse_source,
};
pub use disconnect::DisconnectType;
pub use envelope::{Detail, Envelope, EventBody, Metadata};
pub use ids::{ConversationId, ConversationKey, OrganisationId};
pub use topic::{Topic, TopicName, parse_topic_name};
