//! A latency histogram: the percentile list next to the log-bucket bars.

use baddybugs_common::protocol::{Bucket, Histo};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::sparkline;
use crate::state::time::ms;
use crate::ui::theme::{fit, rfit, Theme};

fn value(h: &Histo, v: f64) -> String {
    if h.unit == "ms" {
        ms(v)
    } else {
        format!("{v:.0}")
    }
}

/// The buckets from the first to the last that holds a value (empty ends say nothing).
fn used(h: &Histo) -> &[Bucket] {
    let first = h.buckets.iter().position(|b| b.count > 0);
    let last = h.buckets.iter().rposition(|b| b.count > 0);
    match (first, last) {
        (Some(a), Some(b)) => &h.buckets[a..=b],
        _ => &[],
    }
}

/// Bucket counts merged pairwise until they fit in `width` columns.
fn fitted(buckets: &[Bucket], width: usize) -> Vec<Option<u64>> {
    let mut counts: Vec<u64> = buckets.iter().map(|b| b.count).collect();
    while counts.len() > width.max(1) {
        counts = counts.chunks(2).map(|c| c.iter().sum()).collect();
    }
    counts.into_iter().map(Some).collect()
}

/// One line: name, count, p50/p90/p99/p99.9/max and the buckets as a sparkline.
pub(crate) fn compact_line<'a>(
    h: &Histo,
    name_w: usize,
    spark_w: usize,
    theme: &Theme,
) -> Line<'a> {
    let counts = fitted(used(h), spark_w);
    let mut spans = vec![
        Span::styled(fit(&h.name, name_w, theme), theme.bold()),
        Span::raw(rfit(&value(h, h.p50), 8)),
        Span::raw(rfit(&value(h, h.p90), 8)),
        Span::styled(rfit(&value(h, h.p99), 8), theme.accent()),
        Span::raw(rfit(&value(h, h.p999), 8)),
        Span::raw(rfit(&value(h, h.max), 8)),
    ];
    if spark_w > 0 {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(
            sparkline::inline(&counts, spark_w.min(counts.len()), theme),
            theme.accent(),
        ));
    }
    Line::from(spans)
}

/// The header of [`compact_line`]s.
pub(crate) fn compact_header<'a>(name_w: usize, theme: &Theme) -> Line<'a> {
    Line::styled(
        format!(
            "{}{}{}{}{}{}  buckets",
            fit("", name_w, theme),
            rfit("p50", 8),
            rfit("p90", 8),
            rfit("p99", 8),
            rfit("p99.9", 8),
            rfit("max", 8)
        ),
        theme.dim(),
    )
}

/// The full panel: percentiles on the left, bucket bars on the right with the bounds below.
pub(crate) fn render(h: &Histo, area: Rect, buf: &mut Buffer, theme: &Theme) {
    if area.height < 3 || area.width < 20 {
        return;
    }
    let list_w = 16u16.min(area.width / 2);
    let lines: Vec<Line> = [
        ("count", format!("{}", h.count)),
        ("min", value(h, h.min)),
        ("p50", value(h, h.p50)),
        ("p90", value(h, h.p90)),
        ("p99", value(h, h.p99)),
        ("p99.9", value(h, h.p999)),
        ("max", value(h, h.max)),
    ]
    .into_iter()
    .map(|(k, v)| {
        let style = if k == "p99" {
            theme.accent()
        } else {
            theme.bold()
        };
        Line::from(vec![
            Span::styled(fit(k, 6, theme), theme.dim()),
            Span::styled(rfit(&v, (list_w - 7) as usize), style),
        ])
    })
    .collect();
    Paragraph::new(lines).render(
        Rect {
            width: list_w,
            ..area
        },
        buf,
    );
    let bars = Rect {
        x: area.x + list_w + 1,
        y: area.y,
        width: area.width - list_w - 1,
        height: area.height - 1,
    };
    // Each bucket gets an equal share of the width.
    let buckets = used(h);
    let n = buckets.len().max(1);
    let per = (bars.width as usize / n).max(1);
    let mut values = Vec::with_capacity(bars.width as usize);
    for b in buckets {
        for _ in 0..per.saturating_sub(1).max(1) {
            values.push(Some(b.count));
        }
        if per > 1 {
            values.push(Some(0));
        }
    }
    values.truncate(bars.width as usize);
    let width = values.len() as u16;
    sparkline::render(&values, Rect { width, ..bars }, buf, theme.accent(), theme);
    let w = (per * n).min(bars.width as usize);
    let axis = axis_labels(buckets, per, w, |le| value(h, le));
    let axis = if theme.ascii {
        axis.replace('≤', "<")
    } else {
        axis
    };
    buf.set_string(bars.x, area.y + area.height - 1, axis, theme.dim());
}

/// The axis under the bars: each bucket's upper bound under its bar, where it fits without
/// touching the previous label (the first and the last always).
fn axis_labels(
    buckets: &[Bucket],
    per: usize,
    width: usize,
    value: impl Fn(f64) -> String,
) -> String {
    let mut out: Vec<char> = vec![' '; width];
    let mut free = 0;
    let n = buckets.len();
    for (i, b) in buckets.iter().enumerate() {
        let label: Vec<char> = format!("≤{}", value(b.le)).chars().collect();
        // The last label ends at the right edge; the others start under their bar.
        let at = if i + 1 == n && n > 1 {
            width.saturating_sub(label.len())
        } else {
            i * per
        };
        if at < free || at + label.len() > width {
            continue;
        }
        // The last label goes in even if it must displace the one before it.
        out[at..at + label.len()].copy_from_slice(&label);
        free = at + label.len() + 1;
    }
    out.into_iter().collect::<String>().trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ends_are_trimmed_and_many_buckets_merged() {
        let h = Histo {
            buckets: [0, 0, 3, 0, 5, 1, 0]
                .iter()
                .enumerate()
                .map(|(i, c)| Bucket {
                    le: i as f64,
                    count: *c,
                })
                .collect(),
            ..Histo::default()
        };
        let u = used(&h);
        assert_eq!((u.len(), u[0].le), (4, 2.0));
        assert_eq!(fitted(u, 10), vec![Some(3), Some(0), Some(5), Some(1)]);
        assert_eq!(fitted(u, 2), vec![Some(3), Some(6)]);
        assert!(used(&Histo::default()).is_empty());
    }

    /// Issue 16, item 6: the axis labels every bucket it has room for, not only the ends.
    #[test]
    fn axis_labels_the_buckets_that_fit() {
        let buckets: Vec<Bucket> = [1.0, 2.0, 4.0, 8.0, 16.0]
            .iter()
            .map(|le| Bucket { le: *le, count: 1 })
            .collect();
        let axis = axis_labels(&buckets, 4, 20, |v| format!("{v}"));
        assert_eq!(
            axis, "≤1  ≤2  ≤4  ≤8   ≤16",
            "the last ends at the right edge"
        );
        let axis = axis_labels(&buckets, 2, 10, |v| format!("{v}"));
        assert_eq!(axis, "≤1  ≤4 ≤16", "labels never touch");
    }
}
