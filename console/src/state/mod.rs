//! The console's data model: what the feed said, bounded, with no rendering and no I/O.
//!
//! [`FeedState::apply`] takes one [`FeedEvent`] (what the network task reports) at a client
//! clock time and updates the connection status, the latest metrics, the derived rates and the
//! bounded tails. It tells a server restart (a new `instance_id` in hello: counters and tails
//! reset) from a network blip (same instance: a marker where frames were missed).

pub(crate) mod backoff;
pub(crate) mod convert;
pub(crate) mod drift;
pub(crate) mod filter;
#[cfg(test)]
pub(crate) mod fixtures;
pub(crate) mod fleet;
pub(crate) mod http;
pub(crate) mod seq;
pub(crate) mod tail;
pub(crate) mod time;

use baddybugs_common::protocol::{
    Hello, MetricsSnapshot, PipelineTrace, ServerEnvelope, ServerMessage, TailEvent, TailMalformed,
    Waterfall,
};

use self::filter::event_haystack;
use self::http::HttpAnswers;
use self::tail::Tail;
use self::time::hms;

/// How many entries each tail keeps.
pub(crate) const EVENTS_CAP: usize = 2_000;
pub(crate) const MALFORMED_CAP: usize = 1_000;
pub(crate) const LIFECYCLE_CAP: usize = 300;
pub(crate) const PIPELINE_CAP: usize = 300;
/// Older events fetched from the store are kept up to this many.
pub(crate) const OLDER_CAP: usize = 5_000;

/// What the network task reports.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FeedEvent {
    /// A connection attempt started.
    Connecting { attempt: u32 },
    /// The WebSocket is open (hello follows).
    Connected,
    /// The connection failed or was lost; the next attempt is in `retry_in_ms`.
    Disconnected {
        error: String,
        attempt: u32,
        retry_in_ms: u64,
    },
    /// A frame from the server.
    Message(Box<ServerEnvelope>),
    /// The sequence numbers jumped: `missed` frames never arrived.
    Gap { missed: u64 },
    /// The console itself dropped tail messages because the app lagged behind the network.
    LagDropped(u64),
}

/// The connection as the status line shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Conn {
    Connecting {
        attempt: u32,
    },
    Connected {
        since_ms: i64,
    },
    Waiting {
        attempt: u32,
        retry_at_ms: i64,
        error: String,
    },
}

/// Per-second rates derived from two consecutive snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Rates {
    pub(crate) received: f64,
    pub(crate) accepted: f64,
    pub(crate) rejected: f64,
    pub(crate) duplicates: f64,
}

/// A server restart seen at a reconnect.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Restart {
    pub(crate) at_ms: i64,
    pub(crate) old_instance: String,
    pub(crate) new_instance: String,
}

/// An accepted event with its lower-cased search text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRow {
    pub(crate) ev: TailEvent,
    pub(crate) hay: String,
}

impl EventRow {
    pub(crate) fn new(ev: TailEvent) -> Self {
        let hay = event_haystack(&ev);
        Self { ev, hay }
    }
}

/// Events older than the live tail, fetched from the store page by page.
#[derive(Debug, Clone, Default)]
pub(crate) struct Older {
    /// Oldest first.
    pub(crate) rows: Vec<EventRow>,
    pub(crate) cursor: Option<String>,
    pub(crate) exhausted: bool,
    pub(crate) loading: bool,
}

/// Rejections older than the live tail, fetched from the stored quarantine page by page.
#[derive(Debug, Clone, Default)]
pub(crate) struct OlderMalformed {
    /// Oldest first.
    pub(crate) rows: Vec<TailMalformed>,
    /// The next page ends before this receipt time (epoch ms, exclusive).
    pub(crate) until_ms: Option<i64>,
    /// The last page was the store's last.
    pub(crate) exhausted: bool,
    pub(crate) loading: bool,
}

/// A reply to a `query` or `get`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub(crate) id: String,
    pub(crate) data: Result<serde_json::Value, String>,
}

