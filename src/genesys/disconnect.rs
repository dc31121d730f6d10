//! Genesys `disconnectType`. The list has grown over the years, so unknown values are kept.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

macro_rules! disconnect_types {
    ($($variant:ident => $text:literal),+ $(,)?) => {
        /// Why a participant's session ended.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DisconnectType {
            $($variant,)+
            /// A value Genesys added after this list was written.
            Unlisted(String),
        }

        impl DisconnectType {
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => DisconnectType::$variant,)+
                    other => DisconnectType::Unlisted(other.to_owned()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $(DisconnectType::$variant => $text,)+
                    DisconnectType::Unlisted(text) => text,
                }
            }
        }
    };
}

disconnect_types! {
    Endpoint => "ENDPOINT",
    Client => "CLIENT",
    System => "SYSTEM",
    Transfer => "TRANSFER",
    Error => "ERROR",
    Peer => "PEER",
    Other => "OTHER",
    Spam => "SPAM",
    Timeout => "TIMEOUT",
    TransportFailure => "TRANSPORT_FAILURE",
    ConferenceTransfer => "CONFERENCE_TRANSFER",
    ConsultTransfer => "CONSULT_TRANSFER",
    ForwardTransfer => "FORWARD_TRANSFER",
    NoAnswerTransfer => "NO_ANSWER_TRANSFER",
    NotAvailableTransfer => "NOT_AVAILABLE_TRANSFER",
    Uncallable => "UNCALLABLE",
    DndEndpoint => "DND_ENDPOINT",
    DndTransfer => "DND_TRANSFER",
    Inactivity => "INACTIVITY",
    SessionExpired => "SESSION_EXPIRED",
    Takeover => "TAKEOVER",
    Unknown => "UNKNOWN",
}

impl DisconnectType {
    /// Another agent or the queue takes the conversation over (`docs/contract.md` §4, rule 2).
    pub fn is_transfer(&self) -> bool {
        matches!(
            self,
            DisconnectType::Transfer
                | DisconnectType::ConsultTransfer
                | DisconnectType::ConferenceTransfer
                | DisconnectType::ForwardTransfer
                | DisconnectType::NoAnswerTransfer
                | DisconnectType::NotAvailableTransfer
                | DisconnectType::DndTransfer
        )
    }

    /// A supervisor took the conversation over from the agent (`docs/contract.md` §4, rule 2).
    pub fn is_takeover(&self) -> bool {
        matches!(self, DisconnectType::Takeover)
    }

    /// The leg ended but the conversation moved on: counted in `transfers`.
    pub fn hands_on(&self) -> bool {
        self.is_transfer() || self.is_takeover()
    }
}

impl fmt::Display for DisconnectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DisconnectType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DisconnectType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(DisconnectType::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip() {
        for text in [
            "CLIENT",
            "PEER",
            "TRANSFER",
            "TAKEOVER",
            "OTHER",
            "DND_TRANSFER",
        ] {
            let parsed = DisconnectType::parse(text);
            assert!(!matches!(parsed, DisconnectType::Unlisted(_)), "{text}");
            assert_eq!(parsed.as_str(), text);
        }
    }

    #[test]
    fn unknown_values_are_kept() {
        let parsed = DisconnectType::parse("QUANTUM_TUNNEL");
        assert_eq!(parsed, DisconnectType::Unlisted("QUANTUM_TUNNEL".into()));
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            "\"QUANTUM_TUNNEL\""
        );
    }

    #[test]
    fn transfer_kinds_and_takeover_hand_on() {
        let handing_on = [
            "TRANSFER",
            "CONSULT_TRANSFER",
            "CONFERENCE_TRANSFER",
            "FORWARD_TRANSFER",
            "NO_ANSWER_TRANSFER",
            "NOT_AVAILABLE_TRANSFER",
            "DND_TRANSFER",
            "TAKEOVER",
        ];
        for text in handing_on {
            assert!(DisconnectType::parse(text).hands_on(), "{text}");
        }
        for text in [
            "CLIENT",
            "ENDPOINT",
            "PEER",
            "SYSTEM",
            "INACTIVITY",
            "NEW_KIND",
        ] {
            assert!(!DisconnectType::parse(text).hands_on(), "{text}");
        }
    }
}
