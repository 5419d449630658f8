//! View 1: ingest rates with the accepted, rejected and duplicate rates of the last 60 s,
//! refusals by status and by sender, rejections by reason and by type, spool and memory gauges,
//! sink health, the latency panel, and warnings.

use baddybugs_common::protocol::MetricsSnapshot;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::block;
use super::theme::{fit, Theme};
use super::widgets::rate_chart::{self, RateChart};
use super::widgets::{histogram, sparkline};
use crate::app::App;
use crate::state::http::{meaning, WINDOW_SECS};
use crate::state::time::{age, bytes, ms};
use crate::state::{FeedState, Rates};

const LATENCIES: [&str; 4] = ["request", "fsync", "insert", "end_to_end"];

fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}/s")
    } else {
        format!("{v:.1}/s")
    }
}

fn gauge<'a>(
    label: &str,
    used: u64,
    limit: u64,
    width: usize,
    extra: String,
    t: &Theme,
) -> Line<'a> {
    let ratio = if limit > 0 {
        used as f64 / limit as f64
    } else {
        0.0
    };
    let filled = ((ratio.min(1.0)) * width as f64).round() as usize;
    let style = if ratio >= 0.8 {
        t.bad()
    } else if ratio >= 0.5 {
        t.warn()
    } else {
        t.ok()
    };
    Line::from(vec![
        Span::styled(fit(label, 9, t), t.bold()),
        Span::styled(t.full().repeat(filled), style),
        Span::styled(t.empty().repeat(width - filled), t.dim()),
        Span::raw(format!(" {:>3.0}% ", ratio * 100.0)),
        Span::styled(extra, t.dim()),
    ])
}

/// Warnings worth a look, most serious first.
pub(crate) fn warnings(s: &FeedState) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let Some(m) = &s.metrics else {
        return out;
    };
    if !m.sink.healthy {
        let why = m
            .sink
            .last_error
            .clone()
            .unwrap_or_else(|| "no detail".into());
        out.push((true, format!("sink {} is down: {why}", m.sink.kind)));
    }
    let b = &m.buffers;
    if b.spool_quota_bytes > 0 && b.spool_bytes * 10 >= b.spool_quota_bytes * 8 {
        out.push((
            true,
            format!(
                "spool at {:.0}% of its quota: ingest answers 503 when full",
                b.spool_bytes as f64 * 100.0 / b.spool_quota_bytes as f64
            ),
        ));
    }
    for c in s.http.recent_failures() {
        let codes: Vec<String> = s
            .http
            .recent_codes(c.status)
            .into_iter()
            .map(|(code, n)| format!("{code} ×{n}"))
            .collect();
        let codes = if codes.is_empty() {
            String::new()
        } else {
            format!(" ({})", codes.join(", "))
        };
        let senders: Vec<String> = s
            .http
            .senders()
            .into_iter()
            .filter(|r| r.status == c.status && r.recent > 0)
            .take(2)
            .map(|r| r.sender)
            .collect();
        let codes = if senders.is_empty() {
            codes
        } else {
            format!("{codes} from {}", senders.join(", "))
        };
        out.push((
            c.status >= 500,
            format!(
                "HTTP {} ×{} in {WINDOW_SECS:.0} s: {}{codes}",
                c.status,
                c.recent,
                meaning(c.status)
            ),
        ));
    }
    let Rates {
        received, rejected, ..
    } = s.rates;
    if rejected >= 1.0 && rejected >= received * 0.05 {
        out.push((
            false,
            format!(
                "reject rate spike: {} ({:.0}% of received)",
                rate(rejected),
                rejected * 100.0 / received.max(1.0)
            ),
        ));
    }
    // A key the catalog does not know, announced in the last minute (the feed's clock: the
    // newest frame, at least one a second).
    let new_keys = s.drift.new_keys(s.last_data_ms.unwrap_or(i64::MIN));
    if let Some(n) = new_keys.first() {
        let more = match new_keys.len() {
            1 => String::new(),
            k => format!(" (+{} more)", k - 1),
        };
        out.push((
            false,
            format!(
                "schema drift: new {} {}{} in {} (7: Drift){more}",
                n.drift_kind.as_str(),
                n.event_type,
                n.path,
                n.application
            ),
        ));
    }
    if s.drops() > 0 {
        out.push((
            false,
            format!("feed dropped {} messages for this console", s.drops()),
        ));
    }
    out
}

