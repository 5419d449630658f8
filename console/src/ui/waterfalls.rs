//! View 5: recent request lifecycles, and one drawn as a waterfall.

use std::collections::BTreeSet;

use baddybugs_common::protocol::{PipelineTrace, Waterfall};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::block;
use super::lists::{self, ListSpec};
use super::theme::{app_column, app_text, fit, rfit, Theme};
use super::widgets::waterfall;
use crate::app::rows;
use crate::app::view::View;
use crate::app::App;
use crate::state::time::{clock_of, ms};

fn line(w: &Waterfall, width: usize, t: &Theme) -> Line<'static> {
    let app_w = app_column(width);
    let url_w = width.saturating_sub(13 + 8 + app_w + 5 + 10 + 9).max(8);
    let status = w.status_code.unwrap_or(0);
    let status_style = if status >= 500 {
        t.bad()
    } else if status >= 400 {
        t.warn()
    } else {
        t.ok()
    };
    Line::from(vec![
        Span::styled(fit(&clock_of(&w.timestamp), 13, t), t.dim()),
        Span::styled(fit(w.method.as_deref().unwrap_or("—"), 8, t), t.bold()),
        Span::raw(fit(w.url.as_deref().unwrap_or(&w.id), url_w, t)),
        Span::styled(
            fit(&app_text(&w.organization, &w.application, width), app_w, t),
            t.accent(),
        ),
        Span::styled(
            rfit(
                &w.status_code.map_or_else(|| "—".into(), |c| c.to_string()),
                5,
            ),
            status_style,
        ),
        Span::raw(rfit(&ms(w.total_ms), 10)),
        Span::raw(rfit(
            &w.query_count.map_or_else(|| "—".into(), |q| q.to_string()),
            9,
        )),
    ])
}

/// Draws the lifecycle list.
pub(crate) fn render(f: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let s = app.shown();
    let rows = rows::lifecycles(s, &app.filter);
    // In a fleet the list puts the node column first.
    let width =
        (area.width.saturating_sub(2) as usize).saturating_sub(lists::node_width(&s.node_names));
    let app_w = app_column(width);
    let header = Line::styled(
        format!(
            "{}{}{}{}{}{}{}",
            fit("time", 13, t),
            fit("method", 8, t),
            fit(
                "url",
                width.saturating_sub(13 + 8 + app_w + 5 + 10 + 9).max(8),
                t
            ),
            fit(if width >= 150 { "org/app" } else { "app" }, app_w, t),
            rfit("code", 5),
            rfit("total", 10),
            rfit("queries", 9)
        ),
        t.dim(),
    );
    // The server samples this tail under load (errors always kept): say so, as it says.
    let sampled = s
        .lifecycles
        .items()
        .next_back()
        .and_then(|w| w.sampled_one_in)
        .map_or_else(String::new, |n| format!(" (sampled 1 in {n}, errors all)"));
    let spec = ListSpec {
        title: format!(
            "Waterfalls · {} lifecycles{sampled} · Enter: draw · t: trace",
            s.lifecycles.pushed
        ),
        header,
        rows: &rows,
        pos: app.pos[View::Waterfalls.index()],
        empty: "no lifecycles yet",
        nodes: &s.node_names,
    };
    lists::render(f, area, spec, t, |w, width| line(w, width, t));
}

/// One waterfall with its selected span's detail.
#[allow(clippy::too_many_arguments)]
pub(crate) fn render_detail(
    f: &mut Frame,
    _app: &App,
    w: &Waterfall,
    selected: usize,
    folded: &BTreeSet<usize>,
    trace: Option<&PipelineTrace>,
    area: Rect,
    t: &Theme,
) {
    let title = match trace {
        Some(p) => format!(
            "Batch {} · {} · HTTP {} · {} events ({} accepted, {} rejected, {} dup) · {}",
            p.batch_id,
            p.outcome,
            p.status,
            p.events,
            p.accepted,
            p.rejected,
            p.duplicates,
            ms(p.total_ms)
        ),
        None => format!(
            "{} {} · {} · {} · {} queries · j/k: span · Enter: fold",
            w.method.as_deref().unwrap_or("—"),
            w.url.as_deref().unwrap_or(&w.id),
            w.status_code.map_or_else(|| "—".into(), |c| c.to_string()),
            ms(w.total_ms),
            w.query_count.map_or_else(|| "—".into(), |q| q.to_string()),
        ),
    };
    let b = block(title, t);
    let inner = b.inner(area);
    f.render_widget(b, area);
    waterfall::render(w, Some(selected), folded, inner, f.buffer_mut(), t);
}
