//! Validate: each event on its own, against its catalog type (runs on the `ingest-cpu` pool).
//!
//! In: the decoded body. Out: a [`Validated`] body: the accepted events (where they are, their
//! id and type, and what the metrics and the feed need of them, all owned) and the rejected
//! ones with every reason (`baddybugs_common::check_event`), each kept for the quarantine up
//! to `ingest.quarantine_raw_cap_bytes`. A bad event never fails its batch-mates. Pure: the
//! caller records the metrics.

use std::ops::Range;

use baddybugs_common::drift::Divergence;
use baddybugs_common::{check_event_drift, Problem, ReasonCode};

use super::decode::{DecodedBody, EventSpan};
use crate::config::IngestConfig;
use crate::feed::FeedEvent;
use crate::record::Quarantined;

/// An accepted event, owned.
#[derive(Debug, Clone)]
pub struct AcceptedEvent {
    /// Index in the body.
    pub index: u32,
    /// Its bytes in the inflated body.
    pub range: Range<usize>,
    /// `id`, if it has one.
    pub id: Option<String>,
    /// `type`.
    pub event_type: String,
    /// The `duration_ms` column (for the per-type latency histograms).
    pub duration_ms: Option<f64>,
    /// Problems that did not reject it.
    pub warnings: Vec<Problem>,
    /// What the live tails need of it.
    pub feed: FeedEvent,
    /// Its schema drift (empty, and unallocated, when there is none or detection is off).
    pub drift: Vec<Divergence>,
}

/// A rejected event.
#[derive(Debug, Clone)]
pub struct RejectedEvent {
    /// Its quarantine entry.
    pub entry: Quarantined,
    /// The kept bytes in the inflated body (cut at `ingest.quarantine_raw_cap_bytes`).
    pub kept: Range<usize>,
}

/// A validated body.
#[derive(Debug, Clone, Default)]
pub struct Validated {
    /// Accepted events, in body order.
    pub accepted: Vec<AcceptedEvent>,
    /// Rejected events, in body order.
    pub rejected: Vec<RejectedEvent>,
}

/// Validates every event of a body; with `detect_drift`, also records each accepted event's
/// schema drift (`drift.enabled`).
pub fn validate_body(
    body: &DecodedBody,
    received_ms: i64,
    limits: &IngestConfig,
    detect_drift: bool,
) -> Validated {
    let mut out = Validated {
        accepted: Vec::with_capacity(body.events.len()),
        rejected: Vec::new(),
    };
    for (i, span) in body.events.iter().enumerate() {
        let index = i as u32;
        match validate_one(body, span, index, received_ms, limits, detect_drift) {
            Ok(event) => out.accepted.push(event),
            Err(entry) => {
                let cap = span.range.len().min(limits.quarantine_raw_cap_bytes);
                out.rejected.push(RejectedEvent {
                    entry,
                    kept: span.range.start..span.range.start + cap,
                });
            }
        }
    }
    out
}