/// Rejections by reason (with their rate over the last 60 s) and by type (since start), the
/// most frequent first, and the rejected rate over the last minute.
fn rejection_line<'a>(s: &FeedState, m: &MetricsSnapshot, t: &Theme) -> Line<'a> {
    let mut spans = vec![Span::styled("rejected by reason  ", t.dim())];
    if m.reasons.is_empty() {
        spans.push(Span::styled("none", t.ok()));
        return Line::from(spans);
    }
    for (i, r) in m.reasons.iter().take(3).enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", t.dim()));
        }
        spans.push(Span::styled(format!("{} {}", r.code, r.count), t.bad()));
        spans.push(Span::styled(format!(" ({})", rate(r.rate_60s)), t.dim()));
    }
    let mut by_type: Vec<_> = m.types.iter().filter(|ty| ty.rejected > 0).collect();
    by_type.sort_by(|a, b| {
        b.rejected
            .cmp(&a.rejected)
            .then(a.event_type.cmp(&b.event_type))
    });
    if !by_type.is_empty() {
        spans.push(Span::styled("   by type  ", t.dim()));
        for (i, ty) in by_type.iter().take(3).enumerate() {
            if i > 0 {
                spans.push(Span::styled(" · ", t.dim()));
            }
            spans.push(Span::raw(format!("{} {}", ty.event_type, ty.rejected)));
            if ty.rejected_rate_60s > 0.0 {
                spans.push(Span::styled(
                    format!(" ({})", rate(ty.rejected_rate_60s)),
                    t.dim(),
                ));
            }
        }
    }
    // A server of before the throughput series: the rejected rate this console saw.
    if m.throughput.rejected.is_empty() && s.rejected_history.iter().flatten().any(|v| *v > 0) {
        let values: Vec<Option<u64>> = s.rejected_history.iter().copied().collect();
        spans.push(Span::styled("   /s ", t.dim()));
        spans.push(Span::styled(sparkline::inline(&values, 20, t), t.bad()));
    }
    Line::from(spans)
}

/// The accepted, rejected and duplicate rates of the last 60 s side by side, each on its own
/// scale (a few rejections a second would be flat on the accepted rate's scale), labelled;
/// from a server of before these series, the received rate alone.
fn throughput(m: &MetricsSnapshot, area: Rect, f: &mut Frame, t: &Theme) {
    let buf = f.buffer_mut();
    let tp = &m.throughput;
    if tp.accepted.is_empty() {
        let chart = RateChart {
            name: "received/s",
            short: "rcv/s",
            values: &m.totals.history,
            style: t.accent(),
        };
        rate_chart::render(&chart, area, buf, t);
        return;
    }
    // Where three charts of 60 columns fit, a third each; else the accepted rate gets half.
    let widths = if area.width >= 3 * 66 {
        [Constraint::Ratio(1, 3); 3]
    } else {
        [
            Constraint::Percentage(50),
            Constraint::Percentage(25),
            Constraint::Percentage(25),
        ]
    };
    let areas = Layout::horizontal(widths).spacing(1).split(area);
    let charts = [
        ("accepted/s", "acc/s", &tp.accepted, t.ok()),
        ("rejected/s", "rej/s", &tp.rejected, t.bad()),
        ("duplicates/s", "dup/s", &tp.duplicates, t.warn()),
    ];
    for ((name, short, values, style), area) in charts.into_iter().zip(areas.iter()) {
        let chart = RateChart {
            name,
            short,
            values,
            style,
        };
        rate_chart::render(&chart, *area, buf, t);
    }
}

/// Refusals by sender (an application, or the fingerprint of a key that is not configured),
/// those of the last 60 s first; `None` when the server counts none.
fn sender_line<'a>(s: &FeedState, t: &Theme) -> Option<Line<'a>> {
    let senders = s.http.senders();
    if senders.is_empty() {
        return None;
    }
    let mut spans = vec![Span::styled("refused by sender  ", t.dim())];
    for (i, r) in senders.iter().take(4).enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", t.dim()));
        }
        spans.push(Span::styled(r.sender.clone(), t.bold()));
        spans.push(Span::styled(
            format!(" {} {} ×{}", r.status, r.code, r.total),
            t.bad(),
        ));
        if r.recent > 0 {
            spans.push(Span::styled(
                format!(" ({} in {WINDOW_SECS:.0} s)", r.recent),
                t.bad(),
            ));
        }
    }
    Some(Line::from(spans))
}

