//! A scrolling list with a header, gap markers and a selection: the shape of every tail view.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::block;
use super::theme::{fit, Theme};
use crate::app::rows::{self, Row, Shown};
use crate::app::view::ListPos;

/// What to draw.
pub(crate) struct ListSpec<'a, 'r, T> {
    pub(crate) title: String,
    pub(crate) header: Line<'a>,
    pub(crate) rows: &'r [Row<'r, T>],
    pub(crate) pos: ListPos,
    pub(crate) empty: &'a str,
    /// In fleet mode, the nodes' names: a node column comes first (`store` for a row read from
    /// the store). Empty for one server.
    pub(crate) nodes: &'a [String],
}

/// The node column's width: the longest name (or `store`) and a space.
pub(crate) fn node_width(nodes: &[String]) -> usize {
    if nodes.is_empty() {
        return 0;
    }
    nodes
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max("store".len())
        + 1
}

/// Draws the list; `fmt` writes one item in the given width.
pub(crate) fn render<T>(
    f: &mut Frame,
    area: Rect,
    spec: ListSpec<'_, '_, T>,
    t: &Theme,
    fmt: impl Fn(&T, usize) -> Line<'static>,
) {
    let keys = rows::keys(spec.rows);
    let mut outer = block(spec.title, t);
    let new = spec.pos.new_below(&keys);
    if new > 0 {
        outer = outer.title_bottom(
            Line::styled(format!(" {new} new below · G to follow "), t.warn()).right_aligned(),
        );
    }
    let inner = outer.inner(area);
    f.render_widget(outer, area);
    if inner.height == 0 {
        return;
    }
    let node_w = node_width(spec.nodes);
    let width = (inner.width as usize).saturating_sub(node_w);
    let header = if node_w > 0 {
        let mut spans = vec![Span::styled(fit("node", node_w, t), t.dim())];
        spans.extend(spec.header.spans);
        Line::from(spans).style(spec.header.style)
    } else {
        spec.header
    };
    let mut lines = vec![header];
    let height = inner.height.saturating_sub(1) as usize;
    if spec.rows.is_empty() {
        lines.extend(
            spec.empty
                .lines()
                .map(|l| Line::styled(l.to_owned(), t.dim())),
        );
    }
    let sel = spec.pos.index_in(&keys);
    let start = spec.pos.start_in(&keys, height);
    for (i, row) in spec.rows.iter().enumerate().skip(start).take(height) {
        let line = match row.shown {
            Shown::Item(item) if node_w > 0 => {
                let name = row
                    .node
                    .and_then(|n| spec.nodes.get(n as usize))
                    .map_or("store", String::as_str);
                let line = fmt(item, width);
                let mut spans = vec![Span::styled(fit(name, node_w, t), t.dim())];
                spans.extend(line.spans);
                Line::from(spans).style(line.style)
            }
            Shown::Item(item) => fmt(item, width),
            Shown::Marker(text) => {
                let dash = t.hline().repeat(2);
                Line::from(Span::styled(format!("{dash} {text} {dash}"), t.warn()))
            }
        };
        lines.push(if i == sel {
            line.patch_style(t.selected())
        } else {
            line
        });
    }
    f.render_widget(Paragraph::new(lines), inner);
}
