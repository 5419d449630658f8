//! Declarative rules for the denormalised columns of the `events` table.
//!
//! Each column lists its sources in order; the first that yields a value wins. Sources are
//! pointers into the payload (`/user/id`), optionally scaled (seconds → milliseconds), the
//! event's name, sub-type or trace id, or a constant. `is_error` is true when any of its rules
//! holds. [`crate::denorm`] applies them.

use serde::Serialize;

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "from", content = "arg", rename_all = "snake_case")]
pub enum Src {
    /// A JSON Pointer into the payload.
    Path(&'static str),
    /// A JSON Pointer into the payload, multiplied by a factor (e.g. seconds → ms = 1000).
    Scaled(&'static str, f64),
    /// The event's `name`.
    Name,
    /// The event's resolved sub-type.
    Subtype,
    /// The envelope's `trace_id`.
    TraceId,
    /// A constant.
    Const(&'static str),
}

/// When an event counts as an error (`is_error = 1`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "rule", content = "arg", rename_all = "snake_case")]
pub enum ErrorRule {
    /// Always (exceptions).
    Always,
    /// The number at this pointer is at least this value (HTTP status ≥ 500).
    AtLeast(&'static str, f64),
    /// The sub-type is one of these (`failed`).
    SubtypeIn(&'static [&'static str]),
    /// The string at this pointer is one of these, ignoring case (`error`, `critical`).
    ValueIn(&'static str, &'static [&'static str]),
    /// The value at this pointer is `true`.
    IsTrue(&'static str),
    /// The value at this pointer is `false`.
    IsFalse(&'static str),
    /// The value at this pointer is present and neither null, false nor empty.
    Present(&'static str),
}

/// The column rules of one type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ColumnRules {
    /// `duration_ms` (Float64, milliseconds).
    pub duration_ms: &'static [Src],
    /// `user_id` (String).
    pub user_id: &'static [Src],
    /// `status_code` (UInt16).
    pub status_code: &'static [Src],
    /// `severity` (lower-cased).
    pub severity: &'static [Src],
    /// `request_id` (String).
    pub request_id: &'static [Src],
    /// `job_id` (String).
    pub job_id: &'static [Src],
    /// `is_error`: any rule that holds.
    pub is_error: &'static [ErrorRule],
}

/// Log levels at or above `error` (PSR-3), in both cases the agent sends.
pub const ERROR_LEVELS: &[&str] = &["error", "critical", "alert", "emergency"];

/// Severities that count as errors across types (`high` is the agent's for ErrorException).
pub const ERROR_SEVERITIES: &[&str] = &["error", "critical", "alert", "emergency", "high"];

impl ColumnRules {
    /// No column is filled from the payload.
    pub const NONE: ColumnRules = ColumnRules {
        duration_ms: &[],
        user_id: &[],
        status_code: &[],
        severity: &[],
        request_id: &[],
        job_id: &[],
        is_error: &[],
    };

    /// The rules used for types the catalog does not know: the common field names.
    pub const GENERIC: ColumnRules = ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        user_id: &[Src::Path("/user_id"), Src::Path("/user/id")],
        status_code: &[Src::Path("/status_code")],
        severity: &[Src::Path("/severity")],
        request_id: &[],
        job_id: &[Src::Path("/job_id")],
        is_error: &[ErrorRule::ValueIn("/severity", ERROR_SEVERITIES)],
    };
}
