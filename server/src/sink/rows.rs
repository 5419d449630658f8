//! The rows a batch writes, built from spool records.
//!
//! The spool keeps only what was sent plus the batch's metadata; every derived value (the
//! denormalised columns, spans, exception occurrences) is computed again by the batcher with
//! `baddybugs_common::derive_event`: the parse and the column rules of the `check_event` that
//! accepted the event, without its validation (a 202 is not taken back).

use baddybugs_common::denorm::{Columns, ExceptionRow, SpanRow};
use baddybugs_common::protocol::StageTiming as Stage;
use baddybugs_common::Problem;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A string many rows of one batch share: the tenant, the batch id and the values that repeat
/// from event to event (type, environment, host, trace…). The batcher builds each distinct
/// value once per batch ([`crate::batch::build_batch`]), so a row holds a pointer to it instead
/// of its own copy: the rows of a built batch are most of the batcher's memory.
pub type SharedStr = Arc<str>;

/// One row of `events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// The event's id: the agent's `id`, or one the server assigned (deterministic per LSN).
    pub event_id: String,
    /// The spool record the event came from (the batch's LSN).
    pub lsn: u64,
    /// Index of the event in its request body.
    pub index: u32,
    /// The ingest batch (one per request).
    pub batch_id: SharedStr,
    /// The API key's organization.
    pub organization: SharedStr,
    /// The API key's application.
    pub application: SharedStr,
    /// `environment` / `env`.
    pub environment: SharedStr,
    /// `type`.
    pub event_type: SharedStr,
    /// `name`.
    pub name: String,
    /// Event time, epoch ms.
    pub timestamp_ms: i64,
    /// Where the time came from (`timestamp`, `datetime`, `received`).
    pub timestamp_source: SharedStr,
    /// When the server received it, epoch ms.
    pub received_ms: i64,
    /// `trace_id` (any string).
    pub trace_id: SharedStr,
    /// `session_id`.
    pub session_id: Option<SharedStr>,
    /// `release`.
    pub release: Option<SharedStr>,
    /// `host`.
    pub host: Option<SharedStr>,
    /// `deployment_hash`.
    pub deployment_hash: Option<SharedStr>,
    /// Whether the catalog knows the type.
    pub known_type: bool,
    /// The denormalised columns.
    pub columns: Columns,
    /// The payload exactly as sent.
    pub data: String,
    /// Every other top-level field, verbatim (a JSON object).
    pub envelope: String,
}

/// One row of `lifecycle_spans`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRowOut {
    /// The event that carried the span.
    pub event_id: SharedStr,
    /// The trace.
    pub trace_id: SharedStr,
    /// Organization.
    pub organization: SharedStr,
    /// Application.
    pub application: SharedStr,
    /// The event's time, epoch ms.
    pub timestamp_ms: i64,
    /// When the server received the event, epoch ms.
    pub received_ms: i64,
    /// The span itself.
    pub span: SpanRow,
}

/// One row of `exceptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionOccurrence {
    /// The event.
    pub event_id: String,
    /// The trace.
    pub trace_id: String,
    /// Organization.
    pub organization: String,
    /// Application.
    pub application: String,
    /// Environment.
    pub environment: String,
    /// The event's time, epoch ms.
    pub timestamp_ms: i64,
    /// When the server received the event, epoch ms.
    pub received_ms: i64,
    /// The occurrence.
    pub exception: ExceptionRow,
}

/// One row of `malformed_events` (the quarantine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MalformedRow {
    /// Quarantine id (deterministic: batch id + index).
    pub id: String,
    /// The spool record it came from.
    pub lsn: u64,
    /// When it was received, epoch ms.
    pub received_ms: i64,
    /// Organization of the key.
    pub organization: String,
    /// Application of the key.
    pub application: String,
    /// The batch.
    pub batch_id: String,
    /// Index in the body (`-1`/None for a whole-body rejection).
    pub index: Option<u32>,
    /// The event's `type` when readable.
    pub event_type: Option<String>,
    /// The event's `id` when readable.
    pub event_id: Option<String>,
    /// The reasons.
    pub reasons: Vec<Problem>,
    /// The original bytes (capped; see `raw_size`).
    pub raw: Vec<u8>,
    /// The original size in bytes.
    pub raw_size: u64,
    /// `X-Agent-Version`.
    pub agent_version: Option<String>,
    /// The client's address.
    pub remote_addr: Option<String>,
}

