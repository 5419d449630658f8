//! The query service: what the REST query API (`http/query.rs`) and the feed's `query` and
//! `get` messages (`http/feed_ws.rs`) ask the store, in one place.
//!
//! In: typed filters and [`Query`]s (parsed once, in `baddybugs_common::query`, whichever the
//! transport). Out: the rows of the query API's shapes (`sink::query`), or for the feed one JSON
//! value per query kind. What can fail: the store ([`SinkError`]: `BadQuery` for a caller's
//! mistake such as a bad cursor, the rest for a store that cannot answer now), and for the feed
//! the encoding of the answer ([`QueryServiceError`]). It only reads;
//! it measures nothing (the store's own latency shows in the sink metrics).

use std::sync::Arc;

use baddybugs_common::query::Query;
use serde_json::Value;

use crate::drift::DriftRegistry;
use crate::sink::{
    EventFilter, EventLookup, EventPage, ExceptionGroup, MalformedFilter, SinkError, Store,
    StoredEvent, StoredMalformed, StoredTrace, TraceFilter,
};

/// Most events of one trace that the `trace` query returns with its spans.
pub const TRACE_EVENTS_LIMIT: u32 = 1000;

/// Why a feed query got no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryServiceError {
    /// The store failed or refused the query.
    #[error(transparent)]
    Store(#[from] SinkError),
    /// The answer could not be written as JSON (a bug).
    #[error("cannot encode the answer: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Reads the store for both transports.
#[derive(Clone)]
pub struct QueryService {
    store: Arc<dyn Store>,
    drift: Arc<DriftRegistry>,
}

impl QueryService {
    /// A service over `store`, with this process's unflushed schema drift.
    pub fn new(store: Arc<dyn Store>, drift: Arc<DriftRegistry>) -> QueryService {
        QueryService { store, drift }
    }

    /// The schema drift keys: the stored rows merged with the unflushed ones, newest first.
    pub async fn drift(
        &self,
        filter: baddybugs_common::query::DriftFilter,
    ) -> Result<baddybugs_common::protocol::DriftReport, SinkError> {
        let stored = self.store.query_drift(filter.clone()).await?;
        Ok(self.drift.report(stored, &filter))
    }

    /// A page of stored events, newest first.
    pub async fn events(&self, filter: EventFilter) -> Result<EventPage, SinkError> {
        self.store.query_events(filter).await
    }

    /// The stored events an id names within the lookup's tenant scope: none, one, or one per
    /// tenant that stored the id (an ambiguous lookup).
    pub async fn event(&self, lookup: EventLookup) -> Result<Vec<StoredEvent>, SinkError> {
        self.store.get_event(lookup).await
    }

    /// Quarantined events, newest first.
    pub async fn malformed(
        &self,
        filter: MalformedFilter,
    ) -> Result<Vec<StoredMalformed>, SinkError> {
        self.store.query_malformed(filter).await
    }

    /// Quarantined events by quarantine id (the replay reads them).
    pub async fn malformed_by_id(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<StoredMalformed>, SinkError> {
        self.store.get_malformed(ids).await
    }

    /// The kept bytes of one quarantined entry, exactly as stored (`None`: unknown id).
    pub async fn malformed_raw(&self, id: String) -> Result<Option<Vec<u8>>, SinkError> {
        self.store.malformed_raw(id).await
    }

    /// Exception groups, most recent first.
    pub async fn exception_groups(
        &self,
        filter: EventFilter,
    ) -> Result<Vec<ExceptionGroup>, SinkError> {
        self.store.exception_groups(filter).await
    }

    /// The waterfall rows of one trace.
    pub async fn trace_spans(&self, trace_id: String) -> Result<Vec<Value>, SinkError> {
        self.store.trace_spans(trace_id).await
    }

    /// The server's own pipeline traces.
    pub async fn pipeline_traces(
        &self,
        filter: TraceFilter,
    ) -> Result<Vec<StoredTrace>, SinkError> {
        self.store.query_traces(filter).await
    }

    /// Answers a feed `query`: the `data` of its `result` (docs/PROTOCOL.md, "Client messages").
    pub async fn run(&self, query: Query) -> Result<Value, QueryServiceError> {
        Ok(match query {
            Query::Events(filter) => serde_json::to_value(self.events(filter).await?)?,
            Query::Malformed(filter) => serde_json::to_value(self.malformed(filter).await?)?,
            Query::ExceptionGroups(filter) => {
                serde_json::to_value(self.exception_groups(filter).await?)?
            }
            Query::Trace { trace_id } => {
                let spans = self.trace_spans(trace_id.clone()).await?;
                let events = self
                    .events(EventFilter {
                        trace_id: Some(trace_id),
                        limit: Some(TRACE_EVENTS_LIMIT),
                        ..EventFilter::default()
                    })
                    .await?;
                // No `json!`: it unwraps each conversion, and one unrenderable row made the
                // feed task panic and the `trace` query never answer (issue 14).
                let mut result = serde_json::Map::new();
                result.insert("spans".into(), serde_json::to_value(spans)?);
                result.insert("events".into(), serde_json::to_value(events.events)?);
                Value::Object(result)
            }
            Query::Traces(filter) => serde_json::to_value(self.pipeline_traces(filter).await?)?,
            Query::Drift(filter) => serde_json::to_value(self.drift(filter).await?)?,
        })
    }
}
