//! The SQLite schema, as numbered migrations recorded in `schema_migrations`.
//!
//! Each migration runs once, in its own `BEGIN IMMEDIATE` transaction, so two processes opening
//! the same file at once cannot both apply it, and a crash mid-migration leaves the previous
//! version intact. A file written by a newer server (an unknown version in `schema_migrations`)
//! is refused rather than written with assumptions that may no longer hold.
//!
//! The tables mirror the ClickHouse ones (docs/SCHEMA.md). Two additions exist only here:
//! `exception_groups`, which SQLite maintains with an UPSERT in the write transaction where
//! ClickHouse uses an aggregating view, and `malformed_reasons`, one row per (code, quarantined
//! row), so the `reason` filter is an index lookup. One table is not stored here (since V7):
//! `lifecycle_spans`, which the waterfall derives from the stored events when it is read.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

/// One schema change.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. Append only: a published migration is never edited.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sql: V1,
    },
    Migration {
        version: 2,
        name: "events_user only indexes events with a user",
        sql: V2,
    },
    Migration {
        version: 3,
        name: "drop sink_parts, written and never read",
        sql: V3,
    },
    Migration {
        version: 4,
        name: "event ids unique per organization and application",
        sql: V4,
    },
    Migration {
        version: 5,
        name: "schema_drift",
        sql: V5,
    },
    Migration {
        version: 6,
        name: "time indexes end at the rowid, not the event id",
        sql: V6,
    },
    Migration {
        version: 7,
        name: "waterfall spans derived from their events at read",
        sql: V7,
    },
];

/// The newest schema version this build knows.
pub(super) const SCHEMA_VERSION: i64 = 7;

/// `data` and `envelope` must be JSON: `get_event` hands them out as raw JSON without
/// re-checking, so the store refuses (`SinkError::Rejected`) a row that would break that. Since
/// the writer connection ignores CHECK constraints, write.rs enforces these two (see there).
pub(super) const V1: &str = r#"
CREATE TABLE events (
    event_id         TEXT    NOT NULL UNIQUE,
    lsn              INTEGER NOT NULL,
    idx              INTEGER NOT NULL,
    batch_id         TEXT    NOT NULL,
    organization     TEXT    NOT NULL,
    application      TEXT    NOT NULL,
    environment      TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    timestamp_ms     INTEGER NOT NULL,
    timestamp_source TEXT    NOT NULL,
    received_ms      INTEGER NOT NULL,
    trace_id         TEXT    NOT NULL,
    session_id       TEXT,
    release          TEXT,
    host             TEXT,
    deployment_hash  TEXT,
    known_type       INTEGER NOT NULL,
    duration_ms      REAL,
    user_id          TEXT,
    status_code      INTEGER,
    is_error         INTEGER NOT NULL,
    severity         TEXT,
    request_id       TEXT,
    job_id           TEXT,
    data             TEXT    NOT NULL CHECK (json_valid(data)),
    envelope         TEXT    NOT NULL CHECK (json_valid(envelope))
);
CREATE INDEX events_type_time ON events (type, timestamp_ms, event_id);
CREATE INDEX events_time ON events (timestamp_ms, event_id);
CREATE INDEX events_trace ON events (trace_id);
CREATE INDEX events_user ON events (user_id);

CREATE TABLE lifecycle_spans (
    event_id        TEXT    NOT NULL,
    trace_id        TEXT    NOT NULL,
    organization    TEXT    NOT NULL,
    application     TEXT    NOT NULL,
    timestamp_ms    INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    span_id         INTEGER NOT NULL,
    span_type       TEXT    NOT NULL,
    label           TEXT    NOT NULL,
    start_offset_ms REAL    NOT NULL,
    duration_ms     REAL    NOT NULL,
    depth           INTEGER NOT NULL,
    started_at_ms   INTEGER,
    sql             TEXT,
    cache_key       TEXT,
    http_url        TEXT,
    http_method     TEXT,
    http_status     INTEGER,
    job_class       TEXT
);
CREATE INDEX lifecycle_spans_trace ON lifecycle_spans (trace_id, start_offset_ms);