/// One row of `ingest_traces`: the server's own waterfall for one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRow {
    /// The batch.
    pub batch_id: String,
    /// The spool record.
    pub lsn: u64,
    /// When the request arrived, epoch ms.
    pub received_ms: i64,
    /// Organization.
    pub organization: String,
    /// Application.
    pub application: String,
    /// Outcome (`accepted`, `partial`, `rejected`, `quarantined_body`).
    pub outcome: String,
    /// Total duration from receipt to the store, µs.
    pub total_us: u64,
    /// Stages (the store keeps them as a JSON list of `{stage, start_us, duration_us}`).
    pub stages: Vec<Stage>,
    /// Compressed body bytes.
    pub bytes_compressed: u64,
    /// Inflated body bytes.
    pub bytes_inflated: u64,
    /// Events in the body.
    pub events: u32,
    /// Accepted events.
    pub accepted: u32,
    /// Rejected events.
    pub rejected: u32,
    /// Duplicate events.
    pub duplicates: u32,
}

impl TraceRow {
    /// Ends the `inserted` stage (and the total) at `stored_ms`, when the store write that
    /// carried the batch returned. The row written to the store cannot know its own write's
    /// end, so it ends when the batch was built; the live feed's copy, published after the
    /// write, includes the wait for the store.
    pub fn stored_at(&mut self, stored_ms: i64) {
        let end_us = ((stored_ms - self.received_ms).max(0) as u64) * 1000;
        if let Some(inserted) = self
            .stages
            .iter_mut()
            .find(|s| s.stage == baddybugs_common::protocol::StageName::Inserted)
        {
            inserted.duration_us = end_us.saturating_sub(inserted.start_us);
        }
        self.total_us = self.total_us.max(end_us);
    }
}

/// Whether a store writes [`SinkBatch::spans`], so whether the batcher derives them.
///
/// ClickHouse keeps them as `lifecycle_spans` rows, the table its waterfall reads. SQLite
/// derives a trace's spans from its stored `lifecycle` and `trace_span` events when the
/// waterfall is read (schema V7, sqlite/read.rs): a span row there held nothing its event does
/// not, and writing it cost a sixth of the drain (docs/BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanRows {
    /// The batcher derives every span row and the store writes them.
    Written,
    /// The batch carries no span rows: the store derives them at read.
    DerivedAtRead,
}

/// A table a batch writes, in the order both stores write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// `events`.
    Events,
    /// `lifecycle_spans`.
    Spans,
    /// `exceptions`.
    Exceptions,
    /// `malformed_events`.
    Malformed,
    /// `ingest_traces`.
    Traces,
}

impl Table {
    /// Every table, in write order (ClickHouse inserts them one after the other in this order).
    pub const ALL: [Table; 5] = [
        Table::Events,
        Table::Spans,
        Table::Exceptions,
        Table::Malformed,
        Table::Traces,
    ];

    /// The table's name (also the `table` label of the metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Spans => "lifecycle_spans",
            Table::Exceptions => "exceptions",
            Table::Malformed => "malformed_events",
            Table::Traces => "ingest_traces",
        }
    }
}

/// Everything one write carries, for one contiguous LSN range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkBatch {
    /// First spool LSN covered.
    pub first_lsn: u64,
    /// Last spool LSN covered.
    pub last_lsn: u64,
    /// Which part of the range when the batcher had to split it to isolate rows the store
    /// refused (`""` for the whole range, then `"0"`, `"1"`, `"01"` … by bisection path).
    /// Deterministic, so a replay produces the same parts and the same dedup tokens.
    pub part: String,
    /// `events` rows.
    pub events: Vec<EventRow>,
    /// `lifecycle_spans` rows.
    pub spans: Vec<SpanRowOut>,
    /// `exceptions` rows.
    pub exceptions: Vec<ExceptionOccurrence>,
    /// `malformed_events` rows.
    pub malformed: Vec<MalformedRow>,
    /// `ingest_traces` rows.
    pub traces: Vec<TraceRow>,
}

