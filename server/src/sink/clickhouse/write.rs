//! One batch → one RowBinary insert per table, each with its deduplication token.
//!
//! The rows are serialized straight from the batch by borrowing (no copy of `data`), LZ4
//! compressed by the client. `async_insert=0` is set explicitly: the batcher already makes one
//! large insert per table per batch (10k rows by default, 25k while catching up; about one per
//! second per table at full load), and an asynchronous insert would acknowledge before the rows
//! are in a part, which would let the batcher advance the spool checkpoint over data not yet
//! stored.
//!
//! Idempotence: each insert carries [`SinkBatch::dedup_token`] for its table and the tables keep
//! the hashes of their recent blocks, so replaying the insert (a retry after a timeout whose
//! first attempt did land, or the replay of a spool range after a crash before the checkpoint)
//! is dropped by ClickHouse. Tables are inserted in a fixed order; a failure in the middle
//! leaves the earlier tables written, and the retry's inserts into those are dropped as
//! duplicates while the rest are written.

use clickhouse::{Client, Row};
use serde::Serialize;

use crate::sink::query::stages_to_text;
use crate::sink::{EventRow, ExceptionOccurrence, MalformedRow, SinkBatch, SpanRowOut, TraceRow};

/// A row of `events`, borrowed from an [`EventRow`].
#[derive(Row, Serialize)]
struct EventInsert<'a> {
    event_id: &'a str,
    organization: &'a str,
    application: &'a str,
    environment: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    name: &'a str,
    timestamp: i64,
    timestamp_source: &'a str,
    received_at: i64,
    trace_id: &'a str,
    session_id: Option<&'a str>,
    release: Option<&'a str>,
    host: Option<&'a str>,
    deployment_hash: Option<&'a str>,
    batch_id: &'a str,
    lsn: u64,
    idx: u32,
    known_type: bool,
    duration_ms: Option<f64>,
    user_id: Option<&'a str>,
    status_code: Option<u16>,
    is_error: bool,
    severity: Option<&'a str>,
    request_id: Option<&'a str>,
    job_id: Option<&'a str>,
    data: &'a str,
    envelope: &'a str,
}

impl<'a> From<&'a EventRow> for EventInsert<'a> {
    fn from(e: &'a EventRow) -> Self {
        let c = &e.columns;
        EventInsert {
            event_id: &e.event_id,
            organization: &e.organization,
            application: &e.application,
            environment: &e.environment,
            event_type: &e.event_type,
            name: &e.name,
            timestamp: e.timestamp_ms,
            timestamp_source: &e.timestamp_source,
            received_at: e.received_ms,
            trace_id: &e.trace_id,
            session_id: e.session_id.as_deref(),
            release: e.release.as_deref(),
            host: e.host.as_deref(),
            deployment_hash: e.deployment_hash.as_deref(),
            batch_id: &e.batch_id,
            lsn: e.lsn,
            idx: e.index,
            known_type: e.known_type,
            duration_ms: c.duration_ms,
            user_id: c.user_id.as_deref(),
            status_code: c.status_code,
            is_error: c.is_error,
            severity: c.severity.as_deref(),
            request_id: c.request_id.as_deref(),
            job_id: c.job_id.as_deref(),
            data: &e.data,
            envelope: &e.envelope,
        }
    }
}

/// A row of `lifecycle_spans`.
#[derive(Row, Serialize)]
struct SpanInsert<'a> {
    trace_id: &'a str,
    timestamp: i64,
    received_at: i64,
    event_id: &'a str,
    organization: &'a str,
    application: &'a str,
    kind: &'a str,
    span_id: u32,
    span_type: &'a str,
    label: &'a str,
    start_offset_ms: f64,
    duration_ms: f64,
    depth: u8,
    started_at: Option<i64>,
    sql: Option<&'a str>,
    cache_key: Option<&'a str>,
    http_url: Option<&'a str>,
    http_method: Option<&'a str>,
    http_status: Option<u16>,
    job_class: Option<&'a str>,
}

