//! When to try a failed delivery again: exponential backoff with jitter, honouring Retry-After.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub base_ms: u64,
    /// Longest delay between two attempts.
    pub max_ms: u64,
    /// How long after the end was decided delivery is given up (then: dead letter).
    pub give_up_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_ms: 1_000,
            max_ms: 5 * 60 * 1_000,
            give_up_after_ms: 24 * 60 * 60 * 1_000,
        }
    }
}

impl RetryPolicy {
    /// Delay before the next attempt after `failures` failed attempts (1 or more): the
    /// exponential step, half of it fixed and half random ("equal jitter"), so that replicas and
    /// conversations spread out but never retry at once. A longer Retry-After wins.
    pub fn delay_ms(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> u64 {
        let exponent = failures.saturating_sub(1).min(32);
        let step = self
            .base_ms
            .saturating_mul(1u64 << exponent)
            .min(self.max_ms);
        let jittered = step / 2 + rng.u64(0..=step / 2);
        let asked = retry_after.map_or(0, |d| d.as_millis() as u64);
        jittered.max(asked.min(self.give_up_after_ms))
    }

    /// Whether an end decided at `created_at_ms` should still be retried at `now_ms`.
    pub fn gives_up(&self, created_at_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(created_at_ms) >= self.give_up_after_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_bounds_and_cap() {
        let policy = RetryPolicy {
            base_ms: 1_000,
            max_ms: 60_000,
            give_up_after_ms: 86_400_000,
        };
        let mut rng = fastrand::Rng::with_seed(7);
        for (failures, step) in [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (7, 60_000),
            (40, 60_000),
        ] {
            for _ in 0..50 {
                let delay = policy.delay_ms(failures, None, &mut rng);
                assert!((step / 2..=step).contains(&delay), "{failures}: {delay}");
            }
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        let policy = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let delay = policy.delay_ms(1, Some(Duration::from_secs(30)), &mut rng);
        assert_eq!(delay, 30_000);
    }

    #[test]
    fn gives_up_after_the_deadline() {
        let policy = RetryPolicy::default();
        assert!(!policy.gives_up(0, 24 * 3_600_000 - 1));
        assert!(policy.gives_up(0, 24 * 3_600_000));
    }
}
