//! The `?` overlay, generated from the key map: two columns when they fit, else one that
//! scrolls with j/k.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::block;
use super::theme::{fit, Theme};
use crate::app::App;

/// Draws the help over the view.
pub(crate) fn render(f: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let entries = app.keymap.help_lines();
    let key_w = entries
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(4)
        + 2;
    // Over the whole body: the tabs and the status line stay visible.
    let popup = Rect {
        x: area.x,
        y: area.y + 1,
        width: area.width,
        height: area.height.saturating_sub(2),
    };
    let inner_w = popup.width.saturating_sub(2) as usize;
    let inner_h = popup.height.saturating_sub(2) as usize;
    let col_w = inner_w / 2;
    let two = entries.len() > inner_h && col_w >= key_w + 36;
    let cell = |(k, h): &(String, &str), w: usize| {
        vec![
            Span::styled(fit(k, key_w, t), t.accent()),
            Span::raw(fit(h, w.saturating_sub(key_w), t)),
        ]
    };
    let lines: Vec<Line> = if two {
        let half = entries.len().div_ceil(2);
        (0..half)
            .map(|i| {
                let mut spans = cell(&entries[i], col_w);
                if let Some(e) = entries.get(i + half) {
                    spans.extend(cell(e, col_w));
                }
                Line::from(spans)
            })
            .collect()
    } else {
        entries
            .iter()
            .map(|e| Line::from(cell(e, inner_w)))
            .collect()
    };
    let more = lines.len() > inner_h;
    let title = if more {
        "Keys · j/k scroll · Esc or ? closes"
    } else {
        "Keys · Esc or ? closes"
    };
    let scroll = if more {
        app.help_scroll.min((lines.len() - inner_h) as u16)
    } else {
        0
    };
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines)
            .scroll((scroll, 0))
            .block(block(title, t)),
        popup,
    );
}
