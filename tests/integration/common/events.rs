//! Building events for tests: as typed engine input and as the EventBridge JSON Genesys sends.

use handover_receiver::genesys::{ConversationEvent, ConversationKey, DisconnectType, Topic};
use serde_json::{Value, json};

pub const ORG: &str = "handover-prod";
pub use super::wire::GENESYS_ORG;
pub const BOT_USER: &str = "cognigy-user-5f0d8c2e";
pub const WRAPUP: &str = "c0de5a1e-77aa-4f0b-9c1d-2e3f4a5b6c7d";
/// Where a test conversation's time 0 lies in the events posted over HTTP (2025-11-01): the
/// receiver refuses event times before 2000 and far in the future.
pub const EPOCH_MS: i64 = 1_762_000_000_000;

/// One event of a test conversation, by leg name ("A", "B", ...) and event time.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub topic: Topic,
    pub leg: Option<String>,
    pub t: i64,
    pub disconnect_type: Option<String>,
    pub interacting_ms: Option<i64>,
    pub wrapup_code: Option<String>,
}

pub fn start(leg: &str, t: i64) -> Spec {
    Spec::new(Topic::UserStart, Some(leg), t)
}

/// A `user.end` after a real conversation (interacting 120 s).
pub fn end(leg: &str, t: i64, disconnect: &str) -> Spec {
    Spec::new(Topic::UserEnd, Some(leg), t)
        .disconnect(disconnect)
        .interacting(120_000)
}

pub fn reject(leg: &str, t: i64, disconnect: &str) -> Spec {
    end(leg, t, disconnect).interacting(0)
}

pub fn acw(leg: &str, t: i64) -> Spec {
    let mut spec = Spec::new(Topic::Acw, Some(leg), t);
    spec.wrapup_code = Some(WRAPUP.to_owned());
    spec
}

pub fn customer_end(t: i64) -> Spec {
    Spec::new(Topic::CustomerEnd, None, t).disconnect("PEER")
}

pub fn session(leg: &str) -> String {
    format!("session-{leg}")
}

impl Spec {
    pub fn new(topic: Topic, leg: Option<&str>, t: i64) -> Self {
        Self {
            topic,
            leg: leg.map(str::to_owned),
            t,
            disconnect_type: None,
            interacting_ms: None,
            wrapup_code: None,
        }
    }

    pub fn disconnect(mut self, kind: &str) -> Self {
        self.disconnect_type = Some(kind.to_owned());
        self
    }

    pub fn interacting(mut self, ms: i64) -> Self {
        self.interacting_ms = Some(ms);
        self
    }

    /// The session of this event's leg; the customer has a session of its own.
    pub fn session_id(&self) -> String {
        session(self.leg.as_deref().unwrap_or("customer"))
    }

    /// A stable envelope id for this event (EventBridge keeps it across retries).
    pub fn envelope_id(&self, conversation_id: &str) -> String {
        format!(
            "{conversation_id}-{}-{}-{}",
            self.topic,
            self.leg.as_deref().unwrap_or("customer"),
            self.t
        )
    }

    pub fn event(&self, conversation_id: &str) -> ConversationEvent {
        self.event_with_id(conversation_id, &self.envelope_id(conversation_id))
    }

    pub fn event_with_id(&self, conversation_id: &str, envelope_id: &str) -> ConversationEvent {
        let agent = self.leg.as_deref();
        ConversationEvent {
            envelope_id: envelope_id.to_owned(),
            key: ConversationKey::new(ORG, conversation_id),
            genesys_organization_id: GENESYS_ORG.to_owned(),
            topic: self.topic,
            event_time: self.t,
            session_id: Some(self.session_id()),
            participant_id: Some(format!("participant-{}", agent.unwrap_or("customer"))),
            user_id: agent.map(|leg| format!("agent-{leg}")),
            queue_id: agent.map(|_| "queue-1".to_owned()),
            bot_user_id: Some(BOT_USER.to_owned()),
            disconnect_type: self.disconnect_type.as_deref().map(DisconnectType::parse),
            interacting_duration_ms: self.interacting_ms,
            wrapup_code: self.wrapup_code.clone(),
            correlation_id: Some(format!("corr-{}", self.envelope_id(conversation_id))),
        }
    }

    /// The event as EventBridge POSTs it.
    pub fn envelope(&self, conversation_id: &str) -> Value {
        self.envelope_with_id(conversation_id, &self.envelope_id(conversation_id))
    }

    pub fn envelope_with_id(&self, conversation_id: &str, envelope_id: &str) -> Value {
        let agent = self.leg.is_some();
        let mut body = json!({
            "eventTime": EPOCH_MS + self.t,
            "conversationId": conversation_id,
            "participantId": format!("participant-{}", self.leg.as_deref().unwrap_or("customer")),
            "sessionId": self.session_id(),
            "mediaType": "MESSAGE",
            "messageType": "OPEN",
            "provider": "PureCloud Messaging",
            "direction": "INBOUND",
        });
        let (to, from) = if agent {
            (BOT_USER, "genesys-side")
        } else {
            ("genesys-side", BOT_USER)
        };
        body["addressTo"] = json!(to);
        body["addressFrom"] = json!(from);
        if let Some(leg) = &self.leg {
            body["userId"] = json!(format!("agent-{leg}"));
            body["queueId"] = json!("queue-1");
        }
        if let Some(kind) = &self.disconnect_type {
            body["disconnectType"] = json!(kind);
        }
        if let Some(ms) = self.interacting_ms {
            body["interactingDurationMs"] = json!(ms);
        }
        if let Some(code) = &self.wrapup_code {
            body["wrapupCode"] = json!(code);
        }
        super::wire::envelope(
            ORG,
            self.topic.as_str(),
            conversation_id,
            envelope_id,
            &format!("corr-{envelope_id}"),
            body,
        )
    }
}
