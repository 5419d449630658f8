//! Reconnect delays: capped exponential backoff with jitter, so a fleet of consoles does not
//! reconnect in lock-step after a server restart.

use std::time::Duration;

/// Capped, jittered exponential backoff. `attempt` counts failures since the last success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base_ms: u64,
    max_ms: u64,
    pub(crate) attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(250, 10_000)
    }
}

impl Backoff {
    pub(crate) fn new(base_ms: u64, max_ms: u64) -> Self {
        Self {
            base_ms: base_ms.max(1),
            max_ms: max_ms.max(base_ms.max(1)),
            attempt: 0,
        }
    }

    /// The ceiling of the next delay, before jitter.
    pub(crate) fn ceiling_ms(&self) -> u64 {
        let shift = self.attempt.min(32);
        self.base_ms.saturating_mul(1u64 << shift).min(self.max_ms)
    }

    /// The next delay, given `jitter` in [0, 1): between half the ceiling and the ceiling
    /// ("equal jitter": never zero, never above the cap). Counts one more attempt.
    pub(crate) fn next_delay(&mut self, jitter: f64) -> Duration {
        let ceiling = self.ceiling_ms();
        let half = ceiling / 2;
        let jitter = jitter.clamp(0.0, 1.0);
        let ms = half + ((ceiling - half) as f64 * jitter) as u64;
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(ms.min(self.max_ms))
    }

    /// After a successful connection.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_then_caps() {
        let mut b = Backoff::new(100, 2_000);
        let ceilings: Vec<u64> = (0..8)
            .map(|_| {
                let c = b.ceiling_ms();
                b.next_delay(0.5);
                c
            })
            .collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        for _ in 0..100 {
            assert!(b.next_delay(0.999).as_millis() <= 2_000);
        }
    }

    #[test]
    fn jitter_stays_within_half_and_full_ceiling() {
        for attempt in 0..12 {
            for j in [0.0, 0.25, 0.5, 0.99, 1.0] {
                let mut b = Backoff::new(250, 10_000);
                b.attempt = attempt;
                let ceiling = b.ceiling_ms();
                let d = b.next_delay(j).as_millis() as u64;
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "{attempt} {j} {d} {ceiling}"
                );
            }
        }
        let mut b = Backoff::new(250, 10_000);
        assert_ne!(b.clone().next_delay(0.0), b.next_delay(0.9));
    }

    #[test]
    fn reset_starts_over_and_huge_attempts_do_not_overflow() {
        let mut b = Backoff::new(250, 10_000);
        b.attempt = u32::MAX;
        assert_eq!(b.next_delay(1.0), Duration::from_millis(10_000));
        b.reset();
        assert_eq!(b.attempt, 0);
        assert!(b.next_delay(1.0) <= Duration::from_millis(250));
    }
}
