//! The delivery worker: takes due ends from the outbox and sends each on its own task, at most
//! `HANDOVER_DELIVERY_CONCURRENCY` at once and `HANDOVER_DELIVERY_PER_DESTINATION` to one
//! resolved URL, so that one hung tenant endpoint never holds back another tenant's ends. Each
//! task records its own outcome; a panic in an attempt counts as a failed attempt. It never runs
//! on the request path.

use super::client::{Attempt, CognigyClient};
use super::retry::RetryPolicy;
use crate::backoff::{Backoff, FailureLog};
use crate::clock::now_ms;
use crate::config::DeliveryLimits;
use crate::metrics::Metrics;
use crate::store::{Delivery, Settlement, Store};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Longest sleep between looks at the outbox (another replica may have added to it).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// A delivery whose destination is busy goes back to the outbox for this long.
const DEFER_MS: u64 = 1_000;

/// How ends leave the service: to Cognigy, or nowhere in shadow mode.
#[async_trait]
pub trait Sender: Send + Sync + 'static {
    /// Where this end goes: deliveries to one destination share its in-flight limit.
    fn destination(&self, delivery: &Delivery) -> String;

    async fn attempt(&self, delivery: &Delivery) -> Attempt;
}

/// Shadow mode: decide, log and count, send nothing.
pub struct Shadow;

#[async_trait]
impl Sender for Shadow {
    fn destination(&self, _delivery: &Delivery) -> String {
        String::new()
    }

    async fn attempt(&self, delivery: &Delivery) -> Attempt {
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
}

#[async_trait]
impl Sender for CognigyClient {
    fn destination(&self, delivery: &Delivery) -> String {
        self.url_for(&delivery.notice)
    }

    async fn attempt(&self, delivery: &Delivery) -> Attempt {
        self.send(&delivery.notice, &delivery.id).await
    }
}

pub struct DeliveryWorker {
    pub store: Arc<dyn Store>,
    pub sender: Arc<dyn Sender>,
    pub policy: RetryPolicy,
    /// How long a claimed delivery is ours before another replica may take it over: longer than
    /// one call to Cognigy can take.
    pub lease_ms: u64,
    pub limits: DeliveryLimits,
    /// Woken when the outbox gains an entry.
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

/// How one look at the outbox went.
#[derive(Debug, Default)]
struct Round {
    started: bool,
    failed: bool,
}

/// In-flight limits per resolved URL. Entries go when nothing is in flight to them.
struct Destinations {
    per_destination: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Destinations {
    fn try_acquire(&self, destination: &str) -> Option<OwnedSemaphorePermit> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let semaphore = slots
            .entry(destination.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_destination)));
        Arc::clone(semaphore).try_acquire_owned().ok()
    }

    fn forget_idle(&self) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.retain(|_, semaphore| semaphore.available_permits() < self.per_destination);
    }
}

impl DeliveryWorker {
    /// Runs until `stop` is cancelled; deliveries still in flight then are abandoned (their lease
    /// lets another replica, or the next start, take them over).
    pub async fn run(self, stop: CancellationToken) {
        let worker = Arc::new(self);
        let pool = Arc::new(Semaphore::new(worker.limits.concurrency));
        let destinations = Destinations {
            per_destination: worker.limits.per_destination,
            slots: Mutex::default(),
        };
        let mut in_flight = JoinSet::new();
        let failures = Arc::new(FailureLog::new("the outbox"));
        let mut backoff = Backoff::default();
        while !stop.is_cancelled() {
            while in_flight.try_join_next().is_some() {}
            destinations.forget_idle();
            let round = worker
                .start_due(&pool, &destinations, &mut in_flight, &failures)
                .await;
            let pause = if round.failed {
                backoff.failed()
            } else {
                backoff.succeeded();
                if round.started && pool.available_permits() > 0 {
                    continue;
                }
                worker.idle_pause(&failures, &mut backoff).await
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = worker.wake.notified() => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = stop.cancelled() => {}
            }
        }
        in_flight.shutdown().await;
    }

    /// Claims as many due deliveries as the pool has room for and starts those whose
    /// destination has room; the others go back to the outbox for a moment. Deliveries claimed
    /// from healthy parts of a store that partly fails are started too.
    async fn start_due(
        self: &Arc<Self>,
        pool: &Arc<Semaphore>,
        destinations: &Destinations,
        in_flight: &mut JoinSet<()>,
        failures: &Arc<FailureLog>,
    ) -> Round {
        let room = pool.available_permits();
        if room == 0 {
            return Round::default();
        }
        let claimed = self
            .store
            .claim_deliveries(now_ms(), room, self.lease_ms)
            .await;
        let failed = match &claimed.failure {
            Some(error) => {
                self.metrics.store_error("outbox");
                failures.failed(error);
                // Back off only when nothing answered: healthy parts keep their pace.
                !claimed.answered
            }
            None => {
                failures.succeeded();
                false
            }
        };
        let mut started = false;
        for delivery in claimed.items {
            let permits = destinations
                .try_acquire(&self.sender.destination(&delivery))
                .and_then(|own| Some((own, Arc::clone(pool).try_acquire_owned().ok()?)));
            match permits {
                Some(permits) => {
                    started = true;
                    let (worker, failures) = (Arc::clone(self), Arc::clone(failures));
                    in_flight.spawn(async move {
                        worker.deliver(delivery, &failures).await;
                        drop(permits);
                    });
                }
                None => self.defer(&delivery, failures).await,
            }
        }
        Round { started, failed }
    }