impl SinkBatch {
    /// A deterministic insert deduplication token for this batch and one table.
    ///
    /// Made of the LSN range, the bisection part and a digest of the identities of the rows
    /// the table receives (event ids, quarantine ids, batch ids; batch ids are random per
    /// request). A replay of the same spool range builds the same rows, hence the same token,
    /// and the store drops it; LSNs alone would not do, since they restart at 1 when a spool
    /// directory is deleted, and new rows under an old token would be silently dropped.
    ///
    /// A table's token depends on that table's rows only, so a batch cut down to one table
    /// (as the batcher does to isolate a refused row) gives each table the token it had in the
    /// whole batch: ClickHouse then drops the tables that had already landed.
    pub fn dedup_token(&self, table: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        let mut feed = |key: &str| {
            digest.update(key.as_bytes());
            digest.update([0u8]);
        };
        match table {
            // Event ids may be the agent's (reused by a buggy agent): the batch ids (of events)
            // and receipt times (of spans and exceptions) make the digest unique to these
            // requests.
            "events" => {
                self.events.iter().for_each(|r| feed(&r.event_id));
                self.events.iter().for_each(|r| feed(&r.batch_id));
            }
            "lifecycle_spans" => self.spans.iter().for_each(|r| {
                feed(&r.event_id);
                feed(r.span.kind.as_str());
                feed(&r.span.span_id.to_string());
                feed(&r.received_ms.to_string());
            }),
            "exceptions" => self.exceptions.iter().for_each(|r| {
                feed(&r.event_id);
                feed(&r.received_ms.to_string());
            }),
            "malformed_events" => self.malformed.iter().for_each(|r| feed(&r.id)),
            "ingest_traces" => self.traces.iter().for_each(|r| feed(&r.batch_id)),
            _ => {}
        }
        let digest = hex::encode(&digest.finalize()[..8]);
        format!(
            "bb-{table}-{}-{}-{}-{digest}",
            self.first_lsn,
            self.last_lsn,
            if self.part.is_empty() {
                "all"
            } else {
                &self.part
            }
        )
    }

