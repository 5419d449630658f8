//! Why an event (or a whole body) was rejected: one closed set of stable codes.
//!
//! The same [`ReasonCode`] drives the 202 response body, the quarantine table, the metrics
//! labels and the console's rejection view, so its string forms never change once published
//! (docs/PROTOCOL.md lists them). A [`Problem`] is one reason with the JSON Pointer (RFC 6901)
//! of the field at fault, what was expected and what was found.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A stable, machine-readable rejection code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The bytes are not JSON (syntax error, truncated text).
    InvalidJson,
    /// The bytes are not valid UTF-8.
    InvalidUtf8,
    /// The event is JSON but not an object.
    NotObject,
    /// A required field is absent (or `null` where null is not allowed).
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A value is outside its allowed set (an enum).
    NotAllowed,
    /// A timestamp could not be read (a warning on events: they fall back, never rejected).
    BadTimestamp,
    /// Nesting deeper than the parser accepts.
    TooDeep,
    /// Over a size limit (an event's bytes, a string, a batch's events).
    TooLarge,
    /// The body could not be decompressed (broken gzip/deflate/zstd).
    BadEncoding,
    /// The body's top level is neither `{"events":[…]}`, an array, an event nor NDJSON.
    BadShape,
    /// The body holds no event at all.
    EmptyBatch,
    /// The store refused the row (e.g. a value a column cannot take); kept in the quarantine.
    SinkRejected,
    /// The event time is further ahead of its receipt than the configured skew (a warning on
    /// events: the receipt time orders them, the original stays in the envelope).
    FutureTimestamp,
}

impl ReasonCode {
    /// Every code, in declaration order (for docs, metrics pre-registration and tests).
    pub const ALL: [ReasonCode; 14] = [
        ReasonCode::InvalidJson,
        ReasonCode::InvalidUtf8,
        ReasonCode::NotObject,
        ReasonCode::MissingField,
        ReasonCode::WrongType,
        ReasonCode::NotAllowed,
        ReasonCode::BadTimestamp,
        ReasonCode::TooDeep,
        ReasonCode::TooLarge,
        ReasonCode::BadEncoding,
        ReasonCode::BadShape,
        ReasonCode::EmptyBatch,
        ReasonCode::SinkRejected,
        ReasonCode::FutureTimestamp,
    ];

    /// The stable string form (`missing_field`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::InvalidJson => "invalid_json",
            ReasonCode::InvalidUtf8 => "invalid_utf8",
            ReasonCode::NotObject => "not_object",
            ReasonCode::MissingField => "missing_field",
            ReasonCode::WrongType => "wrong_type",
            ReasonCode::NotAllowed => "not_allowed",
            ReasonCode::BadTimestamp => "bad_timestamp",
            ReasonCode::TooDeep => "too_deep",
            ReasonCode::TooLarge => "too_large",
            ReasonCode::BadEncoding => "bad_encoding",
            ReasonCode::BadShape => "bad_shape",
            ReasonCode::EmptyBatch => "empty_batch",
            ReasonCode::SinkRejected => "sink_rejected",
            ReasonCode::FutureTimestamp => "future_timestamp",
        }
    }

    /// Parses the stable string form.
    pub fn parse(text: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// One sentence on what the code means, for docs and the console's help.
    pub fn describe(self) -> &'static str {
        match self {
            ReasonCode::InvalidJson => "the event (or body) is not valid JSON",
            ReasonCode::InvalidUtf8 => "the bytes are not valid UTF-8",
            ReasonCode::NotObject => "an event must be a JSON object",
            ReasonCode::MissingField => "a field every emitter sends is absent",
            ReasonCode::WrongType => "a field has the wrong JSON type",
            ReasonCode::NotAllowed => "a value is not one of the allowed values",
            ReasonCode::BadTimestamp => {
                "the timestamp could not be read; the event was kept with a fallback time"
            }
            ReasonCode::TooDeep => "the JSON nests deeper than 128 levels",
            ReasonCode::TooLarge => "over a size limit",
            ReasonCode::BadEncoding => "the body could not be decompressed",
            ReasonCode::BadShape => {
                "the body is not {\"events\":[...]}, an array, an event or NDJSON"
            }
            ReasonCode::EmptyBatch => "the body holds no event",
            ReasonCode::SinkRejected => "the store refused the row",
            ReasonCode::FutureTimestamp => {
                "the timestamp is too far in the future; the event is ordered by its receipt time"
            }
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in an event: what, where (JSON Pointer into the event), expected, found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The stable reason code.
    pub code: ReasonCode,
    /// RFC 6901 JSON Pointer into the event (`/payload/status`); empty for the whole event.
    pub path: String,
    /// What the catalog expects there (`integer`, `one of hit, miss`).
    pub expected: String,
    /// What was found (`string "abc"`, `absent`).
    pub found: String,
    /// A sentence for people, naming the field.
    pub message: String,
}

impl Problem {
    /// Builds a problem; the message is derived from the other parts.
    pub fn new(
        code: ReasonCode,
        path: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        let path = path.into();
        let expected = expected.into();
        let found = found.into();
        let at = if path.is_empty() {
            "event".to_owned()
        } else {
            path.clone()
        };
        let message = match code {
            ReasonCode::MissingField => {
                format!("{at}: required field is missing (expected {expected})")
            }
            _ => format!(
                "{at}: {} (expected {expected}, found {found})",
                code.describe()
            ),
        };
        Problem {
            code,
            path,
            expected,
            found,
            message,
        }
    }
}

/// Describes a found value briefly for a message: its kind and a short excerpt.
pub fn describe_found(kind: &str, excerpt: Option<&str>) -> String {
    match excerpt {
        Some(text) => {
            let mut short: String = text.chars().take(40).collect();
            if short.len() < text.len() {
                short.push('…');
            }
            format!("{kind} {short:?}")
        }
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ReasonCode::ALL {
            assert!(seen.insert(code.as_str()));
            assert_eq!(ReasonCode::parse(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn message_names_the_path() {
        let p = Problem::new(
            ReasonCode::WrongType,
            "/payload/status",
            "integer",
            "string \"x\"",
        );
        assert!(p.message.starts_with("/payload/status:"), "{}", p.message);
    }
}
