//! What the service says about a decided end: one log line an operator searches for, one count.

use crate::engine::EndNotice;
use crate::metrics::Metrics;

pub fn end_decided(metrics: &Metrics, end: &EndNotice) {
    metrics.end(end);
    tracing::info!(
        organisationId = %end.key.organisation_id,
        conversationId = %end.key.conversation_id,
        topic = end.reason.as_str(),
        correlationId = end.correlation_id.as_deref().unwrap_or_default(),
        decision = "ended",
        reason = end.reason.as_str(),
        disconnectType = end.disconnect_type.as_ref().map(|d| d.as_str()).unwrap_or_default(),
        episode = end.episode,
        transfers = end.transfers,
        endedAt = end.ended_at,
        "handover ended"
    );
}
