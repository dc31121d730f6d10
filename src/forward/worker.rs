//! The delivery worker: takes due ends from the outbox, sends them, and records the outcome.
//! It never runs on the request path.

use super::client::{Attempt, CognigyClient};
use super::retry::RetryPolicy;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::store::{Delivery, Settlement, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// Deliveries sent concurrently at most.
const BATCH: usize = 32;
/// Longest sleep between looks at the outbox (another replica may have added to it).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// How ends leave the service.
pub enum Sender {
    /// Shadow mode: decide, log and count, send nothing.
    Shadow,
    Cognigy(CognigyClient),
}

pub struct DeliveryWorker {
    pub store: Arc<dyn Store>,
    pub sender: Arc<Sender>,
    pub policy: RetryPolicy,
    /// How long a claimed delivery is ours before another replica may take it over: longer than
    /// one call to Cognigy can take.
    pub lease_ms: u64,
    /// Woken when the outbox gains an entry.
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

impl DeliveryWorker {
    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut rng = fastrand::Rng::new();
        while !*stop.borrow() {
            let claimed = match self
                .store
                .claim_deliveries(now_ms(), BATCH, self.lease_ms)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    self.metrics.store_error("outbox");
                    tracing::warn!(%error, "cannot read the outbox; trying again");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                let pause = self.idle_pause().await;
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let mut attempts = JoinSet::new();
            for delivery in claimed {
                let sender = Arc::clone(&self.sender);
                attempts.spawn(async move {
                    let started = Instant::now();
                    let attempt = attempt(&sender, &delivery).await;
                    (delivery, attempt, started.elapsed())
                });
            }
            while let Some(joined) = attempts.join_next().await {
                let Ok((delivery, attempt, took)) = joined else {
                    continue;
                };
                let sent = !matches!(attempt, Attempt::NotSent);
                let (settlement, result) = self.settlement(&delivery, attempt, &mut rng);
                self.metrics.forward_attempt(result, sent.then_some(took));
                if let Err(error) = self.store.settle(&delivery, settlement).await {
                    self.metrics.store_error("outbox");
                    tracing::warn!(%error, id = %delivery.id, "cannot record a delivery outcome; it will be tried again");
                }
            }
        }
    }

    async fn idle_pause(&self) -> Duration {
        match self.store.next_delivery_at().await {
            Ok(Some(at)) => Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_POLL),
            _ => IDLE_POLL,
        }
    }

    /// What to record for an attempt, and the result it counts as in the metrics.
    fn settlement(
        &self,
        delivery: &Delivery,
        attempt: Attempt,
        rng: &mut fastrand::Rng,
    ) -> (Settlement, &'static str) {
        let end = &delivery.notice;
        let span = tracing::info_span!(
            "delivery",
            organisationId = %end.key.organisation_id,
            conversationId = %end.key.conversation_id,
            episode = end.episode,
            correlationId = end.correlation_id.as_deref().unwrap_or_default(),
            attempt = delivery.attempts + 1,
        );
        let _entered = span.enter();
        match attempt {
            Attempt::Delivered { status } => {
                tracing::info!(status, "handover end delivered");
                (Settlement::Done, "delivered")
            }
            Attempt::NotSent => (Settlement::Done, "shadow"),
            Attempt::NotFound => {
                tracing::info!("Cognigy has no such handover (404); not retried");
                (Settlement::Done, "not_found")
            }
            Attempt::Failed {
                error,
                retry_after,
                configuration,
            } => {
                let now = now_ms();
                if self.policy.gives_up(delivery.created_at_ms, now) {
                    tracing::error!(%error, "handover end undeliverable; kept as a dead letter");
                    return (Settlement::DeadLetter { error }, "dead_letter");
                }
                let delay = self
                    .policy
                    .delay_ms(delivery.attempts + 1, retry_after, rng);
                let result = if configuration {
                    tracing::error!(%error, retry_in_ms = delay, "handover end rejected: configuration error; will retry");
                    "configuration_error"
                } else {
                    tracing::warn!(%error, retry_in_ms = delay, "handover end not delivered; will retry");
                    "retry"
                };
                let settlement = Settlement::Retry {
                    next_attempt_at_ms: now + delay,
                    error,
                };
                (settlement, result)
            }
        }
    }
}

async fn attempt(sender: &Sender, delivery: &Delivery) -> Attempt {
    match sender {
        Sender::Shadow => {
            let end = &delivery.notice;
            tracing::info!(
                organisationId = %end.key.organisation_id,
                conversationId = %end.key.conversation_id,
                episode = end.episode,
                reason = %end.reason,
                "shadow mode: handover end not sent"
            );
            Attempt::NotSent
        }
        Sender::Cognigy(client) => client.send(&delivery.notice, &delivery.id).await,
    }
}
