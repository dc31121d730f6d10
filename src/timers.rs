//! The timer worker: closes grace windows when they are due, without waiting for a request.

use crate::backoff::{Backoff, FailureLog};
use crate::clock::now_ms;
use crate::conversation::Conversations;
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Due conversations handled per look at the store.
const BATCH: usize = 256;
/// Longest sleep between looks (another replica may have opened a window).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often idle conversations past their lifetime are forgotten.
const EVICTION_INTERVAL: Duration = Duration::from_secs(60);

pub struct TimerWorker {
    pub store: Arc<dyn Store>,
    pub conversations: Arc<Conversations>,
    pub metrics: Arc<Metrics>,
}

/// How one look at the due grace windows went.
struct Round {
    handled: usize,
    failed: bool,
}

impl TimerWorker {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let wake = Arc::clone(&self.conversations.wakers().timers);
        let mut last_eviction = Instant::now();
        let mut backoff = Backoff::default();
        let failures = FailureLog::new("grace windows");
        while !stop.is_cancelled() {
            let round = self.fire_due(&failures).await;
            if last_eviction.elapsed() >= EVICTION_INTERVAL {
                last_eviction = Instant::now();
                match self.store.evict_expired(now_ms()).await {
                    Ok(0) => {}
                    Ok(count) => tracing::info!(count, "forgot idle conversations"),
                    Err(error) => tracing::warn!(%error, "cannot evict idle conversations"),
                }
            }
            let pause = if round.failed {
                backoff.failed()
            } else {
                backoff.succeeded();
                if round.handled == BATCH {
                    continue;
                }
                match self.store.next_timer_at().await {
                    Ok(Some(at)) => {
                        Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_POLL)
                    }
                    Ok(None) => IDLE_POLL,
                    Err(error) => {
                        self.metrics.store_error("timer");
                        failures.failed(&error);
                        backoff.failed()
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = wake.notified() => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// Ticks every conversation whose window is due, including those claimed from healthy
    /// parts of a store that partly fails.
    async fn fire_due(&self, failures: &FailureLog) -> Round {
        let now = now_ms();
        let claimed = self.store.due_timers(now, BATCH).await;
        let mut failure = claimed.failure;
        for key in &claimed.items {
            if let Err(error) = self.conversations.tick(key, now).await {
                // Its claim lapses and the window is closed on a later round.
                failure = Some(error);
            }
        }
        match &failure {
            Some(error) => {
                self.metrics.store_error("timer");
                failures.failed(error);
            }
            None => failures.succeeded(),
        }
        Round {
            handled: claimed.items.len(),
            // Back off only when nothing answered: healthy parts keep their pace.
            failed: failure.is_some() && !claimed.answered,
        }
    }
}
