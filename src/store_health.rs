//! Watches the store in the background (`docs/contract.md` §9.3): whether it accepts writes
//! (what `/readyz` reports, so that a probe never waits on Redis and a flood of probes never
//! reaches it), whether it lost its data since the last look, and whether its eviction policy
//! may drop the service's keys. Each finding is logged once, when it appears or changes.

use crate::backoff::{Backoff, FailureLog};
use crate::metrics::Metrics;
use crate::store::{Store, StoreHealth};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often a healthy store is looked at; a failing one is looked at sooner, with back-off.
const INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Not looked at yet.
    Starting,
    Ready,
    /// The store does not accept writes (the cause is logged, never shown).
    Unavailable,
}

/// The latest readiness, for `/readyz`.
pub type ReadinessWatch = watch::Receiver<Readiness>;

pub struct StoreMonitor {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub readiness: watch::Sender<Readiness>,
}

/// A store that keeps nothing across restarts (memory) is ready from the start; one that does is
/// ready once looked at.
pub fn readiness_channel(store: &dyn Store) -> (watch::Sender<Readiness>, ReadinessWatch) {
    watch::channel(if store.durable() {
        Readiness::Starting
    } else {
        Readiness::Ready
    })
}

impl StoreMonitor {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let failures = FailureLog::new("its health check");
        let mut backoff = Backoff::default();
        let mut eviction: Option<Option<String>> = None;
        while !stop.is_cancelled() {
            let pause = match self.store.health().await {
                Ok(health) => {
                    failures.succeeded();
                    backoff.succeeded();
                    self.set(Readiness::Ready);
                    self.report(&health, &mut eviction);
                    INTERVAL
                }
                Err(error) => {
                    self.metrics.store_error("health");
                    failures.failed(&error);
                    self.set(Readiness::Unavailable);
                    backoff.failed().min(INTERVAL)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    fn set(&self, readiness: Readiness) {
        self.metrics.store_ready(readiness == Readiness::Ready);
        self.readiness.send_if_modified(|current| {
            let changed = *current != readiness;
            *current = readiness;
            changed
        });
    }

    /// Logs and counts what a successful look found. `eviction` is the policy last reported.
    fn report(&self, health: &StoreHealth, eviction: &mut Option<Option<String>>) {
        if health.reset {
            self.metrics.store_reset();
            tracing::error!(
                "the store lost its data (its epoch marker is gone: restarted without persistence, flushed, or failed over to an empty replica); open grace windows and undelivered ends it held are lost, and duplicates it remembered may be called again"
            );
        }
        if eviction.as_ref() == Some(&health.eviction_policy) {
            return;
        }
        self.metrics
            .store_eviction_unsafe(health.eviction_policy.is_some());
        match &health.eviction_policy {
            Some(policy) => tracing::error!(
                maxmemoryPolicy = %policy,
                "Redis may evict the service's keys: an evicted conversation loses its end and an evicted fingerprint sends a duplicate; set maxmemory-policy to noeviction"
            ),
            None if eviction.is_some() => {
                tracing::info!("Redis' maxmemory-policy no longer evicts the service's keys")
            }
            None => {}
        }
        *eviction = Some(health.eviction_policy.clone());
    }
}
