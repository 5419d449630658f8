//! View 7: schema drift, what the agent sends that the catalog does not know: by type, then the
//! paths most recently seen first, with the kind, counts, first and last seen, agent versions,
//! applications and a sample; Enter opens the example event.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::theme::{fit, rfit, Theme};
use super::{block, window};
use crate::app::view::View;
use crate::app::App;

/// Fixed columns: kind (whole, or short below 150 columns), count, first seen, last seen.
const KIND_W: usize = 23;
const SHORT_KIND_W: usize = 13;
const COUNT_W: usize = 9;
const SEEN_W: usize = 12;

/// The kind as a narrow screen shows it.
fn short_kind(kind: &str) -> &str {
    match kind {
        "unknown_field" => "new field",
        "unknown_type" => "new type",
        "unknown_envelope_field" => "new envelope",
        other => other,
    }
}

/// `12-03 07:20`: a key lives for days, so the date is part of when.
fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.chars().take(11).collect())
}

/// Draws the drift table.
pub(crate) fn render(f: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let d = &app.shown().drift;
    let rows = d.rows();
    let state = if d.loading {
        " · loading…".to_owned()
    } else if let Some(e) = &d.error {
        format!(" · cannot read the stored keys: {e}")
    } else {
        String::new()
    };
    let title = format!(
        "Drift · {} keys in {} types{state} · by type, newest first · Enter: the example event",
        rows.len(),
        d.types()
    );
    let outer = block(title, t);
    let inner = outer.inner(area);
    f.render_widget(outer, area);
    let width = inner.width as usize;
    let type_w = rows
        .iter()
        .map(|e| e.event_type.chars().count() + 2)
        .max()
        .unwrap_or(6)
        .clamp(6, 24);
    let path_w = rows
        .iter()
        .map(|e| e.path.chars().count() + 2)
        .max()
        .unwrap_or(6)
        .clamp(6, 40);
    let wide = width >= 150;
    let kind_w = if wide { KIND_W } else { SHORT_KIND_W };
    let fixed = type_w + path_w + kind_w + COUNT_W + if wide { 2 * SEEN_W + 28 } else { SEEN_W };
    let sample_w = width.saturating_sub(fixed).max(8);
    let mut header = format!(
        "{}{}{}{} ",
        fit("type", type_w, t),
        fit("path", path_w, t),
        fit("kind", kind_w, t),
        rfit("count", COUNT_W - 1),
    );
    if wide {
        header.push_str(&fit("first seen", SEEN_W, t));
    }
    header.push_str(&fit("last seen", SEEN_W, t));
    if wide {
        header.push_str(&fit("agents · apps", 28, t));
    }
    header.push_str("sample");
    let mut lines = vec![Line::styled(header, t.dim())];
    if rows.is_empty() {
        let text = if d.loaded {
            "no drift: every event the server validated matched the catalog"
        } else {
            "no drift seen since the console started (the stored keys are being read)"
        };
        lines.push(Line::styled(text, t.dim()));
    }
    let pos = app.pos[View::Drift.index()];
    let sel = pos.index(rows.len());
    let height = inner.height.saturating_sub(1) as usize;
    let start = window(rows.len(), sel, height);
    for (i, e) in rows.iter().enumerate().skip(start).take(height) {
        let mut spans = vec![
            Span::styled(fit(&e.event_type, type_w, t), t.bold()),
            Span::styled(fit(&e.path, path_w, t), t.accent()),
            Span::styled(
                fit(
                    if wide {
                        e.kind.as_str()
                    } else {
                        short_kind(e.kind.as_str())
                    },
                    kind_w,
                    t,
                ),
                t.warn(),
            ),
            Span::raw(format!("{} ", rfit(&e.count.to_string(), COUNT_W - 1))),
        ];
        if wide {
            spans.push(Span::styled(fit(&when(&e.first_seen), SEEN_W, t), t.dim()));
        }
        spans.push(Span::raw(fit(&when(&e.last_seen), SEEN_W, t)));
        if wide {
            let who = format!(
                "{} · {}",
                if e.agent_versions.is_empty() {
                    "—".to_owned()
                } else {
                    e.agent_versions.join(",")
                },
                e.applications.join(",")
            );
            spans.push(Span::styled(fit(&who, 28, t), t.dim()));
        }
        spans.push(Span::raw(fit(&e.sample, sample_w, t)));
        let line = Line::from(spans);
        lines.push(if i == sel {
            line.patch_style(t.selected())
        } else {
            line
        });
    }
    f.render_widget(Paragraph::new(lines), inner);
}
