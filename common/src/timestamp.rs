//! Reads an event's time from whatever the sender put in `timestamp` or `datetime`.
//!
//! In: a JSON node. Out: milliseconds since the Unix epoch (UTC). Accepted forms: epoch seconds
//! with a fraction (the real agent's `microtime(true)`), epoch milliseconds or microseconds (told
//! apart by magnitude), the same as numeric strings, ISO-8601 / RFC 3339 with an offset or `Z`,
//! and ISO-8601 without an offset (read as UTC), with `T` or a space. Never fails loudly: the
//! caller falls back to `datetime`, then to the time of receipt, and flags the event.
//!
//! An event time further ahead of its receipt than [`max_future_ms`] (one day unless the
//! process set another with [`set_max_future_ms`]: the server sets it once at start from
//! `ingest.future_timestamp_skew_secs`) is not trusted for ordering: the envelope uses the
//! receipt time and warns `future_timestamp`. One process-wide value rather than a parameter,
//! so that every check of the same event in a process (ingest, the batcher's row building,
//! the live feed, the quarantine replay) decides the same way.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDateTime};

use crate::json::{parse_numeric_str, Node};

/// Where an event's stored timestamp came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampSource {
    /// The `timestamp` field.
    Timestamp,
    /// The `datetime` field (the `timestamp` was absent or unreadable).
    Datetime,
    /// The time the server received the event (neither field was readable).
    Received,
}

impl TimestampSource {
    /// Stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampSource::Timestamp => "timestamp",
            TimestampSource::Datetime => "datetime",
            TimestampSource::Received => "received",
        }
    }
}

/// How far ahead of its receipt an event time is trusted by default: one day, ms.
pub const DEFAULT_MAX_FUTURE_MS: i64 = 86_400_000;

static MAX_FUTURE_MS: AtomicI64 = AtomicI64::new(DEFAULT_MAX_FUTURE_MS);

/// Sets how far ahead of its receipt an event time is trusted, ms (at least 1), for the whole
/// process. Set it once at start, before any event is checked.
pub fn set_max_future_ms(ms: i64) {
    MAX_FUTURE_MS.store(ms.max(1), Ordering::Relaxed);
}

/// How far ahead of its receipt an event time is trusted, ms.
pub fn max_future_ms() -> i64 {
    MAX_FUTURE_MS.load(Ordering::Relaxed)
}

/// Reads a timestamp node; `None` when it cannot be read.
pub fn read_timestamp(node: &Node<'_>) -> Option<i64> {
    match node {
        Node::Int(_) | Node::UInt(_) | Node::Float(_) => node.as_f64().and_then(epoch_to_millis),
        Node::Str(text) => parse_timestamp_str(text),
        _ => None,
    }
}

/// Parses the text forms: numeric epochs, RFC 3339, ISO-8601 without an offset.
pub fn parse_timestamp_str(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Some(number) = parse_numeric_str(text) {
        return epoch_to_millis(number);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.timestamp_millis());
    }
    // ISO-8601 with an offset but a space separator, or an offset without a colon.
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(text, format) {
            return Some(dt.timestamp_millis());
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc().timestamp_millis());
        }
    }
    None
}

/// Turns an epoch number into milliseconds, telling seconds, milliseconds and microseconds
/// apart by magnitude (seconds stay below 1e11 until the year 5138).
fn epoch_to_millis(value: f64) -> Option<i64> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let millis = if value < 1.0e11 {
        value * 1000.0
    } else if value < 1.0e14 {
        value
    } else if value < 1.0e17 {
        value / 1000.0
    } else {
        return None;
    };
    Some(millis.floor() as i64)
}

/// Formats milliseconds as RFC 3339 UTC with millisecond precision.
pub fn format_millis(millis: i64) -> String {
    DateTime::from_timestamp_millis(millis)
        .map(|dt| dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| millis.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_749_567_234_202;

    #[test]
    fn agent_float_seconds() {
        assert_eq!(read_timestamp(&Node::Float(1_749_567_234.202_922)), Some(T));
        assert_eq!(read_timestamp(&Node::UInt(1_749_567_234)), Some(T - 202));
    }

    #[test]
    fn millis_and_micros() {
        assert_eq!(read_timestamp(&Node::UInt(T as u64)), Some(T));
        assert_eq!(read_timestamp(&Node::UInt(T as u64 * 1000)), Some(T));
        assert_eq!(parse_timestamp_str("1749567234.202922"), Some(T));
    }

    #[test]
    fn iso_forms() {
        let utc = parse_timestamp_str("2025-06-10T14:53:54+00:00").unwrap();
        assert_eq!(parse_timestamp_str("2025-06-10T16:53:54+02:00"), Some(utc));
        assert_eq!(parse_timestamp_str("2025-06-10T14:53:54Z"), Some(utc));
        assert_eq!(parse_timestamp_str("2025-06-10T14:53:54"), Some(utc));
        assert_eq!(parse_timestamp_str("2025-06-10 14:53:54.000000"), Some(utc));
        assert_eq!(
            parse_timestamp_str("2025-06-10T14:53:54.250Z"),
            Some(utc + 250)
        );
    }

    #[test]
    fn unreadable() {
        assert_eq!(parse_timestamp_str("yesterday"), None);
        assert_eq!(parse_timestamp_str(""), None);
        assert_eq!(read_timestamp(&Node::Bool(true)), None);
        assert_eq!(read_timestamp(&Node::Int(-5)), None);
    }
}
