//! A rate over the last minute as bars whose baseline sits below the smallest value (a steady
//! rate still shows how it varies, not a solid block), its scale labelled at the left and its
//! time axis (`-60s … now`) with the series' name below.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use super::sparkline;
use crate::ui::theme::{fit, Theme};

/// One series to draw.
pub(crate) struct RateChart<'a> {
    /// What it counts, written on the time axis (`accepted/s`).
    pub(crate) name: &'a str,
    /// The same where the axis is too narrow for the name (`acc/s`).
    pub(crate) short: &'a str,
    /// Per second, oldest first (`None`: no snapshot that second).
    pub(crate) values: &'a [Option<u64>],
    /// The bars' style.
    pub(crate) style: Style,
}

/// `values` averaged into at most `cols` columns, each covering the same number of seconds (a
/// column where no second had a value stays a gap).
pub(crate) fn resample(values: &[Option<u64>], cols: usize) -> Vec<Option<u64>> {
    let n = values.len();
    if cols == 0 {
        return Vec::new();
    }
    if n <= cols {
        return values.to_vec();
    }
    (0..cols)
        .map(|c| {
            let part = &values[c * n / cols..(c + 1) * n / cols];
            let known: Vec<u64> = part.iter().flatten().copied().collect();
            (!known.is_empty())
                .then(|| (known.iter().sum::<u64>() as f64 / known.len() as f64).round() as u64)
        })
        .collect()
}

/// The bars' baseline: a third of the height below the smallest value (0 when that is 0).
pub(crate) fn baseline(min: u64, max: u64) -> u64 {
    min.saturating_sub((max - min).max(3) / 2)
}

fn per_second(v: u64) -> String {
    format!("{v}/s")
}

/// Draws `chart` in `area`: the scale's labels in the left columns, the bars, and on the last
/// row the time axis of the window the values cover.
pub(crate) fn render(chart: &RateChart<'_>, area: Rect, buf: &mut Buffer, t: &Theme) {
    if area.height < 2 || area.width < 8 {
        sparkline::render(chart.values, area, buf, chart.style, t);
        return;
    }
    let secs = chart.values.len();
    let plot_h = area.height - 1;
    let axis_y = area.y + plot_h;
    // Label width from the widest value that may be shown (the scale depends on the width).
    let widest = chart.values.iter().flatten().max().copied().unwrap_or(0);
    let label_w = (per_second(widest).len() + 1).max(5) as u16;
    let cols = (area.width.saturating_sub(label_w) as usize).min(secs);
    let shown = resample(chart.values, cols);
    let known = shown.iter().flatten().copied();
    let (min, max) = known.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let plot = Rect {
        x: area.x + label_w,
        y: area.y,
        width: cols as u16,
        height: plot_h,
    };
    if min == u64::MAX {
        buf.set_string(plot.x, plot.y, fit("no data yet", cols, t), t.dim());
    } else {
        let base = baseline(min, max);
        sparkline::render_from(&shown, base, plot, buf, chart.style, t);
        let lw = label_w as usize - 1;
        buf.set_string(
            area.x,
            area.y,
            format!("{:>lw$}", per_second(max.max(base + 1))),
            t.dim(),
        );
        if plot_h > 1 {
            buf.set_string(
                area.x,
                axis_y - 1,
                format!("{:>lw$}", per_second(base)),
                t.dim(),
            );
        }
    }
    let start = format!("-{secs}s");
    let room = cols.saturating_sub(start.len() + "now".len() + 2);
    let name = [chart.name, chart.short]
        .into_iter()
        .find(|n| n.chars().count() <= room);
    let Some(name) = name else {
        // No room for the window: the name alone (the panel's title says the window).
        let name = fit(chart.short, cols, t);
        buf.set_string(plot.x, axis_y, name.trim_end(), chart.style);
        return;
    };
    buf.set_string(plot.x, axis_y, &start, t.dim());
    let name_x = plot.x + (start.len() + 1 + (room - name.chars().count()) / 2) as u16;
    buf.set_string(name_x, axis_y, name, chart.style);
    buf.set_string(plot.x + (cols - 3) as u16, axis_y, "now", t.dim());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(buf: &Buffer, area: Rect) -> Vec<String> {
        (area.y..area.y + area.height)
            .map(|y| {
                (area.x..area.x + area.width)
                    .map(|x| buf[(x, y)].symbol().to_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn resampling_keeps_the_window_and_the_gaps() {
        let v: Vec<Option<u64>> = (0..60).map(|i| (i >= 10).then_some(i)).collect();
        let r = resample(&v, 6);
        assert_eq!(r.len(), 6);
        assert_eq!(r[0], None);
        assert_eq!(r[1], Some(15));
        assert_eq!(r[5], Some(55));
        assert_eq!(resample(&v[..4], 6), v[..4].to_vec());
    }

    #[test]
    fn a_steady_rate_is_drawn_above_a_labelled_baseline_with_its_window() {
        let t = Theme {
            color: false,
            ascii: true,
        };
        let values: Vec<Option<u64>> = (0..60).map(|i| Some(280 + i % 4)).collect();
        let area = Rect::new(0, 0, 66, 4);
        let mut buf = Buffer::empty(area);
        let chart = RateChart {
            name: "accepted/s",
            short: "acc/s",
            values: &values,
            style: Style::new(),
        };
        render(&chart, area, &mut buf, &t);
        let rows = text(&buf, area);
        // 283 at most, the baseline a little below 280: the bars vary, not a solid block.
        assert!(rows[0].starts_with("283/s "), "{rows:?}");
        assert!(rows[2].starts_with("279/s "), "{rows:?}");
        let axis = rows[3].trim_end();
        assert!(axis.starts_with("      -60s "), "{axis}");
        assert!(
            axis.ends_with(" now") && axis.contains(" accepted/s "),
            "{axis}"
        );
        let top: String = rows[0].chars().skip(6).collect();
        assert!(top.contains(' ') && top.trim() != "", "{rows:?}");
    }

    #[test]
    fn no_values_say_so() {
        let t = Theme {
            color: false,
            ascii: true,
        };
        let area = Rect::new(0, 0, 30, 3);
        let mut buf = Buffer::empty(area);
        let values = vec![None; 60];
        let chart = RateChart {
            name: "dup/s",
            short: "dup/s",
            values: &values,
            style: Style::new(),
        };
        render(&chart, area, &mut buf, &t);
        assert!(text(&buf, area)[0].contains("no data yet"));
    }
}
