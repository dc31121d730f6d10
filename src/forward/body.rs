//! The bodies of the handover-ended call (`docs/contract.md` §6).

use crate::clock::rfc3339_millis;
use crate::engine::{AgentSummary, EndNotice};
use serde::Serialize;

/// `HANDOVER_FORWARD_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardFormat {
    /// This service's `handover.ended` event.
    Event,
    /// The body of Cognigy's earlier HTTP-webhook handover-end contract.
    CognigyWebhook,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HandoverEnded<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    organisation_id: &'a str,
    genesys_organization_id: &'a str,
    conversation_id: &'a str,
    user_id: Option<&'a str>,
    reason: &'static str,
    disconnect_type: Option<&'a str>,
    ended_at: String,
    episode: u32,
    transfers: u32,
    agent: Option<&'a AgentSummary>,
    correlation_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookEnd<'a> {
    user_id: Option<&'a str>,
    topic: String,
    disconnect_type: Option<&'a str>,
}

pub fn render(format: ForwardFormat, end: &EndNotice) -> Vec<u8> {
    let disconnect_type = end.disconnect_type.as_ref().map(|kind| kind.as_str());
    let body = match format {
        ForwardFormat::Event => serde_json::to_vec(&HandoverEnded {
            kind: "handover.ended",
            organisation_id: end.key.organisation_id.as_str(),
            genesys_organization_id: &end.genesys_organization_id,
            conversation_id: end.key.conversation_id.as_str(),
            user_id: end.user_id.as_deref(),
            reason: end.reason.as_str(),
            disconnect_type,
            ended_at: rfc3339_millis(end.ended_at),
            episode: end.episode,
            transfers: end.transfers,
            agent: end.agent.as_ref(),
            correlation_id: end.correlation_id.as_deref(),
        }),
        ForwardFormat::CognigyWebhook => serde_json::to_vec(&WebhookEnd {
            user_id: end.user_id.as_deref(),
            topic: end
                .reason
                .topic()
                .name_for(end.key.conversation_id.as_str()),
            disconnect_type,
        }),
    };
    body.expect("plain structs serialise")
}