    /// One attempt, run on a task of its own so that a panic in it is caught and counted as a
    /// failure like any other, then its outcome recorded.
    async fn deliver(&self, delivery: Delivery, failures: &FailureLog) {
        let started = Instant::now();
        let sender = Arc::clone(&self.sender);
        let attempt = {
            let delivery = delivery.clone();
            tokio::spawn(async move { sender.attempt(&delivery).await })
        };
        let attempt = attempt.await.unwrap_or_else(|error| Attempt::Failed {
            error: if error.is_panic() {
                "internal error: the attempt panicked".into()
            } else {
                "internal error: the attempt was cancelled".into()
            },
            retry_after: None,
            configuration: false,
        });
        let sent = !matches!(attempt, Attempt::NotSent);
        let (settlement, result) = self.settlement(&delivery, attempt);
        self.metrics
            .forward_attempt(result, sent.then(|| started.elapsed()));
        if let Err(error) = self.store.settle(&delivery, settlement).await {
            // Its lease lapses and it is tried again: Cognigy dedupes on the Idempotency-Key.
            self.metrics.store_error("outbox");
            failures.failed(&error);
        }
    }

    /// Back to the outbox, not counted as an attempt: its destination has enough in flight.
    async fn defer(&self, delivery: &Delivery, failures: &FailureLog) {
        let settlement = Settlement::Deferred {
            next_attempt_at_ms: now_ms() + DEFER_MS + fastrand::u64(0..=DEFER_MS / 4),
        };
        if let Err(error) = self.store.settle(delivery, settlement).await {
            // Its lease puts it back instead.
            self.metrics.store_error("outbox");
            failures.failed(&error);
        }
    }

    async fn idle_pause(&self, failures: &FailureLog, backoff: &mut Backoff) -> Duration {
        match self.store.next_delivery_at().await {
            Ok(Some(at)) => Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_POLL),
            Ok(None) => IDLE_POLL,
            Err(error) => {
                self.metrics.store_error("outbox");
                failures.failed(&error);
                backoff.failed()
            }
        }
    }

    /// What to record for an attempt, and the result it counts as in the metrics.
    fn settlement(&self, delivery: &Delivery, attempt: Attempt) -> (Settlement, &'static str) {
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
                let delay = self.policy.delay_ms(
                    delivery.attempts + 1,
                    retry_after,
                    &mut fastrand::Rng::new(),
                );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EndNotice, EndReason};
    use crate::genesys::ConversationKey;
    use crate::store::{DeliveryStatus, MemoryStore};

    /// A sender whose every attempt panics, as the year-10000 end once did.
    struct Panics;

    #[async_trait]
    impl Sender for Panics {
        fn destination(&self, _delivery: &Delivery) -> String {
            "panics".into()
        }

        async fn attempt(&self, _delivery: &Delivery) -> Attempt {
            panic!("an attempt that panics")
        }
    }

    #[tokio::test]
    async fn a_panicking_attempt_counts_as_a_failed_attempt_and_is_retried() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(60_000, 10));
        let key = ConversationKey::new("org", "conversation");
        let end = EndNotice {
            key: key.clone(),
            genesys_organization_id: "genesys".into(),
            user_id: None,
            reason: EndReason::CustomerEnd,
            disconnect_type: None,
            ended_at: 1,
            episode: 1,
            transfers: 0,
            agent: None,
            correlation_id: None,
            decided_at_ms: now_ms(),
        };
        let id = end.idempotency_key();
        store
            .update(&key, now_ms(), None, &mut |_| {
                Some(crate::store::Transition {
                    state: crate::engine::ConversationState::new("genesys"),
                    ends: vec![end.clone()],
                })
            })
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let worker = tokio::spawn(
            DeliveryWorker {
                store: Arc::clone(&store),
                sender: Arc::new(Panics),
                policy: RetryPolicy {
                    base_ms: 10,
                    max_ms: 20,
                    give_up_after_ms: 60_000,
                },
                lease_ms: 1_000,
                limits: DeliveryLimits {
                    concurrency: 4,
                    per_destination: 2,
                },
                wake: Arc::new(Notify::new()),
                metrics: Arc::new(Metrics::new()),
            }
            .run(stop.clone()),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let DeliveryStatus::Pending(delivery) =
                store.delivery_status(&key, &id).await.unwrap()
            {
                if delivery.attempts >= 2 {
                    assert!(delivery.last_error.unwrap().contains("panicked"));
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the panicking delivery was not retried"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), worker)
            .await
            .expect("the worker stops")
            .unwrap();
    }
}
