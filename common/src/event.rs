//! One event, checked: envelope parsed, payload validated against the catalog, columns computed.
//!
//! In: the raw bytes of one event and the time of receipt. Out: a [`CheckedEvent`] (accepted;
//! a type the catalog does not know is accepted as a generic event) or a [`Rejected`] with every
//! problem found. This is the single entry point the server, the sinks and the load generator
//! use, so they can never disagree on what is valid.

use serde::{Deserialize, Serialize};

use crate::catalog::{self, TypeSpec};
use crate::denorm::{self, Columns, ExceptionRow, SpanRow};
use crate::envelope::Envelope;
use crate::json::{parse_error_code, Node};
use crate::reason::Problem;
use crate::validate::validate_payload;

/// An accepted event.
#[derive(Debug, Clone)]
pub struct CheckedEvent<'a> {
    /// The envelope (borrowing the event's bytes).
    pub envelope: Envelope<'a>,
    /// The catalog entry; `None` for an unknown type (stored as a generic event).
    pub spec: Option<&'static TypeSpec>,
    /// The parsed payload.
    pub payload: Node<'a>,
    /// The denormalised columns.
    pub columns: Columns,
}

/// A rejected event: what is known of it and every problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// Its `type`, when it could be read.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Its `id`, when it could be read.
    pub id: Option<String>,
    /// Every problem found (at least one).
    pub problems: Vec<Problem>,
}

impl<'a> CheckedEvent<'a> {
    /// The resolved sub-type (`hit`, `processed`, `error` …), if the type has one.
    pub fn subtype(&self) -> Option<&str> {
        self.spec
            .and_then(|spec| spec.subtype_of(&self.envelope.name, &self.payload))
    }

    /// Whether the catalog knows the type.
    pub fn is_known_type(&self) -> bool {
        self.spec.is_some()
    }

    /// The `lifecycle_spans` rows this event produces.
    pub fn span_rows(&self) -> Vec<SpanRow> {
        denorm::span_rows(&self.envelope.event_type, &self.payload)
    }

    /// The `exceptions` row this event produces.
    pub fn exception_row(&self) -> Option<ExceptionRow> {
        denorm::exception_row(
            &self.envelope.event_type,
            &self.envelope.name,
            &self.payload,
        )
    }
}

/// Parses, validates and denormalises one event.
pub fn check_event(raw: &str, received_ms: i64) -> Result<CheckedEvent<'_>, Rejected> {
    let envelope = Envelope::parse(raw, received_ms).map_err(|problem| Rejected {
        event_type: None,
        id: None,
        problems: vec![problem],
    })?;
    let rejected = |envelope: &Envelope<'_>, problems| Rejected {
        event_type: Some(envelope.event_type.to_string()),
        id: envelope.id.as_deref().map(str::to_owned),
        problems,
    };
    let payload = match Node::parse(envelope.payload_text()) {
        Ok(node) => node,
        Err(err) => {
            let problem = Problem::new(
                parse_error_code(&err),
                envelope.payload_pointer(),
                "a JSON object",
                err.to_string(),
            );
            return Err(rejected(&envelope, vec![problem]));
        }
    };
    let spec = catalog::lookup(&envelope.event_type);
    let subtype = spec.and_then(|s| s.subtype_of(&envelope.name, &payload));
    if let Some(spec) = spec {
        let mut problems = Vec::new();
        validate_payload(
            spec,
            &payload,
            subtype,
            envelope.payload_pointer(),
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(rejected(&envelope, problems));
        }
    }
    let columns = denorm::columns(spec, &envelope, &payload, subtype);
    Ok(CheckedEvent {
        envelope,
        spec,
        payload,
        columns,
    })
}