CREATE TABLE exceptions (
    event_id        TEXT    NOT NULL UNIQUE,
    trace_id        TEXT    NOT NULL,
    organization    TEXT    NOT NULL,
    application     TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    timestamp_ms    INTEGER NOT NULL,
    exception_class TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    file            TEXT    NOT NULL,
    line            INTEGER NOT NULL,
    code            TEXT,
    fingerprint     TEXT    NOT NULL,
    trace           TEXT    NOT NULL,
    source_code     TEXT,
    breadcrumbs     TEXT,
    severity        TEXT    NOT NULL,
    handled         INTEGER NOT NULL,
    user_id         TEXT,
    url             TEXT,
    method          TEXT
);
CREATE INDEX exceptions_fingerprint ON exceptions (fingerprint, timestamp_ms);

CREATE TABLE exception_groups (
    organization     TEXT    NOT NULL,
    application      TEXT    NOT NULL,
    fingerprint      TEXT    NOT NULL,
    exception_class  TEXT    NOT NULL,
    first_seen_ms    INTEGER NOT NULL,
    last_seen_ms     INTEGER NOT NULL,
    occurrence_count INTEGER NOT NULL,
    last_message     TEXT    NOT NULL,
    PRIMARY KEY (organization, application, fingerprint)
) WITHOUT ROWID;
CREATE INDEX exception_groups_last_seen ON exception_groups (last_seen_ms);

CREATE TABLE malformed_events (
    id            TEXT    NOT NULL PRIMARY KEY,
    lsn           INTEGER NOT NULL,
    received_ms   INTEGER NOT NULL,
    organization  TEXT    NOT NULL,
    application   TEXT    NOT NULL,
    batch_id      TEXT    NOT NULL,
    idx           INTEGER,
    type          TEXT,
    event_id      TEXT,
    codes         TEXT    NOT NULL,
    reasons       TEXT    NOT NULL,
    raw           BLOB    NOT NULL,
    raw_size      INTEGER NOT NULL,
    agent_version TEXT,
    remote_addr   TEXT
);
CREATE INDEX malformed_events_received ON malformed_events (received_ms);

CREATE TABLE malformed_reasons (
    code         TEXT NOT NULL,
    malformed_id TEXT NOT NULL,
    PRIMARY KEY (code, malformed_id)
) WITHOUT ROWID;

CREATE TABLE ingest_traces (
    batch_id         TEXT    NOT NULL,
    lsn              INTEGER NOT NULL,
    received_ms      INTEGER NOT NULL,
    organization     TEXT    NOT NULL,
    application      TEXT    NOT NULL,
    outcome          TEXT    NOT NULL,
    total_us         INTEGER NOT NULL,
    stages           TEXT    NOT NULL,
    bytes_compressed INTEGER NOT NULL,
    bytes_inflated   INTEGER NOT NULL,
    events           INTEGER NOT NULL,
    accepted         INTEGER NOT NULL,
    rejected         INTEGER NOT NULL,
    duplicates       INTEGER NOT NULL,
    PRIMARY KEY (lsn, batch_id)
);
CREATE INDEX ingest_traces_received ON ingest_traces (received_ms);
CREATE INDEX ingest_traces_total ON ingest_traces (total_us);
-- One trace per batch, whatever LSN carried it.
CREATE UNIQUE INDEX ingest_traces_batch ON ingest_traces (batch_id);

-- The last LSN written by a whole-range write (NULL before the first one).
CREATE TABLE sink_state (
    id         INTEGER PRIMARY KEY CHECK (id = 0),
    last_lsn   INTEGER,
    updated_ms INTEGER NOT NULL
);
INSERT INTO sink_state (id, last_lsn, updated_ms) VALUES (0, NULL, 0);

-- Parts of a range the batcher split to isolate refused rows (SinkBatch::part), written so far.
CREATE TABLE sink_parts (
    first_lsn INTEGER NOT NULL,
    last_lsn  INTEGER NOT NULL,
    part      TEXT    NOT NULL,
    PRIMARY KEY (first_lsn, last_lsn, part)
) WITHOUT ROWID;
"#;

/// Nine events in ten have no `user_id`, yet each one cost an insert into `events_user` (one of
/// the six B-tree inserts of an event row). `user_id = ?` implies `user_id IS NOT NULL`, so
/// the `/v1/events?user_id=` filter is still served by this partial index (a test checks the
/// plan). Building it reads the table once, at the first start after the upgrade.
const V2: &str = r#"
DROP INDEX events_user;
CREATE INDEX events_user ON events (user_id) WHERE user_id IS NOT NULL;
"#;

