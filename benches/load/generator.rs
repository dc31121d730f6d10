//! Realistic traffic of one Genesys organisation: Open Messaging conversations handed over to one
//! or several agents (transfers with their after-call work arriving before or after the next
//! agent's start, rejects, takeovers, often a customer.end), duplicates and republished events,
//! slight reordering, and the noise a real organisation's bus carries (voice calls, audits).

use serde_json::{Value, json};

pub const ORG: &str = "bench-org";

#[path = "../../tests/integration/common/wire.rs"]
mod wire;
use wire::GENESYS_ORG;

/// One conversation's deliveries (bodies as EventBridge POSTs them), noise included.
pub struct Conversation {
    pub id: String,
    pub bodies: Vec<String>,
}

struct Event {
    t: i64,
    topic: &'static str,
    leg: usize,
    extra: Value,
}

pub struct Generator {
    rng: fastrand::Rng,
    /// Distinguishes the conversations of different runs and workers.
    stream: u32,
}

impl Generator {
    pub fn new(seed: u64, stream: u32) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            stream,
        }
    }

    /// A UUID-shaped conversation id, as Genesys' are.
    fn id(&self, n: u64) -> String {
        format!("{:08x}-4e5f-4a6b-9c7d-{n:012x}", self.stream)
    }

    /// The next conversation; every one ends with a final agent end, so every one must lead to
    /// exactly one handover-ended call.
    pub fn conversation(&mut self, n: u64) -> Conversation {
        let id = self.id(n);
        let rng = &mut self.rng;
        let agents = match rng.u8(0..100) {
            0..=54 => 1,
            55..=84 => 2,
            85..=95 => 3,
            _ => 4,
        };
        let mut events = Vec::new();
        let mut t: i64 = 1_762_250_000_000 + rng.i64(0..1_000_000_000);
        for leg in 0..agents - 1 {
            events.push(Event {
                t,
                topic: "user.start",
                leg,
                extra: json!({}),
            });
            let end = t + rng.i64(30_000..600_000);
            match rng.u8(0..100) {
                0..=79 => {
                    events.push(user_end(end, leg, "TRANSFER", 120_000));
                    events.push(Event {
                        t: end + rng.i64(1_500..6_000),
                        topic: "acw",
                        leg,
                        extra: json!({"wrapupCode": "c0de5a1e-77aa-4f0b-9c1d-2e3f4a5b6c7d"}),
                    });
                }
                80..=94 => events.push(user_end(end, leg, "CLIENT", 0)),
                _ => events.push(user_end(end, leg, "TAKEOVER", 90_000)),
            }
            t = end + rng.i64(200..4_000);
        }
        let last = agents - 1;
        events.push(Event {
            t,
            topic: "user.start",
            leg: last,
            extra: json!({}),
        });
        let end = t + rng.i64(30_000..900_000);
        events.push(user_end(end, last, "CLIENT", 300_000));
        if rng.u8(0..100) < 60 {
            events.push(Event {
                t: end + 15,
                topic: "customer.end",
                leg: usize::MAX,
                extra: json!({"disconnectType": "PEER"}),
            });
        }
        if rng.u8(0..100) < 70 {
            events.push(Event {
                t: end + 1_000,
                topic: "acw",
                leg: last,
                extra: json!({"wrapupCode": "c0de5a1e-77aa-4f0b-9c1d-2e3f4a5b6c7d"}),
            });
        }
        events.sort_by_key(|e| e.t);
        // EventBridge reorders: swap some neighbours.
        for i in 1..events.len() {
            if rng.u8(0..100) < 15 {
                events.swap(i - 1, i);
            }
        }
        let mut bodies = Vec::with_capacity(events.len() * 2);
        for (k, event) in events.iter().enumerate() {
            let envelope_id = format!("{id}-{k}");
            let body = envelope(&id, n, &envelope_id, event);
            match rng.u8(0..100) {
                0..=2 => bodies.extend([body.clone(), body]),
                3..=4 => {
                    let republished = envelope(&id, n, &format!("{envelope_id}-again"), event);
                    bodies.extend([body, republished]);
                }
                _ => bodies.push(body),
            }
            // Noise: a real organisation's bus carries every voice call's agent events, and more.
            if rng.u8(0..100) < 40 {
                bodies.push(voice(&format!("{id}-voice-{k}"), event.t));
            }
            if rng.u8(0..100) < 3 {
                bodies.push(audit(&format!("{id}-audit-{k}")));
            }
        }
        Conversation { id, bodies }
    }

    /// A conversation left half-way (transfer done, the next agent working): what tracked state
    /// typically looks like, for memory measurements.
    pub fn open_conversation(&mut self, n: u64) -> Vec<String> {
        let id = self.id(n);
        let t = 1_762_250_000_000 + self.rng.i64(0..1_000_000_000);
        let events = [
            Event {
                t,
                topic: "user.start",
                leg: 0,
                extra: json!({}),
            },
            user_end(t + 200_000, 0, "TRANSFER", 120_000),
            Event {
                t: t + 203_000,
                topic: "acw",
                leg: 0,
                extra: json!({"wrapupCode": "c0de5a1e-77aa-4f0b-9c1d-2e3f4a5b6c7d"}),
            },
            Event {
                t: t + 201_000,
                topic: "user.start",
                leg: 1,
                extra: json!({}),
            },
        ];
        events
            .iter()
            .enumerate()
            .map(|(k, e)| envelope(&id, n, &format!("{id}-{k}"), e))
            .collect()
    }
}

