//! Background work leaves a failing bucket alone for a while (doubling up to a few seconds), so
//! that it neither floods the node that fails nor, on Redis Cluster, keeps the client busy
//! repairing its view of the cluster while the healthy buckets wait (`docs/contract.md` §9.3).
//! Requests still go to every bucket: an event for a failing one gets its 503.

use super::BUCKETS;
use crate::backoff::Backoff;
use crate::store::StoreError;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const FIRST_REST: Duration = Duration::from_millis(250);
const RESTS: Backoff = Backoff::between(FIRST_REST, Duration::from_secs(4));

#[derive(Debug, Clone)]
struct Rest {
    until: Instant,
    /// The lengths of this bucket's rests so far.
    lengths: Backoff,
    /// The failure that made the bucket rest. Work that skips the bucket reports this same
    /// failure: the loops that share the breaker log a failure only when its text changes, so a
    /// text of its own for "resting" would make each of them log on every other round.
    cause: StoreError,
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
    /// The failure that made bucket `n` rest, while background work should leave it alone.
    pub fn resting(&self, n: u32) -> Option<StoreError> {
        let rests = self.rests.lock().unwrap_or_else(|e| e.into_inner());
        rests[n as usize]
            .as_ref()
            .filter(|rest| Instant::now() < rest.until)
            .map(|rest| rest.cause.clone())
    }

    pub fn failed(&self, n: u32, cause: &StoreError) {
        let mut rests = self.rests.lock().unwrap_or_else(|e| e.into_inner());
        let mut lengths = rests[n as usize]
            .as_ref()
            .map_or(RESTS, |rest| rest.lengths);
        rests[n as usize] = Some(Rest {
            until: Instant::now() + lengths.failed(),
            lengths,
            cause: cause.clone(),
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

    fn refused() -> StoreError {
        StoreError::Unavailable("connection refused".into())
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_bucket_rests_longer_each_time_and_a_success_ends_it() {
        let breaker = Breaker::default();
        assert!(breaker.resting(3).is_none());
        breaker.failed(3, &refused());
        assert!(breaker.resting(3).is_some() && breaker.resting(4).is_none());
        tokio::time::advance(FIRST_REST * 5 / 4).await;
        assert!(breaker.resting(3).is_none());
        breaker.failed(3, &refused());
        tokio::time::advance(FIRST_REST * 5 / 4).await;
        assert!(breaker.resting(3).is_some(), "the second rest is longer");
        breaker.succeeded(3);
        assert!(breaker.resting(3).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_resting_bucket_reports_the_failure_that_made_it_rest() {
        let breaker = Breaker::default();
        breaker.failed(3, &refused());
        let readonly = StoreError::Unavailable("READONLY: a replica".into());
        breaker.failed(5, &readonly);
        assert_eq!(
            breaker.resting(3).unwrap().to_string(),
            refused().to_string()
        );
        assert_eq!(
            breaker.resting(5).unwrap().to_string(),
            readonly.to_string()
        );
    }
}
