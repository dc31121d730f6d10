//! Background work leaves a failing bucket alone for a while (doubling up to a few seconds), so
//! that it neither floods the node that fails nor, on Redis Cluster, keeps the client busy
//! repairing its view of the cluster while the healthy buckets wait (`docs/contract.md` §9.3).
//! Requests still go to every bucket: an event for a failing one gets its 503.

use super::BUCKETS;
use crate::backoff::Backoff;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const FIRST_REST: Duration = Duration::from_millis(250);
const RESTS: Backoff = Backoff::between(FIRST_REST, Duration::from_secs(4));

#[derive(Debug, Clone, Copy)]
struct Rest {
    until: Instant,
    /// The lengths of this bucket's rests so far.
    lengths: Backoff,
}

#[derive(Debug)]
pub struct Breaker {
    rests: Mutex<Vec<Option<Rest>>>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            rests: Mutex::new(vec![None; BUCKETS as usize]),
        }
    }
}

impl Breaker {
    /// Whether background work should leave bucket `n` alone for now.
    pub fn resting(&self, n: u32) -> bool {
        let rests = self.rests.lock().unwrap_or_else(|e| e.into_inner());
        rests[n as usize].is_some_and(|rest| Instant::now() < rest.until)
    }

    pub fn failed(&self, n: u32) {
        let mut rests = self.rests.lock().unwrap_or_else(|e| e.into_inner());
        let mut lengths = rests[n as usize].map_or(RESTS, |rest| rest.lengths);
        rests[n as usize] = Some(Rest {
            until: Instant::now() + lengths.failed(),
            lengths,
        });
    }

    pub fn succeeded(&self, n: u32) {
        let mut rests = self.rests.lock().unwrap_or_else(|e| e.into_inner());
        rests[n as usize] = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failing_bucket_rests_longer_each_time_and_a_success_ends_it() {
        let breaker = Breaker::default();
        assert!(!breaker.resting(3));
        breaker.failed(3);
        assert!(breaker.resting(3) && !breaker.resting(4));
        tokio::time::advance(FIRST_REST * 5 / 4).await;
        assert!(!breaker.resting(3));
        breaker.failed(3);
        tokio::time::advance(FIRST_REST * 5 / 4).await;
        assert!(breaker.resting(3), "the second rest is longer");
        breaker.succeeded(3);
        assert!(!breaker.resting(3));
    }
}
