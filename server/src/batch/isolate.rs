//! Rows a store refuses for good: find exactly those, blame only them, store the rest.
//!
//! In: a batch the store refused ([`SinkError::Rejected`](crate::sink::SinkError::Rejected)).
//! Out: every other row of its range stored; the refused rows accounted for. Nothing here
//! retries a refusal as is, so a poison row never holds the spool back.
//!
//! The batch is written again one table at a time, in the stores' write order (events, spans,
//! exceptions, quarantine, traces), each keeping the batch's `part`: a table's deduplication
//! token depends on that table's rows only, so on ClickHouse, whose inserts are per table and
//! not atomic together, the tables that had already landed before the refused one are
//! recognised and dropped rather than stored twice. A table the store refuses is bisected
//! (`part` "0"/"1"… by path, deterministic, so a replay after a crash makes the same parts
//! and tokens) until each refused row is alone. Then:
//!
//! - a refused **event** row is quarantined as `sink_rejected` with its bytes and the store's
//!   error; its spans and exception row go with it (they are rebuilt from its bytes if it is
//!   replayed);
//! - a refused **span, exception, quarantine or trace** row is dropped: counted in
//!   `baddybugs_ingest_sink_dropped_rows_total{table}` and logged (at most once per
//!   [`super::retry::LOG_EVERY`]) with its identity and the store's error. These rows are
//!   derived (spans, exceptions, traces) or already a refusal's record (quarantine rows): there
//!   is no further place to keep them, and keeping the spool blocked would stop every tenant.
//!
//! Every write goes through [`Writer::attempt`], the one retry policy.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use baddybugs_common::{Problem, ReasonCode};

use super::write::{Attempt, Stop, Writer};
use crate::sink::{EventRow, MalformedRow, SinkBatch, Table};

/// One row the store refused, alone in its batch, with the store's error.
struct Refused {
    row: SinkBatch,
    error: String,
}

impl Writer {
    /// Stores every row of `batch` but those the store refuses (see the module doc).
    pub(super) async fn isolate(&mut self, batch: SinkBatch) -> Result<(), Stop> {
        let refused_events = self
            .isolate_table(batch.only(Table::Events), Table::Events)
            .await?;
        let gone: HashSet<&str> = refused_events
            .iter()
            .flat_map(|r| r.row.events.iter().map(|e| e.event_id.as_str()))
            .collect();
        let mut spans = batch.only(Table::Spans);
        spans.spans.retain(|s| !gone.contains(&*s.event_id));
        let mut exceptions = batch.only(Table::Exceptions);
        exceptions
            .exceptions
            .retain(|x| !gone.contains(x.event_id.as_str()));
        let mut quarantine = batch.only(Table::Malformed);
        for refused in &refused_events {
            for event in &refused.row.events {
                tracing::warn!(
                    event_id = %event.event_id,
                    lsn = event.lsn,
                    error = %refused.error,
                    "the store refused an event row; quarantined as sink_rejected"
                );
                quarantine
                    .malformed
                    .push(sink_rejected(event, &refused.error));
            }
        }
        for (table, rows) in [
            (Table::Spans, spans),
            (Table::Exceptions, exceptions),
            (Table::Malformed, quarantine),
            (Table::Traces, batch.only(Table::Traces)),
        ] {
            for refused in self.isolate_table(rows, table).await? {
                self.drop_row(table, &refused);
            }
        }
        Ok(())
    }

    /// Writes the rows of `table` in `batch` (which holds no other rows), bisecting on refusal;
    /// returns the rows refused alone.
    async fn isolate_table(
        &mut self,
        batch: SinkBatch,
        table: Table,
    ) -> Result<Vec<Refused>, Stop> {
        let mut refused = Vec::new();
        // The last pushed is written first: left halves before right ones, as the rows came.
        let mut pending = vec![batch];
        while let Some(part) = pending.pop() {
            let rows = part.rows_of(table);
            if rows == 0 {
                continue;
            }
            let part = Arc::new(part);
            let attempt = self.attempt(Arc::clone(&part)).await?;
            let mut part = Arc::try_unwrap(part).unwrap_or_else(|shared| (*shared).clone());
            match attempt {
                Attempt::Stored => {}
                Attempt::Refused(err) if rows == 1 => refused.push(Refused {
                    row: part,
                    error: err.chain(),
                }),
                Attempt::Refused(_) => {
                    let mut right = part.split_off(table, rows / 2);
                    part.part.push('0');
                    right.part.push('1');
                    pending.push(right);
                    pending.push(part);
                }
            }
        }
        Ok(refused)
    }

    /// Accounts for a refused row that has nowhere else to go.
    fn drop_row(&mut self, table: Table, refused: &Refused) {
        self.batcher.metrics.sink_dropped_row(table);
        if let Some(unlogged) = self.dropped.failure(Instant::now()) {
            let row = identity(table, &refused.row);
            tracing::error!(
                table = table.as_str(),
                row = %row,
                first_lsn = refused.row.first_lsn,
                error = %refused.error,
                unlogged,
                "the store refused a row for good; dropped it and stored the rest (baddybugs_ingest_sink_dropped_rows_total)"
            );
        }
    }
}

/// How a log line names the one row of `table` in `batch`.
fn identity(table: Table, batch: &SinkBatch) -> String {
    let row = match table {
        Table::Events => batch
            .events
            .first()
            .map(|e| format!("event {}", e.event_id)),
        Table::Spans => batch.spans.first().map(|s| {
            format!(
                "span {} {} of event {}",
                s.span.kind.as_str(),
                s.span.span_id,
                s.event_id
            )
        }),
        Table::Exceptions => batch
            .exceptions
            .first()
            .map(|x| format!("exception of event {}", x.event_id)),
        Table::Malformed => batch
            .malformed
            .first()
            .map(|m| format!("quarantine row {} (its bytes are lost)", m.id)),
        Table::Traces => batch
            .traces
            .first()
            .map(|t| format!("pipeline trace of batch {}", t.batch_id)),
    };
    row.unwrap_or_default()
}

/// The quarantine row of an event row the store refused: the event as stored (type, name, id,
/// payload) with the store's error.
fn sink_rejected(event: &EventRow, error: &str) -> MalformedRow {
    let problem = Problem::new(
        ReasonCode::SinkRejected,
        "",
        "a row the store accepts",
        error.to_owned(),
    );
    let raw = format!(
        "{{\"type\":{},\"name\":{},\"id\":{},\"data\":{}}}",
        serde_json::Value::String(event.event_type.to_string()),
        serde_json::Value::String(event.name.clone()),
        serde_json::Value::String(event.event_id.clone()),
        event.data
    );
    MalformedRow {
        id: format!("{}-{}-sink", event.batch_id, event.index),
        lsn: event.lsn,
        received_ms: event.received_ms,
        organization: event.organization.to_string(),
        application: event.application.to_string(),
        batch_id: event.batch_id.to_string(),
        index: Some(event.index),
        event_type: Some(event.event_type.to_string()),
        event_id: Some(event.event_id.clone()),
        reasons: vec![problem],
        raw_size: raw.len() as u64,
        raw: raw.into_bytes(),
        agent_version: None,
        remote_addr: None,
    }
}
