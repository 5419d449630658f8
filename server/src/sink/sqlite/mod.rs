//! The embedded default store: SQLite (bundled) in one file of the data directory.
//!
//! In: [`SinkBatch`]es from the batcher, each written in one transaction, idempotently (see
//! `write.rs`: by the tenant and id of an event or of an exception occurrence). Out: the query
//! API's answers ([`EventPage`], [`StoredEvent`], …), read back byte-for-byte for `data` and
//! `envelope`.
//!
//! SQLite calls block, so none runs on an async worker: writes go through one writer
//! connection behind a mutex on tokio's blocking pool (the batcher writes one batch at a time,
//! so the mutex is uncontended), reads through a small pool of read-only connections (two by
//! default). The file is in WAL mode, so queries read a snapshot and never wait behind a long
//! write, and a write never waits for readers. `synchronous=FULL` by default: a commit survives
//! power loss too, which the batcher needs since it checkpoints the spool right after (see
//! [`SqliteOptions::full_sync`]).
//!
//! What can fail, as [`SinkError`]: busy or locked (another process holds the write lock past
//! the busy timeout), read-only, I/O error, disk full, cannot open → `Retryable` (the batcher
//! retries forever while the spool absorbs the load; after a read-only, I/O or open failure the
//! writer connection is reopened on the next attempt, so a file made writable again recovers
//! without a restart); a constraint or type failure (e.g. `data` that is not JSON) → `Rejected`,
//! which makes the batcher bisect and quarantine the row; a bad cursor or filter → `BadQuery`;
//! anything else → `Other`.
//!
//! Schema and migrations: `schema.rs`. Outages can be simulated with
//! [`SqliteStore::set_read_only`] in-process, or from outside by holding the write lock from
//! another connection (`BEGIN IMMEDIATE` in `sqlite3` or Python), which makes every write fail
//! with `SQLITE_BUSY` after the busy timeout until that transaction ends.

mod checkpoint;
mod drift;
mod read;
mod schema;
#[cfg(test)]
mod tests;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baddybugs_common::query::DriftFilter;
use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, ErrorCode};
use tokio::sync::Semaphore;

use crate::sink::{
    BoxFuture, EventFilter, EventLookup, EventPage, ExceptionGroup, GroupCommit, MalformedFilter,
    SinkBatch, SinkError, SpanRows, Store, StoreCause, StoreHealth, StoredEvent, StoredMalformed,
    StoredTrace, TraceFilter,
};
use read::ReadError;
use schema::MigrateError;

/// Page size of a new store file, bytes.
const PAGE_SIZE: i64 = 16 * 1024;

/// Past this size the WAL file is truncated back to it when it restarts (`journal_size_limit`).
/// Above the WAL's steady cycle (the writer's autocheckpoint, 8192 pages of 16 KiB = 128 MiB,
/// plus one batch's frames), so under sustained load the file keeps its blocks and each cycle
/// overwrites them. At 64 MiB every cycle truncated the WAL by half and the next batches paid
/// the filesystem to allocate those blocks again: the drain was 17 % slower (median of three,
/// docs/BENCHMARKS.md).
const WAL_SIZE_LIMIT_BYTES: i64 =
    checkpoint::WRITER_AUTOCHECKPOINT_PAGES as i64 * PAGE_SIZE + (64 << 20);

/// Tuning of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a statement waits for a lock held by another connection before failing with
    /// `SQLITE_BUSY` (→ [`SinkError::Retryable`]).
    pub busy_timeout: Duration,
    /// Read connections (at least 1): how many queries run at once.
    pub read_connections: usize,
    /// `synchronous=FULL` instead of `NORMAL`: every commit is fsynced, so a write the batcher
    /// checkpointed survives power loss too, at the cost of one fsync per batch.
    pub full_sync: bool,
    /// Row bytes committed between two WAL checkpoints of the checkpoint thread (see
    /// `checkpoint.rs`); 0 leaves every checkpoint to the writer's own autocheckpoint.
    pub checkpoint_every_bytes: u64,
    /// Page cache of the writer connection, bytes (`sqlite.cache_bytes`).
    pub cache_bytes: u64,
    /// Page cache of each read connection, bytes (`sqlite.read_cache_bytes`).
    pub read_cache_bytes: u64,
}

