//! A scrolling list with a header, gap markers and a selection: the shape of every tail view.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::block;
use super::theme::Theme;
use crate::app::rows::{self, Row, Shown};
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
    let width = inner.width as usize;
    let mut lines = vec![spec.header];
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
