//! The query side: filters → SQL over the read connections.
//!
//! Every query binds its values as parameters (no filter text is ever spliced into SQL) and is
//! bounded by a page size. Events are paged by keyset on (timestamp_ms, event_id), the order
//! ClickHouse answers in too. The `events_time` and `events_type_time` indexes give the time
//! order (since schema 6 they hold the time alone, a third of the bytes to write), so only the
//! events of one millisecond are sorted by id, and a deep page costs what the first one does.
//! Those two indexes are named in the query (`INDEXED BY`) when no selective filter (trace,
//! user) applies: with a sort of either kind ahead, SQLite's planner may otherwise prefer
//! scanning another index and sorting every match, once per page.

use rusqlite::types::{Type, Value};
use rusqlite::{Connection, OptionalExtension, Row};
use serde_json::json;
use serde_json::value::RawValue;

use baddybugs_common::denorm::{self, SpanRow};
use baddybugs_common::json::Node;
use baddybugs_common::timestamp::format_millis;

use crate::sink::query::{
    decode_cursor, encode_cursor, render_stored_json, stages_from_text, Unrenderable,
    MALFORMED_LIST_RAW_BYTES,
};
use crate::sink::{
    EventFilter, EventLookup, EventPage, ExceptionGroup, MalformedFilter, StoredEvent,
    StoredMalformed, StoredTrace, TraceFilter, TraceOrder,
};

/// At most this many spans are returned for one trace.
const MAX_TRACE_SPANS: usize = 10_000;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// SQLite failed (or a stored value did not read back).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The caller's filter or cursor is wrong.
    #[error("{0}")]
    BadQuery(String),
}

/// WHERE clauses and their parameters, in order (`?` placeholders).
#[derive(Default)]
struct Where {
    clauses: Vec<&'static str>,
    args: Vec<Value>,
}

impl Where {
    fn add(&mut self, clause: &'static str, args: impl IntoIterator<Item = Value>) {
        self.clauses.push(clause);
        self.args.extend(args);
    }

    fn text(&mut self, clause: &'static str, value: &Option<String>) {
        if let Some(v) = value {
            self.add(clause, [Value::Text(v.clone())]);
        }
    }

