//! Denormalisation: the columns copied out of `data`, and the rows derived from some types.
//!
//! In: a valid event (its catalog entry, envelope and payload). Out: [`Columns`] for the
//! `events` table, filled by the type's [`ColumnRules`] (first source that yields a value wins;
//! numeric strings are coerced; `data` itself is never changed), one [`SpanRow`] per phase and
//! span of a `lifecycle` event and per `trace_span` event, and one [`ExceptionRow`] per
//! `exception` / `handled_exception` occurrence, with a fingerprint computed when the agent sends
//! none (it never does for `exception`, AGENT-WIRE §6).
//!
//! Cannot fail: a source that is absent or of the wrong kind yields nothing and the next one is
//! tried; a column with no value is NULL (0 for `is_error`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::{ColumnRules, ErrorRule, Src, TypeSpec};
use crate::envelope::Envelope;
use crate::json::Node;

/// The denormalised columns of one event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Columns {
    /// Duration in milliseconds.
    pub duration_ms: Option<f64>,
    /// The user, as text (ints and uuids alike).
    pub user_id: Option<String>,
    /// HTTP status (or an exit code-like status for the types that have one).
    pub status_code: Option<u16>,
    /// Whether the event is an error (rule per type, see docs/CATALOG.md).
    pub is_error: bool,
    /// Severity or level, lower-cased.
    pub severity: Option<String>,
    /// The request the event belongs to.
    pub request_id: Option<String>,
    /// The queue job the event belongs to.
    pub job_id: Option<String>,
}

/// Computes the columns of an event. `spec` is `None` for a type the catalog does not know.
pub fn columns(
    spec: Option<&TypeSpec>,
    envelope: &Envelope<'_>,
    payload: &Node<'_>,
    subtype: Option<&str>,
) -> Columns {
    let rules = spec.map_or(&ColumnRules::GENERIC, |s| &s.columns);
    let ctx = Ctx {
        envelope,
        payload,
        subtype,
    };
    Columns {
        duration_ms: rules
            .duration_ms
            .iter()
            .find_map(|src| ctx.number(src))
            .filter(|v| v.is_finite()),
        user_id: rules.user_id.iter().find_map(|src| ctx.text(src)),
        status_code: rules
            .status_code
            .iter()
            .find_map(|src| ctx.number(src))
            .filter(|v| (0.0..=65535.0).contains(v))
            .map(|v| v as u16),
        is_error: rules.is_error.iter().any(|rule| ctx.holds(rule)),
        severity: rules
            .severity
            .iter()
            .find_map(|src| ctx.text(src))
            .map(|s| s.to_ascii_lowercase()),
        request_id: rules.request_id.iter().find_map(|src| ctx.text(src)),
        job_id: rules.job_id.iter().find_map(|src| ctx.text(src)),
    }
}

struct Ctx<'e, 'a> {
    envelope: &'e Envelope<'a>,
    payload: &'e Node<'a>,
    subtype: Option<&'e str>,
}

impl Ctx<'_, '_> {
    fn node(&self, pointer: &str) -> Option<&Node<'_>> {
        self.payload.pointer(pointer).filter(|n| !n.is_null())
    }

    fn number(&self, src: &Src) -> Option<f64> {
        match src {
            Src::Path(p) => self.node(p)?.as_f64(),
            Src::Scaled(p, factor) => self.node(p)?.as_f64().map(|v| v * factor),
            Src::Name => crate::json::parse_numeric_str(&self.envelope.name),
            Src::Subtype => self.subtype.and_then(crate::json::parse_numeric_str),
            Src::TraceId => None,
            Src::Const(text) => crate::json::parse_numeric_str(text),
        }
    }

    fn text(&self, src: &Src) -> Option<String> {
        let text = match src {
            Src::Path(p) | Src::Scaled(p, _) => self.node(p)?.scalar_text()?,
            Src::Name => self.envelope.name.to_string(),
            Src::Subtype => self.subtype?.to_owned(),
            Src::TraceId => self.envelope.trace_id.as_deref()?.to_owned(),
            Src::Const(text) => (*text).to_owned(),
        };
        (!text.is_empty()).then_some(text)
    }

    fn holds(&self, rule: &ErrorRule) -> bool {
        match rule {
            ErrorRule::Always => true,
            ErrorRule::AtLeast(p, min) => self
                .node(p)
                .and_then(Node::as_f64)
                .is_some_and(|v| v >= *min),
            ErrorRule::SubtypeIn(values) => self.subtype.is_some_and(|s| values.contains(&s)),
            ErrorRule::ValueIn(p, values) => self
                .node(p)
                .and_then(Node::as_str)
                .is_some_and(|s| values.iter().any(|v| v.eq_ignore_ascii_case(s))),
            ErrorRule::IsTrue(p) => self.node(p).and_then(Node::as_bool_lenient) == Some(true),
            ErrorRule::IsFalse(p) => self.node(p).and_then(Node::as_bool_lenient) == Some(false),
            ErrorRule::Present(p) => match self.node(p) {
                None | Some(Node::Bool(false)) => false,
                Some(Node::Str(s)) => !s.is_empty(),
                Some(Node::Arr(a)) => !a.is_empty(),
                Some(Node::Obj(o)) => !o.is_empty(),
                Some(_) => true,
            },
        }
    }
}

