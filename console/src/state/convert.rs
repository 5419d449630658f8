//! Reading the store's answers (`query` results) into the feed's own types, leniently: a
//! missing field becomes a default rather than losing the whole page.

use baddybugs_common::protocol::{
    PipelineStage, PipelineTrace, StageTiming, TailEvent, Waterfall, WaterfallSpan,
};
use serde_json::Value;

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn opt_s(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
}

fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or_default()
}

/// A stored event (`query` kind `events` / `trace`, or `get`) as a tail event.
pub(crate) fn stored_event(v: &Value) -> TailEvent {
    TailEvent {
        id: s(v, "id"),
        event_type: s(v, "type"),
        name: s(v, "name"),
        timestamp: s(v, "timestamp"),
        received_at: s(v, "received_at"),
        trace_id: opt_s(v, "trace_id"),
        environment: opt_s(v, "environment"),
        organization: s(v, "organization"),
        application: s(v, "application"),
        duration_ms: f(v, "duration_ms"),
        status_code: v
            .get("status_code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok()),
        is_error: v.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        severity: opt_s(v, "severity"),
        user_id: opt_s(v, "user_id"),
        envelope: v.get("envelope").cloned().unwrap_or(Value::Null),
        data: v.get("data").cloned().unwrap_or(Value::Null),
        sampled_one_in: None,
    }
}

/// The events of an `events` page (newest first as the store sends them) and its cursor.
pub(crate) fn event_page(data: &Value) -> (Vec<TailEvent>, Option<String>) {
    let events = data
        .get("events")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(stored_event).collect())
        .unwrap_or_default();
    (events, opt_s(data, "next_cursor"))
}

/// A pipeline trace from the store (which stores `total_us`, not `status`).
pub(crate) fn stored_trace(v: &Value) -> PipelineTrace {
    if let Ok(t) = serde_json::from_value::<PipelineTrace>(v.clone()) {
        return t;
    }
    // The store keeps each stage's times in µs, typed as `StageTiming`.
    let stages = v
        .get("stages")
        .and_then(|st| serde_json::from_value::<Vec<StageTiming>>(st.clone()).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|st| PipelineStage {
            stage: st.stage,
            start_ms: st.start_us as f64 / 1000.0,
            duration_ms: st.duration_us as f64 / 1000.0,
        })
        .collect();
    let total_ms = f(v, "total_ms").unwrap_or_else(|| u(v, "total_us") as f64 / 1000.0);
    PipelineTrace {
        batch_id: s(v, "batch_id"),
        application: s(v, "application"),
        received_at: s(v, "received_at"),
        outcome: s(v, "outcome"),
        // The store keeps the traces of acknowledged batches only: each was answered 202.
        status: u16::try_from(u(v, "status"))
            .ok()
            .filter(|s| *s != 0)
            .unwrap_or(202),
        reason: opt_s(v, "reason"),
        total_ms,
        stages,
        bytes_compressed: u(v, "bytes_compressed"),
        bytes_inflated: u(v, "bytes_inflated"),
        events: u32::try_from(u(v, "events")).unwrap_or_default(),
        accepted: u32::try_from(u(v, "accepted")).unwrap_or_default(),
        rejected: u32::try_from(u(v, "rejected")).unwrap_or_default(),
        duplicates: u32::try_from(u(v, "duplicates")).unwrap_or_default(),
    }
}

/// Orders a lifecycle for drawing: each phase followed by the spans that start inside it (the
/// server lists all phases first, then all spans), spans at least one level below phases.
pub(crate) fn nest_spans(w: &Waterfall) -> Waterfall {
    let phases: Vec<&WaterfallSpan> = w.spans.iter().filter(|s| s.kind == "phase").collect();
    let others: Vec<&WaterfallSpan> = w.spans.iter().filter(|s| s.kind != "phase").collect();
    if phases.is_empty() || others.is_empty() {
        return w.clone();
    }
    let mut placed = vec![false; others.len()];
    let mut spans = Vec::with_capacity(w.spans.len());
    for (pi, p) in phases.iter().enumerate() {
        spans.push((*p).clone());
        let last = pi + 1 == phases.len();
        for (i, s) in others.iter().enumerate() {
            let inside =
                s.start_ms >= p.start_ms && (s.start_ms < p.start_ms + p.duration_ms || last);
            if !placed[i] && inside {
                placed[i] = true;
                let mut s = (*s).clone();
                s.depth = s.depth.max(1);
                spans.push(s);
            }
        }
    }
    // Spans that start before the first phase.
    for (i, s) in others.iter().enumerate() {
        if !placed[i] {
            spans.push((*s).clone());
        }
    }
    Waterfall { spans, ..w.clone() }
}