    /// About the bytes this batch holds on the heap: each row's struct, the capacity of every
    /// string it owns and its share of the [`SharedStr`] ones (allocator rounding aside). For the batcher's memory gauge; one
    /// pass over the rows, done once per built batch.
    pub fn heap_bytes(&self) -> u64 {
        use std::mem::size_of;
        fn opt(s: &Option<String>) -> usize {
            s.as_ref().map_or(0, String::capacity)
        }
        // A shared string once per batch, whichever rows point to it: each of its n holders
        // counts 1/n of it and of its two counters (the builder's own references are gone by
        // the time the gauge reads this).
        fn shared(s: &SharedStr) -> usize {
            (s.len() + 2 * size_of::<usize>()).div_ceil(Arc::strong_count(s))
        }
        let events: usize = self
            .events
            .iter()
            .map(|e| {
                let c = &e.columns;
                [&e.event_id, &e.name, &e.data, &e.envelope]
                    .iter()
                    .map(|s| s.capacity())
                    .sum::<usize>()
                    + [
                        &e.batch_id,
                        &e.organization,
                        &e.application,
                        &e.environment,
                        &e.event_type,
                        &e.timestamp_source,
                        &e.trace_id,
                    ]
                    .into_iter()
                    .map(shared)
                    .sum::<usize>()
                    + [&e.session_id, &e.release, &e.host, &e.deployment_hash]
                        .into_iter()
                        .map(|s| s.as_ref().map_or(0, shared))
                        .sum::<usize>()
                    + [&c.user_id, &c.severity, &c.request_id, &c.job_id]
                        .into_iter()
                        .map(opt)
                        .sum::<usize>()
            })
            .sum::<usize>()
            + self.events.capacity() * size_of::<EventRow>();
        let spans: usize = self
            .spans
            .iter()
            .map(|s| {
                let r = &s.span;
                [&s.event_id, &s.trace_id, &s.organization, &s.application]
                    .into_iter()
                    .map(shared)
                    .sum::<usize>()
                    + r.span_type.capacity()
                    + r.label.capacity()
                    + [
                        &r.sql,
                        &r.cache_key,
                        &r.http_url,
                        &r.http_method,
                        &r.job_class,
                    ]
                    .into_iter()
                    .map(opt)
                    .sum::<usize>()
            })
            .sum::<usize>()
            + self.spans.capacity() * size_of::<SpanRowOut>();
        let exceptions: usize = self
            .exceptions
            .iter()
            .map(|o| {
                let x = &o.exception;
                o.event_id.capacity()
                    + o.trace_id.capacity()
                    + o.organization.capacity()
                    + o.application.capacity()
                    + o.environment.capacity()
                    + x.exception_class.capacity()
                    + x.message.capacity()
                    + x.file.capacity()
                    + x.fingerprint.capacity()
                    + x.trace.capacity()
                    + x.severity.capacity()
                    + [
                        &x.code,
                        &x.source_code,
                        &x.breadcrumbs,
                        &x.user_id,
                        &x.url,
                        &x.method,
                    ]
                    .into_iter()
                    .map(opt)
                    .sum::<usize>()
            })
            .sum::<usize>()
            + self.exceptions.capacity() * size_of::<ExceptionOccurrence>();
        let malformed: usize = self
            .malformed
            .iter()
            .map(|m| {
                m.id.capacity()
                    + m.organization.capacity()
                    + m.application.capacity()
                    + m.batch_id.capacity()
                    + m.raw.capacity()
                    + opt(&m.event_type)
                    + opt(&m.event_id)
                    + opt(&m.agent_version)
                    + opt(&m.remote_addr)
                    + m.reasons.capacity() * size_of::<Problem>()
                    + m.reasons
                        .iter()
                        .map(|p| {
                            p.path.capacity()
                                + p.expected.capacity()
                                + p.found.capacity()
                                + p.message.capacity()
                        })
                        .sum::<usize>()
            })
            .sum::<usize>()
            + self.malformed.capacity() * size_of::<MalformedRow>();
        let traces: usize = self
            .traces
            .iter()
            .map(|t| {
                t.batch_id.capacity()
                    + t.organization.capacity()
                    + t.application.capacity()
                    + t.outcome.capacity()
                    + t.stages.capacity() * size_of::<Stage>()
            })
            .sum::<usize>()
            + self.traces.capacity() * size_of::<TraceRow>();
        (events + spans + exceptions + malformed + traces + self.part.capacity()) as u64
    }

    /// Rows of one table.
    pub fn rows_of(&self, table: Table) -> usize {
        match table {
            Table::Events => self.events.len(),
            Table::Spans => self.spans.len(),
            Table::Exceptions => self.exceptions.len(),
            Table::Malformed => self.malformed.len(),
            Table::Traces => self.traces.len(),
        }
    }

    /// An empty batch of the same range and part.
    fn same_range(&self) -> SinkBatch {
        SinkBatch {
            first_lsn: self.first_lsn,
            last_lsn: self.last_lsn,
            part: self.part.clone(),
            ..SinkBatch::default()
        }
    }

    /// The same range and part with the rows of `table` only.
    pub fn only(&self, table: Table) -> SinkBatch {
        let mut out = self.same_range();
        match table {
            Table::Events => out.events = self.events.clone(),
            Table::Spans => out.spans = self.spans.clone(),
            Table::Exceptions => out.exceptions = self.exceptions.clone(),
            Table::Malformed => out.malformed = self.malformed.clone(),
            Table::Traces => out.traces = self.traces.clone(),
        }
        out
    }

