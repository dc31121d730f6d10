//! Identifiers that are easy to mix up when they are all plain strings.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The tenant: the event source suffix chosen in Genesys (Cognigy's organisationId).
    OrganisationId
);
string_id!(
    /// A Genesys conversation id (reused when the same customer writes again).
    ConversationId
);

/// What identifies one conversation's state: tenant and conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConversationKey {
    pub organisation_id: OrganisationId,
    pub conversation_id: ConversationId,
}

impl ConversationKey {
    pub fn new(organisation_id: impl Into<String>, conversation_id: impl Into<String>) -> Self {
        Self {
            organisation_id: OrganisationId::new(organisation_id),
            conversation_id: ConversationId::new(conversation_id),
        }
    }
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.organisation_id, self.conversation_id)
    }
}