/// Where a span row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// A phase of a lifecycle (BOOTSTRAP, MIDDLEWARE, CONTROLLER).
    Phase,
    /// A span of a lifecycle (QUERY, CACHE_HIT, …).
    Span,
    /// A `trace_span` event.
    TraceSpan,
}

impl SpanKind {
    /// Stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Phase => "phase",
            SpanKind::Span => "span",
            SpanKind::TraceSpan => "trace_span",
        }
    }
}

/// One row of `lifecycle_spans`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRow {
    /// Phase, span or trace_span.
    pub kind: SpanKind,
    /// The span's id (its index for phases and trace spans).
    pub span_id: u32,
    /// QUERY, CACHE_HIT, BOOTSTRAP, bootstrap …
    pub span_type: String,
    /// Human label.
    pub label: String,
    /// Offset from the start of the request, ms.
    pub start_offset_ms: f64,
    /// Duration, ms.
    pub duration_ms: f64,
    /// Nesting depth.
    pub depth: u8,
    /// Absolute start (epoch ms) when the event gives one (trace spans' `start_time`).
    pub started_at_ms: Option<i64>,
    /// Full SQL (QUERY spans).
    pub sql: Option<String>,
    /// Cache key (CACHE_* spans).
    pub cache_key: Option<String>,
    /// URL (OUTGOING_REQUEST spans).
    pub http_url: Option<String>,
    /// HTTP method (OUTGOING_REQUEST spans).
    pub http_method: Option<String>,
    /// HTTP status (OUTGOING_REQUEST spans).
    pub http_status: Option<u16>,
    /// Job class (JOB_DISPATCHED spans).
    pub job_class: Option<String>,
}

fn text_at(node: &Node<'_>, key: &str) -> Option<String> {
    node.get(key)
        .filter(|n| !n.is_null())
        .and_then(Node::scalar_text)
}

fn num_at(node: &Node<'_>, key: &str) -> Option<f64> {
    node.get(key)
        .and_then(Node::as_f64)
        .filter(|v| v.is_finite())
}

/// The span rows of a `lifecycle` or `trace_span` event (empty for other types).
pub fn span_rows(event_type: &str, payload: &Node<'_>) -> Vec<SpanRow> {
    match event_type {
        "lifecycle" => lifecycle_spans(payload),
        "trace_span" => vec![trace_span_row(payload)],
        _ => Vec::new(),
    }
}

fn lifecycle_spans(payload: &Node<'_>) -> Vec<SpanRow> {
    let mut rows = Vec::new();
    if let Some(phases) = payload.get("phases") {
        for (index, phase) in phases.list_items().into_iter().enumerate() {
            let name = text_at(phase, "name").unwrap_or_default();
            rows.push(SpanRow {
                kind: SpanKind::Phase,
                span_id: index as u32,
                label: text_at(phase, "label").unwrap_or_else(|| name.clone()),
                span_type: name,
                start_offset_ms: num_at(phase, "start_offset_ms").unwrap_or(0.0),
                duration_ms: num_at(phase, "duration_ms").unwrap_or(0.0),
                depth: 0,
                started_at_ms: None,
                sql: None,
                cache_key: None,
                http_url: None,
                http_method: None,
                http_status: None,
                job_class: None,
            });
        }
    }
    if let Some(spans) = payload.get("spans") {
        for (index, span) in spans.list_items().into_iter().enumerate() {
            let span_type = text_at(span, "type").unwrap_or_default();
            rows.push(SpanRow {
                kind: SpanKind::Span,
                span_id: span
                    .get("span_id")
                    .and_then(Node::as_i64)
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(index as u32),
                label: text_at(span, "label").unwrap_or_else(|| span_type.clone()),
                span_type,
                start_offset_ms: num_at(span, "start_offset_ms").unwrap_or(0.0),
                duration_ms: num_at(span, "duration_ms").unwrap_or(0.0),
                depth: num_at(span, "depth").map_or(0, |d| d.clamp(0.0, 255.0) as u8),
                started_at_ms: None,
                sql: text_at(span, "sql"),
                cache_key: text_at(span, "key"),
                http_url: text_at(span, "url"),
                http_method: text_at(span, "method"),
                http_status: num_at(span, "status_code")
                    .filter(|v| (0.0..=65535.0).contains(v))
                    .map(|v| v as u16),
                job_class: text_at(span, "job_class"),
            });
        }
    }
    rows
}

