//! View 4: the rejection tail, grouped by reason (r cycles one reason after another), and one
//! rejection: its reasons above the original bytes with the field at fault highlighted.

use baddybugs_common::protocol::TailMalformed;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::events::render_lines;
use super::lists::{self, ListSpec};
use super::theme::{fit, Theme};
use crate::app::detail::malformed_lines;
use crate::app::rows;
use crate::app::view::View;
use crate::app::App;
use crate::state::time::clock_of;

/// The columns' widths: (type, path, app). The path is what says where the event is wrong:
/// below 100 columns the application (shown in the detail) gives it its room; from 120 on the
/// type column fits the longest type.
fn columns(width: usize, longest_type: usize) -> (usize, usize, usize) {
    let type_w = if width >= 120 {
        (longest_type + 2).clamp(12, 24)
    } else {
        12
    };
    let app_w = if width >= 100 { 10 } else { 0 };
    let path_w = width.saturating_sub(13 + type_w + 16 + app_w).max(6);
    (type_w, path_w, app_w)
}

fn line(m: &TailMalformed, width: usize, longest: usize, t: &Theme) -> Line<'static> {
    let codes = rows::unique_codes(m);
    let path = match m.reasons.len() {
        0 | 1 => m.reasons.first().map_or(String::new(), |p| p.path.clone()),
        n => format!("{} (+{} more)", m.reasons[0].path, n - 1),
    };
    let (type_w, path_w, app_w) = columns(width, longest);
    Line::from(vec![
        Span::styled(fit(&clock_of(&m.received_at), 13, t), t.dim()),
        Span::styled(
            fit(m.event_type.as_deref().unwrap_or("?"), type_w, t),
            t.accent(),
        ),
        Span::styled(fit(&codes.join(","), 16, t), t.bad()),
        Span::raw(fit(&path, path_w, t)),
        Span::styled(fit(&m.application, app_w, t), t.dim()),
    ])
}

/// Draws the rejection tail with the reason summary above it.
pub(crate) fn render(f: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let s = app.shown();
    let counts = rows::reason_counts(s);
    let [summary, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let mut spans = vec![Span::styled("reasons: ", t.dim())];
    if counts.is_empty() {
        spans.push(Span::styled("none yet", t.ok()));
    }
    for (code, n) in &counts {
        let style = if app.reason == Some(*code) {
            t.selected()
        } else {
            t.bad()
        };
        spans.push(Span::styled(format!("{code} {n}"), style));
        spans.push(Span::raw("  "));
    }
    spans.push(Span::styled("(r: one reason at a time)", t.dim()));
    f.render_widget(Paragraph::new(Line::from(spans)), summary);

    let rows = rows::malformed(s, &app.filter, app.reason);
    let shown = rows.iter().filter(|r| r.item().is_some()).count();
    let which = app
        .reason
        .map_or_else(|| "all reasons".to_owned(), |r| format!("reason {r}"));
    let older = &s.older_malformed;
    let stored = if older.loading {
        " · loading older…".to_owned()
    } else if !older.rows.is_empty() {
        format!(" · {} from the store", older.rows.len())
    } else {
        String::new()
    };
    let title = format!(
        "Malformed · {shown} shown ({which}) of {} received{stored} · Enter: reasons + bytes · y: copy · Ctrl-S: save",
        s.malformed.pushed
    );
    // In a fleet the list puts the node column first.
    let width =
        (list.width.saturating_sub(2) as usize).saturating_sub(lists::node_width(&s.node_names));
    let longest = rows
        .iter()
        .filter_map(|r| r.item())
        .filter_map(|m| m.event_type.as_deref())
        .map(|ty| ty.chars().count())
        .max()
        .unwrap_or(0);
    let (type_w, path_w, app_w) = columns(width, longest);
    let header = Line::styled(
        format!(
            "{}{}{}{}{}",
            fit("received", 13, t),
            fit("type", type_w, t),
            fit("reason", 16, t),
            fit("path", path_w, t),
            fit("app", app_w, t)
        ),
        t.dim(),
    );
    let spec = ListSpec {
        title,
        header,
        rows: &rows,
        pos: app.pos[View::Malformed.index()],
        empty: &empty_text(app),
        nodes: &s.node_names,
    };
    lists::render(f, list, spec, t, |m, w| line(m, w, longest, t));
}

/// What an empty list says: never "every event was accepted" unless that is so.
fn empty_text(app: &App) -> String {
    let s = app.shown();
    let held = s.malformed.pushed + s.older_malformed.rows.len() as u64;
    let rejected = s.metrics.as_ref().map_or(0, |m| m.totals.rejected);
    let filtered = !app.filter.is_empty() || app.reason.is_some();
    if !filtered && held == 0 && rejected == 0 {
        return "no rejections yet: every event was accepted".to_owned();
    }
    let since = format!("{rejected} rejected since the server started");
    if filtered {
        let mut what = app.filter.describe();
        if let Some(r) = app.reason {
            what = format!("{what} reason:{r}").trim().to_owned();
        }
        format!("no rejection matches `{what}` among the {held} here\n({since}) · k: search the store · Esc clears")
    } else {
        format!("no rejection in the live tail\n({since}) · k: load older ones from the store")
    }
}

/// One rejection.
pub(crate) fn render_detail(f: &mut Frame, m: &TailMalformed, scroll: u16, area: Rect, t: &Theme) {
    let title = format!(
        "Rejected {} · {} · y: copy raw · Esc: back",
        m.event_id.as_deref().unwrap_or("(no id)"),
        m.event_type.as_deref().unwrap_or("?")
    );
    let width = area.width.saturating_sub(2) as usize;
    render_lines(f, title, malformed_lines(m, width), scroll, area, t);
}
