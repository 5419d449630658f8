//! Query API types: filters in (typed and parsed once, in `baddybugs_common::query`), stored
//! events out. Both stores answer with these exact shapes,
//! so `/v1/events` reads the same whatever the sink.
//!
//! A row never breaks its page: a stored `data` or `envelope` that cannot be returned as JSON
//! (nested deeper than [`RENDER_MAX_DEPTH`], a number no parser reads such as `1e400`, text
//! that is not JSON: rows stored before ingest checked envelope fields, or written by another
//! tool) is returned as a JSON string holding the stored text, with an [`Unrenderable`]
//! marker in the row's `unrenderable` list ([`render_stored_json`]).

use baddybugs_common::protocol::StageTiming;
pub use baddybugs_common::query::{
    EventFilter, EventLookup, MalformedFilter, TraceFilter, TraceOrder,
};
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

/// The deepest a stored `data` or `envelope` value is returned as JSON. With the page around
/// it (at most 5 levels, in a feed `result`) a page stays under 70 levels, inside the default
/// limits of mainstream parsers (Ruby's 100, serde_json's 128, Python's ~1000).
pub const RENDER_MAX_DEPTH: usize = 64;

/// The most bytes of `raw` a quarantine list shows per row (`GET /v1/malformed`, the feed's
/// `malformed` query): a whole body is kept uncut (up to `ingest.max_inflated_bytes`), and a
/// page of 100 such rows must not be gigabytes. `truncated` then says so, and
/// `GET /v1/malformed/{id}/raw` returns every kept byte.
pub const MALFORMED_LIST_RAW_BYTES: usize = 64 << 10;

/// A stored field returned as text because it cannot be returned as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unrenderable {
    /// The field (`data` or `envelope`), whose value is then a JSON string of the stored text.
    pub field: String,
    /// `too_deep` or `invalid_json` (the reason codes of ingest).
    pub reason: String,
    /// What is wrong with it.
    pub message: String,
}

/// A stored JSON text as a field of a page: the text itself when every parser can read it
/// within [`RENDER_MAX_DEPTH`]; otherwise the text as a JSON string, and a marker in `markers`.
pub fn render_stored_json(
    text: String,
    field: &str,
    markers: &mut Vec<Unrenderable>,
) -> Box<RawValue> {
    let depth = json_depth(&text);
    let problem = if depth > RENDER_MAX_DEPTH {
        Some((
            baddybugs_common::ReasonCode::TooDeep,
            format!("nested {depth} levels deep; returned as text past {RENDER_MAX_DEPTH}"),
        ))
    } else {
        baddybugs_common::json::check_value(&text).err().map(|err| {
            (
                baddybugs_common::json::parse_error_code(&err),
                format!("not readable as JSON ({err}); returned as text"),
            )
        })
    };
    let text = match problem {
        None => match RawValue::from_string(text) {
            Ok(raw) => return raw,
            Err(err) => {
                // check_value accepted it; keep the two parsers' verdicts apart all the same.
                markers.push(Unrenderable {
                    field: field.to_owned(),
                    reason: baddybugs_common::ReasonCode::InvalidJson
                        .as_str()
                        .to_owned(),
                    message: format!("not readable as JSON ({err})"),
                });
                return as_json_string("");
            }
        },
        Some((code, message)) => {
            markers.push(Unrenderable {
                field: field.to_owned(),
                reason: code.as_str().to_owned(),
                message,
            });
            text
        }
    };
    as_json_string(&text)
}

fn as_json_string(text: &str) -> Box<RawValue> {
    let quoted = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned());
    RawValue::from_string(quoted).unwrap_or_else(|_| {
        // A serialised string is always JSON.
        RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!())
    })
}

/// The deepest nesting of `[` and `{` in a JSON text, strings skipped (no parse, no
/// recursion: a stored value may be 100,000 levels deep).
pub fn json_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text.as_bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
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
    /// Fields returned as text because they cannot be returned as JSON (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrenderable: Vec<Unrenderable>,
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
    /// The original bytes as text (lossy only if they were not UTF-8); in a list, at most
    /// [`MALFORMED_LIST_RAW_BYTES`].
    pub raw: String,
    /// The original size.
    pub raw_size: u64,
    /// Whether `raw` is cut (at the quarantine cap when stored, or in a list).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_too_deep_fields_are_returned_as_text_with_a_marker() {
        let mut markers = Vec::new();
        let fine = render_stored_json(r#"{"a":[1,"]]]"]}"#.into(), "data", &mut markers);
        assert_eq!(fine.get(), r#"{"a":[1,"]]]"]}"#);
        assert!(markers.is_empty());

        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let raw = render_stored_json(deep.clone(), "envelope", &mut markers);
        assert_eq!(serde_json::from_str::<String>(raw.get()).unwrap(), deep);
        let huge = render_stored_json(r#"{"memory":1e400}"#.into(), "envelope", &mut markers);
        assert_eq!(huge.get(), r#""{\"memory\":1e400}""#);
        let broken = render_stored_json("{\"a\":".into(), "data", &mut markers);
        assert_eq!(broken.get(), r#""{\"a\":""#);
        let reasons: Vec<(&str, &str)> = markers
            .iter()
            .map(|m| (m.field.as_str(), m.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("envelope", "too_deep"),
                ("envelope", "invalid_json"),
                ("data", "invalid_json")
            ]
        );
        let at_limit = "[".repeat(RENDER_MAX_DEPTH) + &"]".repeat(RENDER_MAX_DEPTH);
        let mut none = Vec::new();
        render_stored_json(at_limit, "data", &mut none);
        assert!(none.is_empty());
        assert_eq!(json_depth(r#"{"a":"{{{\"[["}"#), 1);
    }
}