impl SqliteOptions {
    /// The most the page caches hold: the writer's and each read connection's, bytes.
    pub fn cache_limit_bytes(&self) -> u64 {
        self.cache_bytes + self.read_cache_bytes * self.read_connections.max(1) as u64
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        // The page caches' defaults are the configuration's (`[sqlite]`).
        let caches = crate::config::SqliteConfig::default();
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            read_connections: 2,
            // The batcher advances the spool checkpoint (and may delete segments) right after a
            // write: that write must survive power loss, or the checkpoint would lose events.
            full_sync: true,
            checkpoint_every_bytes: checkpoint::CHECKPOINT_EVERY_BYTES,
            cache_bytes: caches.cache_bytes,
            read_cache_bytes: caches.read_cache_bytes,
        }
    }
}

/// The SQLite store. Cheap to share (`Arc<dyn Store>`); all state is behind one `Arc`.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: SqliteOptions,
    /// The writer connection, and the group transaction open on it (`GroupCommit`).
    writer: Mutex<WriterSlot>,
    /// Notified when a group closes and when a standalone write ends (see [`WriterSlot`]).
    writer_turn: Condvar,
    /// Standalone writes (a drift flush) waiting for the open group to close: the next group
    /// opens only after they ran, so they are never starved by a writer that is always behind.
    standalone_waiting: AtomicUsize,
    /// Idle read connections; `read_permits` bounds how many are in use.
    readers: Mutex<Vec<Connection>>,
    read_permits: Arc<Semaphore>,
    /// Test switch: the writer runs with `PRAGMA query_only`, so writes fail as on a read-only
    /// file.
    read_only: AtomicBool,
    /// Runs WAL checkpoints off the writer's thread; `None` when turned off
    /// (`checkpoint_every_bytes` 0: the writer checkpoints alone, as SQLite does by default).
    checkpointer: Option<checkpoint::Checkpointer>,
}

/// The writer connection and its group transaction.
///
/// A group is one transaction across several batches, open between the first
/// [`GroupCommit::write_in_group`] and [`GroupCommit::commit_group`] (or its rollback). A
/// standalone write (`with_writer`: a batch outside any group, a drift flush) waits on
/// `writer_turn` while a group is open, since its `BEGIN` would fail inside the open transaction
/// and its rows would otherwise ride on a group that may still roll back.
#[derive(Default)]
struct WriterSlot {
    /// `None` after a failure that calls for a fresh connection; reopened on the next write.
    conn: Option<Connection>,
    /// Row bytes written in the open group (told to the checkpoint thread once committed);
    /// `None` while no group is open.
    group: Option<u64>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its parent directory if needed) the database at `path` and brings
    /// its schema up to date. Idempotent: opening an up-to-date file changes nothing.
    pub fn open(path: &Path) -> Result<SqliteStore, SinkError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// [`SqliteStore::open`] with explicit options.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<SqliteStore, SinkError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|err| {
                SinkError::retryable(format!("cannot create {}", dir.display()), err)
            })?;
        }
        let readers = options.read_connections.max(1);
        let checkpointer = (options.checkpoint_every_bytes > 0).then(|| {
            checkpoint::Checkpointer::new(
                path.to_owned(),
                options.busy_timeout,
                options.checkpoint_every_bytes,
            )
        });
        let inner = Inner {
            path: path.to_owned(),
            read_permits: Arc::new(Semaphore::new(readers)),
            options,
            writer: Mutex::new(WriterSlot::default()),
            writer_turn: Condvar::new(),
            standalone_waiting: AtomicUsize::new(0),
            readers: Mutex::new(Vec::with_capacity(readers)),
            read_only: AtomicBool::new(false),
            checkpointer,
        };
        let mut writer = inner.connect_writer().map_err(write_error)?;
        schema::migrate(&mut writer).map_err(|err| match err {
            MigrateError::Sqlite(err) => write_error(err),
            too_new @ MigrateError::TooNew { .. } => SinkError::other(
                format!("cannot migrate {}", path.display()),
                StoreCause::Other(Box::new(too_new)),
            ),
        })?;
        writer
            .execute_batch("PRAGMA optimize")
            .map_err(write_error)?;
        inner.writer.lock().conn = Some(writer);
        for _ in 0..readers {
            let reader = inner.connect_reader().map_err(read_error_sqlite)?;
            inner.readers.lock().push(reader);
        }
        tracing::info!(path = %path.display(), version = schema::SCHEMA_VERSION, "sqlite store open");
        Ok(SqliteStore {
            inner: Arc::new(inner),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Makes every following write fail as on a read-only file (`SQLITE_READONLY`, classified
    /// [`SinkError::Retryable`]) until called with `false`. The writer connection runs with
    /// `PRAGMA query_only`, so it is SQLite itself that refuses. For outage tests; reads are
    /// unaffected, and a batch already written still answers `Ok` (nothing to write).
    pub fn set_read_only(&self, read_only: bool) {
        self.inner.read_only.store(read_only, Ordering::SeqCst);
    }

    /// Runs `f` on a read connection, on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, SinkError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ReadError> + Send + 'static,
    {
        let permit = Arc::clone(&self.inner.read_permits)
            .acquire_owned()
            .await
            .map_err(|_| SinkError::other_msg("sqlite read pool closed"))?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = inner.readers.lock().pop();
            let conn = match idle {
                Some(conn) => conn,
                // Lost to a panicking query earlier: open a replacement.
                None => inner.connect_reader().map_err(read_error_sqlite)?,
            };
            let result = f(&conn);
            inner.readers.lock().push(conn);
            result.map_err(read_error)
        })
        .await
        .map_err(|err| SinkError::other("sqlite query task failed", err))?
    }
}

