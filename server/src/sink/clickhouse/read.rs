//! The query side on ClickHouse: the same filters and the same answers as the embedded store
//! (`sink/sqlite/read.rs`), so `/v1/events` reads the same whatever the sink.
//!
//! Values are bound client-side by the `clickhouse` crate (`?` placeholders, escaped), never
//! spliced as text. Times are compared as `DateTime64(3)` built from the epoch milliseconds of
//! the filter, so the partition pruning and the `timestamp` minmax index apply. Pages are keyset
//! on (timestamp, event_id) like SQLite's.

use std::time::Duration;

use clickhouse::{Client, Row};
use serde::Deserialize;
use serde_json::json;

use baddybugs_common::timestamp::format_millis;

use crate::sink::query::{
    decode_cursor, encode_cursor, render_stored_json, stages_from_text, MALFORMED_LIST_RAW_BYTES,
};
use crate::sink::{
    EventFilter, EventLookup, EventPage, ExceptionGroup, MalformedFilter, SinkError, StoredEvent,
    StoredMalformed, StoredTrace, TraceFilter, TraceOrder,
};

/// At most this many span rows are returned for one trace (as the embedded store).
const MAX_TRACE_SPANS: usize = 10_000;

/// A milliseconds literal as a `DateTime64(3)` (bound with `?`).
const MS: &str = "fromUnixTimestamp64Milli(toInt64(?), 'UTC')";

/// A bound value of a WHERE clause.
enum Arg {
    Text(String),
    Int(i64),
}

/// WHERE clauses with `?` placeholders and their values, in order.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Where {
    fn text(&mut self, clause: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.clauses.push(clause.to_owned());
            self.args.push(Arg::Text(v.clone()));
        }
    }

    fn ms(&mut self, column_op: &str, value: Option<i64>) {
        if let Some(v) = value {
            self.clauses.push(format!("{column_op} {MS}"));
            self.args.push(Arg::Int(v));
        }
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn bind(self, mut query: clickhouse::query::Query) -> clickhouse::query::Query {
        for arg in self.args {
            query = match arg {
                Arg::Text(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
            };
        }
        query
    }
}

/// An `events` row as the query API reads it.
#[derive(Row, Deserialize)]
struct EventRead {
    event_id: String,
    #[serde(rename = "type")]
    event_type: String,
    name: String,
    timestamp: i64,
    timestamp_source: String,
    received_at: i64,
    trace_id: String,
    session_id: Option<String>,
    environment: String,
    release: Option<String>,
    host: Option<String>,
    deployment_hash: Option<String>,
    organization: String,
    application: String,
    batch_id: String,
    duration_ms: Option<f64>,
    user_id: Option<String>,
    status_code: Option<u16>,
    is_error: bool,
    severity: Option<String>,
    request_id: Option<String>,
    job_id: Option<String>,
    data: String,
    envelope: String,
}

impl EventRead {
    fn into_stored(self) -> Result<StoredEvent, SinkError> {
        let mut unrenderable = Vec::new();
        let data = render_stored_json(self.data, "data", &mut unrenderable);
        let envelope = render_stored_json(self.envelope, "envelope", &mut unrenderable);
        Ok(StoredEvent {
            id: self.event_id,
            event_type: self.event_type,
            name: self.name,
            timestamp: format_millis(self.timestamp),
            timestamp_source: self.timestamp_source,
            received_at: format_millis(self.received_at),
            trace_id: self.trace_id,
            session_id: self.session_id,
            environment: self.environment,
            release: self.release,
            host: self.host,
            deployment_hash: self.deployment_hash,
            organization: self.organization,
            application: self.application,
            batch_id: self.batch_id,
            duration_ms: self.duration_ms,
            user_id: self.user_id,
            status_code: self.status_code,
            is_error: self.is_error,
            severity: self.severity,
            request_id: self.request_id,
            job_id: self.job_id,
            data,
            envelope,
            unrenderable,
        })
    }
}

/// Rows fetched beyond a page of events, to make up for the copies dropped from it.
const PAGE_SLACK: usize = 16;

/// Drops the copies of an event, keeping its first row: `events` has no unique key, and an agent
/// retry that reached a second node after the first had stored the batch (and died before
/// answering) is stored by both. The real agent stamps every event (`timestamp`), so copies
/// share the sort key (timestamp, event_id, tenant) and sit side by side, the first received
/// first (SQLite keeps the first received too). An event sent without a time of its own is
/// placed at each receipt: its copies are dropped when they fall within one page (as here),
/// not when a page boundary separates them. Done here rather than with `LIMIT 1 BY` in the
/// query: that clause makes ClickHouse sort every matching row instead of reading the top of the
/// page (80× slower on 5M rows, docs/BENCHMARKS.md).
fn collapse_copies(rows: Vec<EventRead>) -> Vec<EventRead> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    rows.into_iter()
        .filter(|row| {
            seen.insert((
                row.organization.clone(),
                row.application.clone(),
                row.event_id.clone(),
            ))
        })
        .collect()
}