fn ingest_lines<'a>(m: &MetricsSnapshot, r: &Rates, t: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{} ", rate(r.received)), t.bold().patch(t.accent())),
        Span::styled("received  ", t.dim()),
        Span::styled(rate(r.accepted), t.ok()),
        Span::styled(" accepted  ", t.dim()),
        Span::styled(
            rate(r.rejected),
            if r.rejected > 0.0 {
                t.bad()
            } else {
                Style::new()
            },
        ),
        Span::styled(" rejected  ", t.dim()),
        Span::raw(rate(r.duplicates)),
        Span::styled(" dup  ", t.dim()),
        Span::raw(format!("total {}", m.totals.received)),
    ])
}

/// The ingest endpoint's answers by status since start; refusals in red with their count in
/// the last minute.
fn http_line<'a>(s: &FeedState, t: &Theme) -> Line<'a> {
    let counts = s.http.counts();
    let mut spans = vec![Span::styled("HTTP answers since start  ", t.dim())];
    if counts.is_empty() {
        spans.push(Span::styled("none yet", t.dim()));
    }
    for (i, c) in counts.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", t.dim()));
        }
        let style = if c.failed() { t.bad() } else { t.ok() };
        spans.push(Span::styled(format!("{} ×{}", c.status, c.total), style));
        if c.failed() && c.recent > 0 {
            spans.push(Span::styled(
                format!(" ({} in {WINDOW_SECS:.0} s)", c.recent),
                t.bad(),
            ));
        }
    }
    Line::from(spans)
}

/// Draws the overview.
pub(crate) fn render(f: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let s = app.shown();
    let Some(m) = &s.metrics else {
        let text = "Waiting for the first metrics snapshot (the server sends one each second)…";
        f.render_widget(Paragraph::new(text).block(block("Overview", t)), area);
        return;
    };
    let big = area.height >= 30;
    let mid_h: u16 = if big { 8 } else { 6 };
    // Small screens: what the latency table needs (7 rows), the rest to the sparkline.
    let spark_h: u16 = if big {
        6
    } else {
        area.height.saturating_sub(mid_h + 12).clamp(2, 6)
    };
    let [ingest, mid, fleet, lat] = Layout::vertical([
        Constraint::Length(spark_h + 5),
        Constraint::Length(mid_h),
        Constraint::Length(super::nodes::height(app)),
        Constraint::Min(4),
    ])
    .areas(area);
    if fleet.height > 0 {
        super::nodes::render(f, app, fleet, t);
    }

    let b = block(
        "Ingest · rates of the last second · per second over the last 60 s",
        t,
    );
    let inner = b.inner(ingest);
    f.render_widget(b, ingest);
    f.render_widget(
        Paragraph::new(ingest_lines(m, &s.rates, t)),
        Rect { height: 1, ..inner },
    );
    f.render_widget(
        Paragraph::new(http_line(s, t)),
        Rect {
            y: inner.y + 1,
            height: 1,
            ..inner
        },
    );
    let mut text_lines = vec![rejection_line(s, m, t)];
    // The senders where the charts keep two rows (else the Warnings name them).
    if inner.height >= 6 {
        text_lines.extend(sender_line(s, t));
    }
    let used = 2 + text_lines.len() as u16;
    f.render_widget(
        Paragraph::new(text_lines),
        Rect {
            y: inner.y + 2,
            height: (used - 2).min(inner.height.saturating_sub(2)),
            ..inner
        },
    );
    let spark = Rect {
        y: inner.y + used,
        height: inner.height.saturating_sub(used),
        ..inner
    };
    throughput(m, spark, f, t);

    let [buffers, warn] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(mid);
    let bb = block("Spool · memory · sink · now", t);
    let inner = bb.inner(buffers);
    f.render_widget(bb, buffers);
    let bu = &m.buffers;
    let spool = format!(
        "{} / {}",
        bytes(bu.spool_bytes),
        bytes(bu.spool_quota_bytes)
    );
    let gw = (inner.width as usize)
        .saturating_sub(9 + 7 + spool.chars().count())
        .clamp(4, 30);
    let mut lines = vec![
        gauge("spool", bu.spool_bytes, bu.spool_quota_bytes, gw, spool, t),
        Line::from(vec![
            Span::styled(fit("memory", 9, t), t.bold()),
            Span::raw(format!(
                "{} queued ({} ev) · RSS {}",
                bytes(bu.memory_bytes),
                bu.memory_events,
                bu.rss_bytes.map_or_else(|| "—".into(), bytes)
            )),
        ]),
        Line::from(vec![
            Span::styled(fit("unstored", 9, t), t.bold()),
            Span::raw(format!(
                "{} events, oldest {}",
                bu.pending_records,
                bu.oldest_pending_secs
                    .map_or_else(|| "—".into(), |s| age((s * 1000.0) as i64))
            )),
        ]),
    ];
    let sink = &m.sink;
    lines.push(Line::from(vec![
        Span::styled(fit("sink", 9, t), t.bold()),
        if sink.healthy {
            Span::styled(format!("{} healthy", sink.kind), t.ok())
        } else {
            Span::styled(format!("{} DOWN", sink.kind), t.bad())
        },
        Span::raw(format!(
            " · lag {} ev{} · {} errors",
            sink.lag_events,
            sink.lag_secs
                .map_or_else(String::new, |s| format!(" / {}", age((s * 1000.0) as i64))),
            sink.errors
        )),
    ]));
    if let (true, Some(e)) = (inner.height > 4, &sink.last_error) {
        lines.push(Line::styled(format!("last error: {e}"), t.bad()));
    }
    f.render_widget(Paragraph::new(lines), inner);

    let wb = block("Warnings · now and the last 60 s", t);
    let mut warnings = {
        let mut fleet = super::nodes::warnings(app);
        fleet.extend(warnings(s));
        fleet
    };
    warnings.sort_by_key(|(serious, _)| !serious);
    let lines: Vec<Line> = if warnings.is_empty() {
        vec![Line::styled("none", t.ok())]
    } else {
        warnings
            .into_iter()
            .map(|(serious, text)| {
                Line::styled(
                    format!("! {text}"),
                    if serious { t.bad() } else { t.warn() },
                )
            })
            .collect()
    };
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(wb),
        warn,
    );

    render_latency(f, m, lat, t);
}

