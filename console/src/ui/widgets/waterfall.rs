//! A waterfall: a time ruler, one row per span indented by depth, bars placed by start offset
//! and sized by duration with eighth-block precision, and a detail pane for the selected span.

use std::collections::BTreeSet;

use baddybugs_common::protocol::{Waterfall, WaterfallSpan};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::app::view::{has_children, visible_spans};
use crate::state::time::ms;
use crate::ui::theme::{fit, rfit, Theme};
use crate::ui::window;

/// The bar of a span from `start` to `start + dur` (ms) on a scale of `total` ms over `width`
/// cells: starts at a whole cell, ends at an eighth.
pub(crate) fn bar(start: f64, dur: f64, total: f64, width: usize, theme: &Theme) -> String {
    let total = if total > 0.0 { total } else { 1.0 };
    let cells8 = (width * 8) as f64;
    let start_cell = ((start / total) * width as f64)
        .floor()
        .clamp(0.0, width as f64 - 1.0) as usize;
    let len8 = (((dur / total) * cells8).round() as usize).max(1);
    let len8 = len8.min((width - start_cell) * 8);
    let mut out = " ".repeat(start_cell);
    out.push_str(&theme.full().repeat(len8 / 8));
    if !len8.is_multiple_of(8) {
        out.push_str(theme.eighth(len8 % 8));
    }
    out
}

/// The ruler: tick labels at 0, ¼, ½, ¾ and the total.
pub(crate) fn ruler(total: f64, width: usize) -> String {
    let mut line: Vec<char> = vec![' '; width];
    let mut free_from = 0;
    // The total is placed first (right-aligned), then the quarters where they fit.
    let end_label = ms(total);
    let end_pos = width.saturating_sub(end_label.chars().count());
    for q in [0, 1, 2, 3, 4] {
        let label = match q {
            0 => "0".to_owned(),
            4 => end_label.clone(),
            _ => ms(total * q as f64 / 4.0),
        };
        let n = label.chars().count();
        let pos = if q == 4 { end_pos } else { width * q / 4 };
        if pos < free_from || (q < 4 && pos + n + 1 > end_pos) {
            continue;
        }
        free_from = pos + n + 1;
        for (i, c) in label.chars().enumerate() {
            if let Some(slot) = line.get_mut(pos + i) {
                *slot = c;
            }
        }
    }
    line.into_iter().collect()
}

fn detail_lines<'a>(s: &WaterfallSpan, theme: &Theme) -> Vec<Line<'a>> {
    let mut lines = vec![Line::from(vec![
        Span::styled(s.span_type.clone(), theme.span_style(&s.kind, &s.span_type)),
        Span::raw(format!(
            "  {}  start {}  duration {}  depth {}  ({})",
            s.label,
            ms(s.start_ms),
            ms(s.duration_ms),
            s.depth,
            s.kind
        )),
    ])];
    if let Some(d) = &s.detail {
        lines.push(Line::raw(d.clone()));
    }
    lines
}

/// Draws the waterfall; `selected` is an index into the visible spans (None: no selection and
/// no detail pane).
pub(crate) fn render(
    w: &Waterfall,
    selected: Option<usize>,
    folded: &BTreeSet<usize>,
    area: Rect,
    buf: &mut Buffer,
    theme: &Theme,
) {
    if area.height < 2 || area.width < 30 {
        return;
    }
    let visible = visible_spans(w, folded);
    let detail_h: u16 = if selected.is_some() && area.height >= 12 {
        4
    } else {
        0
    };
    let list_h = (area.height - 1 - detail_h) as usize;
    let label_w = ((area.width as usize) * 35 / 100).clamp(16, 44);
    let dur_w = 9;
    let bar_w = (area.width as usize)
        .saturating_sub(label_w + dur_w + 2)
        .max(4);
    let total = w
        .spans
        .iter()
        .map(|s| s.start_ms + s.duration_ms)
        .fold(w.total_ms, f64::max);
    buf.set_string(
        area.x,
        area.y,
        format!(
            "{}{}{}",
            fit(&format!("{} spans", w.spans.len()), label_w + 1, theme),
            ruler(total, bar_w),
            rfit("took", dur_w + 1)
        ),
        theme.dim(),
    );
    let sel = selected.unwrap_or(0).min(visible.len().saturating_sub(1));
    let start = if selected.is_some() {
        window(visible.len(), sel, list_h)
    } else {
        0
    };
    for (row, (vis_i, &i)) in visible
        .iter()
        .enumerate()
        .skip(start)
        .take(list_h)
        .enumerate()
    {
        let s = &w.spans[i];
        let y = area.y + 1 + row as u16;
        let marker = match (has_children(w, i), folded.contains(&i)) {
            (true, true) => {
                if theme.ascii {
                    "+ "
                } else {
                    "▸ "
                }
            }
            (true, false) => {
                if theme.ascii {
                    "- "
                } else {
                    "▾ "
                }
            }
            _ => "  ",
        };
        let label = format!("{}{marker}{}", "  ".repeat(s.depth as usize), s.label);
        let label_style = if selected == Some(vis_i) {
            theme.selected()
        } else {
            Style::new()
        };
        buf.set_string(area.x, y, fit(&label, label_w, theme), label_style);
        buf.set_string(
            area.x + label_w as u16 + 1,
            y,
            bar(s.start_ms, s.duration_ms, total, bar_w, theme),
            theme.span_style(&s.kind, &s.span_type),
        );
        buf.set_string(
            area.x + (label_w + 1 + bar_w) as u16,
            y,
            rfit(&ms(s.duration_ms), dur_w + 1),
            theme.dim(),
        );
    }
    if detail_h > 0 {
        let y = area.y + area.height - detail_h;
        buf.set_string(
            area.x,
            y,
            theme.hline().repeat(area.width as usize),
            theme.dim(),
        );
        if let Some(s) = visible.get(sel).and_then(|&i| w.spans.get(i)) {
            let rect = Rect {
                x: area.x,
                y: y + 1,
                width: area.width,
                height: detail_h - 1,
            };
            Paragraph::new(detail_lines(s, theme))
                .wrap(Wrap { trim: false })
                .render(rect, buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_have_eighth_precision() {
        let t = Theme {
            color: false,
            ascii: false,
        };
        assert_eq!(bar(0.0, 100.0, 100.0, 4, &t), "████");
        assert_eq!(bar(50.0, 25.0, 100.0, 4, &t), "  █");
        assert_eq!(bar(0.0, 12.5 + 3.125, 100.0, 8, &t), "█▎");
        assert_eq!(bar(99.0, 0.0, 100.0, 4, &t), "   ▏");
        assert_eq!(bar(0.0, 500.0, 100.0, 3, &t), "███");
        let a = Theme {
            color: false,
            ascii: true,
        };
        assert_eq!(bar(0.0, 18.75, 100.0, 4, &a), "#");
    }

    #[test]
    fn ruler_labels_the_ends() {
        let r = ruler(120.0, 40);
        assert!(r.starts_with("0 "));
        assert!(r.ends_with("120ms"));
        assert_eq!(r.chars().count(), 40);
    }
}
