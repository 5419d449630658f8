//! Builds feed messages from what the pipeline produced.

use std::collections::{HashMap, VecDeque};

use baddybugs_common::denorm::{span_rows, SpanKind, SpanRow};
use baddybugs_common::json::Node;
use baddybugs_common::protocol::{
    PipelineStage, PipelineTrace, ServerMessage, TailEvent, TailMalformed, Topic, Waterfall,
    WaterfallSpan,
};
use baddybugs_common::timestamp::format_millis;
use baddybugs_common::CheckedEvent;

use super::{Facets, Outgoing};
use crate::record::assigned_id;
use crate::record::{BatchMeta, Quarantined};
use crate::sink::TraceRow;

/// Most spans kept for one assembled trace.
const MAX_TRACE_SPANS: usize = 500;

/// Raw bytes shown on the malformed tail.
const RAW_CAP: usize = 16 << 10;

/// Serialises a message once.
pub(super) fn outgoing(topic: Option<Topic>, message: &ServerMessage, facets: Facets) -> Outgoing {
    // Waterfalls are around 1 KiB: start there rather than grow from 128 bytes.
    let mut buf = Vec::with_capacity(1024);
    let json = serde_json::to_writer(&mut buf, message)
        .map_err(|e| e.to_string())
        .and_then(|()| String::from_utf8(buf).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            format!("{{\"kind\":\"error\",\"message\":\"cannot encode a feed message: {e}\"}}")
        });
    Outgoing {
        topic,
        json,
        facets,
    }
}

pub(super) fn malformed(meta: &BatchMeta, q: &Quarantined, raw: &[u8]) -> (ServerMessage, Facets) {
    let shown = &raw[..raw.len().min(RAW_CAP)];
    let facets = Facets {
        event_type: q.event_type.clone(),
        reasons: q
            .reasons
            .iter()
            .map(|r| r.code.as_str().to_owned())
            .collect(),
        is_error: Some(true),
        ..Facets::default()
    };
    let message = ServerMessage::Malformed(Box::new(TailMalformed {
        batch_id: meta.batch_id.clone(),
        index: q.index,
        event_type: q.event_type.clone(),
        event_id: q.event_id.clone(),
        reasons: q.reasons.clone(),
        application: meta.application.clone(),
        agent_version: meta.agent_version.clone(),
        remote_addr: meta.remote_addr.clone(),
        raw: String::from_utf8_lossy(shown).into_owned(),
        raw_size: q.raw_size,
        received_at: format_millis(meta.received_ms),
    }));
    (message, facets)
}

fn facets_of(event: &CheckedEvent<'_>) -> Facets {
    let env = &event.envelope;
    Facets {
        event_type: Some(env.event_type.to_string()),
        name: Some(env.name.to_string()),
        environment: env.environment.as_deref().map(str::to_owned),
        trace_id: env.trace_id.as_deref().map(str::to_owned),
        reasons: Vec::new(),
        is_error: Some(event.columns.is_error),
    }
}

fn event_id(meta: &BatchMeta, index: u32, event: &CheckedEvent<'_>) -> String {
    event
        .envelope
        .id
        .as_deref()
        .map(str::to_owned)
        .unwrap_or_else(|| assigned_id(&meta.batch_id, index))
}

pub(super) fn tail_event(
    meta: &BatchMeta,
    index: u32,
    event: &CheckedEvent<'_>,
    sampled_one_in: Option<u32>,
) -> (ServerMessage, Facets) {
    let env = &event.envelope;
    let message = ServerMessage::Event(Box::new(TailEvent {
        id: event_id(meta, index, event),
        event_type: env.event_type.to_string(),
        name: env.name.to_string(),
        timestamp: format_millis(env.timestamp_ms),
        received_at: format_millis(meta.received_ms),
        trace_id: env.trace_id.as_deref().map(str::to_owned),
        environment: env.environment.as_deref().map(str::to_owned),
        organization: meta.organization.clone(),
        application: meta.application.clone(),
        duration_ms: event.columns.duration_ms,
        status_code: event.columns.status_code,
        is_error: event.columns.is_error,
        severity: event.columns.severity.clone(),
        user_id: event.columns.user_id.clone(),
        envelope: serde_json::from_str(&env.extra_json()).unwrap_or_default(),
        data: event.payload.to_value(),
        sampled_one_in,
    }));
    (message, facets_of(event))
}

fn detail(span: &SpanRow) -> Option<String> {
    span.sql
        .clone()
        .or_else(|| span.cache_key.clone())
        .or_else(|| {
            span.http_url
                .as_ref()
                .map(|url| match (&span.http_method, span.http_status) {
                    (Some(m), Some(s)) => format!("{m} {url} → {s}"),
                    (Some(m), None) => format!("{m} {url}"),
                    _ => url.clone(),
                })
        })
        .or_else(|| span.job_class.clone())
}