fn render_latency(f: &mut Frame, m: &MetricsSnapshot, area: Rect, t: &Theme) {
    let lb = block("Latency · since the server started", t);
    let inner = lb.inner(area);
    f.render_widget(lb, area);
    let histos: Vec<_> = LATENCIES
        .iter()
        .filter_map(|n| m.latencies.iter().find(|h| h.name == *n))
        .collect();
    if histos.is_empty() {
        f.render_widget(
            Paragraph::new(Line::styled("no latency recorded yet", t.dim())),
            inner,
        );
        return;
    }
    if inner.height >= 18 && inner.width >= 80 {
        // 2×2 panels: the percentile list next to the histogram.
        let rows = Layout::vertical([Constraint::Ratio(1, 2); 2]).split(inner);
        for (r, row) in rows.iter().enumerate() {
            let cols = Layout::horizontal([Constraint::Ratio(1, 2); 2]).split(*row);
            for (c, cell) in cols.iter().enumerate() {
                if let Some(h) = histos.get(r * 2 + c) {
                    let title = Line::styled(format!("{} ({})", h.name, h.unit), t.bold());
                    f.render_widget(Paragraph::new(title), Rect { height: 1, ..*cell });
                    let body = Rect {
                        y: cell.y + 1,
                        height: cell.height.saturating_sub(1),
                        width: cell.width.saturating_sub(2),
                        ..*cell
                    };
                    histogram::render(h, body, f.buffer_mut(), t);
                }
            }
        }
        return;
    }
    let name_w = 11;
    let spark_w = (inner.width as usize)
        .saturating_sub(name_w + 40 + 2)
        .min(24);
    let mut lines = vec![histogram::compact_header(name_w, t)];
    lines.extend(
        histos
            .iter()
            .map(|h| histogram::compact_line(h, name_w, spark_w, t)),
    );
    if inner.height as usize > lines.len() {
        let b = &m.batch_sizes;
        lines.push(Line::styled(
            format!(
                "batch size p50 {:.0} p99 {:.0} events · fsync p99 {}",
                b.p50,
                b.p99,
                histos
                    .iter()
                    .find(|h| h.name == "fsync")
                    .map_or_else(|| "—".into(), |h| ms(h.p99))
            ),
            t.dim(),
        ));
    }
    f.render_widget(Paragraph::new(lines), inner);
}
