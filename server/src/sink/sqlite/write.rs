//! One batch → one SQLite transaction.
//!
//! Idempotent by the rows' own keys, never by the LSN range (LSNs restart at 1 if the spool
//! directory is ever deleted, and a range-based skip would then drop new events), so a retry, a
//! crash replay, a bisected part written again or an agent retry that reached the spool twice
//! all store one copy:
//! - by event: (`event_id`, `organization`, `application`) is unique in `events` (an id is the
//!   agent's, unique within its tenant only: another tenant's event with the same id is another
//!   event and is stored);
//! - by occurrence: the same key is unique in `exceptions`, and the group is bumped only when
//!   the occurrence row was inserted, so `occurrence_count` counts each occurrence once;
//! - quarantine rows by their id, pipeline traces by their `batch_id`.
//!
//! `sink_state.last_lsn` (the last LSN of a whole-range write) is kept for operators only.
//!
//! `SinkBatch::spans` is not written: since schema V7 the waterfall derives a trace's spans from
//! its stored `lifecycle` and `trace_span` events (read.rs), so an event's spans are stored
//! exactly when, and as often as, the event is. The batcher builds none for this store
//! ([`crate::sink::SpanRows::DerivedAtRead`]); any a caller passes are ignored.
//!
//! `ON CONFLICT (…) DO NOTHING` is used rather than `INSERT OR IGNORE`: it ignores only the
//! uniqueness conflict it names, so a NOT NULL failure still surfaces as an error
//! (`SinkError::Rejected`) instead of silently dropping the row.
//!
//! `events.data` and `events.envelope` must be JSON, since the read side hands them out as raw
//! JSON. The schema's `CHECK (json_valid(…))` said so, but SQLite parses each value into its
//! JSONB form to answer, which was a tenth of the write. The writer connection ignores CHECK
//! constraints (mod.rs) and [`check_json`] does the same check with serde_json, exactly the
//! one the read side's `RawValue::from_string` makes, on a second thread while the rows are
//! inserted; the transaction commits only if it passed, else the batch is refused whole
//! (`SinkError::Rejected`) and the batcher bisects down to the row, as before.

use rusqlite::{params, Connection, TransactionBehavior};
use serde_json::value::RawValue;

use crate::sink::query::stages_to_text;
use crate::sink::{EventRow, ExceptionOccurrence, MalformedRow, SinkBatch, TraceRow};

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// Written; `duplicates` events were already stored and were skipped.
    Rows {
        /// Event rows inserted.
        events: usize,
        /// Event rows skipped because their id was stored.
        duplicates: usize,
    },
}

/// Writes `batch` in one `BEGIN IMMEDIATE` transaction (the write lock is taken up front, so a
/// busy database fails at `BEGIN` after the busy timeout rather than halfway through).
pub(super) fn write_batch(conn: &mut Connection, batch: &SinkBatch) -> rusqlite::Result<Written> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let written = write_rows(&tx, batch)?;
    tx.commit()?;
    Ok(written)
}

/// Every row of `batch` inside the transaction open on `conn`, with the JSON check on a second
/// thread meanwhile; not committed. On an error some rows may be in: the caller rolls back.
pub(super) fn write_rows(conn: &Connection, batch: &SinkBatch) -> rusqlite::Result<Written> {
    if batch.events.len() < PARALLEL_CHECK_MIN_EVENTS {
        return check_json(&batch.events).and_then(|()| insert_all(conn, batch));
    }
    std::thread::scope(|scope| {
        let checker = std::thread::Builder::new()
            .name("sqlite-json-check".to_owned())
            .spawn_scoped(scope, || {
                crate::arenas::bind_this_thread();
                check_json(&batch.events)
            });
        match checker {
            Ok(checker) => {
                let written = insert_all(conn, batch);
                let checked = checker.join().unwrap_or_else(|_| {
                    Err(rusqlite::Error::ToSqlConversionFailure(
                        "the JSON check panicked".into(),
                    ))
                });
                checked.and(written)
            }
            // No thread to be had: check here first.
            Err(_) => check_json(&batch.events).and_then(|()| insert_all(conn, batch)),
        }
    })
}

/// Below this many events the JSON check runs inline: a thread costs more than it saves.
const PARALLEL_CHECK_MIN_EVENTS: usize = 256;

/// A `data` or `envelope` value that is not JSON.
#[derive(Debug, thiserror::Error)]
#[error("events row {event_id:?}: {column} is not JSON ({error})")]
struct NotJson {
    event_id: String,
    column: &'static str,
    error: serde_json::Error,
}

/// Every event's `data` and `envelope` parse as one JSON value each (what the read side's
/// `RawValue::from_string` needs); the first that does not is a refusal.
fn check_json(events: &[EventRow]) -> rusqlite::Result<()> {
    for event in events {
        for (column, text) in [("data", &event.data), ("envelope", &event.envelope)] {
            if let Err(error) = serde_json::from_str::<&RawValue>(text) {
                return Err(rusqlite::Error::ToSqlConversionFailure(Box::new(NotJson {
                    event_id: event.event_id.clone(),
                    column,
                    error,
                })));
            }
        }
    }
    Ok(())
}

/// Every row of `batch`, inside `tx` (not committed).
fn insert_all(tx: &Connection, batch: &SinkBatch) -> rusqlite::Result<Written> {
    let last = to_i64(batch.last_lsn)?;
    let (events, duplicates) = insert_events(tx, &batch.events)?;
    for occurrence in &batch.exceptions {
        insert_exception(tx, occurrence)?;
    }
    for row in &batch.malformed {
        insert_malformed(tx, row)?;
    }
    for row in &batch.traces {
        insert_trace(tx, row)?;
    }

    let now = chrono::Utc::now().timestamp_millis();
    if batch.part.is_empty() {
        tx.execute(
            "UPDATE sink_state SET last_lsn = MAX(COALESCE(last_lsn, 0), ?1), updated_ms = ?2 WHERE id = 0",
            params![last, now],
        )?;
    }
    Ok(Written::Rows { events, duplicates })
}

