//! A scrolling list with a header, gap markers and a selection: the shape of every tail view.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::theme::Theme;
use super::{block, window};
use crate::app::rows::Row;
use crate::app::view::ListPos;

/// What to draw.
pub(crate) struct ListSpec<'a, 'r, T> {
    pub(crate) title: String,
    pub(crate) header: Line<'a>,
    pub(crate) rows: &'r [Row<'r, T>],
    pub(crate) pos: ListPos,
    pub(crate) empty: &'a str,
}

/// Draws the list; `fmt` writes one item in the given width.
pub(crate) fn render<T>(
    f: &mut Frame,
    area: Rect,
    spec: ListSpec<'_, '_, T>,
    t: &Theme,
    fmt: impl Fn(&T, usize) -> Line<'static>,
) {
    let outer = block(spec.title, t);
    let inner = outer.inner(area);
    f.render_widget(outer, area);
    if inner.height == 0 {
        return;
    }
    let width = inner.width as usize;
    let mut lines = vec![spec.header];
    let height = inner.height.saturating_sub(1) as usize;
    if spec.rows.is_empty() {
        lines.push(Line::styled(spec.empty.to_owned(), t.dim()));
    }
    let sel = spec.pos.index(spec.rows.len());
    let start = window(spec.rows.len(), sel, height);
    for (i, row) in spec.rows.iter().enumerate().skip(start).take(height) {
        let line = match row {
            Row::Item(item) => fmt(item, width),
            Row::Marker(text) => {
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