/// `PRAGMA cache_size` for a bound in bytes: negative means KiB; at least one page.
fn cache_kib(bytes: u64) -> i64 {
    -((bytes / 1024).max(PAGE_SIZE as u64 / 1024) as i64)
}

impl Inner {
    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(self.options.busy_timeout)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn connect_writer(&self) -> rusqlite::Result<Connection> {
        let conn = self.connect()?;
        // Only takes effect on a new, empty file (before the WAL switch writes its header);
        // an existing store keeps its page size. 16 KiB pages make shallower B-trees and fewer
        // page splits and WAL frames per batch than the 4 KiB default.
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %self.path.display(), %mode, "sqlite could not switch to WAL; queries may wait behind writes");
        }
        let sync = if self.options.full_sync {
            "FULL"
        } else {
            "NORMAL"
        };
        conn.pragma_update(None, "synchronous", sync)?;
        // What the WAL is truncated back to when it restarts (see `WAL_SIZE_LIMIT_BYTES`).
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
        // Checkpoints run on their own thread (checkpoint.rs); the writer checkpoints itself
        // only past this many WAL pages. Without that thread, SQLite's default.
        if self.options.checkpoint_every_bytes > 0 {
            conn.pragma_update(
                None,
                "wal_autocheckpoint",
                checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
            )?;
        }
        // Page cache (negative = KiB): keeps index pages hot across batches.
        conn.pragma_update(None, "cache_size", cache_kib(self.options.cache_bytes))?;
        // The schema's `CHECK (json_valid(…))` constraints are enforced by write.rs instead,
        // where serde_json checks each value off the insert loop (the same check the read side
        // relies on, at a fraction of SQLite's JSON parse). Only this connection writes.
        conn.pragma_update(None, "ignore_check_constraints", true)?;
        Ok(conn)
    }

    fn connect_reader(&self) -> rusqlite::Result<Connection> {
        let conn = self.connect()?;
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "cache_size", cache_kib(self.options.read_cache_bytes))?;
        Ok(conn)
    }

    fn write_drift_blocking(&self, rows: &[crate::drift::DriftRow]) -> Result<(), SinkError> {
        self.with_writer(|conn| drift::write_drift(conn, rows))
    }

    fn write_blocking(&self, batch: &SinkBatch) -> Result<write::Written, SinkError> {
        let written = self.with_writer(|conn| write::write_batch(conn, batch))?;
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.committed(checkpoint::row_bytes(batch));
        }
        Ok(written)
    }

    /// Runs `write` on the writer connection (opened on first use, honouring the test switch
    /// that makes the store read-only); a connection SQLite can no longer use is dropped, so the
    /// next write opens a new one.
    ///
    /// Waits first while a group is open (see [`WriterSlot`]).
    fn with_writer<T>(
        &self,
        write: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SinkError> {
        let mut guard = self.writer.lock();
        if guard.group.is_some() {
            self.standalone_waiting.fetch_add(1, Ordering::SeqCst);
            while guard.group.is_some() {
                self.writer_turn.wait(&mut guard);
            }
            self.standalone_waiting.fetch_sub(1, Ordering::SeqCst);
        }
        let result = self.writer_conn(&mut guard).and_then(|conn| {
            conn.pragma_update(None, "query_only", self.read_only.load(Ordering::SeqCst))
                .and_then(|()| write(conn))
                .map_err(|err| (needs_new_connection(&err), write_error(err)))
        });
        let result = result.map_err(|(reconnect, err)| {
            if reconnect {
                guard.conn = None;
            }
            err
        });
        drop(guard);
        // A group waiting for this standalone write to pass may open now.
        self.writer_turn.notify_all();
        result
    }

    /// The writer connection, opened if needed.
    fn writer_conn<'a>(
        &self,
        slot: &'a mut WriterSlot,
    ) -> Result<&'a mut Connection, (bool, SinkError)> {
        if slot.conn.is_none() {
            slot.conn = Some(self.connect_writer().map_err(|e| (false, write_error(e)))?);
        }
        slot.conn.as_mut().ok_or_else(|| {
            (
                false,
                SinkError::other_msg("sqlite writer connection missing"),
            )
        })
    }

    /// [`GroupCommit::write_in_group`], on the calling (blocking) thread.
    fn write_in_group_blocking(&self, batch: &SinkBatch) -> Result<write::Written, SinkError> {
        let mut guard = self.writer.lock();
        if guard.group.is_none() {
            // Standalone writes that waited for the last group go first.
            while self.standalone_waiting.load(Ordering::SeqCst) > 0 {
                self.writer_turn.wait(&mut guard);
            }
        }
        let slot = &mut *guard;
        let opens = slot.group.is_none();
        let conn = match self.writer_conn(slot) {
            Ok(conn) => conn,
            Err((_, err)) => return Err(err),
        };
        let began = conn
            .pragma_update(None, "query_only", self.read_only.load(Ordering::SeqCst))
            .and_then(|()| {
                if opens {
                    conn.execute_batch("BEGIN IMMEDIATE")
                } else {
                    Ok(())
                }
            });
        // No savepoint per batch: SQLite would copy every page the batch changes to a
        // sub-journal to be able to take it back alone. A refusal is rare; the whole group goes.
        let written = began.and_then(|()| write::write_rows(conn, batch));
        match written {
            Ok(written) => {
                slot.group = Some(slot.group.unwrap_or(0) + checkpoint::row_bytes(batch));
                Ok(written)
            }
            Err(err) => {
                let reconnect = needs_new_connection(&err);
                self.close_group(&mut guard, reconnect);
                Err(write_error(err))
            }
        }
    }

    /// [`GroupCommit::commit_group`], on the calling (blocking) thread.
    fn commit_group_blocking(&self) -> Result<(), SinkError> {
        let mut guard = self.writer.lock();
        let Some(bytes) = guard.group else {
            return Ok(());
        };
        let committed = match guard.conn.as_mut() {
            Some(conn) => conn.execute_batch("COMMIT"),
            None => Ok(()),
        };
        match committed {
            Ok(()) => {
                guard.group = None;
                drop(guard);
                self.writer_turn.notify_all();
                if let Some(checkpointer) = &self.checkpointer {
                    checkpointer.committed(bytes);
                }
                Ok(())
            }
            Err(err) => {
                let reconnect = needs_new_connection(&err);
                self.close_group(&mut guard, reconnect);
                Err(write_error(err))
            }
        }
    }

    /// Rolls back whatever the open group holds and lets standalone writes in.
    fn close_group(&self, guard: &mut parking_lot::MutexGuard<'_, WriterSlot>, reconnect: bool) {
        if let Some(conn) = guard.conn.as_mut() {
            if !conn.is_autocommit() {
                if let Err(err) = conn.execute_batch("ROLLBACK") {
                    tracing::warn!(%err, "sqlite: rolling the group back failed; reconnecting");
                    guard.conn = None;
                }
            }
        }
        if reconnect {
            guard.conn = None;
        }
        guard.group = None;
        self.writer_turn.notify_all();
    }
}

