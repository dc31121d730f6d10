//! Genesys notification topics: which ones this service handles and how to read them.

use serde::{Deserialize, Serialize};
use std::fmt;

const CONVERSATION_PREFIX: &str = "v2.detail.events.conversation.";

/// The four conversation detail topics that decide a handover's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    #[serde(rename = "user.start")]
    UserStart,
    #[serde(rename = "user.end")]
    UserEnd,
    #[serde(rename = "acw")]
    Acw,
    #[serde(rename = "customer.end")]
    CustomerEnd,
}

impl Topic {
    pub const ALL: [Topic; 4] = [
        Topic::UserStart,
        Topic::UserEnd,
        Topic::Acw,
        Topic::CustomerEnd,
    ];

    /// The topic's suffix, as it ends a topic name: `user.end`.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::UserStart => "user.start",
            Topic::UserEnd => "user.end",
            Topic::Acw => "acw",
            Topic::CustomerEnd => "customer.end",
        }
    }

    fn from_suffix(suffix: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.as_str() == suffix)
    }

    /// Events about an agent's leg (`user.*`, `acw`), as opposed to the customer's.
    pub fn is_agent_event(self) -> bool {
        !matches!(self, Topic::CustomerEnd)
    }

    /// The concrete topic name for a conversation: `v2.detail.events.conversation.<id>.user.end`.
    pub fn name_for(self, conversation_id: &str) -> String {
        format!("{CONVERSATION_PREFIX}{conversation_id}.{}", self.as_str())
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A topic name split into the handled topic and the conversation id it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicName<'a> {
    pub topic: Topic,
    /// The id between the prefix and the suffix; `{id}` in a `detail-type` pattern.
    pub conversation_id: &'a str,
}

/// Reads `v2.detail.events.conversation.<id>.<suffix>`; `None` for any other topic.
pub fn parse_topic_name(name: &str) -> Option<TopicName<'_>> {
    let rest = name.strip_prefix(CONVERSATION_PREFIX)?;
    let (conversation_id, suffix) = rest.split_once('.')?;
    let topic = Topic::from_suffix(suffix)?;
    Some(TopicName {
        topic,
        conversation_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_handled_topic() {
        for topic in Topic::ALL {
            let name = topic.name_for("8a1b2c3d");
            let parsed = parse_topic_name(&name).expect("handled topic parses");
            assert_eq!(parsed.topic, topic);
            assert_eq!(parsed.conversation_id, "8a1b2c3d");
        }
    }

    #[test]
    fn reads_the_detail_type_pattern() {
        let parsed = parse_topic_name("v2.detail.events.conversation.{id}.acw").unwrap();
        assert_eq!(parsed.topic, Topic::Acw);
        assert_eq!(parsed.conversation_id, "{id}");
    }

    #[test]
    fn other_topics_are_not_handled() {
        for name in [
            "v2.detail.events.conversation.abc.acd.start",
            "v2.detail.events.conversation.abc.customer.start",
            "v2.detail.events.conversation.abc.user.end.extra",
            "v2.audits.entitytype.Queue.entityid.abc",
            "v2.detail.events.conversation.abc",
            "",
        ] {
            assert_eq!(parse_topic_name(name), None, "{name}");
        }
    }
}
