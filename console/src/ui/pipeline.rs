//! View 6: the server's own batch traces, recent first or slowest and failed first (`o`), each
//! drawable as a waterfall of its stages: why is ingest slow?

use baddybugs_common::protocol::PipelineTrace;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::lists::{self, ListSpec};
use super::theme::{fit, rfit, Theme};
use crate::app::rows;
use crate::app::view::View;
use crate::app::App;
use crate::state::time::{bytes, clock_of, ms};

fn slowest_stage(p: &PipelineTrace) -> String {
    p.stages
        .iter()
        .max_by(|a, b| a.duration_ms.total_cmp(&b.duration_ms))
        .map_or_else(String::new, |s| {
            format!("{} {}", s.stage, ms(s.duration_ms))
        })
}

fn line(p: &PipelineTrace, width: usize, t: &Theme) -> Line<'static> {
    let outcome_style = if rows::failed(p) {
        t.bad()
    } else if p.outcome == "accepted" {
        t.ok()
    } else {
        // Partial: some events rejected, the batch itself went through.
        t.warn()
    };
    let app_w = app_width(width);
    let rest = width.saturating_sub(13 + 12 + app_w + 10 + 5 + 12 + 10 + 9);
    Line::from(vec![
        Span::styled(fit(&clock_of(&p.received_at), 13, t), t.dim()),
        Span::raw(fit(&batch_suffix(&p.batch_id, t), 12, t)),
        Span::styled(fit(&p.application, app_w, t), t.accent()),
        Span::styled(fit(&p.outcome, 10, t), outcome_style),
        Span::raw(rfit(&p.status.to_string(), 4)),
        Span::raw(" "),
        Span::raw(fit(
            &format!("{}/{}/{}", p.accepted, p.rejected, p.duplicates),
            12,
            t,
        )),
        Span::raw(rfit(&bytes(p.bytes_compressed), 10)),
        Span::styled(rfit(&ms(p.total_ms), 9), t.bold()),
        Span::styled(
            format!("  {}", fit(&slowest_stage(p), rest.saturating_sub(2), t)),
            t.dim(),
        ),
    ])
}

/// The end of a batch id: ids of one minute share their beginning (time-ordered), the end
/// tells them apart.
fn batch_suffix(id: &str, t: &Theme) -> String {
    let n = id.chars().count();
    if n <= 11 {
        return id.to_owned();
    }
    let tail: String = id.chars().skip(n - 9).collect();
    format!("{}{tail}", t.ellipsis())
}

/// The application column, from 100 columns on (below, the slowest stage needs the room).
fn app_width(width: usize) -> usize {
    if width >= 100 {
        11
    } else {
        0
    }
}

/// Draws the trace list.
pub(crate) fn render(f: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let s = app.shown();
    let rows = rows::pipeline(s, &app.filter, app.slowest_first, &app.stored_traces);
    let order = if app.slowest_first {
        "failed, then slowest first"
    } else {
        "recent"
    };
    // In a fleet the list puts the node column first.
    let width =
        (area.width.saturating_sub(2) as usize).saturating_sub(lists::node_width(&s.node_names));
    let app_w = app_width(width);
    let rest = width.saturating_sub(13 + 12 + app_w + 10 + 5 + 12 + 10 + 9);
    let header = Line::styled(
        format!(
            "{}{}{}{}{} {}{}{}  {}",
            fit("received", 13, t),
            fit("batch", 12, t),
            fit("app", app_w, t),
            fit("outcome", 10, t),
            rfit("http", 4),
            fit("acc/rej/dup", 12, t),
            rfit("bytes", 10),
            rfit("total", 9),
            fit("slowest stage", rest.saturating_sub(2), t)
        ),
        t.dim(),
    );
    let spec = ListSpec {
        title: format!("Pipeline · {order} · o: order · Enter: waterfall"),
        header,
        rows: &rows,
        pos: app.pos[View::Pipeline.index()],
        empty: "no batches yet",
        nodes: &s.node_names,
    };
    lists::render(f, area, spec, t, |p, w| line(p, w, t));
}