/// How a SQLite failure is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Retryable,
    Rejected,
    Other,
}

fn classify(err: &rusqlite::Error) -> Class {
    use rusqlite::Error as E;
    match err {
        E::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::ReadOnly
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::OutOfMemory
            | ErrorCode::FileLockingProtocolFailed => Class::Retryable,
            ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig => {
                Class::Rejected
            }
            _ => Class::Other,
        },
        E::ToSqlConversionFailure(_)
        | E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::NulError(_) => Class::Rejected,
        _ => Class::Other,
    }
}

/// Failures after which the connection itself may be stale (the file was read-only or gone
/// when it was opened): drop it so the next attempt opens a fresh one.
fn needs_new_connection(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(
            ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied
        )
    )
}

fn write_error(err: rusqlite::Error) -> SinkError {
    match classify(&err) {
        Class::Retryable => SinkError::retryable("sqlite write", err),
        Class::Rejected => SinkError::rejected("sqlite write", err),
        Class::Other => SinkError::other("sqlite write", err),
    }
}

/// On reads a value that does not convert is a stored-data problem, not a refusal: `Other`.
fn read_error_sqlite(err: rusqlite::Error) -> SinkError {
    match classify(&err) {
        Class::Retryable => SinkError::retryable("sqlite read", err),
        Class::Rejected | Class::Other => SinkError::other("sqlite read", err),
    }
}