fn user_end(t: i64, leg: usize, disconnect: &str, interacting: i64) -> Event {
    Event {
        t,
        topic: "user.end",
        leg,
        extra: json!({"disconnectType": disconnect, "interactingDurationMs": interacting, "heldDurationMs": 0, "alertingDurationMs": 3512}),
    }
}

/// UUID-shaped participant, session and user ids, distinct per conversation, leg and kind.
fn uuid_for(n: u64, leg: usize, what: u8) -> String {
    format!("{what:02x}{leg:06x}-0000-4000-8000-{n:012x}")
}

fn envelope(conversation: &str, n: u64, envelope_id: &str, event: &Event) -> String {
    let customer = event.topic.starts_with("customer");
    let leg = if customer { 99 } else { event.leg };
    let mut body = json!({
        "eventTime": event.t,
        "conversationId": conversation,
        "participantId": uuid_for(n, leg, 1),
        "sessionId": uuid_for(n, leg, 2),
        "mediaType": "MESSAGE",
        "provider": "PureCloud Messaging",
        "direction": "INBOUND",
        "addressTo": if customer { "b7c1e2d3-0f4a-4b5c-9d6e-7f8091a2b3c4" } else { "cognigy-user-5f0d8c2e" },
        "addressFrom": if customer { "cognigy-user-5f0d8c2e" } else { "b7c1e2d3-0f4a-4b5c-9d6e-7f8091a2b3c4" },
        "messageType": "OPEN",
        "conversationExternalContactIds": ["5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"],
    });
    if !customer {
        body["userId"] = json!(uuid_for(n, leg, 3));
        body["queueId"] = json!("0a1b2c3d-4e5f-4607-8899-aabbccddeeff");
        body["divisionId"] = json!("d17c0a55-0000-4000-8000-000000000001");
    }
    for (key, value) in event.extra.as_object().into_iter().flatten() {
        body[key] = value.clone();
    }
    wire::envelope(
        ORG,
        event.topic,
        conversation,
        envelope_id,
        "c4d5e6f7-0819-4a2b-b3c4-d5e6f708192a",
        body,
    )
    .to_string()
}

fn voice(id: &str, t: i64) -> String {
    json!({
        "version": "0", "id": id,
        "detail-type": "v2.detail.events.conversation.{id}.user.end",
        "source": format!("aws.partner/genesys.com/cloud/{GENESYS_ORG}/{ORG}"),
        "account": "123456789012", "time": "2025-11-04T10:15:42Z", "region": "eu-central-1", "resources": [],
        "detail": {
            "topicName": "v2.detail.events.conversation.71c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e.user.end",
            "version": "2",
            "eventBody": {"eventTime": t, "conversationId": "71c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e",
                "disconnectType": "CLIENT", "mediaType": "VOICE", "provider": "Edge", "direction": "INBOUND",
                "interactingDurationMs": 477873, "ani": "tel:+4930123456", "dnis": "tel:+4930999999"},
            "metadata": {"CorrelationId": "c4d5e6f7-0819-4a2b-b3c4-d5e6f708192a"},
            "timestamp": "2025-11-04T10:15:41.907Z"
        }
    })
    .to_string()
}

fn audit(id: &str) -> String {
    json!({
        "version": "0", "id": id, "detail-type": "v2.audits.entitytype.{id}.entityid.{id}",
        "source": format!("aws.partner/genesys.com/cloud/{GENESYS_ORG}/{ORG}"),
        "account": "123456789012", "time": "2025-11-04T10:20:11Z", "region": "eu-central-1", "resources": [],
        "detail": {"topicName": "v2.audits.entitytype.Queue.entityid.0a1b2c3d-4e5f-4607-8899-aabbccddeeff",
            "version": "2", "eventBody": {"eventTime": "2025-11-04T10:20:11.000Z", "action": "Update", "entityType": "Queue"},
            "metadata": {"CorrelationId": "4f3e2d1c-0b9a-4887-b6a5-c4d3e2f1a0b9"}, "timestamp": "2025-11-04T10:20:11.412Z"}
    })
    .to_string()
}