/// [`waterfall_span`] of a row that is not kept: its strings move instead of being copied.
fn waterfall_span_owned(span: SpanRow) -> WaterfallSpan {
    let kind = span.kind.as_str().to_owned();
    let detail = match (span.sql, span.cache_key, span.http_url, span.job_class) {
        (Some(sql), ..) => Some(sql),
        (None, Some(key), ..) => Some(key),
        (None, None, Some(url), _) => Some(match (span.http_method, span.http_status) {
            (Some(m), Some(s)) => format!("{m} {url} → {s}"),
            (Some(m), None) => format!("{m} {url}"),
            _ => url,
        }),
        (None, None, None, job) => job,
    };
    WaterfallSpan {
        kind,
        span_type: span.span_type,
        label: span.label,
        start_ms: span.start_offset_ms,
        duration_ms: span.duration_ms,
        depth: span.depth,
        detail,
    }
}

fn waterfall_span(span: &SpanRow, start_ms: f64) -> WaterfallSpan {
    WaterfallSpan {
        kind: span.kind.as_str().to_owned(),
        span_type: span.span_type.clone(),
        label: span.label.clone(),
        start_ms,
        duration_ms: span.duration_ms,
        depth: span.depth,
        detail: detail(span),
    }
}

fn text(node: &Node<'_>, pointer: &str) -> Option<String> {
    node.pointer(pointer)
        .filter(|n| !n.is_null())
        .and_then(Node::scalar_text)
}