/// `sink_parts` recorded each bisected part of an LSN range so that a range-based skip could
/// tell parts apart. That skip is gone (rows are deduplicated by their own keys: write.rs), and
/// nothing read the table any more.
const V3: &str = r#"
DROP TABLE sink_parts;
"#;

/// An event is identified by (organization, application, id): two tenants may send the same id,
/// and `UNIQUE (event_id)` made the second one's event vanish at write time (issue 15). SQLite
/// cannot change a table's constraint in place, so `events` and `exceptions` are rebuilt: a new
/// table without the column constraint, every row copied with its rowid, the old table dropped,
/// the new one renamed, then every index made again. The uniqueness is now a named index that
/// leads with `event_id`, so a lookup by id alone, by id and organization, or by all three is
/// still one index seek. Copying costs one pass over both tables and, until the commit, their
/// size again on disk, once, at the first start after the upgrade.
const V4: &str = r#"
CREATE TABLE events_v4 (
    event_id         TEXT    NOT NULL,
    lsn              INTEGER NOT NULL,
    idx              INTEGER NOT NULL,
    batch_id         TEXT    NOT NULL,
    organization     TEXT    NOT NULL,
    application      TEXT    NOT NULL,
    environment      TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    timestamp_ms     INTEGER NOT NULL,
    timestamp_source TEXT    NOT NULL,
    received_ms      INTEGER NOT NULL,
    trace_id         TEXT    NOT NULL,
    session_id       TEXT,
    release          TEXT,
    host             TEXT,
    deployment_hash  TEXT,
    known_type       INTEGER NOT NULL,
    duration_ms      REAL,
    user_id          TEXT,
    status_code      INTEGER,
    is_error         INTEGER NOT NULL,
    severity         TEXT,
    request_id       TEXT,
    job_id           TEXT,
    data             TEXT    NOT NULL CHECK (json_valid(data)),
    envelope         TEXT    NOT NULL CHECK (json_valid(envelope))
);
INSERT INTO events_v4 (
    rowid, event_id, lsn, idx, batch_id, organization, application, environment, type, name,
    timestamp_ms, timestamp_source, received_ms, trace_id, session_id, release, host,
    deployment_hash, known_type, duration_ms, user_id, status_code, is_error, severity,
    request_id, job_id, data, envelope)
SELECT
    rowid, event_id, lsn, idx, batch_id, organization, application, environment, type, name,
    timestamp_ms, timestamp_source, received_ms, trace_id, session_id, release, host,
    deployment_hash, known_type, duration_ms, user_id, status_code, is_error, severity,
    request_id, job_id, data, envelope
FROM events;
DROP TABLE events;
ALTER TABLE events_v4 RENAME TO events;
CREATE UNIQUE INDEX events_id ON events (event_id, organization, application);
CREATE INDEX events_type_time ON events (type, timestamp_ms, event_id);
CREATE INDEX events_time ON events (timestamp_ms, event_id);
CREATE INDEX events_trace ON events (trace_id);
CREATE INDEX events_user ON events (user_id) WHERE user_id IS NOT NULL;

CREATE TABLE exceptions_v4 (
    event_id        TEXT    NOT NULL,
    trace_id        TEXT    NOT NULL,
    organization    TEXT    NOT NULL,
    application     TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    timestamp_ms    INTEGER NOT NULL,
    exception_class TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    file            TEXT    NOT NULL,
    line            INTEGER NOT NULL,
    code            TEXT,
    fingerprint     TEXT    NOT NULL,
    trace           TEXT    NOT NULL,
    source_code     TEXT,
    breadcrumbs     TEXT,
    severity        TEXT    NOT NULL,
    handled         INTEGER NOT NULL,
    user_id         TEXT,
    url             TEXT,
    method          TEXT
);
INSERT INTO exceptions_v4 (
    rowid, event_id, trace_id, organization, application, environment, timestamp_ms,
    exception_class, message, file, line, code, fingerprint, trace, source_code, breadcrumbs,
    severity, handled, user_id, url, method)
