//! The batcher's one retry policy ([`Backoff`]) and the logging of its retry loops, at most
//! once per interval ([`LogThrottle`]).
//!
//! Every store write (a whole batch, or a part of one while refused rows are isolated), every
//! spool read and every row build waits by [`Backoff`]: capped exponential, jittered, so that
//! servers sharing one store do not retry in step.
//!
//! A store that is down for an hour makes the write loop fail every `batch.retry_max_ms`; a
//! warning per attempt buries everything else in the log. [`LogThrottle`] lets the first
//! failure through, then one line per [`LOG_EVERY`] that says how many attempts were not
//! logged, and tells the loop when it recovers so that it can say so once. Every attempt is
//! still counted in `baddybugs_ingest_batcher_retries_total{stage}` (the metric, not the log,
//! is what to alert on).

use std::time::{Duration, Instant};

use rand::Rng;

/// Shortest time between two log lines of one retry loop.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Capped exponential backoff with jitter: the first wait is about `initial`, each failure
/// doubles it up to `max`, and each wait is scaled by a random factor in [0.5, 1).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff from `initial` (at least 1 ms) up to `max` (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The wait before the next attempt (jittered); the one after is twice as long, up to the
    /// cap.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next.mul_f64(rand::thread_rng().gen_range(0.5..1.0));
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// Back to the first wait (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// The state of one retry loop's logging.
#[derive(Debug)]
pub struct LogThrottle {
    every: Duration,
    last_logged: Option<Instant>,
    /// Failures since the last line was logged.
    unlogged: u64,
    /// Failures since the last success.
    failures: u64,
}

impl LogThrottle {
    /// A throttle that logs at most once per `every`.
    pub fn new(every: Duration) -> LogThrottle {
        LogThrottle {
            every,
            last_logged: None,
            unlogged: 0,
            failures: 0,
        }
    }

    /// Records a failed attempt at `now`. Returns `Some(n)` when this failure should be logged,
    /// `n` being the failures not logged since the previous line; `None` to stay quiet.
    pub fn failure(&mut self, now: Instant) -> Option<u64> {
        self.failures += 1;
        let due = self
            .last_logged
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if due {
            self.last_logged = Some(now);
            Some(std::mem::take(&mut self.unlogged))
        } else {
            self.unlogged += 1;
            None
        }
    }

    /// Records a success. Returns `Some(n)` when it ends a run of `n` failures (worth one line
    /// saying the loop recovered), and starts afresh.
    pub fn success(&mut self) -> Option<u64> {
        let failures = std::mem::take(&mut self.failures);
        self.unlogged = 0;
        self.last_logged = None;
        (failures > 0).then_some(failures)
    }
}

impl Default for LogThrottle {
    fn default() -> LogThrottle {
        LogThrottle::new(LOG_EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_and_resets() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(1_000));
        for nominal in [100, 200, 400, 800, 1_000, 1_000] {
            let wait = backoff.next_wait();
            assert!(
                wait >= ms(nominal) / 2 && wait < ms(nominal),
                "{wait:?} for a nominal {nominal} ms"
            );
        }
        backoff.reset();
        assert!(backoff.next_wait() < ms(100));
    }

    #[test]
    fn logs_the_first_failure_then_once_per_interval() {
        let start = Instant::now();
        let mut throttle = LogThrottle::new(Duration::from_secs(10));
        assert_eq!(throttle.failure(start), Some(0));
        for ms in [100, 2_000, 9_999] {
            assert_eq!(throttle.failure(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(
            throttle.failure(start + Duration::from_secs(10)),
            Some(3),
            "the next line says how many attempts went unlogged"
        );
        assert_eq!(throttle.failure(start + Duration::from_secs(11)), None);
        assert_eq!(
            throttle.success(),
            Some(6),
            "recovery reports the whole run"
        );
        assert_eq!(throttle.success(), None, "nothing to report twice");
        assert_eq!(
            throttle.failure(start + Duration::from_secs(12)),
            Some(0),
            "a new run logs its first failure at once"
        );
    }
}