pub(super) fn lifecycle(
    meta: &BatchMeta,
    index: u32,
    event: &CheckedEvent<'_>,
    sampled_one_in: Option<u32>,
) -> (ServerMessage, Facets) {
    let payload = &event.payload;
    let mut spans: Vec<WaterfallSpan> = span_rows("lifecycle", payload)
        .into_iter()
        .map(waterfall_span_owned)
        .collect();
    spans.sort_by(|a, b| {
        (a.kind != "phase", a.start_ms)
            .partial_cmp(&(b.kind != "phase", b.start_ms))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let waterfall = Waterfall {
        id: event_id(meta, index, event),
        trace_id: event.envelope.trace_id.as_deref().map(str::to_owned),
        source: "lifecycle".into(),
        method: text(payload, "/request/method"),
        url: text(payload, "/request/url").or_else(|| text(payload, "/request/full_url")),
        status_code: event.columns.status_code.or_else(|| {
            payload
                .pointer("/request/status_code")
                .and_then(Node::as_i64)
                .and_then(|v| u16::try_from(v).ok())
        }),
        total_ms: payload
            .get("total_duration_ms")
            .and_then(Node::as_f64)
            .or(event.columns.duration_ms)
            .unwrap_or(0.0),
        query_count: payload
            .pointer("/counts/queries")
            .and_then(Node::as_i64)
            .and_then(|v| u64::try_from(v).ok()),
        counts: payload
            .get("counts")
            .map(Node::to_value)
            .unwrap_or_default(),
        memory: payload
            .get("memory")
            .map(Node::to_value)
            .unwrap_or_default(),
        spans,
        timestamp: format_millis(event.envelope.timestamp_ms),
        sampled_one_in,
        organization: meta.organization.clone(),
        application: meta.application.clone(),
    };
    (
        ServerMessage::Lifecycle(Box::new(waterfall)),
        facets_of(event),
    )
}

/// Assembles waterfalls from `trace_span` events that share a trace id (bounded: the most
/// recent 256 traces).
#[derive(Default)]
pub(super) struct TraceAssembler {
    traces: HashMap<String, (i64, Vec<SpanRow>)>,
    order: VecDeque<String>,
}

impl TraceAssembler {
    /// Adds the spans of one `trace_span` event; returns its trace id (None without one).
    pub(super) fn add(&mut self, event: &CheckedEvent<'_>) -> Option<String> {
        let trace_id = event.envelope.trace_id.as_deref()?.to_owned();
        let rows = span_rows("trace_span", &event.payload);
        if !self.traces.contains_key(&trace_id) {
            self.order.push_back(trace_id.clone());
            while self.order.len() > 256 {
                if let Some(old) = self.order.pop_front() {
                    self.traces.remove(&old);
                }
            }
        }
        let entry = self
            .traces
            .entry(trace_id.clone())
            .or_insert_with(|| (event.envelope.timestamp_ms, Vec::new()));
        // A long-lived worker can reuse one trace id forever: keep the latest spans only.
        entry.1.extend(rows);
        if entry.1.len() > MAX_TRACE_SPANS {
            let excess = entry.1.len() - MAX_TRACE_SPANS;
            entry.1.drain(..excess);
        }
        Some(trace_id)
    }

    /// The waterfall of a trace as assembled so far.
    pub(super) fn waterfall(
        &self,
        trace_id: &str,
        sampled_one_in: Option<u32>,
        meta: &BatchMeta,
    ) -> Option<ServerMessage> {
        let entry = self.traces.get(trace_id)?;
        let origin = entry
            .1
            .iter()
            .filter_map(|s| s.started_at_ms)
            .min()
            .unwrap_or(0);
        let mut spans: Vec<WaterfallSpan> = entry
            .1
            .iter()
            .map(|s| {
                let start = match s.started_at_ms {
                    Some(at) => (at - origin) as f64,
                    None => s.start_offset_ms,
                };
                waterfall_span(s, start)
            })
            .collect();
        spans.sort_by(|a, b| {
            a.start_ms
                .partial_cmp(&b.start_ms)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let total_ms = spans
            .iter()
            .map(|s| s.start_ms + s.duration_ms)
            .fold(0.0, f64::max);
        debug_assert!(entry.1.iter().all(|s| s.kind == SpanKind::TraceSpan));
        let waterfall = Waterfall {
            id: trace_id.to_owned(),
            trace_id: Some(trace_id.to_owned()),
            source: "trace_span".into(),
            method: None,
            url: None,
            status_code: None,
            total_ms,
            query_count: None,
            counts: serde_json::Value::Null,
            memory: serde_json::Value::Null,
            spans,
            timestamp: format_millis(entry.0),
            sampled_one_in,
            organization: meta.organization.clone(),
            application: meta.application.clone(),
        };
        Some(ServerMessage::Lifecycle(Box::new(waterfall)))
    }
}

/// The filter facts of an assembled trace: those of its latest span in the request, with
/// `is_error` set when any of them was an error.
pub(super) fn trace_facets(event: &CheckedEvent<'_>, any_error: bool) -> Facets {
    let mut facets = facets_of(event);
    facets.is_error = Some(any_error);
    facets
}

pub(super) fn pipeline(trace: &TraceRow) -> (ServerMessage, Facets) {
    let stages: Vec<PipelineStage> = trace
        .stages
        .iter()
        .map(|s| PipelineStage {
            stage: s.stage,
            start_ms: s.start_us as f64 / 1000.0,
            duration_ms: s.duration_us as f64 / 1000.0,
        })
        .collect();
    let message = ServerMessage::Pipeline(Box::new(PipelineTrace {
        batch_id: trace.batch_id.clone(),
        application: trace.application.clone(),
        received_at: format_millis(trace.received_ms),
        outcome: trace.outcome.clone(),
        status: 202,
        reason: None,
        total_ms: trace.total_us as f64 / 1000.0,
        stages,
        bytes_compressed: trace.bytes_compressed,
        bytes_inflated: trace.bytes_inflated,
        events: trace.events,
        accepted: trace.accepted,
        rejected: trace.rejected,
        duplicates: trace.duplicates,
    }));
    let facets = Facets {
        is_error: Some(trace.outcome != "accepted"),
        ..Facets::default()
    };
    (message, facets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_a_span_row_gives_the_same_bar_as_copying_it() {
        let base = SpanRow {
            kind: SpanKind::Span,
            span_id: 1,
            span_type: "QUERY".into(),
            label: "select 1".into(),
            start_offset_ms: 3.0,
            duration_ms: 1.5,
            depth: 1,
            started_at_ms: None,
            sql: None,
            cache_key: None,
            http_url: None,
            http_method: None,
            http_status: None,
            job_class: None,
        };
        let rows = [
            SpanRow {
                sql: Some("select 1".into()),
                cache_key: Some("k".into()),
                ..base.clone()
            },
            SpanRow {
                cache_key: Some("k".into()),
                ..base.clone()
            },
            SpanRow {
                http_url: Some("https://x".into()),
                http_method: Some("GET".into()),
                http_status: Some(200),
                ..base.clone()
            },
            SpanRow {
                http_url: Some("https://x".into()),
                http_method: Some("GET".into()),
                ..base.clone()
            },
            SpanRow {
                http_url: Some("https://x".into()),
                ..base.clone()
            },
            SpanRow {
                job_class: Some("App\\Job".into()),
                ..base.clone()
            },
            base.clone(),
        ];
        for row in rows {
            let copied = waterfall_span(&row, row.start_offset_ms);
            assert_eq!(waterfall_span_owned(row), copied);
        }
    }
}
