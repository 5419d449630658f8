//! Query API types: filters in (typed and parsed once, in `baddybugs_common::query`), stored
//! events out. Both stores answer with these exact shapes,
//! so `/v1/events` reads the same whatever the sink.

use baddybugs_common::protocol::StageTiming;
pub use baddybugs_common::query::{EventFilter, MalformedFilter, TraceFilter, TraceOrder};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Keyset cursor: the (timestamp_ms, event_id) of the last row of a page.
pub fn encode_cursor(timestamp_ms: i64, event_id: &str) -> String {
    hex::encode(format!("{timestamp_ms}:{event_id}"))
}

/// Reads a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let text = String::from_utf8(hex::decode(cursor).ok()?).ok()?;
    let (ts, id) = text.split_once(':')?;
    Some((ts.parse().ok()?, id.to_owned()))
}

/// One stored event as the query API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Event id.
    pub id: String,
    /// `type`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `name`.
    pub name: String,
    /// Event time, RFC 3339.
    pub timestamp: String,
    /// Where the time came from.
    pub timestamp_source: String,
    /// Receipt time, RFC 3339.
    pub received_at: String,
    /// `trace_id`.
    pub trace_id: String,
    /// `session_id`.
    pub session_id: Option<String>,
    /// `environment`.
    pub environment: String,
    /// `release`.
    pub release: Option<String>,
    /// `host`.
    pub host: Option<String>,
    /// `deployment_hash`.
    pub deployment_hash: Option<String>,
    /// Organization.
    pub organization: String,
    /// Application.
    pub application: String,
    /// Ingest batch.
    pub batch_id: String,
    /// Duration column.
    pub duration_ms: Option<f64>,
    /// User column.
    pub user_id: Option<String>,
    /// Status column.
    pub status_code: Option<u16>,
    /// Error flag.
    pub is_error: bool,
    /// Severity column.
    pub severity: Option<String>,
    /// Request column.
    pub request_id: Option<String>,
    /// Job column.
    pub job_id: Option<String>,
    /// The payload, byte-for-byte as sent.
    pub data: Box<RawValue>,
    /// Every other top-level field, verbatim.
    pub envelope: Box<RawValue>,
}

/// A page of events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventPage {
    /// The events, newest first.
    pub events: Vec<StoredEvent>,
    /// Cursor for the next page, when there may be one.
    pub next_cursor: Option<String>,
}

/// One quarantined event as the query API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMalformed {
    /// Quarantine id.
    pub id: String,
    /// Receipt time, RFC 3339.
    pub received_at: String,
    /// Organization.
    pub organization: String,
    /// Application.
    pub application: String,
    /// Batch.
    pub batch_id: String,
    /// Index in the body.
    pub index: Option<u32>,
    /// The event's `type`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// The event's `id`.
    pub event_id: Option<String>,
    /// Reason codes.
    pub codes: Vec<String>,
    /// Reasons in full.
    pub reasons: Vec<baddybugs_common::Problem>,
    /// The original bytes as text (lossy only if they were not UTF-8).
    pub raw: String,
    /// The original size.
    pub raw_size: u64,
    /// Whether `raw` is cut.
    pub truncated: bool,
    /// `X-Agent-Version`.
    pub agent_version: Option<String>,
    /// Client address.
    pub remote_addr: Option<String>,
}

/// One exception group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExceptionGroup {
    /// Organization.
    pub organization: String,
    /// Application.
    pub application: String,
    /// The grouping key.
    pub fingerprint: String,
    /// The class.
    pub exception_class: String,
    /// The last message.
    pub last_message: String,
    /// First occurrence, RFC 3339.
    pub first_seen: String,
    /// Last occurrence, RFC 3339.
    pub last_seen: String,
    /// Occurrences.
    pub occurrence_count: u64,
}

/// One pipeline trace as `GET /v1/pipeline` (and the feed's `traces` query) returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTrace {
    /// The batch.
    pub batch_id: String,
    /// Its spool record.
    pub lsn: u64,
    /// Receipt time, epoch ms.
    pub received_ms: i64,
    /// Receipt time, RFC 3339.
    pub received_at: String,
    /// Organization.
    pub organization: String,
    /// Application.
    pub application: String,
    /// `accepted`, `partial`, `rejected` or `quarantined_body`.
    pub outcome: String,
    /// From receipt to the store, µs.
    pub total_us: u64,
    /// Every stage, in order.
    pub stages: Vec<StageTiming>,
    /// Body size as sent.
    pub bytes_compressed: u64,
    /// Body size inflated.
    pub bytes_inflated: u64,
    /// Events in the body.
    pub events: u32,
    /// Accepted.
    pub accepted: u32,
    /// Rejected.
    pub rejected: u32,
    /// Agent retries.
    pub duplicates: u32,
}

/// The `stages` column's text (a JSON list), as both stores write it.
pub fn stages_to_text(stages: &[StageTiming]) -> String {
    serde_json::to_string(stages).unwrap_or_else(|_| "[]".to_owned())
}

/// Reads the `stages` column back; `Err` names what is wrong with a value this server did not
/// write.
pub fn stages_from_text(text: &str) -> Result<Vec<StageTiming>, serde_json::Error> {
    serde_json::from_str(text)
}