impl<'a> From<&'a SpanRowOut> for SpanInsert<'a> {
    fn from(r: &'a SpanRowOut) -> Self {
        let s = &r.span;
        SpanInsert {
            trace_id: &r.trace_id,
            timestamp: r.timestamp_ms,
            received_at: r.received_ms,
            event_id: &r.event_id,
            organization: &r.organization,
            application: &r.application,
            kind: s.kind.as_str(),
            span_id: s.span_id,
            span_type: &s.span_type,
            label: &s.label,
            start_offset_ms: s.start_offset_ms,
            duration_ms: s.duration_ms,
            depth: s.depth,
            started_at: s.started_at_ms,
            sql: s.sql.as_deref(),
            cache_key: s.cache_key.as_deref(),
            http_url: s.http_url.as_deref(),
            http_method: s.http_method.as_deref(),
            http_status: s.http_status,
            job_class: s.job_class.as_deref(),
        }
    }
}

/// A row of `exceptions`.
#[derive(Row, Serialize)]
struct ExceptionInsert<'a> {
    organization: &'a str,
    application: &'a str,
    fingerprint: &'a str,
    timestamp: i64,
    received_at: i64,
    event_id: &'a str,
    trace_id: &'a str,
    environment: &'a str,
    exception_class: &'a str,
    message: &'a str,
    file: &'a str,
    line: u32,
    code: Option<&'a str>,
    trace: &'a str,
    source_code: Option<&'a str>,
    breadcrumbs: Option<&'a str>,
    severity: &'a str,
    handled: bool,
    user_id: Option<&'a str>,
    url: Option<&'a str>,
    method: Option<&'a str>,
}

impl<'a> From<&'a ExceptionOccurrence> for ExceptionInsert<'a> {
    fn from(o: &'a ExceptionOccurrence) -> Self {
        let x = &o.exception;
        ExceptionInsert {
            organization: &o.organization,
            application: &o.application,
            fingerprint: &x.fingerprint,
            timestamp: o.timestamp_ms,
            received_at: o.received_ms,
            event_id: &o.event_id,
            trace_id: &o.trace_id,
            environment: &o.environment,
            exception_class: &x.exception_class,
            message: &x.message,
            file: &x.file,
            line: x.line,
            code: x.code.as_deref(),
            trace: &x.trace,
            source_code: x.source_code.as_deref(),
            breadcrumbs: x.breadcrumbs.as_deref(),
            severity: &x.severity,
            handled: x.handled,
            user_id: x.user_id.as_deref(),
            url: x.url.as_deref(),
            method: x.method.as_deref(),
        }
    }
}

/// A row of `malformed_events`.
#[derive(Row, Serialize)]
struct MalformedInsert<'a> {
    received_at: i64,
    id: &'a str,
    lsn: u64,
    organization: &'a str,
    application: &'a str,
    batch_id: &'a str,
    idx: Option<u32>,
    #[serde(rename = "type")]
    event_type: Option<&'a str>,
    event_id: Option<&'a str>,
    codes: Vec<&'static str>,
    reasons: String,
    #[serde(with = "serde_bytes")]
    raw: &'a [u8],
    raw_size: u64,
    agent_version: Option<&'a str>,
    remote_addr: Option<&'a str>,
}

