//! `--stats-file PATH`: the console's own performance, measured from inside, one JSON line per
//! second appended to PATH (off unless asked; scripts/bench.sh `console` reads it).
//!
//! Each line covers the second since the previous one: `frames` drawn and the time spent
//! drawing them, `messages` (network reports applied to the state), and for each key press
//! that changed something, `key_to_frame_ms`: from reading the key off the terminal to the end
//! of the first frame drawn after it, which is the frame that shows its effect. What happens
//! before the console reads the key (the terminal, tmux) is not in it; measure that from
//! outside. Writing is best effort: an error stops the statistics, never the console.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::state::FeedState;

/// One line of the stats file.
#[derive(Debug, Default, Serialize, PartialEq)]
pub(crate) struct Line {
    /// Wall clock at the end of the interval, epoch ms.
    pub(crate) at_ms: i64,
    /// Length of the interval, seconds (about 1).
    pub(crate) secs: f64,
    /// Frames drawn.
    pub(crate) frames: u64,
    /// Time spent in those draws, ms.
    pub(crate) draw_ms: f64,
    /// The longest draw, ms.
    pub(crate) draw_max_ms: f64,
    /// Network reports applied to the state (feed messages, connection changes).
    pub(crate) messages: u64,
    /// Key presses that changed something.
    pub(crate) keys: u64,
    /// For each of them: key read → end of the frame that shows it, ms.
    pub(crate) key_to_frame_ms: Vec<f64>,
    /// Since start: frames received from the server.
    pub(crate) frames_received: u64,
    /// Since start: tail messages the console dropped itself because it lagged.
    pub(crate) lag_dropped: u64,
    /// Since start: tail messages the server dropped for this console.
    pub(crate) server_dropped: u64,
}

/// Counts for the current second.
#[derive(Debug)]
pub(crate) struct Stats {
    file: Option<File>,
    since: Instant,
    line: Line,
    /// Keys applied but not drawn yet.
    pending_keys: Vec<Instant>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Stats {
    /// Appends to `path` (created if needed).
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self::with_file(Some(file), Instant::now()))
    }

    fn with_file(file: Option<File>, now: Instant) -> Self {
        Stats {
            file,
            since: now,
            line: Line::default(),
            pending_keys: Vec::new(),
        }
    }

    /// A key, read at `at`, changed the state.
    pub(crate) fn key(&mut self, at: Instant) {
        self.line.keys += 1;
        self.pending_keys.push(at);
    }

    /// `n` network reports were applied.
    pub(crate) fn applied(&mut self, n: u64) {
        self.line.messages += n;
    }

    /// A frame was drawn from `started` to `done`.
    pub(crate) fn drawn(&mut self, started: Instant, done: Instant) {
        let took = ms(done.saturating_duration_since(started));
        self.line.frames += 1;
        self.line.draw_ms += took;
        self.line.draw_max_ms = self.line.draw_max_ms.max(took);
        for at in self.pending_keys.drain(..) {
            self.line
                .key_to_frame_ms
                .push(ms(done.saturating_duration_since(at)));
        }
    }

    /// Writes the line once a second has passed; returns it (for tests).
    pub(crate) fn tick(&mut self, now: Instant, now_ms: i64, state: &FeedState) -> Option<Line> {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < Duration::from_secs(1) {
            return None;
        }
        let mut line = std::mem::take(&mut self.line);
        self.since = now;
        line.at_ms = now_ms;
        line.secs = (elapsed.as_secs_f64() * 1e3).round() / 1e3;
        line.draw_ms = (line.draw_ms * 1e3).round() / 1e3;
        line.frames_received = state.frames;
        line.lag_dropped = state.lag_dropped;
        line.server_dropped = state.server_dropped;
        if let Some(file) = &mut self.file {
            let written = serde_json::to_string(&line)
                .map_err(std::io::Error::other)
                .and_then(|text| writeln!(file, "{text}"));
            if let Err(error) = written {
                tracing::warn!(%error, "cannot write the stats file; statistics stop");
                self.file = None;
            }
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_per_second_with_key_latencies() {
        let t0 = Instant::now();
        let mut s = Stats::with_file(None, t0);
        let state = FeedState::default();
        s.applied(40);
        s.key(t0 + Duration::from_millis(100));
        s.drawn(
            t0 + Duration::from_millis(102),
            t0 + Duration::from_millis(105),
        );
        s.drawn(
            t0 + Duration::from_millis(130),
            t0 + Duration::from_millis(131),
        );
        assert_eq!(s.tick(t0 + Duration::from_millis(900), 0, &state), None);
        let line = s.tick(t0 + Duration::from_millis(1000), 7, &state).unwrap();
        assert_eq!((line.frames, line.messages, line.keys), (2, 40, 1));
        assert_eq!(line.key_to_frame_ms, vec![5.0]);
        assert_eq!((line.draw_ms, line.draw_max_ms), (4.0, 3.0));
        assert_eq!(line.at_ms, 7);
        // The next second starts empty.
        let next = s.tick(t0 + Duration::from_millis(2000), 8, &state).unwrap();
        assert_eq!((next.frames, next.keys), (0, 0));
    }
}
