//! One event, checked: envelope parsed, payload validated against the catalog, columns computed.
//!
//! In: the raw bytes of one event and the time of receipt. Out: a [`CheckedEvent`] (accepted;
//! a type the catalog does not know is accepted as a generic event) or a [`Rejected`] with every
//! problem found. This is the single entry point the server, the sinks and the load generator
//! use, so they can never disagree on what is valid.

use serde::{Deserialize, Serialize};

use crate::catalog::{self, TypeSpec};
use crate::denorm::{self, Columns, ExceptionRow, SpanRow};
use crate::drift::{sample_of, Divergence, DriftKind};
use crate::envelope::Envelope;
use crate::json::PointerBuf;
use crate::json::{parse_error_code, Node};
use crate::reason::Problem;
use crate::validate::validate_payload_drift;

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
    /// Its schema drift ([`crate::drift`]); empty unless asked for ([`check_event_drift`]).
    pub drift: Vec<Divergence>,
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

/// The top-level `type` and `id` of an event whose envelope was refused, when they are
/// readable strings (or an integer id), so a rejection still names what it was: the agent's
/// developer reads `type` in the 202's `errors`, the malformed tail and the quarantine. Only
/// runs for rejected events.
fn peek_type_and_id(raw: &str) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(rename = "type")]
        event_type: Option<serde_json::Value>,
        id: Option<serde_json::Value>,
    }
    let Ok(peek) = serde_json::from_str::<Peek>(raw) else {
        return (None, None);
    };
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let event_type = match peek.event_type {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    (event_type, text(peek.id))
}

/// Parses, validates and denormalises one event.
pub fn check_event(raw: &str, received_ms: i64) -> Result<CheckedEvent<'_>, Rejected> {
    check_event_drift(raw, received_ms, false)
}

/// What the store needs of an event that was already accepted: the envelope, the parsed
/// payload and the columns, without validating the payload against the catalog again.
///
/// The batcher uses it on events read back from the spool. Each was validated by the server
/// that acknowledged it, and a 202 is a promise to store the event: a later catalog that
/// would refuse it must not turn it into a quarantined row (the columns are computed with
/// this catalog's rules, which read any payload shape). What can still fail is what makes
/// an event unreadable at all, an envelope or payload that does not parse; that comes back
/// as a [`Rejected`], as from [`check_event`].
pub fn derive_event(raw: &str, received_ms: i64) -> Result<CheckedEvent<'_>, Rejected> {
    let (envelope, payload) = parse_event(raw, received_ms)?;
    let spec = catalog::lookup(&envelope.event_type);
    let subtype = spec.and_then(|s| s.subtype_of(&envelope.name, &payload));
    let columns = denorm::columns(spec, &envelope, &payload, subtype);
    Ok(CheckedEvent {
        envelope,
        spec,
        payload,
        columns,
        drift: Vec::new(),
    })
}

/// The envelope and the parsed payload, or the one problem that makes the event unreadable.
fn parse_event(raw: &str, received_ms: i64) -> Result<(Envelope<'_>, Node<'_>), Rejected> {
    let envelope = Envelope::parse(raw, received_ms).map_err(|problem| {
        let (event_type, id) = peek_type_and_id(raw);
        Rejected {
            event_type,
            id,
            problems: vec![problem],
        }
    })?;
    match Node::parse(envelope.payload_text()) {
        Ok(payload) => Ok((envelope, payload)),
        Err(err) => {
            let problem = Problem::new(
                parse_error_code(&err),
                envelope.payload_pointer(),
                "a JSON object",
                err.to_string(),
            );
            Err(Rejected {
                event_type: Some(envelope.event_type.to_string()),
                id: envelope.id.as_deref().map(str::to_owned),
                problems: vec![problem],
            })
        }
    }
}

/// [`check_event`], also recording the schema drift of an accepted event in
/// [`CheckedEvent::drift`] when `detect` is set: unknown and coerced payload fields, unknown
/// envelope fields, and for a type the catalog does not know, `unknown_type` (path `""`, the
/// payload as sample) with an `unknown_field` for each top-level payload key.
pub fn check_event_drift(
    raw: &str,
    received_ms: i64,
    detect: bool,
) -> Result<CheckedEvent<'_>, Rejected> {
    let (envelope, payload) = parse_event(raw, received_ms)?;
    let rejected = |envelope: &Envelope<'_>, problems| Rejected {
        event_type: Some(envelope.event_type.to_string()),
        id: envelope.id.as_deref().map(str::to_owned),
        problems,
    };
    let spec = catalog::lookup(&envelope.event_type);
    let subtype = spec.and_then(|s| s.subtype_of(&envelope.name, &payload));
    let mut drift = Vec::new();
    if let Some(spec) = spec {
        let mut problems = Vec::new();
        validate_payload_drift(
            spec,
            &payload,
            subtype,
            envelope.payload_pointer(),
            &mut problems,
            detect.then_some(&mut drift),
        );
        if !problems.is_empty() {
            return Err(rejected(&envelope, problems));
        }
    } else if detect {
        unknown_type_drift(&envelope, &payload, &mut drift);
    }
    if detect {
        envelope.drift(&mut drift);
    }
    let columns = denorm::columns(spec, &envelope, &payload, subtype);
    Ok(CheckedEvent {
        envelope,
        spec,
        payload,
        columns,
        drift,
    })
}

/// The drift of a type the catalog does not know: the type itself, and each top-level payload
/// key (so a maintainer sees which fields the new type has, and how often).
fn unknown_type_drift(envelope: &Envelope<'_>, payload: &Node<'_>, drift: &mut Vec<Divergence>) {
    drift.push(Divergence {
        path: String::new(),
        kind: DriftKind::UnknownType,
        sample: sample_of(payload),
    });
    if let Node::Obj(entries) = payload {
        for (key, value) in entries {
            let mut path = PointerBuf::new(envelope.payload_pointer());
            path.push_key(key);
            drift.push(Divergence {
                path: path.as_str().to_owned(),
                kind: DriftKind::UnknownField,
                sample: sample_of(value),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_rejections_still_name_the_type_and_id() {
        // No payload: the envelope is refused, yet the type and id are reported.
        let rejected =
            check_event(r#"{"id":"ev-42","type":"query","name":"q"}"#, 0).expect_err("rejected");
        assert_eq!(
            rejected.event_type.as_deref(),
            Some("query"),
            "{rejected:?}"
        );
        assert_eq!(rejected.id.as_deref(), Some("ev-42"), "{rejected:?}");
        assert_eq!(rejected.problems[0].code, crate::ReasonCode::MissingField);
        // Not JSON at all: nothing to report.
        let rejected = check_event("{\"type\":\"query\"", 0).expect_err("rejected");
        assert_eq!((rejected.event_type, rejected.id), (None, None));
    }
}