/// Events matching `filter`, newest first (timestamp DESC, event_id DESC), each once.
pub(super) async fn query_events(
    client: &Client,
    filter: &EventFilter,
) -> Result<EventPage, SinkError> {
    let mut w = Where::default();
    w.text("organization = ?", &filter.organization);
    w.text("application = ?", &filter.application);
    w.text("type = ?", &filter.event_type);
    w.text("name = ?", &filter.name);
    w.text("trace_id = ?", &filter.trace_id);
    w.text("user_id = ?", &filter.user_id);
    w.text("environment = ?", &filter.environment);
    w.ms("timestamp >=", filter.since_ms);
    w.ms("timestamp <", filter.until_ms);
    if let Some(is_error) = filter.is_error {
        w.clauses
            .push(format!("is_error = {}", if is_error { 1 } else { 0 }));
    }
    if let Some(cursor) = &filter.cursor {
        let (ts, id) = decode_cursor(cursor)
            .ok_or_else(|| SinkError::BadQuery(format!("invalid cursor {cursor:?}")))?;
        w.clauses.push(format!("(timestamp, event_id) < ({MS}, ?)"));
        w.args.push(Arg::Int(ts));
        w.args.push(Arg::Text(id));
    }
    let limit = filter.page_size() as usize;
    // A few rows more than the page, so that copies of an event (stored once by each of two
    // nodes) can be dropped and the page still be full.
    let fetch = limit + PAGE_SLACK;
    let sql = format!(
        "SELECT ?fields FROM events{}
          ORDER BY timestamp DESC, event_id DESC, organization, application, received_at, lsn, idx
          LIMIT {fetch}",
        w.sql()
    );
    let fetched = w
        .bind(client.query(&sql))
        .fetch_all::<EventRead>()
        .await
        .map_err(super::classify)?;
    let more = fetched.len() == fetch;
    let mut rows = collapse_copies(fetched);
    rows.truncate(limit);
    let next_cursor = match rows.last() {
        Some(last) if rows.len() == limit || more => {
            Some(encode_cursor(last.timestamp, &last.event_id))
        }
        _ => None,
    };
    Ok(EventPage {
        events: rows
            .into_iter()
            .map(EventRead::into_stored)
            .collect::<Result<_, _>>()?,
        next_cursor,
    })
}

/// The events with an id within the lookup's tenant scope, one per (organization,
/// application), in that order (the `event_id` bloom filter skips the granules without it; the
/// tenant leads the sorting key). `events` has no unique key: a copy stored twice (a replay
/// under a new insert token) is read once, the first received, as SQLite keeps the first.
pub(super) async fn get_event(
    client: &Client,
    lookup: &EventLookup,
) -> Result<Vec<StoredEvent>, SinkError> {
    let mut w = Where::default();
    w.text("event_id = ?", &Some(lookup.event_id.clone()));
    w.text("organization = ?", &lookup.organization);
    w.text("application = ?", &lookup.application);
    let sql = format!(
        "SELECT ?fields FROM events{}
          ORDER BY organization, application, received_at, lsn, idx
          LIMIT 1 BY organization, application, event_id
          LIMIT {}",
        w.sql(),
        EventLookup::MAX_MATCHES
    );
    w.bind(client.query(&sql))
        .fetch_all::<EventRead>()
        .await
        .map_err(super::classify)?
        .into_iter()
        .map(EventRead::into_stored)
        .collect()
}

