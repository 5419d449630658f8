//! The pipeline trace of one request: when each stage ended, relative to its receipt.
//!
//! The stages are stored with the batch (`record::BatchMeta::stages`), drawn as a waterfall
//! by the console and completed by the batcher with `inserted`.

use std::time::Instant;

use baddybugs_common::protocol::StageName;

use crate::record::Stage;

/// Times the stages of one request.
#[derive(Debug, Clone)]
pub struct StageTimer {
    started: Instant,
    last_us: u64,
    stages: Vec<Stage>,
}

impl StageTimer {
    /// A timer for a request received at `started`.
    pub fn new(started: Instant) -> StageTimer {
        StageTimer {
            started,
            last_us: 0,
            stages: Vec::with_capacity(8),
        }
    }

    /// Ends `stage` now: it began where the previous one ended.
    pub fn mark(&mut self, stage: StageName) {
        let now = self.started.elapsed().as_micros() as u64;
        self.stages.push(Stage {
            stage,
            start_us: self.last_us,
            duration_us: now.saturating_sub(self.last_us),
        });
        self.last_us = now;
    }

    /// The stages so far.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// When the request was received.
    pub fn started(&self) -> Instant {
        self.started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_follow_each_other() {
        let mut timer = StageTimer::new(Instant::now());
        timer.mark(StageName::Received);
        timer.mark(StageName::Inflated);
        let s = timer.stages();
        assert_eq!(s[0].stage, StageName::Received);
        assert_eq!(s[0].start_us, 0);
        assert_eq!(s[1].start_us, s[0].start_us + s[0].duration_us);
    }
}
