//! The timer worker: closes grace windows when they are due, without waiting for a request.

use crate::clock::now_ms;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::report;
use crate::store::{Store, Transition};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// Due conversations handled per look at the store.
const BATCH: usize = 256;
/// Longest sleep between looks (another replica may have opened a window).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often idle conversations past their lifetime are forgotten.
const EVICTION_INTERVAL: Duration = Duration::from_secs(60);

pub struct TimerWorker {
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    /// Woken when a request may have opened a grace window.
    pub wake: Arc<Notify>,
    /// Woken when an end was put in the outbox.
    pub delivery_wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

impl TimerWorker {
    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut last_eviction = Instant::now();
        while !*stop.borrow() {
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
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
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
            let mut ends = Vec::new();
            let result = self
                .store
                .update(key, now, &mut |current| {
                    let mut state = current?;
                    ends = self.engine.tick(&mut state, key, now);
                    Some(Transition {
                        state,
                        ends: ends.clone(),
                    })
                })
                .await;
            match result {
                Ok(()) => {
                    for end in &ends {
                        report::end_decided(&self.metrics, end);
                    }
                    if !ends.is_empty() {
                        self.delivery_wake.notify_one();
                    }
                }
                Err(error) => {
                    self.metrics.store_error("timer");
                    tracing::warn!(%error, conversation = %key, "cannot close a grace window; trying again");
                }
            }
        }
        due.len()
    }
}