/// A pipeline trace drawn as a waterfall: one bar per stage.
pub(crate) fn trace_waterfall(t: &PipelineTrace) -> Waterfall {
    Waterfall {
        id: t.batch_id.clone(),
        trace_id: None,
        source: "pipeline".into(),
        method: Some("POST".into()),
        url: Some(format!("/v1/ingest ({} events, {})", t.events, t.outcome)),
        status_code: Some(t.status),
        total_ms: t.total_ms,
        query_count: None,
        counts: Value::Null,
        memory: Value::Null,
        spans: t
            .stages
            .iter()
            .map(|st| WaterfallSpan {
                kind: "phase".into(),
                span_type: st.stage.as_str().to_uppercase(),
                label: st.stage.as_str().to_owned(),
                start_ms: st.start_ms,
                duration_ms: st.duration_ms,
                depth: 0,
                detail: None,
            })
            .collect(),
        timestamp: t.received_at.clone(),
        sampled_one_in: None,
        organization: String::new(),
        application: t.application.clone(),
    }
}

/// The span rows of a `trace` answer drawn as one waterfall (offsets from the earliest row).
pub(crate) fn trace_spans_waterfall(trace_id: &str, data: &Value) -> Option<Waterfall> {
    let rows = data.get("spans")?.as_array()?;
    if rows.is_empty() {
        return None;
    }
    let start_of = |r: &Value| {
        r.get("started_at_ms")
            .and_then(Value::as_f64)
            .or_else(|| Some(f(r, "timestamp_ms")? + f(r, "start_offset_ms").unwrap_or(0.0)))
    };
    let base = rows.iter().filter_map(start_of).fold(f64::MAX, f64::min);
    let base = if base == f64::MAX { 0.0 } else { base };
    let spans: Vec<WaterfallSpan> = rows
        .iter()
        .map(|r| WaterfallSpan {
            kind: s(r, "kind"),
            span_type: s(r, "span_type"),
            label: s(r, "label"),
            start_ms: start_of(r).map_or(0.0, |t| t - base),
            duration_ms: f(r, "duration_ms").unwrap_or_default(),
            depth: r.get("depth").and_then(Value::as_u64).unwrap_or(0).min(32) as u8,
            detail: ["sql", "cache_key", "http_url", "job_class"]
                .iter()
                .find_map(|k| opt_s(r, k)),
        })
        .collect();
    let total_ms = spans
        .iter()
        .map(|sp| sp.start_ms + sp.duration_ms)
        .fold(0.0, f64::max);
    Some(Waterfall {
        id: trace_id.to_owned(),
        trace_id: Some(trace_id.to_owned()),
        source: "trace".into(),
        method: None,
        url: None,
        status_code: None,
        total_ms,
        query_count: None,
        counts: Value::Null,
        memory: Value::Null,
        spans,
        timestamp: String::new(),
        sampled_one_in: None,
        organization: s(&rows[0], "organization"),
        application: s(&rows[0], "application"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_store_rows() {
        let page = json!({"events":[{"id":"e1","type":"cache","name":"k","timestamp":"t",
            "received_at":"r","trace_id":"","environment":"production","application":"shop",
            "status_code":200,"is_error":false,"data":{"a":1},"envelope":{}}],
            "next_cursor":"c2"});
        let (events, cursor) = event_page(&page);
        assert_eq!(cursor.as_deref(), Some("c2"));
        assert_eq!(events[0].trace_id, None);
        assert_eq!(events[0].environment.as_deref(), Some("production"));
        assert_eq!(events[0].status_code, Some(200));
        let t = stored_trace(&json!({"batch_id":"b","outcome":"partial","total_us":2500,
            "stages":[{"stage":"received","start_us":0,"duration_us":100}],"events":3}));
        assert_eq!((t.total_ms, t.events, t.stages.len()), (2.5, 3, 1));
        // The store's µs, not zero: `/v1/pipeline` and the `traces` query send `start_us`.
        assert_eq!(t.stages[0].duration_ms, 0.1);
        assert_eq!(trace_waterfall(&t).spans[0].label, "received");
        let w = trace_spans_waterfall(
            "tr",
            &json!({"spans":[
            {"kind":"span","span_type":"QUERY","label":"select","timestamp_ms":1000,
             "start_offset_ms":5.0,"duration_ms":2.0,"depth":1,"sql":"select 1"},
            {"kind":"phase","span_type":"BOOT","label":"boot","timestamp_ms":1000,
             "start_offset_ms":0.0,"duration_ms":10.0,"depth":0}]}),
        )
        .unwrap();
        assert_eq!(w.spans[0].start_ms, 5.0);
        assert_eq!(w.spans[0].detail.as_deref(), Some("select 1"));
        assert_eq!(w.total_ms, 10.0);
    }

    #[test]
    fn spans_are_nested_under_their_phase() {
        let mut w = crate::state::fixtures::waterfall(0);
        // As the server sends it: phases first.
        w.spans.sort_by_key(|s| s.kind != "phase");
        let labels: Vec<(String, u8)> = nest_spans(&w)
            .spans
            .iter()
            .map(|s| (s.label.clone(), s.depth))
            .collect();
        let want: Vec<(String, u8)> = crate::state::fixtures::waterfall(0)
            .spans
            .iter()
            .map(|s| (s.label.clone(), s.depth))
            .collect();
        assert_eq!(labels, want);
    }
}
