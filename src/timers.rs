//! The timer worker: closes grace windows when they are due, without waiting for a request.

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

impl TimerWorker {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let wake = Arc::clone(&self.conversations.wakers().timers);
        let mut last_eviction = Instant::now();
        while !stop.is_cancelled() {
            let handled = self.fire_due().await;
            if last_eviction.elapsed() >= EVICTION_INTERVAL {
                last_eviction = Instant::now();
                match self.store.evict_expired(now_ms()).await {
                    Ok(0) => {}
                    Ok(count) => tracing::info!(count, "forgot idle conversations"),
                    Err(error) => tracing::warn!(%error, "cannot evict idle conversations"),
                }
            }
            if handled == BATCH {
                continue;
            }
            let pause = match self.store.next_timer_at().await {
                Ok(Some(at)) => Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_POLL),
                _ => IDLE_POLL,
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = wake.notified() => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// Ticks every conversation whose window is due; returns how many.
    async fn fire_due(&self) -> usize {
        let now = now_ms();
        let due = match self.store.due_timers(now, BATCH).await {
            Ok(due) => due,
            Err(error) => {
                self.metrics.store_error("timer");
                tracing::warn!(%error, "cannot read due grace windows; trying again");
                return 0;
            }
        };
        for key in &due {
            if let Err(error) = self.conversations.tick(key, now).await {
                self.metrics.store_error("timer");
                tracing::warn!(%error, conversation = %key, "cannot close a grace window; trying again");
            }
        }
        due.len()
    }
}
