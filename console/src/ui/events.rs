//! View 3: the live tail of accepted events, one event's fields, and one trace.

use baddybugs_common::protocol::TailEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::lists::{self, ListSpec};
use super::theme::{app_column, app_text, fit, rfit, Theme};
use super::widgets::waterfall;
use super::{block, window};
use crate::app::detail::{event_lines, Line as DLine, LineKind};
use crate::app::rows;
use crate::app::view::{Screen, View};
use crate::app::App;
use crate::state::time::{clock_of, ms};

/// The type column: from 120 columns on, the longest type shown, whole (`security_threat` was
/// cut at 12), up to 26 columns; below, 13 (the name needs the room more).
fn type_column<'a>(types: impl Iterator<Item = &'a str>, width: usize) -> usize {
    if width < 120 {
        return 13;
    }
    (types.map(|t| t.chars().count()).max().unwrap_or(0) + 2).clamp(13, 26)
}

fn event_line(e: &TailEvent, width: usize, type_w: usize, t: &Theme) -> Line<'static> {
    let app_w = app_column(width);
    let name_w = width
        .saturating_sub(13 + type_w + app_w + 12 + 9 + 5)
        .max(8);
    let status = e.status_code.map_or_else(String::new, |c| c.to_string());
    let type_style = if e.is_error { t.bad() } else { t.accent() };
    Line::from(vec![
        Span::styled(fit(&clock_of(&e.timestamp), 13, t), t.dim()),
        Span::styled(fit(&e.event_type, type_w, t), type_style),
        Span::raw(fit(&e.name, name_w, t)),
        Span::styled(
            fit(&app_text(&e.organization, &e.application, width), app_w, t),
            t.accent(),
        ),
        Span::styled(fit(e.environment.as_deref().unwrap_or(""), 12, t), t.dim()),
        Span::raw(rfit(&e.duration_ms.map_or_else(String::new, ms), 9)),
        Span::raw(rfit(&status, 5)),
    ])
}

fn header(t: &Theme, width: usize, type_w: usize) -> Line<'static> {
    let app_w = app_column(width);
    let name_w = width
        .saturating_sub(13 + type_w + app_w + 12 + 9 + 5)
        .max(8);
    let app = if width >= 150 { "org/app" } else { "app" };
    Line::styled(
        format!(
            "{}{}{}{}{}{}{}",
            fit("time", 13, t),
            fit("type", type_w, t),
            fit("name", name_w, t),
            fit(app, app_w, t),
            fit("env", 12, t),
            rfit("duration", 9),
            rfit("code", 5)
        ),
        t.dim(),
    )
}

/// Draws the live tail.
pub(crate) fn render(f: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let s = app.shown();
    let rows = rows::events(s, &app.filter);
    let pos = app.pos[View::Events.index()];
    let state = if pos.follow {
        "following"
    } else {
        "scrolled · G follows"
    };
    let older = if s.older.loading {
        " · loading older…".to_owned()
    } else if !s.older.rows.is_empty() {
        format!(" · {} from the store", s.older.rows.len())
    } else {
        String::new()
    };
    // The server samples this tail under load: say so, as it says.
    let sampled = s
        .events
        .items()
        .next_back()
        .and_then(|r| r.ev.sampled_one_in)
        .map_or_else(String::new, |n| format!(" (sampled 1 in {n})"));
    let title = format!(
        "Events · {} shown of {} received{sampled}{older} · {state}",
        rows.iter().filter(|r| r.item().is_some()).count(),
        s.events.pushed
    );
    // In a fleet the list puts the node column first.
    let width =
        (area.width.saturating_sub(2) as usize).saturating_sub(lists::node_width(&s.node_names));
    let type_w = type_column(
        rows.iter()
            .filter_map(|r| r.item())
            .map(|e| e.event_type.as_str()),
        width,
    );
    let spec = ListSpec {
        title,
        header: header(t, width, type_w),
        rows: &rows,
        pos,
        empty: "no events yet (or none match the filter: Esc clears it)",
        nodes: &s.node_names,
    };
    lists::render(f, area, spec, t, |e, w| event_line(e, w, type_w, t));
}

fn styled(lines: Vec<DLine>, t: &Theme) -> Vec<Line<'static>> {
    lines
        .into_iter()
        .map(|l| {
            let style = match l.kind {
                LineKind::Heading => t.bold().patch(t.accent()),
                LineKind::Field => t.bold(),
                LineKind::Text => ratatui::style::Style::new(),
                LineKind::Highlight => t.highlight(),
                LineKind::Dim => t.dim(),
            };
            Line::styled(l.text, style)
        })
        .collect()
}

/// Draws scrollable detail lines in a titled block.
pub(crate) fn render_lines(
    f: &mut Frame,
    title: String,
    lines: Vec<DLine>,
    scroll: u16,
    area: Rect,
    t: &Theme,
) {
    let b = block(title, t);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let max = lines.len().saturating_sub(inner.height as usize);
    let scroll = (scroll as usize).min(max) as u16;
    f.render_widget(Paragraph::new(styled(lines, t)).scroll((scroll, 0)), inner);
}

/// One event, every field.
pub(crate) fn render_detail(f: &mut Frame, e: &TailEvent, scroll: u16, area: Rect, t: &Theme) {
    let title = format!(
        "Event {} · {} {} · t: trace · y: copy · Esc: back",
        e.id, e.event_type, e.name
    );
    render_lines(f, title, event_lines(e), scroll, area, t);
}

/// The events of one trace and its waterfall.
pub(crate) fn render_trace(f: &mut Frame, screen: &Screen, area: Rect, t: &Theme) {
    let Screen::Trace {
        trace_id,
        loading,
        error,
        events,
        waterfall: wf,
        pos,
    } = screen
    else {
        return;
    };
    let (list_area, wf_area) = match wf {
        Some(_) => {
            let [a, b] = Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)])
                .areas(area);
            (a, Some(b))
        }
        None => (area, None),
    };
    let status = if *loading {
        "loading from the store…".to_owned()
    } else if let Some(e) = error {
        format!("error: {e}")
    } else {
        format!("{} events", events.len())
    };
    let b = block(
        format!("Trace {trace_id} · {status} · Enter: open · Esc: back"),
        t,
    );
    let inner = b.inner(list_area);
    f.render_widget(b, list_area);
    let width = inner.width as usize;
    let type_w = type_column(events.iter().map(|e| e.event_type.as_str()), width);
    let mut lines = vec![header(t, width, type_w)];
    let height = inner.height.saturating_sub(1) as usize;
    let sel = pos.index(events.len());
    for (i, e) in events
        .iter()
        .enumerate()
        .skip(window(events.len(), sel, height))
        .take(height)
    {
        let line = event_line(e, width, type_w, t);
        lines.push(if i == sel {
            line.patch_style(t.selected())
        } else {
            line
        });
    }
    f.render_widget(Paragraph::new(lines), inner);
    if let (Some(w), Some(area)) = (wf, wf_area) {
        let b = block(format!("Waterfall · {} · {}", w.source, ms(w.total_ms)), t);
        let inner = b.inner(area);
        f.render_widget(b, area);
        waterfall::render(w, None, &Default::default(), inner, f.buffer_mut(), t);
    }
}
