//! Liveness of one feed client: when to ping it, and when to give up on it.
//!
//! In: the times at which the client was heard from (any frame, a pong included). Out: what
//! the connection must do next ([`Due`]) and when to ask again ([`Liveness::next_deadline`]).
//! A client that has been silent for `connections.websocket_ping_interval_ms` is pinged; one
//! that then stays silent for `connections.websocket_pong_timeout_ms` is a dead peer (a
//! crashed host, a half-closed NAT mapping, a client that never reads): its connection, its
//! queue and its descriptor would otherwise live until TCP gives up, hours later. A client that
//! reads answers pings by itself (WebSocket libraries queue the pong and send it with their next
//! read), so the console never meets the timeout. Pure timing: no I/O, no clock of its own.

use std::time::{Duration, Instant};

/// What a connection must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send a ping: the client has been silent for the ping interval.
    Ping,
    /// Close the connection: a ping went unanswered for the pong timeout.
    Dead,
}

/// The heartbeat state of one client.
#[derive(Debug, Clone)]
pub struct Liveness {
    interval: Duration,
    timeout: Duration,
    last_heard: Instant,
    ping_sent: Option<Instant>,
}

impl Liveness {
    /// A client connected (and so heard from) at `now`.
    pub fn new(now: Instant, interval: Duration, timeout: Duration) -> Liveness {
        Liveness {
            interval,
            timeout,
            last_heard: now,
            ping_sent: None,
        }
    }

    /// The client sent a frame (a pong, or anything else: it is alive).
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.ping_sent = None;
    }

    /// When [`Liveness::poll`] may next have something to do.
    pub fn next_deadline(&self) -> Instant {
        match self.ping_sent {
            Some(sent) => sent + self.timeout,
            None => self.last_heard + self.interval,
        }
    }

    /// What is due at `now`. A `Ping` is recorded as sent.
    pub fn poll(&mut self, now: Instant) -> Option<Due> {
        match self.ping_sent {
            Some(sent) if now >= sent + self.timeout => Some(Due::Dead),
            Some(_) => None,
            None if now >= self.last_heard + self.interval => {
                self.ping_sent = Some(now);
                Some(Due::Ping)
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_silent_client_is_pinged_then_declared_dead() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 20 * S, 40 * S);
        assert_eq!(l.poll(t0 + 19 * S), None);
        assert_eq!(l.next_deadline(), t0 + 20 * S);
        assert_eq!(l.poll(t0 + 20 * S), Some(Due::Ping));
        // One ping per silence, not one per poll.
        assert_eq!(l.poll(t0 + 30 * S), None);
        assert_eq!(l.next_deadline(), t0 + 60 * S);
        assert_eq!(l.poll(t0 + 60 * S), Some(Due::Dead));
    }

    #[test]
    fn any_frame_answers_a_ping() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 20 * S, 40 * S);
        assert_eq!(l.poll(t0 + 20 * S), Some(Due::Ping));
        l.heard(t0 + 59 * S);
        assert_eq!(l.poll(t0 + 60 * S), None);
        assert_eq!(l.next_deadline(), t0 + 79 * S);
        // A client that keeps talking is never pinged.
        for i in 1..10 {
            l.heard(t0 + (59 + 10 * i) * S);
            assert_eq!(l.poll(t0 + (60 + 10 * i) * S), None);
        }
    }
}
