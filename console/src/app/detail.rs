//! The text of the detail screens (an event, a rejection), as plain lines with a kind that the
//! renderer styles; built here so scrolling knows how long they are.

use baddybugs_common::protocol::{TailEvent, TailMalformed};
use serde_json::Value;

/// How a detail line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    Heading,
    Field,
    Text,
    /// The line holding the field at fault.
    Highlight,
    Dim,
}

/// One line of a detail screen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) kind: LineKind,
    pub(crate) text: String,
}

fn line(kind: LineKind, text: impl Into<String>) -> Line {
    Line {
        kind,
        text: text.into(),
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "—".into(), ToString::to_string)
}

/// Every envelope field, then `data` pretty-printed.
pub(crate) fn event_lines(e: &TailEvent) -> Vec<Line> {
    let mut out = vec![line(LineKind::Heading, "envelope")];
    let fields: [(&str, String); 14] = [
        ("id", e.id.clone()),
        ("type", e.event_type.clone()),
        ("name", e.name.clone()),
        ("timestamp", e.timestamp.clone()),
        ("received_at", e.received_at.clone()),
        ("trace_id", opt(&e.trace_id)),
        ("environment", opt(&e.environment)),
        ("application", e.application.clone()),
        ("duration_ms", opt(&e.duration_ms)),
        ("status_code", opt(&e.status_code)),
        ("is_error", e.is_error.to_string()),
        ("severity", opt(&e.severity)),
        ("user_id", opt(&e.user_id)),
        (
            "sampled",
            e.sampled_one_in
                .map_or_else(|| "no".into(), |n| format!("1 in {n}")),
        ),
    ];
    for (k, v) in fields {
        out.push(line(LineKind::Field, format!("{k:<13} {v}")));
    }
    if let Value::Object(map) = &e.envelope {
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push(line(LineKind::Field, format!("{k:<13} {v}")));
        }
    }
    out.push(line(LineKind::Text, ""));
    out.push(line(LineKind::Heading, "data"));
    let pretty = serde_json::to_string_pretty(&e.data).unwrap_or_default();
    out.extend(pretty.lines().map(|l| line(LineKind::Text, l)));
    out
}

/// The reasons (code, JSON Pointer, expected vs found), then the original bytes with the
/// offending field highlighted.
pub(crate) fn malformed_lines(m: &TailMalformed) -> Vec<Line> {
    let mut out = vec![line(
        LineKind::Heading,
        format!("{} reason(s)", m.reasons.len()),
    )];
    for p in &m.reasons {
        let path = if p.path.is_empty() {
            "(whole event)"
        } else {
            &p.path
        };
        out.push(line(LineKind::Field, format!("{}  at {path}", p.code)));
        // The message repeats the other parts; the two lines say it all.
        out.push(line(
            LineKind::Text,
            format!("  expected {}, found {}", p.expected, p.found),
        ));
    }
    out.push(line(
        LineKind::Dim,
        format!(
            "batch {} #{}  app {}  agent {}  from {}  {} bytes",
            m.batch_id,
            opt(&m.index),
            m.application,
            opt(&m.agent_version),
            opt(&m.remote_addr),
            m.raw_size
        ),
    ));
    out.push(line(LineKind::Text, ""));
    out.push(line(LineKind::Heading, "original bytes"));
    let keys: Vec<String> = m
        .reasons
        .iter()
        .filter_map(|p| p.path.rsplit('/').next())
        .filter(|k| !k.is_empty() && k.parse::<usize>().is_err())
        .map(|k| format!("\"{}\":", k.replace("~1", "/").replace("~0", "~")))
        .collect();
    match serde_json::from_str::<Value>(&m.raw) {
        Ok(v) => {
            let pretty = serde_json::to_string_pretty(&v).unwrap_or_default();
            for l in pretty.lines() {
                let trimmed = l.trim_start();
                let hit = keys.iter().any(|k| trimmed.starts_with(k.as_str()));
                let kind = if hit {
                    LineKind::Highlight
                } else {
                    LineKind::Text
                };
                out.push(line(kind, l));
            }
        }
        Err(_) => out.extend(m.raw.lines().map(|l| line(LineKind::Text, l))),
    }
    if (m.raw.len() as u64) < m.raw_size {
        out.push(line(
            LineKind::Dim,
            format!("… cut at {} of {} bytes", m.raw.len(), m.raw_size),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures;

    #[test]
    fn highlights_the_field_at_fault() {
        let lines = malformed_lines(&fixtures::malformed(0));
        let hits: Vec<&Line> = lines
            .iter()
            .filter(|l| l.kind == LineKind::Highlight)
            .collect();
        assert_eq!(hits.len(), 1);
        assert!(hits[0].text.contains("\"status\": \"ok\""));
        assert!(lines
            .iter()
            .any(|l| l.text.starts_with("wrong_type  at /payload/status")));
    }

    #[test]
    fn event_lines_have_fields_and_data() {
        let lines = event_lines(&fixtures::event(1, "cache", "k"));
        assert!(lines.iter().any(|l| l.text.starts_with("host")));
        assert!(lines
            .iter()
            .any(|l| l.text.contains("\"store\": \"redis\"")));
    }
}
