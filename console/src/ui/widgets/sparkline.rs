//! A sparkline that shows where no data came (`None`) as a gap, not as zero.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use crate::ui::theme::Theme;

/// The last `width` values (older ones are cut), as one line of vertical eighths.
pub(crate) fn inline(values: &[Option<u64>], width: usize, theme: &Theme) -> String {
    let start = values.len().saturating_sub(width);
    let shown = &values[start..];
    let max = shown.iter().flatten().copied().max().unwrap_or(0);
    let mut out = " ".repeat(width.saturating_sub(shown.len()));
    for v in shown {
        match v {
            None => out.push_str(theme.gap()),
            Some(0) => out.push(' '),
            Some(v) => {
                let level = ((*v as f64 / max as f64) * 8.0).round() as usize;
                out.push_str(theme.vbar(level.max(1)));
            }
        }
    }
    out
}

/// Draws `values` (the newest at the right edge) over the whole `area`, each column one value,
/// with eighth-block precision; a gap is a dim dot on the baseline.
pub(crate) fn render(
    values: &[Option<u64>],
    area: Rect,
    buf: &mut Buffer,
    style: Style,
    theme: &Theme,
) {
    render_from(values, 0, area, buf, style, theme);
}

/// As [`render`], the baseline at `base` instead of 0 (values above it fill the height, so a
/// rate that varies by a few percent does not draw a solid block); the caller labels it.
pub(crate) fn render_from(
    values: &[Option<u64>],
    base: u64,
    area: Rect,
    buf: &mut Buffer,
    style: Style,
    theme: &Theme,
) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    let w = area.width as usize;
    let start = values.len().saturating_sub(w);
    let shown = &values[start..];
    let offset = w - shown.len();
    let max = shown
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0)
        .max(base + 1);
    let span = (max - base) as f64;
    let rows = area.height as usize;
    for (i, v) in shown.iter().enumerate() {
        let x = area.x + (offset + i) as u16;
        match v {
            None => {
                let y = area.y + area.height - 1;
                buf[(x, y)].set_symbol(theme.gap()).set_style(theme.dim());
            }
            Some(v) => {
                let above = v.saturating_sub(base) as f64;
                let mut eighths = ((above / span) * (rows * 8) as f64).round() as usize;
                if *v > 0 {
                    eighths = eighths.max(1);
                }
                for r in 0..rows {
                    let level = eighths.saturating_sub(r * 8).min(8);
                    if level == 0 {
                        break;
                    }
                    let y = area.y + area.height - 1 - r as u16;
                    buf[(x, y)].set_symbol(theme.vbar(level)).set_style(style);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_not_zero() {
        let t = Theme {
            color: false,
            ascii: false,
        };
        assert_eq!(inline(&[Some(0), None, Some(8), Some(4)], 6, &t), "   ·█▄");
        assert_eq!(inline(&[Some(1), Some(2), Some(4)], 2, &t), "▄█");
        let a = Theme {
            color: false,
            ascii: true,
        };
        assert_eq!(inline(&[None, Some(8)], 2, &a), "_#");
    }

    #[test]
    fn renders_rows_with_gap_dots() {
        let t = Theme {
            color: false,
            ascii: false,
        };
        let area = Rect::new(0, 0, 4, 2);
        let mut buf = Buffer::empty(area);
        render(
            &[Some(2), None, Some(1), Some(0)],
            area,
            &mut buf,
            Style::new(),
            &t,
        );
        let text: Vec<String> = (0..2)
            .map(|y| (0..4).map(|x| buf[(x, y)].symbol().to_owned()).collect())
            .collect();
        assert_eq!(text, vec!["█   ", "█·█ "]);
    }
}
