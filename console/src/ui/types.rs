//! View 2: every event type with its rate, total, rejections, duplicates, p99 and a sparkline;
//! sortable by column; Enter tails the type. Below, the same per application (the sending
//! key's), with its rates.

use baddybugs_common::protocol::AppStats;

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::theme::{fit, rfit, Theme};
use super::widgets::sparkline;
use super::{block, window};
use crate::app::rows;
use crate::app::view::{TypeSort, View};
use crate::app::App;
use crate::state::time::ms;

const COLS: [(TypeSort, &str, usize); 6] = [
    (TypeSort::Name, "type", 0),
    (TypeSort::Rate, "rate/s", 9),
    (TypeSort::Total, "total", 10),
    (TypeSort::Rejected, "rejected", 10),
    (TypeSort::Duplicates, "dups", 7),
    (TypeSort::P99, "p99", 9),
];

/// Draws the types table.
pub(crate) fn render(f: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let s = app.shown();
    let list = rows::types(s, app.type_sort, app.type_desc);
    let title = format!(
        "Types · {} · s: sort column · i: invert · Enter: tail the type",
        list.len()
    );
    let outer = block(title, t);
    let mut inner = outer.inner(area);
    f.render_widget(outer, area);
    let apps = s.metrics.as_ref().map_or(&[][..], |m| m.apps.as_slice());
    if !apps.is_empty() && inner.height >= 8 {
        // The applications below the types: a third of the height at most.
        let h = (apps.len() as u16 + 2).min(inner.height / 3).max(3);
        let below = Rect {
            y: inner.y + inner.height - h,
            height: h,
            ..inner
        };
        inner.height -= h;
        render_apps(f, apps, below, t);
    }
    let width = inner.width as usize;
    let fixed: usize = COLS.iter().map(|c| c.2).sum();
    // The whole longest name (`security_threat` was cut), as the width allows.
    let longest = list
        .iter()
        .map(|ty| ty.event_type.chars().count())
        .max()
        .unwrap_or(4);
    let name_w = (longest + 2)
        .clamp(16, 32)
        .min(width.saturating_sub(fixed + 4))
        .max(8);
    let spark_w = width.saturating_sub(fixed + name_w + 2);
    let arrow = match (app.type_desc, t.ascii) {
        (true, false) => "▼",
        (false, false) => "▲",
        (true, true) => "v",
        (false, true) => "^",
    };
    let mut header = Vec::new();
    for (sort, label, w) in COLS {
        let label = if sort == app.type_sort {
            format!("{label}{arrow}")
        } else {
            label.to_owned()
        };
        let style = if sort == app.type_sort {
            t.accent()
        } else {
            t.dim()
        };
        // A space before every numeric label: a sorted one (`rejected▼`) fills its column.
        let text = if w == 0 {
            fit(&label, name_w, t)
        } else {
            format!(" {}", rfit(&label, w - 1))
        };
        header.push(Span::styled(text, style));
    }
    if spark_w > 0 {
        header.push(Span::styled(
            format!("  {}", fit("last 60 s", spark_w, t)),
            t.dim(),
        ));
    }
    let mut lines = vec![Line::from(header)];
    if list.is_empty() {
        lines.push(Line::styled("no metrics yet", t.dim()));
    }
    let pos = app.pos[View::Types.index()];
    let sel = pos.index(list.len());
    let height = inner.height.saturating_sub(1) as usize;
    let start = window(list.len(), sel, height);
    for (i, ty) in list.iter().enumerate().skip(start).take(height) {
        let rej_style = if ty.rejected > 0 { t.bad() } else { t.dim() };
        let mut spans = vec![
            Span::styled(fit(&ty.event_type, name_w, t), t.bold()),
            Span::raw(rfit(&format!("{:.1}", ty.rate_10s), 9)),
            Span::raw(rfit(&ty.received.to_string(), 10)),
            Span::styled(rfit(&ty.rejected.to_string(), 10), rej_style),
            Span::raw(rfit(&ty.duplicates.to_string(), 7)),
            Span::raw(rfit(&ty.duration_p99_ms.map_or_else(|| "—".into(), ms), 9)),
        ];
        if spark_w > 0 {
            spans.push(Span::raw("  "));
            spans.push(Span::styled(
                sparkline::inline(&ty.history, spark_w, t),
                t.accent(),
            ));
        }
        let line = Line::from(spans);
        lines.push(if i == sel {
            line.patch_style(t.selected())
        } else {
            line
        });
    }
    f.render_widget(Paragraph::new(lines), inner);
}