/// Rows beyond the first of each (organization, application, event_id) among the events
/// received in the last `window` (the partition key is the receipt month, so older months are
/// not read; within the window every row is, once a minute by default: see
/// `clickhouse.copies_check_secs`).
pub(super) async fn extra_copies(client: &Client, window: Duration) -> Result<u64, SinkError> {
    client
        .query(
            "SELECT toUInt64(count() - uniqExact(organization, application, event_id)) FROM events
              WHERE received_at >= now64(3) - toIntervalMillisecond(?)",
        )
        .bind(window.as_millis() as u64)
        .fetch_one::<u64>()
        .await
        .map_err(super::classify)
}

/// Which of `ids` are stored as events of the tenant (the sort key starts with the tenant and
/// the `event_id` bloom filter skips the other granules).
pub(super) async fn stored_event_ids(
    client: &Client,
    organization: &str,
    application: &str,
    ids: &[String],
) -> Result<Vec<String>, SinkError> {
    client
        .query(
            "SELECT DISTINCT event_id FROM events \
             WHERE organization = ? AND application = ? AND event_id IN ?",
        )
        .bind(organization)
        .bind(application)
        .bind(ids)
        .fetch_all::<String>()
        .await
        .map_err(super::classify)
}

/// A `malformed_events` row.
#[derive(Row, Deserialize)]
struct MalformedRead {
    id: String,
    received_at: i64,
    organization: String,
    application: String,
    batch_id: String,
    idx: Option<u32>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    event_id: Option<String>,
    codes: Vec<String>,
    reasons: String,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    raw_size: u64,
    agent_version: Option<String>,
    remote_addr: Option<String>,
}

impl MalformedRead {
    fn into_stored(self) -> Result<StoredMalformed, SinkError> {
        Ok(StoredMalformed {
            reasons: serde_json::from_str(&self.reasons).map_err(|err| {
                SinkError::other(format!("stored reasons of {} are not JSON", self.id), err)
            })?,
            id: self.id,
            received_at: format_millis(self.received_at),
            organization: self.organization,
            application: self.application,
            batch_id: self.batch_id,
            index: self.idx,
            event_type: self.event_type,
            event_id: self.event_id,
            codes: self.codes,
            truncated: (self.raw.len() as u64) < self.raw_size,
            raw: String::from_utf8_lossy(&self.raw).into_owned(),
            raw_size: self.raw_size,
            agent_version: self.agent_version,
            remote_addr: self.remote_addr,
        })
    }
}

/// Quarantined events matching `filter`, newest first.
pub(super) async fn query_malformed(
    client: &Client,
    filter: &MalformedFilter,
) -> Result<Vec<StoredMalformed>, SinkError> {
    let mut w = Where::default();
    w.text("type = ?", &filter.event_type);
    w.text("application = ?", &filter.application);
    w.ms("received_at >=", filter.since_ms);
    w.ms("received_at <", filter.until_ms);
    w.text("has(codes, ?)", &filter.reason);
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let sql = format!(
        "SELECT id, received_at, organization, application, batch_id, idx, `type`, event_id, \
         codes, reasons, substring(raw, 1, {MALFORMED_LIST_RAW_BYTES}) AS raw, raw_size, \
         agent_version, remote_addr \
         FROM malformed_events{} ORDER BY received_at DESC, id DESC LIMIT 1 BY id LIMIT {limit}",
        w.sql()
    );
    w.bind(client.query(&sql))
        .fetch_all::<MalformedRead>()
        .await
        .map_err(super::classify)?
        .into_iter()
        .map(MalformedRead::into_stored)
        .collect()
}