fn read_error(err: ReadError) -> SinkError {
    match err {
        ReadError::Sqlite(err) => read_error_sqlite(err),
        ReadError::BadQuery(text) => SinkError::BadQuery(text),
    }
}

impl Store for SqliteStore {
    /// The waterfall derives a trace's spans from its stored events (read.rs).
    fn span_rows(&self) -> SpanRows {
        SpanRows::DerivedAtRead
    }

    fn write(&self, batch: Arc<SinkBatch>) -> BoxFuture<'_, Result<(), SinkError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let (first_lsn, last_lsn) = (batch.first_lsn, batch.last_lsn);
            // At the background priority: see crate::background.
            let written = crate::background::run(move || inner.write_blocking(&batch))
                .await
                .map_err(|err| {
                    SinkError::other("sqlite write task failed", StoreCause::Other(err.into()))
                })??;
            match written {
                write::Written::Rows { events, duplicates } => {
                    tracing::debug!(
                        first_lsn,
                        last_lsn,
                        events,
                        duplicates,
                        "sqlite: batch written"
                    );
                }
            }
            Ok(())
        })
    }

    fn query_events(&self, filter: EventFilter) -> BoxFuture<'_, Result<EventPage, SinkError>> {
        Box::pin(self.read(move |conn| read::query_events(conn, &filter)))
    }

    fn get_event(&self, lookup: EventLookup) -> BoxFuture<'_, Result<Vec<StoredEvent>, SinkError>> {
        Box::pin(self.read(move |conn| read::get_event(conn, &lookup)))
    }

    fn query_malformed(
        &self,
        filter: MalformedFilter,
    ) -> BoxFuture<'_, Result<Vec<StoredMalformed>, SinkError>> {
        Box::pin(self.read(move |conn| read::query_malformed(conn, &filter)))
    }

    fn get_malformed(
        &self,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<StoredMalformed>, SinkError>> {
        Box::pin(self.read(move |conn| read::get_malformed(conn, &ids)))
    }

    fn malformed_raw(&self, id: String) -> BoxFuture<'_, Result<Option<Vec<u8>>, SinkError>> {
        Box::pin(self.read(move |conn| read::malformed_raw(conn, &id)))
    }

    fn exception_groups(
        &self,
        filter: EventFilter,
    ) -> BoxFuture<'_, Result<Vec<ExceptionGroup>, SinkError>> {
        Box::pin(self.read(move |conn| read::exception_groups(conn, &filter)))
    }

    fn trace_spans(
        &self,
        trace_id: String,
    ) -> BoxFuture<'_, Result<Vec<serde_json::Value>, SinkError>> {
        Box::pin(self.read(move |conn| read::trace_spans(conn, &trace_id)))
    }

    fn query_traces(
        &self,
        filter: TraceFilter,
    ) -> BoxFuture<'_, Result<Vec<StoredTrace>, SinkError>> {
        Box::pin(self.read(move |conn| read::query_traces(conn, &filter)))
    }

    fn stored_event_ids(
        &self,
        organization: String,
        application: String,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<String>, SinkError>> {
        Box::pin(
            self.read(move |conn| read::stored_event_ids(conn, &organization, &application, &ids)),
        )
    }

    fn write_drift(
        &self,
        rows: Vec<crate::drift::DriftRow>,
    ) -> BoxFuture<'_, Result<(), SinkError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            crate::background::run(move || inner.write_drift_blocking(&rows))
                .await
                .map_err(|err| {
                    SinkError::other(
                        "sqlite drift write task failed",
                        StoreCause::Other(err.into()),
                    )
                })?
        })
    }

    fn query_drift(
        &self,
        filter: DriftFilter,
    ) -> BoxFuture<'_, Result<Vec<crate::drift::DriftRow>, SinkError>> {
        Box::pin(self.read(move |conn| drift::query_drift(conn, &filter)))
    }

    fn group_commit(&self) -> Option<&dyn GroupCommit> {
        Some(self)
    }

    fn health(&self) -> BoxFuture<'_, StoreHealth> {
        Box::pin(async move {
            let path = self.inner.path.clone();
            let read_only = self.inner.read_only.load(Ordering::SeqCst);
            let checked = self
                .read(move |conn| {
                    conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
                    if read_only {
                        return Ok(Some("store switched to read-only".to_owned()));
                    }
                    // Opening for append writes nothing but fails on a read-only file or mount.
                    Ok(std::fs::OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .err()
                        .map(|err| format!("{} is not writable: {err}", path.display())))
                })
                .await;
            let (reachable, error) = match checked {
                Ok(None) => (true, None),
                Ok(Some(problem)) => (false, Some(problem)),
                Err(err) => (false, Some(err.chain())),
            };
            StoreHealth {
                kind: "sqlite",
                location: self.inner.path.display().to_string(),
                reachable,
                error,
            }
        })
    }
}

impl GroupCommit for SqliteStore {
    fn write_in_group(&self, batch: Arc<SinkBatch>) -> BoxFuture<'_, Result<(), SinkError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let (first_lsn, last_lsn) = (batch.first_lsn, batch.last_lsn);
            let written = crate::background::run(move || inner.write_in_group_blocking(&batch))
                .await
                .map_err(|err| {
                    SinkError::other("sqlite write task failed", StoreCause::Other(err.into()))
                })??;
            let write::Written::Rows { events, duplicates } = written;
            tracing::debug!(
                first_lsn,
                last_lsn,
                events,
                duplicates,
                "sqlite: batch written in the open group"
            );
            Ok(())
        })
    }

    fn commit_group(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            crate::background::run(move || inner.commit_group_blocking())
                .await
                .map_err(|err| {
                    SinkError::other("sqlite commit task failed", StoreCause::Other(err.into()))
                })?
        })
    }
}