/// Everything the feed told us.
#[derive(Debug, Clone)]
pub(crate) struct FeedState {
    pub(crate) conn: Conn,
    pub(crate) hello: Option<Hello>,
    pub(crate) metrics: Option<MetricsSnapshot>,
    pub(crate) rates: Rates,
    /// Rejected events per second at each snapshot this console saw, the last 60, oldest
    /// first (the server's history counts received events only).
    pub(crate) rejected_history: std::collections::VecDeque<Option<u64>>,
    /// The ingest endpoint's answers by HTTP status.
    pub(crate) http: HttpAnswers,
    /// Client time of the last frame (any kind).
    pub(crate) last_data_ms: Option<i64>,
    /// Since when the data on screen is stale (the connection dropped).
    pub(crate) disconnected_at_ms: Option<i64>,
    pub(crate) restart: Option<Restart>,
    /// Reconnects to the same instance (network blips).
    pub(crate) blips: u64,
    /// Frames lost to sequence gaps.
    pub(crate) gap_frames: u64,
    /// Messages the server dropped for this console (`dropped` notices).
    pub(crate) server_dropped: u64,
    /// Tail messages the console dropped itself because it lagged.
    pub(crate) lag_dropped: u64,
    /// Every frame received.
    pub(crate) frames: u64,
    pub(crate) events: Tail<EventRow>,
    pub(crate) older: Older,
    pub(crate) malformed: Tail<TailMalformed>,
    pub(crate) older_malformed: OlderMalformed,
    /// Tail messages still checked against the tails after a reconnect to the same server,
    /// which sends its retained tails again: those already held are not added twice.
    pub(crate) replay_checks: u64,
    pub(crate) lifecycles: Tail<Waterfall>,
    pub(crate) pipeline: Tail<PipelineTrace>,
    /// Schema drift keys: stored (asked by the Drift view) and announced live.
    pub(crate) drift: self::drift::DriftKeys,
    /// In fleet mode, the nodes' names by index (a row's `node`); empty for one server.
    pub(crate) node_names: Vec<String>,
}

impl Default for FeedState {
    fn default() -> Self {
        Self {
            conn: Conn::Connecting { attempt: 1 },
            hello: None,
            metrics: None,
            rates: Rates::default(),
            http: HttpAnswers::default(),
            rejected_history: std::collections::VecDeque::new(),
            last_data_ms: None,
            disconnected_at_ms: None,
            restart: None,
            blips: 0,
            gap_frames: 0,
            server_dropped: 0,
            lag_dropped: 0,
            frames: 0,
            events: Tail::new(EVENTS_CAP),
            older: Older::default(),
            malformed: Tail::new(MALFORMED_CAP),
            older_malformed: OlderMalformed::default(),
            replay_checks: 0,
            lifecycles: Tail::new(LIFECYCLE_CAP),
            pipeline: Tail::new(PIPELINE_CAP),
            drift: Default::default(),
            node_names: Vec::new(),
        }
    }
}

impl FeedState {
    /// Applies one report of the network task at client time `now_ms`; returns the answer to
    /// a query when it is one.
    pub(crate) fn apply(&mut self, event: FeedEvent, now_ms: i64) -> Option<Reply> {
        match event {
            FeedEvent::Connecting { attempt } => self.conn = Conn::Connecting { attempt },
            FeedEvent::Connected => self.conn = Conn::Connected { since_ms: now_ms },
            FeedEvent::Disconnected {
                error,
                attempt,
                retry_in_ms,
            } => {
                if self.disconnected_at_ms.is_none() {
                    self.disconnected_at_ms = Some(now_ms);
                    self.mark_all(&format!("connection lost at {}: {error}", hms(now_ms)));
                }
                self.conn = Conn::Waiting {
                    attempt,
                    retry_at_ms: now_ms.saturating_add(retry_in_ms as i64),
                    error,
                };
                self.older.loading = false;
                self.older_malformed.loading = false;
            }
            FeedEvent::Gap { missed } => {
                self.gap_frames += missed;
                self.mark_all(&format!("{missed} messages missed (sequence gap)"));
            }
            FeedEvent::LagDropped(n) => {
                self.lag_dropped += n;
                self.mark_all(&format!(
                    "{n} messages dropped: the console could not keep up"
                ));
            }
            FeedEvent::Message(envelope) => {
                self.frames += 1;
                self.last_data_ms = Some(now_ms);
                return self.apply_message(envelope.message, now_ms);
            }
        }
        None
    }

    fn apply_message(&mut self, message: ServerMessage, now_ms: i64) -> Option<Reply> {
        if self.replay_checks > 0 && self.is_replayed(&message) {
            return None;
        }
        match message {
            ServerMessage::Hello(hello) => self.apply_hello(hello, now_ms),
            ServerMessage::Metrics(m) => self.apply_metrics(*m),
            ServerMessage::Event(e) => self.events.push(EventRow::new(*e)),
            ServerMessage::Malformed(m) => self.malformed.push(*m),
            ServerMessage::Lifecycle(w) => self.lifecycles.push(*w),
            ServerMessage::Pipeline(p) => self.pipeline.push(*p),
            ServerMessage::Drift(n) => self.drift.announce(*n, now_ms),
            ServerMessage::Dropped { count, .. } => {
                self.server_dropped += count;
                self.mark_all(&format!(
                    "{count} messages dropped by the server: the console read too slowly"
                ));
            }
            ServerMessage::Result { id, data } => return Some(Reply { id, data: Ok(data) }),
            ServerMessage::Error {
                id: Some(id),
                message,
            } => {
                return Some(Reply {
                    id,
                    data: Err(message),
                })
            }
            ServerMessage::Error { id: None, message } => {
                tracing::warn!(%message, "feed error");
            }
            ServerMessage::Pong { .. } | ServerMessage::Subscribed { .. } => {}
        }
        None
    }

