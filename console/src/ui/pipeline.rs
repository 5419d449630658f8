//! View 6: the server's own batch traces, recent first or slowest and failed first (`o`), each
//! drawable as a waterfall of its stages: why is ingest slow? Requests the server refused
//! (401, 413, 415, 429, 503 …) are rows too, with their status and reason.

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

/// Column widths, each sized to what the rows hold (and its header), with a space before the
/// next column; what is left goes to the slowest stage (or the reason of a refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Widths {
    pub(crate) app: usize,
    pub(crate) outcome: usize,
    pub(crate) counts: usize,
    pub(crate) bytes: usize,
    pub(crate) total: usize,
    pub(crate) rest: usize,
}

const RECEIVED_W: usize = 13;
const BATCH_W: usize = 11;
const STATUS_W: usize = 5;

fn counts(p: &PipelineTrace) -> String {
    format!("{}/{}/{}", p.accepted, p.rejected, p.duplicates)
}

impl Widths {
    /// The widths for `rows` in `width` columns.
    pub(crate) fn of(rows: &[&PipelineTrace], width: usize) -> Widths {
        let widest = |header: &str, f: &dyn Fn(&PipelineTrace) -> String| {
            rows.iter()
                .map(|p| f(p).chars().count())
                .chain(std::iter::once(header.chars().count()))
                .max()
                .unwrap_or(0)
                + 1
        };
        let outcome = widest("outcome", &|p| p.outcome.clone());
        let counts = widest("a/r/d", &counts);
        let bytes = widest("bytes", &|p| bytes(p.bytes_compressed));
        let total = widest("total", &|p| ms(p.total_ms));
        let fixed = RECEIVED_W + BATCH_W + outcome + STATUS_W + counts + bytes + total;
        // The application from 100 columns on, as wide as the longest (up to 24), when the
        // slowest stage keeps 24 columns.
        let app = if width >= 100 {
            widest("app", &|p| p.application.clone())
                .clamp(8, 24)
                .min(width.saturating_sub(fixed + 24))
        } else {
            0
        };
        Widths {
            app,
            outcome,
            counts,
            bytes,
            total,
            rest: width.saturating_sub(fixed + app),
        }
    }
}

fn line(p: &PipelineTrace, w: Widths, t: &Theme) -> Line<'static> {
    let outcome_style = if rows::failed(p) {
        t.bad()
    } else if p.outcome == "accepted" {
        t.ok()
    } else {
        // Partial: some events rejected, the batch itself went through.
        t.warn()
    };
    Line::from(vec![
        Span::styled(fit(&clock_of(&p.received_at), RECEIVED_W, t), t.dim()),
        Span::raw(fit(&batch_suffix(&p.batch_id, t), BATCH_W, t)),
        Span::styled(fit(&p.application, w.app, t), t.accent()),
        Span::styled(fit(&p.outcome, w.outcome, t), outcome_style),
        Span::raw(rfit(&p.status.to_string(), STATUS_W - 1)),
        Span::raw(" "),
        Span::raw(fit(&counts(p), w.counts, t)),
        Span::raw(rfit(&bytes(p.bytes_compressed), w.bytes)),
        Span::styled(rfit(&ms(p.total_ms), w.total), t.bold()),
        // A refused request never reached a stage worth naming: why it was refused instead.
        match &p.reason {
            Some(reason) => Span::styled(
                format!(" {}", fit(reason, w.rest.saturating_sub(1), t)),
                t.bad(),
            ),
            None => Span::styled(
                format!(" {}", fit(&slowest_stage(p), w.rest.saturating_sub(1), t)),
                t.dim(),
            ),
        },
    ])
}

/// The end of a batch id: ids of one minute share their beginning (time-ordered), the end
/// tells them apart.
fn batch_suffix(id: &str, t: &Theme) -> String {
    let n = id.chars().count();
    if n < BATCH_W {
        return id.to_owned();
    }
    let tail: String = id.chars().skip(n - 9).collect();
    format!("{}{tail}", t.ellipsis())
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
    let items: Vec<&PipelineTrace> = rows.iter().filter_map(|r| r.item()).collect();
    let w = Widths::of(&items, width);
    let header = Line::styled(
        format!(
            "{}{}{}{}{} {}{}{} {}",
            fit("received", RECEIVED_W, t),
            fit("batch", BATCH_W, t),
            fit("app", w.app, t),
            fit("outcome", w.outcome, t),
            rfit("http", STATUS_W - 1),
            fit("a/r/d", w.counts, t),
            rfit("bytes", w.bytes),
            rfit("total", w.total),
            fit(
                "slowest stage · or why refused",
                w.rest.saturating_sub(1),
                t
            )
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
    lists::render(f, area, spec, t, |p, _| line(p, w, t));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures::{pipeline, refused};

    /// Issue 16, item 8: the columns are as wide as what they hold, so the slowest stage (or a
    /// refusal's reason) keeps the room at 80 columns, and the app column appears at 100.
    #[test]
    fn columns_are_sized_to_their_content() {
        let traces = [
            pipeline(1),
            pipeline(2),
            refused(1, 401, "unknown_key: unknown API key"),
        ];
        let rows: Vec<&PipelineTrace> = traces.iter().collect();
        let w = Widths::of(&rows, 78);
        // `accepted`, `100/0/0`, `14.6 KiB`, `11.2ms`, each and a space.
        assert_eq!((w.outcome, w.counts, w.bytes, w.total), (9, 8, 9, 7));
        assert_eq!(w.app, 0);
        assert_eq!(w.rest, 78 - (13 + 11 + 9 + 5 + 8 + 9 + 7));
        // The slowest stage whole: a space, its text, and a space before the edge.
        assert!(w.rest >= "inserted 6.0ms".len() + 2, "{w:?}");
        // The longest application (`key sha256:9f86d081`, 19) whole from 100 columns on.
        let w = Widths::of(&rows, 120);
        assert_eq!(w.app, 20);
        // A long outcome widens its column rather than being cut.
        let mut body = pipeline(3);
        body.outcome = "quarantined_body".into();
        assert_eq!(Widths::of(&[&body], 78).outcome, 17);
    }
}