/// Quarantined events by id, in the order asked; unknown ids are left out.
pub(super) async fn get_malformed(
    client: &Client,
    ids: &[String],
) -> Result<Vec<StoredMalformed>, SinkError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query("SELECT ?fields FROM malformed_events WHERE id IN ? LIMIT 1 BY id")
        .bind(ids)
        .fetch_all::<MalformedRead>()
        .await
        .map_err(super::classify)?;
    let mut by_id: std::collections::HashMap<String, MalformedRead> =
        rows.into_iter().map(|r| (r.id.clone(), r)).collect();
    ids.iter()
        .filter_map(|id| by_id.remove(id))
        .map(MalformedRead::into_stored)
        .collect()
}

/// The `raw` column alone.
#[derive(Row, Deserialize)]
struct RawRead {
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
}

/// The kept bytes of one quarantined entry, as stored; `None` for an unknown id.
pub(super) async fn malformed_raw(client: &Client, id: &str) -> Result<Option<Vec<u8>>, SinkError> {
    Ok(client
        .query("SELECT ?fields FROM malformed_events WHERE id = ? LIMIT 1")
        .bind(id)
        .fetch_optional::<RawRead>()
        .await
        .map_err(super::classify)?
        .map(|row| row.raw))
}

/// One merged exception group.
#[derive(Row, Deserialize)]
struct GroupRead {
    organization: String,
    application: String,
    fingerprint: String,
    exception_class: String,
    last_message: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    occurrence_count: u64,
}

/// Exception groups, most recently seen first, merged from the aggregating table (its parts
/// may not be merged yet, hence the GROUP BY). Same time semantics as the embedded store.
pub(super) async fn exception_groups(
    client: &Client,
    filter: &EventFilter,
) -> Result<Vec<ExceptionGroup>, SinkError> {
    let mut tenant = Where::default();
    tenant.text("organization = ?", &filter.organization);
    tenant.text("application = ?", &filter.application);
    let tenant_sql = if tenant.clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", tenant.clauses.join(" AND "))
    };
    let mut having = Where::default();
    having.ms("seen_last >=", filter.since_ms);
    having.ms("seen_first <", filter.until_ms);
    let having_sql = if having.clauses.is_empty() {
        String::new()
    } else {
        format!(" HAVING {}", having.clauses.join(" AND "))
    };
    // Aliases differ from the column names so that no alias shadows a column inside an
    // aggregate.
    let sql = format!(
        "SELECT organization, application, fingerprint,
                argMaxMerge(exception_class) AS class_last,
                argMaxMerge(last_message) AS message_last,
                min(first_seen) AS seen_first,
                max(last_seen) AS seen_last,
                sum(occurrence_count) AS occurrences
           FROM exception_groups{tenant_sql}
          GROUP BY organization, application, fingerprint{having_sql}
          ORDER BY seen_last DESC, organization, application, fingerprint
          LIMIT {}",
        filter.page_size()
    );
    let sql = format!(
        "SELECT organization, application, fingerprint,
                class_last AS exception_class,
                message_last AS last_message,
                toUnixTimestamp64Milli(seen_first) AS first_seen_ms,
                toUnixTimestamp64Milli(seen_last) AS last_seen_ms,
                toUInt64(occurrences) AS occurrence_count
           FROM ({sql})
          ORDER BY last_seen_ms DESC, organization, application, fingerprint"
    );
    // The tenant's placeholders come first in the statement, then the HAVING ones.
    let rows = having
        .bind(tenant.bind(client.query(&sql)))
        .fetch_all::<GroupRead>()
        .await
        .map_err(super::classify)?;
    Ok(rows
        .into_iter()
        .map(|g| ExceptionGroup {
            organization: g.organization,
            application: g.application,
            fingerprint: g.fingerprint,
            exception_class: g.exception_class,
            last_message: g.last_message,
            first_seen: format_millis(g.first_seen_ms),
            last_seen: format_millis(g.last_seen_ms),
            occurrence_count: g.occurrence_count,
        })
        .collect())
}