fn to_i64(value: u64) -> rusqlite::Result<i64> {
    i64::try_from(value).map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))
}

/// Inserts the events. Returns (inserted, duplicates).
fn insert_events(tx: &Connection, events: &[EventRow]) -> rusqlite::Result<(usize, usize)> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (
             event_id, lsn, idx, batch_id, organization, application, environment, type, name,
             timestamp_ms, timestamp_source, received_ms, trace_id, session_id, release, host,
             deployment_hash, known_type, duration_ms, user_id, status_code, is_error, severity,
             request_id, job_id, data, envelope)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)
         ON CONFLICT (event_id, organization, application) DO NOTHING",
    )?;
    let (mut inserted, mut duplicates) = (0, 0);
    for e in events {
        let c = &e.columns;
        let changed = insert.execute(params![
            e.event_id,
            e.lsn,
            e.index,
            e.batch_id,
            e.organization,
            e.application,
            e.environment,
            e.event_type,
            e.name,
            e.timestamp_ms,
            e.timestamp_source,
            e.received_ms,
            e.trace_id,
            e.session_id,
            e.release,
            e.host,
            e.deployment_hash,
            e.known_type,
            c.duration_ms,
            c.user_id,
            c.status_code,
            c.is_error,
            c.severity,
            c.request_id,
            c.job_id,
            e.data,
            e.envelope,
        ])?;
        if changed > 0 {
            inserted += 1;
        } else {
            duplicates += 1;
        }
    }
    Ok((inserted, duplicates))
}

/// Inserts an occurrence and, only if it was new, folds it into its group.
fn insert_exception(tx: &Connection, o: &ExceptionOccurrence) -> rusqlite::Result<()> {
    let x = &o.exception;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO exceptions (
                 event_id, trace_id, organization, application, environment, timestamp_ms,
                 exception_class, message, file, line, code, fingerprint, trace, source_code,
                 breadcrumbs, severity, handled, user_id, url, method)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18, ?19, ?20)
             ON CONFLICT (event_id, organization, application) DO NOTHING",
        )?
        .execute(params![
            o.event_id,
            o.trace_id,
            o.organization,
            o.application,
            o.environment,
            o.timestamp_ms,
            x.exception_class,
            x.message,
            x.file,
            x.line,
            x.code,
            x.fingerprint,
            x.trace,
            x.source_code,
            x.breadcrumbs,
            x.severity,
            x.handled,
            x.user_id,
            x.url,
            x.method,
        ])?;
    if inserted == 0 {
        return Ok(());
    }
    // In an UPDATE every right-hand side reads the row as it was, so the CASEs compare the
    // occurrence with the old last_seen_ms. Ties go to the occurrence written last.
    tx.prepare_cached(
        "INSERT INTO exception_groups (
             organization, application, fingerprint, exception_class, first_seen_ms,
             last_seen_ms, occurrence_count, last_message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, 1, ?6)
         ON CONFLICT (organization, application, fingerprint) DO UPDATE SET
             first_seen_ms = min(first_seen_ms, excluded.first_seen_ms),
             last_seen_ms = max(last_seen_ms, excluded.last_seen_ms),
             occurrence_count = occurrence_count + 1,
             last_message = CASE WHEN excluded.last_seen_ms >= last_seen_ms
                                 THEN excluded.last_message ELSE last_message END,
             exception_class = CASE WHEN excluded.last_seen_ms >= last_seen_ms
                                    THEN excluded.exception_class ELSE exception_class END",
    )?
    .execute(params![
        o.organization,
        o.application,
        x.fingerprint,
        x.exception_class,
        o.timestamp_ms,
        x.message,
    ])?;
    Ok(())
}

fn insert_malformed(tx: &Connection, m: &MalformedRow) -> rusqlite::Result<()> {
    let mut codes: Vec<&str> = Vec::new();
    for problem in &m.reasons {
        let code = problem.code.as_str();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let reasons = serde_json::to_string(&m.reasons)
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO malformed_events (
                 id, lsn, received_ms, organization, application, batch_id, idx, type, event_id,
                 codes, reasons, raw, raw_size, agent_version, remote_addr)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            m.id,
            m.lsn,
            m.received_ms,
            m.organization,
            m.application,
            m.batch_id,
            m.index,
            m.event_type,
            m.event_id,
            codes.join(","),
            reasons,
            m.raw,
            m.raw_size,
            m.agent_version,
            m.remote_addr,
        ])?;
    if inserted == 0 {
        return Ok(());
    }
    let mut reason = tx.prepare_cached(
        "INSERT INTO malformed_reasons (code, malformed_id) VALUES (?1, ?2)
         ON CONFLICT DO NOTHING",
    )?;
    for code in codes {
        reason.execute(params![code, m.id])?;
    }
    Ok(())
}

fn insert_trace(tx: &Connection, t: &TraceRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO ingest_traces (
             batch_id, lsn, received_ms, organization, application, outcome, total_us, stages,
             bytes_compressed, bytes_inflated, events, accepted, rejected, duplicates)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![
        t.batch_id,
        t.lsn,
        t.received_ms,
        t.organization,
        t.application,
        t.outcome,
        t.total_us,
        stages_to_text(&t.stages),
        t.bytes_compressed,
        t.bytes_inflated,
        t.events,
        t.accepted,
        t.rejected,
        t.duplicates,
    ])?;
    Ok(())
}
