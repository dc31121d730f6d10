//! Background loops against a failing store (`docs/contract.md` §9.3): they wait longer after
//! each failure (up to a few seconds), and they say so once when the failure starts or changes,
//! then at most once a minute, and once when it ends, instead of once per attempt.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);
/// A failure that goes on is logged again this often.
const REMIND_EVERY: Duration = Duration::from_secs(60);

/// The pause before the next try: doubling from `first` to `longest`, with jitter. The default
/// is a background loop's (100 ms to 5 s).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    first: Duration,
    longest: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::between(FIRST_PAUSE, LONGEST_PAUSE)
    }
}

impl Backoff {
    pub const fn between(first: Duration, longest: Duration) -> Self {
        Self {
            first,
            longest,
            next: first,
        }
    }

    /// After a failure: how long to wait.
    pub fn failed(&mut self) -> Duration {
        let pause = self.next + self.next.mul_f64(fastrand::f64() / 4.0);
        self.next = (self.next * 2).min(self.longest);
        pause.min(self.longest)
    }

    pub fn succeeded(&mut self) {
        self.next = self.first;
    }
}

/// The log of one failing condition, shared by the tasks that meet it.
#[derive(Debug)]
pub struct FailureLog {
    /// What fails, for the log line: "the outbox", "grace windows".
    what: &'static str,
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    /// The error last logged, and when.
    logged: Option<(String, Instant)>,
    /// Failures since then that were not logged.
    quiet: u64,
}

impl FailureLog {
    pub const fn new(what: &'static str) -> Self {
        Self {
            what,
            state: Mutex::new(LogState {
                logged: None,
                quiet: 0,
            }),
        }
    }

    /// One failure: logged if it is new, different from the last one logged, or a minute on.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        let error = error.to_string();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let due = match &state.logged {
            None => true,
            Some((last, at)) => *last != error || at.elapsed() >= REMIND_EVERY,
        };
        if !due {
            state.quiet += 1;
            return;
        }
        tracing::warn!(
            %error,
            failuresSinceLastLog = state.quiet,
            "cannot reach the store for {}; trying again with back-off",
            self.what
        );
        state.logged = Some((error, Instant::now()));
        state.quiet = 0;
    }

    /// A success: logged once if failures were.
    pub fn succeeded(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.logged.take().is_some() {
            tracing::info!(
                failuresSinceLastLog = state.quiet,
                "the store answers again for {}",
                self.what
            );
            state.quiet = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_a_few_seconds_and_starts_over_after_a_success() {
        let mut backoff = Backoff::default();
        let pauses: Vec<Duration> = (0..10).map(|_| backoff.failed()).collect();
        assert!(pauses[0] >= FIRST_PAUSE && pauses[0] < FIRST_PAUSE * 2);
        assert!(pauses[3] >= FIRST_PAUSE * 8);
        assert!(pauses.iter().all(|p| *p <= LONGEST_PAUSE));
        assert_eq!(pauses[9], LONGEST_PAUSE);
        backoff.succeeded();
        assert!(backoff.failed() < FIRST_PAUSE * 2);
    }

    #[test]
    fn a_failure_is_logged_when_it_starts_or_changes_not_per_attempt() {
        let log = FailureLog::new("tests");
        log.failed(&"refused");
        for _ in 0..100 {
            log.failed(&"refused");
        }
        assert_eq!(log.state.lock().unwrap().quiet, 100);
        log.failed(&"timed out");
        assert_eq!(log.state.lock().unwrap().quiet, 0, "a new error is logged");
        log.succeeded();
        assert!(log.state.lock().unwrap().logged.is_none());
    }
}