fn trace_span_row(payload: &Node<'_>) -> SpanRow {
    let span_type = text_at(payload, "type")
        .or_else(|| text_at(payload, "span_name"))
        .unwrap_or_default();
    let started_at_ms = num_at(payload, "start_time").map(|s| (s * 1000.0).round() as i64);
    let duration_ms = num_at(payload, "duration_ms")
        .or_else(|| {
            let end = num_at(payload, "end_time")?;
            let start = num_at(payload, "start_time")?;
            Some((end - start) * 1000.0)
        })
        .unwrap_or(0.0);
    SpanRow {
        kind: SpanKind::TraceSpan,
        span_id: 0,
        label: text_at(payload, "name")
            .or_else(|| text_at(payload, "span_name"))
            .unwrap_or_else(|| span_type.clone()),
        span_type,
        start_offset_ms: num_at(payload, "start_offset_ms").unwrap_or(0.0),
        duration_ms,
        depth: 0,
        started_at_ms,
        sql: None,
        cache_key: None,
        http_url: None,
        http_method: None,
        http_status: None,
        job_class: None,
    }
}

/// One row of `exceptions`: an occurrence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionRow {
    /// The exception class.
    pub exception_class: String,
    /// The message.
    pub message: String,
    /// The file it was thrown in.
    pub file: String,
    /// The line it was thrown at.
    pub line: u32,
    /// The code (an int or a SQLSTATE string), as text.
    pub code: Option<String>,
    /// The grouping key: as sent, or sha256 of class, file and line (first 32 hex digits).
    pub fingerprint: String,
    /// Stack trace as JSON text.
    pub trace: String,
    /// Source snippet as JSON text.
    pub source_code: Option<String>,
    /// Breadcrumbs as JSON text.
    pub breadcrumbs: Option<String>,
    /// Severity, lower-cased (`error` when absent).
    pub severity: String,
    /// Whether it was caught.
    pub handled: bool,
    /// The user, when known.
    pub user_id: Option<String>,
    /// The request URL, when known.
    pub url: Option<String>,
    /// The request method, when known.
    pub method: Option<String>,
}

/// The exception row of an `exception` or `handled_exception` event (None for other types).
pub fn exception_row(event_type: &str, name: &str, payload: &Node<'_>) -> Option<ExceptionRow> {
    let handled_type = match event_type {
        "exception" => false,
        "handled_exception" => true,
        _ => return None,
    };
    let exception_class = text_at(payload, "exception_class")
        .or_else(|| text_at(payload, "exception"))
        .or_else(|| text_at(payload, "class"))
        .unwrap_or_else(|| name.to_owned());
    let file = text_at(payload, "file").unwrap_or_default();
    let line = num_at(payload, "line").map_or(0, |l| l.clamp(0.0, u32::MAX as f64) as u32);
    let fingerprint = text_at(payload, "fingerprint").unwrap_or_else(|| {
        let digest = Sha256::digest(format!("{exception_class}|{file}|{line}").as_bytes());
        hex::encode(&digest[..16])
    });
    let json_of = |key: &str| {
        payload
            .get(key)
            .filter(|n| !n.is_null())
            .map(|n| n.to_value().to_string())
    };
    Some(ExceptionRow {
        message: text_at(payload, "message").unwrap_or_default(),
        code: text_at(payload, "code"),
        trace: json_of("trace").unwrap_or_else(|| "[]".to_owned()),
        source_code: json_of("source").or_else(|| json_of("source_code")),
        breadcrumbs: json_of("breadcrumbs"),
        severity: text_at(payload, "severity")
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_else(|| "error".to_owned()),
        handled: payload
            .get("handled")
            .and_then(Node::as_bool_lenient)
            .unwrap_or(handled_type),
        user_id: text_at(payload, "user_id"),
        url: text_at(payload, "url"),
        method: text_at(payload, "method"),
        exception_class,
        file,
        line,
        fingerprint,
    })
}
