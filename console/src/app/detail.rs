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

/// The reasons (code, JSON Pointer, expected vs found), then the original bytes exactly as
/// received (no re-formatting: key order, spacing and PHP's `\/` kept), cut into rows of
/// `width` characters so a long single-line body can be read to its end; the row holding the
/// fault is highlighted. Also returns that row's index, where the screen opens.
pub(crate) fn malformed_detail(m: &TailMalformed, width: usize) -> (Vec<Line>, Option<usize>) {
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
    let fault = fault_offset(m);
    out.push(line(
        LineKind::Heading,
        match fault {
            Some(at) => format!("original bytes (fault at byte {at})"),
            None => "original bytes".to_owned(),
        },
    ));
    let mut focus = None;
    let width = width.max(8);
    let mut offset = 0;
    for text in m.raw.split_inclusive('\n') {
        let text_end = offset + text.len();
        let body = text.strip_suffix('\n').unwrap_or(text);
        let mut row_start = offset;
        let mut rows = chunks(body, width).peekable();
        if rows.peek().is_none() {
            out.push(line(LineKind::Text, ""));
        }
        while let Some(row) = rows.next() {
            let row_end = row_start + row.len();
            // The fault is on this row (a fault at the very end is on the last row).
            let hit = fault.is_some_and(|f| {
                (row_start..row_end).contains(&f)
                    || (rows.peek().is_none() && f >= row_end && f <= text_end)
            });
            if hit && focus.is_none() {
                focus = Some(out.len());
                out.push(line(LineKind::Highlight, row));
            } else {
                out.push(line(LineKind::Text, row));
            }
            row_start = row_end;
        }
        offset = text_end;
    }
    if (m.raw.len() as u64) < m.raw_size {
        out.push(line(
            LineKind::Dim,
            format!("… cut at {} of {} bytes", m.raw.len(), m.raw_size),
        ));
    }
    (out, focus)
}

/// The detail's lines (see [`malformed_detail`]).
pub(crate) fn malformed_lines(m: &TailMalformed, width: usize) -> Vec<Line> {
    malformed_detail(m, width).0
}

/// `s` in pieces of at most `width` characters, every character kept.
fn chunks(s: &str, width: usize) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = rest
            .char_indices()
            .nth(width)
            .map_or(rest.len(), |(i, _)| i);
        let (row, tail) = rest.split_at(cut);
        rest = tail;
        Some(row)
    })
}

/// The byte offset in the raw text of the first fault: the position a parse error gives
/// (`line L column C`), else the key the first reason's JSON Pointer ends at, found by walking
/// the pointer's keys through the text.
pub(crate) fn fault_offset(m: &TailMalformed) -> Option<usize> {
    for p in &m.reasons {
        for text in [&p.found, &p.message, &p.expected] {
            if let Some(at) = line_column(text).and_then(|(l, c)| offset_of(&m.raw, l, c)) {
                return Some(at);
            }
        }
    }
    let path = &m.reasons.iter().find(|p| !p.path.is_empty())?.path;
    let mut at = 0;
    let mut found = None;
    for key in path.split('/').skip(1) {
        if key.parse::<usize>().is_ok() {
            continue;
        }
        let key = key.replace("~1", "/").replace("~0", "~");
        // PHP writes `/` as `\/` inside strings.
        let quoted = [
            format!("\"{key}\""),
            format!("\"{}\"", key.replace('/', "\\/")),
        ];
        let hit = quoted
            .iter()
            .filter_map(|q| m.raw.get(at..)?.find(q.as_str()).map(|i| at + i))
            .min()?;
        found = Some(hit);
        at = hit + 1;
    }
    found
}

/// `line L column C` in a parse error's text.
fn line_column(text: &str) -> Option<(usize, usize)> {
    let rest = &text[text.find("line ")? + 5..];
    let digits = |s: &str| -> Option<(usize, usize)> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        Some((s[..n].parse().ok()?, n))
    };
    let (l, n) = digits(rest)?;
    let rest = rest[n..].strip_prefix(" column ")?;
    let (c, _) = digits(rest)?;
    Some((l, c))
}

/// The byte offset of line `l`, column `c` (both from 1; serde counts columns in bytes).
fn offset_of(raw: &str, l: usize, c: usize) -> Option<usize> {
    let start = if l <= 1 {
        0
    } else {
        raw.match_indices('\n').nth(l - 2)?.0 + 1
    };
    Some((start + c.saturating_sub(1)).min(raw.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures;

    #[test]
    fn highlights_the_field_at_fault() {
        let (lines, focus) = malformed_detail(&fixtures::malformed(0), 200);
        let hits: Vec<&Line> = lines
            .iter()
            .filter(|l| l.kind == LineKind::Highlight)
            .collect();
        assert_eq!(hits.len(), 1);
        assert!(hits[0].text.contains("\"status\":\"ok\""), "{:?}", hits[0]);
        assert_eq!(focus.map(|i| &lines[i]), Some(hits[0]));
        assert!(lines
            .iter()
            .any(|l| l.text.starts_with("wrong_type  at /payload/status")));
    }

    /// Issue 16, item 2: the bytes as received (not re-formatted JSON), every one of them, in
    /// rows of the screen's width, opened at the parse error's column.
    #[test]
    fn shows_the_exact_bytes_wrapped_and_finds_the_parse_error() {
        let mut m = fixtures::malformed(0);
        let mut raw =
            r#"{"type":"log","payload":{"url":"https:\/\/shop.test\/a","z":1,"a":2,"pad":""#
                .to_owned();
        raw.push_str(&"x".repeat(18_000));
        m.raw = raw.clone();
        m.raw_size = raw.len() as u64;
        let at = raw.len();
        m.reasons = vec![baddybugs_common::Problem::new(
            baddybugs_common::ReasonCode::InvalidJson,
            "",
            "JSON",
            format!("EOF while parsing a string at line 1 column {at}"),
        )];
        let (lines, focus) = malformed_detail(&m, 100);
        let heading = lines
            .iter()
            .position(|l| l.text.starts_with("original bytes"))
            .unwrap();
        assert_eq!(
            lines[heading].text,
            format!("original bytes (fault at byte {})", at - 1)
        );
        let body: String = lines[heading + 1..]
            .iter()
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(body, raw, "every byte, in order, nothing re-formatted");
        assert!(lines[heading + 1]
            .text
            .starts_with(r#"{"type":"log","payload":{"url":"https:\/\/shop"#));
        assert!(lines[heading + 1..]
            .iter()
            .all(|l| l.text.chars().count() <= 100));
        let focus = focus.expect("the error's row");
        assert_eq!(focus, lines.len() - 1, "the error is at the end");
        assert_eq!(lines[focus].kind, LineKind::Highlight);
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
