//! Where stored events live: the [`Store`] trait and the rows written to it.
//!
//! In: [`SinkBatch`]es built by the batcher from spool records (one batch covers a contiguous
//! range of spool LSNs). Out: rows in the `events`, `lifecycle_spans`, `exceptions`,
//! `malformed_events` and `ingest_traces` tables, and the answers of the query API.
//!
//! Two implementations pass the same contract tests: [`sqlite::SqliteStore`] (the embedded
//! default, in the data directory) and [`clickhouse::ClickHouseStore`] (production). A write is
//! idempotent for its LSN range: writing the same batch twice (a retry, or a replay after a crash
//! before the checkpoint) stores one copy. Failures are classified by [`SinkError`]: retryable
//! ones make the batcher back off and retry forever while the spool absorbs the load; a
//! permanent refusal of some rows sends those rows to the quarantine.

pub mod clickhouse;
pub mod query;
pub mod rows;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use query::{
    EventFilter, EventPage, ExceptionGroup, MalformedFilter, StoredEvent, StoredMalformed,
    StoredTrace, TraceFilter, TraceOrder,
};
pub use rows::{EventRow, ExceptionOccurrence, MalformedRow, SinkBatch, SpanRowOut, TraceRow};

/// A boxed future, so the trait stays object-safe (`Arc<dyn Store>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a write or a query failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying: the store is unreachable, busy, read-only for now, timed out, 5xx.
    #[error("store unavailable: {0}")]
    Retryable(String),
    /// The store refused some rows for good (a value a column cannot take). The batcher bisects
    /// the batch to find them and quarantines them with this message.
    #[error("store refused rows: {0}")]
    Rejected(String),
    /// A query the caller got wrong (bad cursor, bad filter).
    #[error("bad query: {0}")]
    BadQuery(String),
    /// Anything else (a bug, a schema mismatch): logged, counted, retried like a retryable one.
    #[error("store error: {0}")]
    Other(String),
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
    /// Events matching a filter, newest first, with a cursor for the next page.
    fn query_events(&self, filter: EventFilter) -> BoxFuture<'_, Result<EventPage, SinkError>>;
    /// One event by its id.
    fn get_event(&self, id: String) -> BoxFuture<'_, Result<Option<StoredEvent>, SinkError>>;
    /// Quarantined events matching a filter, newest first.
    fn query_malformed(
        &self,
        filter: MalformedFilter,
    ) -> BoxFuture<'_, Result<Vec<StoredMalformed>, SinkError>>;
    /// Quarantined events by id (for replay).
    fn get_malformed(
        &self,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<StoredMalformed>, SinkError>>;
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
    /// A cheap reachability check.
    fn health(&self) -> BoxFuture<'_, StoreHealth>;
}
