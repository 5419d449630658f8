//! Where stored events live: the [`Store`] trait and the rows written to it.
//!
//! In: [`SinkBatch`]es built by the batcher from spool records (one batch covers a contiguous
//! range of spool LSNs). Out: rows in the `events`, `lifecycle_spans` (ClickHouse; SQLite
//! derives a trace's spans from its stored events at read: [`SpanRows`]), `exceptions`,
//! `malformed_events`, `ingest_traces` and `schema_drift` tables, and the answers of the query API.
//!
//! Two implementations pass the same contract tests: [`sqlite::SqliteStore`] (the embedded
//! default, in the data directory) and [`clickhouse::ClickHouseStore`] (production). A write is
//! idempotent for its LSN range: writing the same batch twice (a retry, or a replay after a crash
//! before the checkpoint) stores one copy. Failures are classified by [`SinkError`]: retryable
//! ones make the batcher back off and retry forever while the spool absorbs the load; a
//! permanent refusal of some rows sends those rows to the quarantine.

pub mod clickhouse;
pub mod copies;
pub mod query;
pub mod rows;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use query::{
    EventFilter, EventLookup, EventPage, ExceptionGroup, MalformedFilter, StoredEvent,
    StoredMalformed, StoredTrace, TraceFilter, TraceOrder,
};
pub use rows::{
    EventRow, ExceptionOccurrence, MalformedRow, SharedStr, SinkBatch, SpanRowOut, SpanRows, Table,
    TraceRow,
};

/// A boxed future, so the trait stays object-safe (`Arc<dyn Store>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a write or a query failed.
///
/// The variant is the class the batcher acts on; `context` says what the store was doing; the
/// `source` is the error of the library or system call underneath, kept as a cause (not in the
/// `Display` text): report the whole chain with [`crate::errors::Chain`] or
/// [`SinkError::chain`].
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying: the store is unreachable, busy, read-only for now, timed out, 5xx.
    #[error("store unavailable: {context}")]
    Retryable {
        /// What the store was doing.
        context: String,
        /// The underlying failure, when there is one (a timeout has none).
        #[source]
        source: Option<StoreCause>,
    },
    /// The store refused some rows for good (a value a column cannot take). The batcher bisects
    /// the batch to find them and quarantines them with this error's chain.
    #[error("store refused rows: {context}")]
    Rejected {
        /// What the store was doing.
        context: String,
        /// The store's refusal.
        #[source]
        source: Option<StoreCause>,
    },
    /// A query the caller got wrong (bad cursor, bad filter): the message is for the caller.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// Anything else (a bug, a schema mismatch): logged, counted, retried like a retryable one.
    #[error("store error: {context}")]
    Other {
        /// What the store was doing.
        context: String,
        /// The underlying failure, when there is one.
        #[source]
        source: Option<StoreCause>,
    },
}

impl SinkError {
    /// A [`SinkError::Retryable`] caused by `cause`.
    pub fn retryable(context: impl Into<String>, cause: impl Into<StoreCause>) -> SinkError {
        SinkError::Retryable {
            context: context.into(),
            source: Some(cause.into()),
        }
    }

    /// A [`SinkError::Rejected`] caused by `cause`.
    pub fn rejected(context: impl Into<String>, cause: impl Into<StoreCause>) -> SinkError {
        SinkError::Rejected {
            context: context.into(),
            source: Some(cause.into()),
        }
    }

    /// A [`SinkError::Other`] caused by `cause`.
    pub fn other(context: impl Into<String>, cause: impl Into<StoreCause>) -> SinkError {
        SinkError::Other {
            context: context.into(),
            source: Some(cause.into()),
        }
    }

    /// A [`SinkError::Other`] with no underlying error (a condition this crate detected).
    pub fn other_msg(context: impl Into<String>) -> SinkError {
        SinkError::Other {
            context: context.into(),
            source: None,
        }
    }

    /// A [`SinkError::Retryable`] with no underlying error (a timeout, a schema not applied
    /// yet).
    pub fn retryable_msg(context: impl Into<String>) -> SinkError {
        SinkError::Retryable {
            context: context.into(),
            source: None,
        }
    }

    /// The error and its causes on one line, for logs, health reports and quarantine messages.
    pub fn chain(&self) -> String {
        crate::errors::chain(self)
    }
}

/// The failure underneath a [`SinkError`]: the library's or the system's own error, so that a
/// caller can still tell, say, a full disk from a locked database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreCause {
    /// SQLite, through rusqlite.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The ClickHouse client (HTTP, server exceptions, row encoding).
    #[error(transparent)]
    ClickHouse(#[from] ::clickhouse::error::Error),
    /// A file or directory operation.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A stored value that is not the JSON it should be.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A blocking task that failed (panicked or was cancelled).
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    /// Anything else: a background job that could not run, a migration refusal.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// Health of a store, for /readyz, /v1/stats and the metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreHealth {
    /// `sqlite` or `clickhouse`.
    pub kind: &'static str,
    /// Where it is (a path or a URL without credentials).
    pub location: String,
    /// Whether a trivial query succeeded.
    pub reachable: bool,
    /// The error when it did not.
    pub error: Option<String>,
}