impl<'a> MalformedInsert<'a> {
    fn new(m: &'a MalformedRow) -> Result<Self, serde_json::Error> {
        let mut codes: Vec<&'static str> = Vec::new();
        for problem in &m.reasons {
            let code = problem.code.as_str();
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        Ok(MalformedInsert {
            received_at: m.received_ms,
            id: &m.id,
            lsn: m.lsn,
            organization: &m.organization,
            application: &m.application,
            batch_id: &m.batch_id,
            idx: m.index,
            event_type: m.event_type.as_deref(),
            event_id: m.event_id.as_deref(),
            codes,
            reasons: serde_json::to_string(&m.reasons)?,
            raw: &m.raw,
            raw_size: m.raw_size,
            agent_version: m.agent_version.as_deref(),
            remote_addr: m.remote_addr.as_deref(),
        })
    }
}

/// A row of `ingest_traces`.
#[derive(Row, Serialize)]
struct TraceInsert<'a> {
    received_at: i64,
    batch_id: &'a str,
    lsn: u64,
    organization: &'a str,
    application: &'a str,
    outcome: &'a str,
    total_us: u64,
    stages: String,
    bytes_compressed: u64,
    bytes_inflated: u64,
    events: u32,
    accepted: u32,
    rejected: u32,
    duplicates: u32,
}

impl<'a> From<&'a TraceRow> for TraceInsert<'a> {
    fn from(t: &'a TraceRow) -> Self {
        TraceInsert {
            received_at: t.received_ms,
            batch_id: &t.batch_id,
            lsn: t.lsn,
            organization: &t.organization,
            application: &t.application,
            outcome: &t.outcome,
            total_us: t.total_us,
            stages: stages_to_text(&t.stages),
            bytes_compressed: t.bytes_compressed,
            bytes_inflated: t.bytes_inflated,
            events: t.events,
            accepted: t.accepted,
            rejected: t.rejected,
            duplicates: t.duplicates,
        }
    }
}

/// The client for one table's insert: the batch's deduplication token, synchronous insert.
fn insert_client(client: &Client, batch: &SinkBatch, table: &str) -> Client {
    client
        .clone()
        .with_setting("insert_deduplication_token", batch.dedup_token(table))
        .with_setting("insert_deduplicate", "1")
        .with_setting("async_insert", "0")
        // The exception groups view must drop a replay too (see schema.rs).
        .with_setting("deduplicate_blocks_in_dependent_materialized_views", "1")
}

/// Writes every table's rows of `batch` (tables without rows are skipped). `client` has the
/// database set.
pub(super) async fn write_batch(
    client: &Client,
    batch: &SinkBatch,
) -> Result<(), clickhouse::error::Error> {
    if !batch.events.is_empty() {
        let client = insert_client(client, batch, "events");
        let mut insert = client.insert::<EventInsert<'_>>("events").await?;
        for row in &batch.events {
            insert.write(&EventInsert::from(row)).await?;
        }
        insert.end().await?;
    }
    if !batch.spans.is_empty() {
        let client = insert_client(client, batch, "lifecycle_spans");
        let mut insert = client.insert::<SpanInsert<'_>>("lifecycle_spans").await?;
        for row in &batch.spans {
            insert.write(&SpanInsert::from(row)).await?;
        }
        insert.end().await?;
    }
    if !batch.exceptions.is_empty() {
        let client = insert_client(client, batch, "exceptions");
        let mut insert = client.insert::<ExceptionInsert<'_>>("exceptions").await?;
        for row in &batch.exceptions {
            insert.write(&ExceptionInsert::from(row)).await?;
        }
        insert.end().await?;
    }
    if !batch.malformed.is_empty() {
        let client = insert_client(client, batch, "malformed_events");
        let mut insert = client
            .insert::<MalformedInsert<'_>>("malformed_events")
            .await?;
        for row in &batch.malformed {
            let row = MalformedInsert::new(row)
                .map_err(|err| clickhouse::error::Error::Custom(err.to_string()))?;
            insert.write(&row).await?;
        }
        insert.end().await?;
    }
    if !batch.traces.is_empty() {
        let client = insert_client(client, batch, "ingest_traces");
        let mut insert = client.insert::<TraceInsert<'_>>("ingest_traces").await?;
        for row in &batch.traces {
            insert.write(&TraceInsert::from(row)).await?;
        }
        insert.end().await?;
    }
    Ok(())
}