    fn int(&mut self, clause: &'static str, value: Option<i64>) {
        if let Some(v) = value {
            self.add(clause, [Value::Integer(v)]);
        }
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

const EVENT_COLUMNS: &str = "event_id, type, name, timestamp_ms, timestamp_source, received_ms, \
     trace_id, session_id, environment, release, host, deployment_hash, organization, \
     application, batch_id, duration_ms, user_id, status_code, is_error, severity, request_id, \
     job_id, data, envelope";

/// Stored JSON text back to a raw value, byte-for-byte, or as text with a marker when it
/// cannot be returned as JSON (never failing the page).
fn raw_json(
    row: &Row<'_>,
    idx: usize,
    field: &str,
    markers: &mut Vec<Unrenderable>,
) -> rusqlite::Result<Box<RawValue>> {
    let text = match row.get_ref(idx)? {
        rusqlite::types::ValueRef::Text(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => {
            return Err(rusqlite::Error::FromSqlConversionFailure(
                idx,
                other.data_type(),
                format!("{field} is not text").into(),
            ))
        }
    };
    Ok(render_stored_json(text, field, markers))
}

/// One `events` row, with its timestamp for the cursor.
fn event_row(row: &Row<'_>) -> rusqlite::Result<(i64, StoredEvent)> {
    let timestamp_ms: i64 = row.get(3)?;
    let received_ms: i64 = row.get(5)?;
    let mut unrenderable = Vec::new();
    let data = raw_json(row, 22, "data", &mut unrenderable)?;
    let envelope = raw_json(row, 23, "envelope", &mut unrenderable)?;
    Ok((
        timestamp_ms,
        StoredEvent {
            id: row.get(0)?,
            event_type: row.get(1)?,
            name: row.get(2)?,
            timestamp: format_millis(timestamp_ms),
            timestamp_source: row.get(4)?,
            received_at: format_millis(received_ms),
            trace_id: row.get(6)?,
            session_id: row.get(7)?,
            environment: row.get(8)?,
            release: row.get(9)?,
            host: row.get(10)?,
            deployment_hash: row.get(11)?,
            organization: row.get(12)?,
            application: row.get(13)?,
            batch_id: row.get(14)?,
            duration_ms: row.get(15)?,
            user_id: row.get(16)?,
            status_code: row.get(17)?,
            is_error: row.get(18)?,
            severity: row.get(19)?,
            request_id: row.get(20)?,
            job_id: row.get(21)?,
            data,
            envelope,
            unrenderable,
        },
    ))
}

/// Events matching `filter`, newest first (timestamp_ms DESC, event_id DESC).
pub(super) fn query_events(
    conn: &Connection,
    filter: &EventFilter,
) -> Result<EventPage, ReadError> {
    let (sql, args, limit) = events_sql(filter)?;
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), event_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next_cursor = match rows.last() {
        Some((ts, event)) if rows.len() == limit as usize => Some(encode_cursor(*ts, &event.id)),
        _ => None,
    };
    Ok(EventPage {
        events: rows.into_iter().map(|(_, event)| event).collect(),
        next_cursor,
    })
}

/// The SQL of [`query_events`], its parameters and its page size.
pub(super) fn events_sql(filter: &EventFilter) -> Result<(String, Vec<Value>, u32), ReadError> {
    let mut w = Where::default();
    w.text("organization = ?", &filter.organization);
    w.text("application = ?", &filter.application);
    w.text("type = ?", &filter.event_type);
    w.text("name = ?", &filter.name);
    w.text("trace_id = ?", &filter.trace_id);
    w.text("user_id = ?", &filter.user_id);
    w.text("environment = ?", &filter.environment);
    w.int("timestamp_ms >= ?", filter.since_ms);
    w.int("timestamp_ms < ?", filter.until_ms);
    w.int("is_error = ?", filter.is_error.map(i64::from));
    if let Some(cursor) = &filter.cursor {
        let (ts, id) = decode_cursor(cursor)
            .ok_or_else(|| ReadError::BadQuery(format!("invalid cursor {cursor:?}")))?;
        w.add(
            "(timestamp_ms, event_id) < (?, ?)",
            [Value::Integer(ts), Value::Text(id)],
        );
    }
    let limit = filter.page_size();
    let index = match (&filter.trace_id, &filter.user_id, &filter.event_type) {
        (Some(_), _, _) | (_, Some(_), _) => "",
        (None, None, Some(_)) => " INDEXED BY events_type_time",
        (None, None, None) => " INDEXED BY events_time",
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events{index}{} ORDER BY timestamp_ms DESC, event_id DESC LIMIT {limit}",
        w.sql()
    );
    Ok((sql, w.args, limit))
}

/// The events with an id, within the lookup's tenant scope, by organization then application
/// (the unique index `events_tenant_id` serves each form of the lookup).
pub(super) fn get_event(
    conn: &Connection,
    lookup: &EventLookup,
) -> Result<Vec<StoredEvent>, ReadError> {
    let mut w = Where::default();
    w.add("event_id = ?", [Value::Text(lookup.event_id.clone())]);
    w.text("organization = ?", &lookup.organization);
    w.text("application = ?", &lookup.application);
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events{} ORDER BY organization, application LIMIT {}",
        w.sql(),
        EventLookup::MAX_MATCHES
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(w.args), event_row)?
        .map(|row| row.map(|(_, event)| event))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Which of `ids` are stored as events of the tenant (one indexed lookup each).
pub(super) fn stored_event_ids(
    conn: &Connection,
    organization: &str,
    application: &str,
    ids: &[String],
) -> Result<Vec<String>, ReadError> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM events WHERE event_id = ?1 AND organization = ?2 AND application = ?3",
    )?;
    let mut found = Vec::new();
    for id in ids {
        if stmt.exists(rusqlite::params![id, organization, application])? {
            found.push(id.clone());
        }
    }
    Ok(found)
}

const MALFORMED_COLUMNS: &str = "id, received_ms, organization, application, batch_id, idx, \
     type, event_id, codes, reasons, raw, raw_size, agent_version, remote_addr";

/// As [`MALFORMED_COLUMNS`], `raw` cut to [`MALFORMED_LIST_RAW_BYTES`] (for a BLOB, `substr`
/// counts bytes).
fn malformed_list_columns() -> String {
    MALFORMED_COLUMNS.replace(
        " raw,",
        &format!(" substr(raw, 1, {MALFORMED_LIST_RAW_BYTES}) AS raw,"),
    )
}

fn malformed_row(row: &Row<'_>) -> rusqlite::Result<StoredMalformed> {
    let codes: String = row.get(8)?;
    let reasons: String = row.get(9)?;
    let raw: Vec<u8> = row.get(10)?;
    let raw_size: u64 = row.get(11)?;
    Ok(StoredMalformed {
        id: row.get(0)?,
        received_at: format_millis(row.get(1)?),
        organization: row.get(2)?,
        application: row.get(3)?,
        batch_id: row.get(4)?,
        index: row.get(5)?,
        event_type: row.get(6)?,
        event_id: row.get(7)?,
        codes: codes
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        reasons: serde_json::from_str(&reasons).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(9, Type::Text, Box::new(err))
        })?,
        truncated: (raw.len() as u64) < raw_size,
        raw: String::from_utf8_lossy(&raw).into_owned(),
        raw_size,
        agent_version: row.get(12)?,
        remote_addr: row.get(13)?,
    })
}