fn validate_one(
    body: &DecodedBody,
    span: &EventSpan,
    index: u32,
    received_ms: i64,
    limits: &IngestConfig,
    detect_drift: bool,
) -> Result<AcceptedEvent, Quarantined> {
    let bytes = body.bytes(span);
    let rejected = |event_type, event_id, reasons| Quarantined {
        index: Some(index),
        event_type,
        event_id,
        reasons,
        raw_size: bytes.len() as u64,
    };
    if bytes.len() > limits.max_event_bytes {
        return Err(rejected(
            None,
            None,
            vec![Problem::new(
                ReasonCode::TooLarge,
                "",
                format!(
                    "at most {} bytes per event (ingest.max_event_bytes)",
                    limits.max_event_bytes
                ),
                format!("{} bytes", bytes.len()),
            )],
        ));
    }
    let Some(text) = span.utf8.then(|| std::str::from_utf8(bytes).ok()).flatten() else {
        return Err(rejected(
            None,
            None,
            vec![Problem::new(
                ReasonCode::InvalidUtf8,
                "",
                "UTF-8 text",
                "invalid UTF-8 bytes",
            )],
        ));
    };
    match check_event_drift(text, received_ms, detect_drift) {
        Ok(mut event) => Ok(AcceptedEvent {
            drift: std::mem::take(&mut event.drift),
            index,
            range: span.range.clone(),
            id: event.envelope.id.as_deref().map(str::to_owned),
            event_type: event.envelope.event_type.to_string(),
            duration_ms: event.columns.duration_ms,
            warnings: event.envelope.warnings.clone(),
            feed: FeedEvent::of(index, span.range.clone(), &event),
        }),
        Err(r) => Err(rejected(r.event_type, r.id, r.problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(events: &[&[u8]]) -> DecodedBody {
        let mut inflated = Vec::new();
        let mut spans = Vec::new();
        for e in events {
            let start = inflated.len();
            inflated.extend_from_slice(e);
            spans.push(EventSpan {
                range: start..inflated.len(),
                utf8: std::str::from_utf8(e).is_ok(),
            });
            inflated.push(b'\n');
        }
        DecodedBody {
            inflated: inflated.into(),
            events: spans,
            signature: None,
        }
    }

    #[test]
    fn a_bad_event_never_fails_its_batch_mates() {
        let good = br#"{"type":"log","id":"a","payload":{"level":"info","message":"m"}}"#;
        let limits = IngestConfig {
            quarantine_raw_cap_bytes: 4,
            ..IngestConfig::default()
        };
        let b = body(&[good, b"\xff\xfe", br#"{"payload":{}}"#, good]);
        let v = validate_body(&b, 0, &limits, false);
        let accepted: Vec<u32> = v.accepted.iter().map(|a| a.index).collect();
        assert_eq!(accepted, [0, 3]);
        assert_eq!(v.accepted[0].id.as_deref(), Some("a"));
        assert_eq!(v.accepted[0].event_type, "log");
        assert_eq!(
            b.bytes(&b.events[3]),
            &b.inflated[v.accepted[1].range.clone()]
        );
        let rejected: Vec<(Option<u32>, ReasonCode)> = v
            .rejected
            .iter()
            .map(|r| (r.entry.index, r.entry.reasons[0].code))
            .collect();
        assert_eq!(rejected[0], (Some(1), ReasonCode::InvalidUtf8));
        assert_eq!(rejected[1].0, Some(2));
        // Kept bytes are capped; the original size is recorded.
        assert_eq!(v.rejected[1].kept.len(), 4);
        assert_eq!(v.rejected[1].entry.raw_size, 14);
    }

    #[test]
    fn drift_is_recorded_only_when_asked() {
        let e = br#"{"type":"log","id":"a","payload":{"level":"info","message":"m","novel":1},"surprise":true}"#;
        let limits = IngestConfig::default();
        let off = validate_body(&body(&[e]), 0, &limits, false);
        assert!(off.accepted[0].drift.is_empty());
        let on = validate_body(&body(&[e]), 0, &limits, true);
        let kinds: Vec<(&str, &str)> = on.accepted[0]
            .drift
            .iter()
            .map(|d| (d.path.as_str(), d.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("/payload/novel", "unknown_field"),
                ("/surprise", "unknown_envelope_field")
            ]
        );
    }

    #[test]
    fn an_event_over_the_size_limit_is_rejected_as_too_large() {
        let limits = IngestConfig {
            max_event_bytes: 10,
            ..IngestConfig::default()
        };
        let v = validate_body(
            &body(&[br#"{"type":"log","payload":{}}"#]),
            0,
            &limits,
            false,
        );
        assert!(v.accepted.is_empty());
        assert_eq!(v.rejected[0].entry.reasons[0].code, ReasonCode::TooLarge);
    }
}