    fn apply_hello(&mut self, hello: Hello, now_ms: i64) {
        let previous = self.hello.as_ref().map(|h| h.instance_id.clone());
        match previous {
            Some(old) if old != hello.instance_id => {
                self.reset_data();
                self.restart = Some(Restart {
                    at_ms: now_ms,
                    old_instance: old,
                    new_instance: hello.instance_id.clone(),
                });
            }
            Some(_) if self.disconnected_at_ms.is_some() => {
                self.blips += 1;
                // Each tail topic sends up to `tail_retention` messages again.
                self.replay_checks = hello.tail_retention as u64 * 4;
                let since = self.disconnected_at_ms.map(hms).unwrap_or_default();
                self.mark_all(&format!(
                    "reconnected at {} (same server): messages between {since} and then were missed",
                    hms(now_ms)
                ));
            }
            _ => {}
        }
        self.disconnected_at_ms = None;
        self.hello = Some(hello);
    }

    fn reset_data(&mut self) {
        self.metrics = None;
        self.rates = Rates::default();
        self.http = HttpAnswers::default();
        self.rejected_history.clear();
        self.events.clear();
        self.older = Older::default();
        self.malformed.clear();
        self.older_malformed = OlderMalformed::default();
        self.replay_checks = 0;
        self.lifecycles.clear();
        self.pipeline.clear();
        self.drift.clear();
        self.gap_frames = 0;
        self.server_dropped = 0;
        self.lag_dropped = 0;
    }

    fn apply_metrics(&mut self, m: MetricsSnapshot) {
        if let Some(prev) = &self.metrics {
            let dt = m.uptime_secs - prev.uptime_secs;
            let (a, b) = (&m.totals, &prev.totals);
            if dt > 0.0 && a.received >= b.received {
                let per = |x: u64, y: u64| x.saturating_sub(y) as f64 / dt;
                self.rates = Rates {
                    received: per(a.received, b.received),
                    accepted: per(a.accepted, b.accepted),
                    rejected: per(a.rejected, b.rejected),
                    duplicates: per(a.duplicates, b.duplicates),
                };
                self.rejected_history
                    .push_back(Some(self.rates.rejected.round() as u64));
                while self.rejected_history.len() > 60 {
                    self.rejected_history.pop_front();
                }
            }
        } else {
            self.rates = Rates {
                received: m.totals.rate_1s,
                ..Rates::default()
            };
        }
        self.http.record(
            m.uptime_secs,
            &m.responses,
            &m.refusals,
            &m.refusals_by_sender,
        );
        self.metrics = Some(m);
    }

    /// Whether a tail message is one the tails already hold (counts one check).
    fn is_replayed(&mut self, message: &ServerMessage) -> bool {
        let held = match message {
            ServerMessage::Event(e) => self.events.items().rev().any(|r| {
                r.ev.id == e.id
                    && r.ev.application == e.application
                    && r.ev.organization == e.organization
            }),
            ServerMessage::Malformed(m) => self
                .malformed
                .items()
                .rev()
                .any(|h| h.batch_id == m.batch_id && h.index == m.index),
            ServerMessage::Lifecycle(w) => self.lifecycles.items().rev().any(|h| h.id == w.id),
            ServerMessage::Pipeline(p) => self
                .pipeline
                .items()
                .rev()
                .any(|h| h.batch_id == p.batch_id),
            _ => return false,
        };
        self.replay_checks -= 1;
        held
    }

    fn mark_all(&mut self, text: &str) {
        self.events.mark(text);
        self.malformed.mark(text);
        self.lifecycles.mark(text);
        self.pipeline.mark(text);
    }

    /// Feed drops of any kind (server side or console side).
    pub(crate) fn drops(&self) -> u64 {
        self.server_dropped + self.lag_dropped
    }

    /// How old the data on screen is, when the connection is down.
    pub(crate) fn stale_for_ms(&self, now_ms: i64) -> Option<i64> {
        self.disconnected_at_ms?;
        Some(now_ms - self.last_data_ms.or(self.disconnected_at_ms)?)
    }
}

#[cfg(test)]
mod tests;