/// Quarantined events matching `filter`, newest first.
pub(super) fn query_malformed(
    conn: &Connection,
    filter: &MalformedFilter,
) -> Result<Vec<StoredMalformed>, ReadError> {
    let mut w = Where::default();
    w.text("type = ?", &filter.event_type);
    w.text("application = ?", &filter.application);
    w.int("received_ms >= ?", filter.since_ms);
    w.int("received_ms < ?", filter.until_ms);
    w.text(
        "EXISTS (SELECT 1 FROM malformed_reasons r WHERE r.code = ? AND r.malformed_id = m.id)",
        &filter.reason,
    );
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let sql = format!(
        "SELECT {} FROM malformed_events m{} ORDER BY received_ms DESC, id DESC LIMIT {limit}",
        malformed_list_columns(),
        w.sql()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(w.args), malformed_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Quarantined events by id, in the order asked; unknown ids are left out.
pub(super) fn get_malformed(
    conn: &Connection,
    ids: &[String],
) -> Result<Vec<StoredMalformed>, ReadError> {
    let sql = format!("SELECT {MALFORMED_COLUMNS} FROM malformed_events WHERE id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(row) = stmt.query_row([id], malformed_row).optional()? {
            out.push(row);
        }
    }
    Ok(out)
}

/// The kept bytes of one quarantined entry, as stored; `None` for an unknown id.
pub(super) fn malformed_raw(conn: &Connection, id: &str) -> Result<Option<Vec<u8>>, ReadError> {
    Ok(conn
        .prepare_cached("SELECT raw FROM malformed_events WHERE id = ?1")?
        .query_row([id], |row| row.get::<_, Vec<u8>>(0))
        .optional()?)
}

/// Exception groups, most recently seen first. The time filter keeps the groups whose
/// [first_seen, last_seen] span overlaps [since_ms, until_ms); `limit` bounds the list. The
/// other fields of the filter do not apply to groups and are ignored.
pub(super) fn exception_groups(
    conn: &Connection,
    filter: &EventFilter,
) -> Result<Vec<ExceptionGroup>, ReadError> {
    let mut w = Where::default();
    w.text("organization = ?", &filter.organization);
    w.text("application = ?", &filter.application);
    w.int("last_seen_ms >= ?", filter.since_ms);
    w.int("first_seen_ms < ?", filter.until_ms);
    let sql = format!(
        "SELECT organization, application, fingerprint, exception_class, last_message,
                first_seen_ms, last_seen_ms, occurrence_count
           FROM exception_groups{}
          ORDER BY last_seen_ms DESC, organization, application, fingerprint
          LIMIT {}",
        w.sql(),
        filter.page_size()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(w.args), |row| {
            Ok(ExceptionGroup {
                organization: row.get(0)?,
                application: row.get(1)?,
                fingerprint: row.get(2)?,
                exception_class: row.get(3)?,
                last_message: row.get(4)?,
                first_seen: format_millis(row.get(5)?),
                last_seen: format_millis(row.get(6)?),
                occurrence_count: row.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The spans of one trace, in waterfall order (event time, kind, start offset, then event id,
/// span id and tenant), at most [`MAX_TRACE_SPANS`].
///
/// Derived from the trace's stored `lifecycle` and `trace_span` events by
/// [`denorm::span_rows`], the function the batcher derives ClickHouse's `lifecycle_spans` rows
/// with (schema V7 dropped the table here: schema.rs). The events come in time order, so
/// reading stops once the page is full and the next event is later than every span held: its
/// spans could only sort after them. An event's `data` that does not parse (it did when it was
/// written: write.rs checks it) is skipped with a warning rather than failing the waterfall.
pub(super) fn trace_spans(
    conn: &Connection,
    trace_id: &str,
) -> Result<Vec<serde_json::Value>, ReadError> {
    if trace_id.is_empty() {
        return Err(ReadError::BadQuery("trace_id is empty".to_owned()));
    }
    let mut stmt = conn.prepare_cached(TRACE_SPAN_EVENTS_SQL)?;
    let mut rows = stmt.query([trace_id])?;
    let mut spans: Vec<TraceSpan> = Vec::new();
    while let Some(row) = rows.next()? {
        let timestamp_ms: i64 = row.get(2)?;
        if spans.len() >= MAX_TRACE_SPANS
            && spans.last().is_some_and(|s| s.timestamp_ms < timestamp_ms)
        {
            break;
        }
        let event_id: String = row.get(0)?;
        let event_type: String = row.get(1)?;
        let data = row
            .get_ref(5)?
            .as_str()
            .map_err(|err| rusqlite::Error::FromSqlConversionFailure(5, Type::Text, err.into()))?;
        let payload = match Node::parse(data) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(%event_id, %error, "a stored event's data does not parse; its spans are left out of the waterfall");
                continue;
            }
        };
        let organization: String = row.get(3)?;
        let application: String = row.get(4)?;
        spans.extend(
            denorm::span_rows(&event_type, &payload)
                .into_iter()
                .map(|span| TraceSpan {
                    timestamp_ms,
                    event_id: event_id.clone(),
                    organization: organization.clone(),
                    application: application.clone(),
                    span,
                }),
        );
    }
    spans.sort_by(TraceSpan::waterfall_order);
    spans.truncate(MAX_TRACE_SPANS);
    Ok(spans.into_iter().map(TraceSpan::into_json).collect())
}

/// The events a trace's spans are derived from, in time order: a seek on `events_trace`, named
/// so that the planner never scans the table instead (it may on a small one with statistics).
pub(super) const TRACE_SPAN_EVENTS_SQL: &str =
    "SELECT event_id, type, timestamp_ms, organization, application, data
       FROM events INDEXED BY events_trace
      WHERE trace_id = ?1 AND type IN ('lifecycle', 'trace_span')
      ORDER BY timestamp_ms";

/// One span of a waterfall with its event's identity.
struct TraceSpan {
    timestamp_ms: i64,
    event_id: String,
    organization: String,
    application: String,
    span: SpanRow,
}

impl TraceSpan {
    /// Event time, kind, start offset, event id, span id, organization, application: the order
    /// ClickHouse's `lifecycle_spans` read gives.
    fn waterfall_order(a: &TraceSpan, b: &TraceSpan) -> std::cmp::Ordering {
        a.timestamp_ms
            .cmp(&b.timestamp_ms)
            .then_with(|| a.span.kind.as_str().cmp(b.span.kind.as_str()))
            .then_with(|| a.span.start_offset_ms.total_cmp(&b.span.start_offset_ms))
            .then_with(|| a.event_id.cmp(&b.event_id))
            .then_with(|| a.span.span_id.cmp(&b.span.span_id))
            .then_with(|| a.organization.cmp(&b.organization))
            .then_with(|| a.application.cmp(&b.application))
    }

    fn into_json(self) -> serde_json::Value {
        let s = self.span;
        json!({
            "kind": s.kind.as_str(),
            "span_id": s.span_id,
            "span_type": s.span_type,
            "label": s.label,
            "start_offset_ms": s.start_offset_ms,
            "duration_ms": s.duration_ms,
            "depth": s.depth,
            "started_at_ms": s.started_at_ms,
            "sql": s.sql,
            "cache_key": s.cache_key,
            "http_url": s.http_url,
            "http_method": s.http_method,
            "http_status": s.http_status,
            "job_class": s.job_class,
            "event_id": self.event_id,
            "organization": self.organization,
            "application": self.application,
            "timestamp": format_millis(self.timestamp_ms),
        })
    }
}

/// Pipeline traces, newest or slowest first.
pub(super) fn query_traces(
    conn: &Connection,
    filter: &TraceFilter,
) -> Result<Vec<StoredTrace>, ReadError> {
    let order = match filter.order {
        TraceOrder::Recent => "received_ms DESC, lsn DESC, batch_id",
        TraceOrder::Slowest => "total_us DESC, received_ms DESC, batch_id",
    };
    let only_failed = if filter.failed_only {
        " WHERE outcome <> 'accepted'"
    } else {
        ""
    };
    let limit = filter.page_size();
    let sql = format!(
        "SELECT batch_id, lsn, received_ms, organization, application, outcome, total_us, stages,
                bytes_compressed, bytes_inflated, events, accepted, rejected, duplicates
           FROM ingest_traces{only_failed}
          ORDER BY {order}
          LIMIT {limit}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([], |row| {
            let received_ms: i64 = row.get(2)?;
            let stages: String = row.get(7)?;
            let stages = stages_from_text(&stages).map_err(|err| {
                rusqlite::Error::FromSqlConversionFailure(7, Type::Text, Box::new(err))
            })?;
            Ok(StoredTrace {
                batch_id: row.get(0)?,
                lsn: row.get(1)?,
                received_ms,
                received_at: format_millis(received_ms),
                organization: row.get(3)?,
                application: row.get(4)?,
                outcome: row.get(5)?,
                total_us: row.get(6)?,
                stages,
                bytes_compressed: row.get(8)?,
                bytes_inflated: row.get(9)?,
                events: row.get(10)?,
                accepted: row.get(11)?,
                rejected: row.get(12)?,
                duplicates: row.get(13)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