/// A store: the sink side (idempotent batch writes) and the query side.
pub trait Store: Send + Sync + 'static {
    /// Writes one batch; idempotent for its LSN range. Shared (`Arc`) so that a retry never
    /// copies the rows.
    fn write(&self, batch: Arc<SinkBatch>) -> BoxFuture<'_, Result<(), SinkError>>;
    /// Whether this store writes span rows, so whether the batcher derives them.
    fn span_rows(&self) -> SpanRows {
        SpanRows::Written
    }
    /// Events matching a filter, newest first, with a cursor for the next page.
    fn query_events(&self, filter: EventFilter) -> BoxFuture<'_, Result<EventPage, SinkError>>;
    /// The events with an id within the lookup's scope: none, one, or, where tenants share the
    /// id, one per (organization, application), ordered by organization then application, at
    /// most [`EventLookup::MAX_MATCHES`].
    fn get_event(&self, lookup: EventLookup) -> BoxFuture<'_, Result<Vec<StoredEvent>, SinkError>>;
    /// Quarantined events matching a filter, newest first; each `raw` shows at most
    /// [`query::MALFORMED_LIST_RAW_BYTES`] (the rest through [`Store::malformed_raw`]).
    fn query_malformed(
        &self,
        filter: MalformedFilter,
    ) -> BoxFuture<'_, Result<Vec<StoredMalformed>, SinkError>>;
    /// Quarantined events by id (for replay).
    fn get_malformed(
        &self,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<StoredMalformed>, SinkError>>;
    /// The kept bytes of one quarantined entry, exactly as stored (every byte of a whole
    /// body; up to `ingest.quarantine_raw_cap_bytes` of one event); `None` for an unknown id.
    fn malformed_raw(&self, id: String) -> BoxFuture<'_, Result<Option<Vec<u8>>, SinkError>>;
    /// Exception groups (per organization, application and fingerprint), most recent first.
    fn exception_groups(
        &self,
        filter: EventFilter,
    ) -> BoxFuture<'_, Result<Vec<ExceptionGroup>, SinkError>>;
    /// Span rows of one trace (lifecycle spans and trace spans), in waterfall order.
    fn trace_spans(
        &self,
        trace_id: String,
    ) -> BoxFuture<'_, Result<Vec<serde_json::Value>, SinkError>>;
    /// Pipeline traces, newest (or slowest) first.
    fn query_traces(
        &self,
        filter: TraceFilter,
    ) -> BoxFuture<'_, Result<Vec<StoredTrace>, SinkError>>;
    /// Adds schema drift aggregates to the `schema_drift` table (counts add up; see
    /// [`crate::drift`]).
    fn write_drift(
        &self,
        rows: Vec<crate::drift::DriftRow>,
    ) -> BoxFuture<'_, Result<(), SinkError>>;
    /// The stored schema drift keys passing `filter`, merged across rows (and nodes), most
    /// recently seen first.
    fn query_drift(
        &self,
        filter: baddybugs_common::query::DriftFilter,
    ) -> BoxFuture<'_, Result<Vec<crate::drift::DriftRow>, SinkError>>;
    /// A cheap reachability check.
    fn health(&self) -> BoxFuture<'_, StoreHealth>;
    /// Which of `ids` the store holds as events of (`organization`, `application`): the dedup
    /// window's exact confirmation of a "maybe seen" (ingest/dedup.rs).
    fn stored_event_ids(
        &self,
        organization: String,
        application: String,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<String>, SinkError>>;
    /// Rows beyond the first of each event among the events received in the last `window`:
    /// copies stored by two nodes of a fleet. `None` where the store cannot hold copies (SQLite
    /// keeps one row per event by its key).
    fn extra_copies(&self, window: Duration) -> BoxFuture<'_, Result<Option<u64>, SinkError>> {
        let _ = window;
        Box::pin(async { Ok(None) })
    }
    /// Group commit, where the store has transactions that can span several batches (SQLite);
    /// `None` (the default) where every write stands alone.
    fn group_commit(&self) -> Option<&dyn GroupCommit> {
        None
    }
}

/// One transaction across several batches: the batcher writes a batch into the open group
/// while the next one is already built, and commits when none waits (or the group is full), so
/// a store that is behind pays one commit (its page writes and `fsync`) per group instead of
/// per batch, with no more rows in memory than before (batch/write.rs).
///
/// Only the batcher's writer calls these, one at a time; the store's other writes wait while a
/// group is open.
pub trait GroupCommit: Send + Sync {
    /// Writes `batch` inside the open group, opening one first if none is. Nothing of it is
    /// durable (or visible to queries) until [`GroupCommit::commit_group`] returns `Ok`.
    ///
    /// Any error, a refusal ([`SinkError::Rejected`]) included, has rolled the whole group
    /// back: the batches written in it before are gone too.
    fn write_in_group(&self, batch: Arc<SinkBatch>) -> BoxFuture<'_, Result<(), SinkError>>;
    /// Commits the open group (nothing to do when none is open). On an error the whole group
    /// has been rolled back.
    fn commit_group(&self) -> BoxFuture<'_, Result<(), SinkError>>;
}