/// A `lifecycle_spans` row.
#[derive(Row, Deserialize)]
struct SpanRead {
    kind: String,
    span_id: u32,
    span_type: String,
    label: String,
    start_offset_ms: f64,
    duration_ms: f64,
    depth: u8,
    started_at: Option<i64>,
    sql: Option<String>,
    cache_key: Option<String>,
    http_url: Option<String>,
    http_method: Option<String>,
    http_status: Option<u16>,
    job_class: Option<String>,
    event_id: String,
    organization: String,
    application: String,
    timestamp: i64,
}

/// The span rows of one trace, in waterfall order (event time, kind, start offset); the table
/// is ordered by trace_id first, so this reads one small range.
pub(super) async fn trace_spans(
    client: &Client,
    trace_id: &str,
) -> Result<Vec<serde_json::Value>, SinkError> {
    if trace_id.is_empty() {
        return Err(SinkError::BadQuery("trace_id is empty".to_owned()));
    }
    let rows = client
        .query(&format!(
            "SELECT ?fields FROM lifecycle_spans WHERE trace_id = ?
              ORDER BY timestamp, kind, start_offset_ms, event_id, span_id, organization, application
              LIMIT 1 BY organization, application, event_id, kind, span_id
              LIMIT {MAX_TRACE_SPANS}"
        ))
        .bind(trace_id)
        .fetch_all::<SpanRead>()
        .await
        .map_err(super::classify)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            json!({
                "kind": r.kind,
                "span_id": r.span_id,
                "span_type": r.span_type,
                "label": r.label,
                "start_offset_ms": r.start_offset_ms,
                "duration_ms": r.duration_ms,
                "depth": r.depth,
                "started_at_ms": r.started_at,
                "sql": r.sql,
                "cache_key": r.cache_key,
                "http_url": r.http_url,
                "http_method": r.http_method,
                "http_status": r.http_status,
                "job_class": r.job_class,
                "event_id": r.event_id,
                "organization": r.organization,
                "application": r.application,
                "timestamp": format_millis(r.timestamp),
            })
        })
        .collect())
}

/// An `ingest_traces` row.
#[derive(Row, Deserialize)]
struct TraceRead {
    batch_id: String,
    lsn: u64,
    received_at: i64,
    organization: String,
    application: String,
    outcome: String,
    total_us: u64,
    stages: String,
    bytes_compressed: u64,
    bytes_inflated: u64,
    events: u32,
    accepted: u32,
    rejected: u32,
    duplicates: u32,
}

/// Pipeline traces, newest or slowest first.
pub(super) async fn query_traces(
    client: &Client,
    filter: &TraceFilter,
) -> Result<Vec<StoredTrace>, SinkError> {
    let order = match filter.order {
        TraceOrder::Recent => "received_at DESC, lsn DESC, batch_id",
        TraceOrder::Slowest => "total_us DESC, received_at DESC, batch_id",
    };
    let only_failed = if filter.failed_only {
        " WHERE outcome <> 'accepted'"
    } else {
        ""
    };
    let limit = filter.page_size();
    let rows = client
        .query(&format!(
            "SELECT ?fields FROM ingest_traces{only_failed} ORDER BY {order} LIMIT 1 BY batch_id LIMIT {limit}"
        ))
        .fetch_all::<TraceRead>()
        .await
        .map_err(super::classify)?;
    rows.into_iter()
        .map(|t| {
            let stages = stages_from_text(&t.stages).map_err(|err| {
                SinkError::other(
                    format!(
                        "ingest_traces.stages of batch {} is not a list of stages",
                        t.batch_id
                    ),
                    err,
                )
            })?;
            Ok(StoredTrace {
                received_at: format_millis(t.received_at),
                received_ms: t.received_at,
                batch_id: t.batch_id,
                lsn: t.lsn,
                organization: t.organization,
                application: t.application,
                outcome: t.outcome,
                total_us: t.total_us,
                stages,
                bytes_compressed: t.bytes_compressed,
                bytes_inflated: t.bytes_inflated,
                events: t.events,
                accepted: t.accepted,
                rejected: t.rejected,
                duplicates: t.duplicates,
            })
        })
        .collect()
}