SELECT
    rowid, event_id, trace_id, organization, application, environment, timestamp_ms,
    exception_class, message, file, line, code, fingerprint, trace, source_code, breadcrumbs,
    severity, handled, user_id, url, method
FROM exceptions;
DROP TABLE exceptions;
ALTER TABLE exceptions_v4 RENAME TO exceptions;
CREATE UNIQUE INDEX exceptions_id ON exceptions (event_id, organization, application);
CREATE INDEX exceptions_fingerprint ON exceptions (fingerprint, timestamp_ms);
"#;

/// Schema drift (issue 17): one row per (type, path, kind), merged at each flush; the lists are
/// JSON arrays of at most 8 strings.
const V5: &str = r#"
CREATE TABLE schema_drift (
    type             TEXT    NOT NULL,
    path             TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    count            INTEGER NOT NULL,
    first_seen_ms    INTEGER NOT NULL,
    last_seen_ms     INTEGER NOT NULL,
    agent_versions   TEXT    NOT NULL,
    applications     TEXT    NOT NULL,
    sample           TEXT    NOT NULL,
    example_event_id TEXT,
    PRIMARY KEY (type, path, kind)
);
CREATE INDEX schema_drift_last_seen ON schema_drift (last_seen_ms);
"#;

/// The two time indexes carried the 36-byte event id after the time, only to order the events of
/// one millisecond for the keyset pages. They now hold the time alone (entries a third the
/// size: the drain writes 24 % fewer bytes per event and stores 14 % more events per second,
/// docs/BENCHMARKS.md); the pages keep their order, and SQLite sorts just the events that share
/// a millisecond (read.rs). Building them reads the table once, at the first start after the
/// upgrade.
const V6: &str = r#"
DROP INDEX events_type_time;
DROP INDEX events_time;
CREATE INDEX events_type_time ON events (type, timestamp_ms);
CREATE INDEX events_time ON events (timestamp_ms);
"#;

/// `lifecycle_spans` held one row per phase and span of a `lifecycle` event and per
/// `trace_span` event, each derived from its event's `data` and written only with it: nothing
/// the event row does not hold. Writing them cost a sixth of the drain (a row and an index
/// entry per span, ~13 spans per lifecycle event). Since V7 the waterfall derives a trace's
/// spans from its stored events when it is read (read.rs, with the same `denorm::span_rows`
/// the batcher used), and the table goes. Dropping it frees its pages, once, at the first start
/// after the upgrade.
const V7: &str = r#"
DROP TABLE lifecycle_spans;
"#;

/// Brings the schema up to [`SCHEMA_VERSION`]; a no-op when it already is.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies the migrations up to `target` (the tests build a file of an older version with it).
pub(super) fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), MigrateError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT    NOT NULL,
             applied_ms INTEGER NOT NULL
         )",
    )?;
    let newest: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    if let Some(found) = newest.filter(|v| *v > SCHEMA_VERSION) {
        return Err(MigrateError::TooNew { found });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version <= target) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [migration.version],
            |r| r.get(0),
        )?;
        if !applied {
            // Upgrading a store that holds rows, some migrations read the whole table (V4
            // rebuilds it, V6 two indexes: ~1.5 s per GB from the OS cache): say so before,
            // not only after, so a start that pauses on a large store is explained in the log.
            // A new store logs one line for all of them, after the loop.
            let started = std::time::Instant::now();
            if newest.is_some() {
                tracing::info!(
                    version = migration.version,
                    name = migration.name,
                    "sqlite migration applying"
                );
            }
            tx.execute_batch(migration.sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    migration.version,
                    migration.name,
                    chrono::Utc::now().timestamp_millis()
                ],
            )?;
            if newest.is_some() {
                tracing::info!(
                    version = migration.version,
                    name = migration.name,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "sqlite migration applied"
                );
            }
        }
        tx.commit()?;
    }
    if newest.is_none() {
        tracing::info!(version = target, "sqlite store created");
    }
    Ok(())
}

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub(super) enum MigrateError {
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The file was written by a newer server.
    #[error("schema version {found} is newer than this server's ({SCHEMA_VERSION})")]
    TooNew {
        /// The version found in `schema_migrations`.
        found: i64,
    },
}
