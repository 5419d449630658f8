//! The status line, always visible: connection state and age, pause, filter, drops, notices,
//! and the server's address, version and instance.

use ratatui::text::{Line, Span};

use crate::app::App;
use crate::state::time::{age, hms};
use crate::state::Conn;
use crate::ui::theme::Theme;

/// The connection part alone (also used by the disconnected banner).
pub(crate) fn connection<'a>(app: &App, theme: &Theme) -> Vec<Span<'a>> {
    let s = &app.live;
    let now = app.now_ms;
    if !app.nodes.is_empty() {
        let up = app.nodes.iter().filter(|n| n.is_up()).count();
        let text = format!("● FLEET {up} of {} nodes up", app.nodes.len());
        let style = if up == app.nodes.len() {
            theme.ok()
        } else if up > 0 {
            theme.warn()
        } else {
            theme.bad()
        };
        let mut spans = vec![Span::styled(text, style)];
        if let Some(a) = s.stale_for_ms(now) {
            spans.push(Span::styled(
                format!(" · ALL DOWN, data {} old", age(a)),
                theme.bad(),
            ));
        }
        return spans;
    }
    let stale = s
        .stale_for_ms(now)
        .map(|a| format!(" · DISCONNECTED, data {} old", age(a)));
    match &s.conn {
        Conn::Connected { since_ms } => vec![Span::styled(
            format!(
                "● CONNECTED since {} ({})",
                hms(*since_ms),
                age(now - since_ms)
            ),
            theme.ok(),
        )],
        Conn::Connecting { attempt } if s.hello.is_some() || stale.is_some() => vec![
            Span::styled(
                format!("○ RECONNECTING now (attempt {attempt})"),
                theme.warn(),
            ),
            Span::styled(stale.unwrap_or_default(), theme.bad()),
        ],
        Conn::Connecting { .. } => vec![Span::styled("○ CONNECTING", theme.warn())],
        Conn::Waiting {
            attempt,
            retry_at_ms,
            ..
        } => vec![
            Span::styled(
                format!(
                    "○ RECONNECTING in {}s (attempt {attempt})",
                    ((retry_at_ms - now).max(0) + 999) / 1000,
                ),
                theme.warn(),
            ),
            Span::styled(stale.unwrap_or_default(), theme.bad()),
        ],
    }
}

/// The whole status line.
pub(crate) fn line<'a>(app: &App, theme: &Theme) -> Line<'a> {
    let sep = || Span::styled(format!(" {} ", theme.sep()), theme.dim());
    let mut spans = connection(app, theme);
    if let Some(n) = app.arrived_while_frozen() {
        spans.push(sep());
        spans.push(Span::styled(format!("PAUSED (+{n} new)"), theme.warn()));
    }
    if !app.filter.is_empty() {
        spans.push(sep());
        spans.push(Span::styled(
            format!("filter: {}", app.filter.describe()),
            theme.accent(),
        ));
    }
    let drops = app.live.drops();
    if drops > 0 {
        spans.push(sep());
        spans.push(Span::styled(format!("feed dropped {drops}"), theme.bad()));
    }
    if let Some((text, _)) = &app.notice {
        spans.push(sep());
        spans.push(Span::styled(text.clone(), theme.bold()));
    }
    spans.push(sep());
    let server = match &app.live.hello {
        _ if !app.nodes.is_empty() => {
            let names: Vec<&str> = app.nodes.iter().map(|n| n.name.as_str()).collect();
            format!("fleet: {}", names.join(", "))
        }
        Some(h) => format!(
            "{} · v{} · {} · {}",
            app.settings.url,
            h.server_version,
            short_id(&h.instance_id),
            h.store
        ),
        None => app.settings.url.clone(),
    };
    spans.push(Span::styled(server, theme.dim()));
    spans.push(Span::styled("  ? help", theme.dim()));
    Line::from(spans)
}

/// The first 8 characters of an instance id.
pub(crate) fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}