    /// Splits the rows of `table` at `at`: `self` keeps the first ones, the returned batch (same
    /// range and part) holds the rest of that table's rows and nothing else.
    pub fn split_off(&mut self, table: Table, at: usize) -> SinkBatch {
        let mut out = self.same_range();
        match table {
            Table::Events => out.events = self.events.split_off(at),
            Table::Spans => out.spans = self.spans.split_off(at),
            Table::Exceptions => out.exceptions = self.exceptions.split_off(at),
            Table::Malformed => out.malformed = self.malformed.split_off(at),
            Table::Traces => out.traces = self.traces.split_off(at),
        }
        out
    }

    /// Total rows of every table.
    pub fn row_count(&self) -> usize {
        self.events.len()
            + self.spans.len()
            + self.exceptions.len()
            + self.malformed.len()
            + self.traces.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(event_id: &str, batch_id: &str) -> SinkBatch {
        let row = EventRow {
            event_id: event_id.to_owned(),
            lsn: 1,
            index: 0,
            batch_id: batch_id.into(),
            organization: "acme".into(),
            application: "shop".into(),
            environment: "production".into(),
            event_type: "cache".into(),
            name: "k".to_owned(),
            timestamp_ms: 1,
            timestamp_source: "timestamp".into(),
            received_ms: 2,
            trace_id: "".into(),
            session_id: None,
            release: None,
            host: None,
            deployment_hash: None,
            known_type: true,
            columns: Columns::default(),
            data: "{}".to_owned(),
            envelope: "{}".to_owned(),
        };
        SinkBatch {
            first_lsn: 1,
            last_lsn: 1,
            events: vec![row],
            ..SinkBatch::default()
        }
    }

    /// Several ingest nodes write to one ClickHouse and every spool numbers its records from 1:
    /// the same LSN range on two nodes must not give the same token, or ClickHouse would drop
    /// the second node's rows as a replay. A replay of the same rows must give the same token.
    /// (End to end: `fleet.rs::a_fleet_with_a_node_killed_mid_run_stores_every_acknowledged_event_once`.)
    #[test]
    fn the_same_lsn_range_on_two_nodes_gives_two_tokens_and_a_replay_the_same_one() {
        let node_a = batch("e-1", "batch-of-node-a");
        let node_b = batch("e-2", "batch-of-node-b");
        assert_ne!(node_a.dedup_token("events"), node_b.dedup_token("events"));
        // Even a retried event (same id) that reached two nodes: the batch ids differ.
        let retried = batch("e-1", "batch-of-node-b");
        assert_ne!(node_a.dedup_token("events"), retried.dedup_token("events"));
        assert_eq!(
            node_a.dedup_token("events"),
            batch("e-1", "batch-of-node-a").dedup_token("events")
        );
    }

    /// Issue 16, item 7: the live copy of a slow batch's trace shows the wait for the store in
    /// its `inserted` stage, not a total that no stage explains.
    #[test]
    fn a_trace_published_after_the_write_ends_at_the_write() {
        use baddybugs_common::protocol::StageName;
        let stage = |stage, start_us, duration_us| Stage {
            stage,
            start_us,
            duration_us,
        };
        let mut trace = TraceRow {
            batch_id: "b".into(),
            lsn: 1,
            received_ms: 1_000,
            organization: "acme".into(),
            application: "shop".into(),
            outcome: "accepted".into(),
            total_us: 9_000,
            stages: vec![
                stage(StageName::Spooled, 1_000, 2_000),
                stage(StageName::Acknowledged, 3_000, 0),
                stage(StageName::Inserted, 3_000, 6_000),
            ],
            bytes_compressed: 0,
            bytes_inflated: 0,
            events: 1,
            accepted: 1,
            rejected: 0,
            duplicates: 0,
        };
        trace.stored_at(6_400);
        assert_eq!(trace.total_us, 5_400_000);
        assert_eq!(trace.stages[2].duration_us, 5_397_000);
        assert_eq!(trace.stages[0].duration_us, 2_000, "the other stages stay");
    }
}
