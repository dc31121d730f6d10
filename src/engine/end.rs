//! A decided end: everything the handover-ended call to Cognigy needs.

use crate::genesys::{ConversationKey, DisconnectType, Topic};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EndReason {
    #[serde(rename = "user.end")]
    UserEnd,
    #[serde(rename = "customer.end")]
    CustomerEnd,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        self.topic().as_str()
    }

    pub fn topic(self) -> Topic {
        match self {
            EndReason::UserEnd => Topic::UserEnd,
            EndReason::CustomerEnd => Topic::CustomerEnd,
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The agent who was with the customer at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSummary {
    pub user_id: Option<String>,
    pub participant_id: Option<String>,
    pub session_id: Option<String>,
    pub queue_id: Option<String>,
    pub wrapup_code: Option<String>,
}

/// One real end of a handover, to be sent to Cognigy exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndNotice {
    pub key: ConversationKey,
    pub genesys_organization_id: String,
    /// The bot platform's Open Messaging user.
    pub user_id: Option<String>,
    pub reason: EndReason,
    pub disconnect_type: Option<DisconnectType>,
    /// eventTime of the deciding event, epoch ms.
    pub ended_at: i64,
    pub episode: u32,
    pub transfers: u32,
    pub agent: Option<AgentSummary>,
    pub correlation_id: Option<String>,
    /// Wall-clock time of the decision, epoch ms.
    pub decided_at_ms: u64,
}

impl EndNotice {
    /// `<organisationId>:<conversationId>:<episode>`: the same on every retry of this end.
    pub fn idempotency_key(&self) -> String {
        idempotency_key(&self.key, self.episode)
    }
}

/// The one builder of the `Idempotency-Key` (and delivery id) of an episode's end. Unambiguous
/// because identifiers never contain `:` (`docs/contract.md` §5).
pub fn idempotency_key(key: &ConversationKey, episode: u32) -> String {
    format!("{}:{}:{episode}", key.organisation_id, key.conversation_id)
}