/// `organization/application`, or the application alone (the `other` bucket).
fn app_label(a: &AppStats) -> String {
    if a.organization.is_empty() {
        a.application.clone()
    } else {
        format!("{}/{}", a.organization, a.application)
    }
}

/// The width of the application column: the longest label whole, as the width allows.
pub(crate) fn app_width(apps: &[AppStats], width: usize, fixed: usize) -> usize {
    let longest = apps
        .iter()
        .map(|a| app_label(a).chars().count())
        .max()
        .unwrap_or(0);
    (longest + 2)
        .clamp(14, 40)
        .min(width.saturating_sub(fixed))
        .max(8)
}

/// The per-application table: received rate over 10 s, totals, rejected and its rate over
/// 60 s, duplicates.
fn render_apps(f: &mut Frame, apps: &[AppStats], area: Rect, t: &Theme) {
    const APP_COLS: [(&str, usize); 5] = [
        ("rate/s", 9),
        ("total", 10),
        ("rejected", 10),
        ("rej/s", 8),
        ("dups", 7),
    ];
    let width = area.width as usize;
    let fixed: usize = APP_COLS.iter().map(|c| c.1).sum();
    let name_w = app_width(apps, width, fixed);
    let rule = format!("{} by application ", t.hline().repeat(2));
    let rule = format!(
        "{rule}{}",
        t.hline().repeat(width.saturating_sub(rule.chars().count()))
    );
    let mut header = vec![Span::styled(fit("application", name_w, t), t.dim())];
    for (label, w) in APP_COLS {
        header.push(Span::styled(format!(" {}", rfit(label, w - 1)), t.dim()));
    }
    let mut lines = vec![Line::styled(rule, t.dim()), Line::from(header)];
    let rows = (area.height as usize).saturating_sub(2);
    for a in apps.iter().take(rows) {
        let rej_style = if a.rejected > 0 { t.bad() } else { t.dim() };
        lines.push(Line::from(vec![
            Span::styled(fit(&app_label(a), name_w, t), t.bold()),
            Span::raw(rfit(&format!("{:.1}", a.rate_10s), 9)),
            Span::raw(rfit(&a.received.to_string(), 10)),
            Span::styled(rfit(&a.rejected.to_string(), 10), rej_style),
            Span::styled(rfit(&format!("{:.2}", a.rejected_rate_60s), 8), rej_style),
            Span::raw(rfit(&a.duplicates.to_string(), 7)),
        ]));
    }
    f.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(org: &str, name: &str) -> AppStats {
        AppStats {
            organization: org.into(),
            application: name.into(),
            ..AppStats::default()
        }
    }

    #[test]
    fn the_application_column_fits_the_longest_name_as_the_width_allows() {
        let apps = [app("acme", "shop"), app("acme", "checkout-service-eu-west")];
        // `acme/checkout-service-eu-west` (29) and two spaces.
        assert_eq!(app_width(&apps, 200, 44), 31);
        // Narrow: what is left after the numbers, never below 8.
        assert_eq!(app_width(&apps, 60, 44), 16);
        assert_eq!(app_width(&apps, 40, 44), 8);
        // Short names keep a readable column.
        assert_eq!(app_width(&[app("", "other")], 200, 44), 14);
    }
}
