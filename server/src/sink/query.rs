//! Query API types: filters in, stored events out. Both stores answer with these exact shapes,
//! so `/v1/events` reads the same whatever the sink.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Filters of `GET /v1/events` (and of the feed's `query`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventFilter {
    /// `type`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// `name`, exact.
    pub name: Option<String>,
    /// `trace_id`, exact.
    pub trace_id: Option<String>,
    /// `user_id`, exact.
    pub user_id: Option<String>,
    /// `environment`, exact.
    pub environment: Option<String>,
    /// Event time ≥ this (epoch ms).
    pub since_ms: Option<i64>,
    /// Event time < this (epoch ms).
    pub until_ms: Option<i64>,
    /// `is_error`.
    pub is_error: Option<bool>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
}

impl EventFilter {
    /// The effective page size.
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

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

/// Filters of `GET /v1/malformed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MalformedFilter {
    /// The event's `type`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// A reason code the row must have.
    pub reason: Option<String>,
    /// Application.
    pub application: Option<String>,
    /// Received ≥ (epoch ms).
    pub since_ms: Option<i64>,
    /// Received < (epoch ms).
    pub until_ms: Option<i64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<u32>,
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

/// Filters of `GET /v1/traces` (pipeline traces).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceFilter {
    /// `recent` (default) or `slowest`.
    pub order: Option<String>,
    /// Only failed / partially rejected batches.
    pub failed_only: Option<bool>,
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
}
