//! Fleet mode's panel on the Overview: one row per node (state, version, uptime, rates,
//! rejections, request p99, spool, unstored events, store), the node in trouble flagged in red
//! with why.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::block;
use super::theme::{fit, rfit, Theme};
use crate::app::App;
use crate::state::fleet::Node;
use crate::state::time::{age, bytes, ms};
use crate::state::Conn;

/// Rows the panel needs (border, header, one per node).
pub(crate) fn height(app: &App) -> u16 {
    if app.nodes.is_empty() {
        0
    } else {
        app.nodes.len() as u16 + 3
    }
}

/// Warnings for the nodes in trouble, serious ones (down, store down) first.
pub(crate) fn warnings(app: &App) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = app
        .nodes
        .iter()
        .filter_map(|n| {
            let why = n.trouble()?;
            let serious = why.starts_with("DOWN") || why.starts_with("store down");
            Some((serious, format!("node {}: {why}", n.name)))
        })
        .collect();
    out.sort_by_key(|(serious, _)| !serious);
    out
}

fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}/s")
    } else {
        format!("{v:.1}/s")
    }
}

fn state<'a>(n: &Node, now_ms: i64, t: &Theme) -> Span<'a> {
    match &n.state.conn {
        Conn::Connected { since_ms } => {
            Span::styled(format!("up {}", age(now_ms - since_ms)), t.ok())
        }
        Conn::Connecting { .. } => Span::styled("connecting", t.warn()),
        Conn::Waiting { retry_at_ms, .. } => Span::styled(
            format!(
                "DOWN · retry {}s",
                ((retry_at_ms - now_ms).max(0) + 999) / 1000
            ),
            t.bad(),
        ),
    }
}

/// A right-aligned cell and the space after it.
fn cell(text: &str, width: usize) -> String {
    format!("{} ", rfit(text, width))
}

/// Whether the panel has room for the version, uptime and store columns and whole sizes.
fn wide(width: u16) -> bool {
    width >= 130
}

fn row<'a>(n: &Node, name_w: usize, wide: bool, now_ms: i64, t: &Theme) -> Line<'a> {
    let s = &n.state;
    let st = state(n, now_ms, t);
    let mut spans = vec![
        Span::styled(fit(&n.name, name_w, t), t.bold()),
        Span::styled(fit(&st.content, 16, t), st.style),
    ];
    if wide {
        let version = s
            .hello
            .as_ref()
            .map_or_else(|| "—".to_owned(), |h| format!("v{}", h.server_version));
        spans.push(Span::styled(fit(&version, 9, t), t.dim()));
    }
    let Some(m) = &s.metrics else {
        spans.push(Span::styled("no metrics yet", t.dim()));
        if let Some(why) = n.trouble() {
            spans.push(Span::styled(format!(" ! {why}"), t.bad()));
        }
        return Line::from(spans);
    };
    let up = n.is_up();
    let (recv, rej) = if up {
        (rate(s.rates.received), rate(s.rates.rejected))
    } else {
        ("—".to_owned(), "—".to_owned())
    };
    let p99 = m
        .latencies
        .iter()
        .find(|h| h.name == "request")
        .map_or_else(|| "—".to_owned(), |h| ms(h.p99));
    let b = &m.buffers;
    let pct = if b.spool_quota_bytes > 0 {
        format!(
            "{:.0}%",
            b.spool_bytes as f64 * 100.0 / b.spool_quota_bytes as f64
        )
    } else {
        "—".to_owned()
    };
    let spool = if wide {
        format!("{} {pct}", bytes(b.spool_bytes))
    } else {
        pct
    };
    let lag = match m.sink.lag_secs {
        Some(l) if wide && m.sink.lag_events > 0 => {
            format!("{} / {}", m.sink.lag_events, age((l * 1000.0) as i64))
        }
        _ => m.sink.lag_events.to_string(),
    };
    if wide {
        spans.push(Span::raw(cell(&age((m.uptime_secs * 1000.0) as i64), 7)));
    }
    spans.extend([
        Span::raw(cell(&recv, 8)),
        Span::styled(
            cell(&rej, 8),
            if up && s.rates.rejected > 0.0 {
                t.bad()
            } else {
                Style::new()
            },
        ),
        Span::raw(cell(&p99, 8)),
        Span::raw(cell(&spool, if wide { 14 } else { 5 })),
        Span::raw(cell(&lag, if wide { 13 } else { 8 })),
    ]);
    if wide {
        spans.push(if m.sink.healthy {
            Span::styled(fit(&m.sink.kind, 11, t), t.ok())
        } else {
            Span::styled(fit(&format!("{} DOWN", m.sink.kind), 11, t), t.bad())
        });
    }
    if let Some(why) = n.trouble() {
        spans.push(Span::styled(format!("! {why}"), t.bad()));
    }
    Line::from(spans)
}

/// Draws the panel.
pub(crate) fn render(f: &mut Frame, app: &App, area: Rect, t: &Theme) {
    let up = app.nodes.iter().filter(|n| n.is_up()).count();
    let b = block(
        format!(
            "Nodes · {up} of {} up · rates of the last second · spool and lag now",
            app.nodes.len()
        ),
        t,
    );
    let inner = b.inner(area);
    f.render_widget(b, area);
    let name_w = app
        .nodes
        .iter()
        .map(|n| n.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4)
        + 2;
    let wide = wide(inner.width);
    let header = if wide {
        format!(
            "{}{}{}{}{}{}{}{}{}{}",
            fit("node", name_w, t),
            fit("state", 16, t),
            fit("version", 9, t),
            cell("uptime", 7),
            cell("recv", 8),
            cell("rejected", 8),
            cell("req p99", 8),
            cell("spool", 14),
            cell("unstored", 13),
            "store"
        )
    } else {
        format!(
            "{}{}{}{}{}{}{}",
            fit("node", name_w, t),
            fit("state", 16, t),
            cell("recv", 8),
            cell("rejected", 8),
            cell("req p99", 8),
            cell("spool", 5),
            cell("unstored", 8),
        )
    };
    let mut lines = vec![Line::styled(header, t.dim())];
    lines.extend(
        app.nodes
            .iter()
            .map(|n| row(n, name_w, wide, app.now_ms, t)),
    );
    f.render_widget(Paragraph::new(lines), inner);
}
