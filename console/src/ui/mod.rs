//! Pure render functions: `render(frame, app)` draws the tabs, the current view (or the screen
//! drilled into), the banner while disconnected, the filter prompt and the status line.

mod drift;
mod events;
mod help;
mod lists;
mod malformed;
mod nodes;
pub(crate) mod overview;
mod pipeline;
pub(crate) mod theme;
mod types;
mod waterfalls;
pub(crate) mod widgets;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::view::{Screen, View};
use crate::app::App;
use crate::state::time::{age, hms};
use theme::Theme;

/// The smallest terminal the console draws in.
pub(crate) const MIN_WIDTH: u16 = 60;
pub(crate) const MIN_HEIGHT: u16 = 16;

pub(crate) fn theme(app: &App) -> Theme {
    Theme {
        color: app.settings.color,
        ascii: app.settings.ascii,
    }
}

/// The first row to show so that `selected` is visible in `height` rows of `len`.
pub(crate) fn window(len: usize, selected: usize, height: usize) -> usize {
    if height == 0 || len <= height {
        return 0;
    }
    (selected + 1).saturating_sub(height).min(len - height)
}

/// The body height (rows between the tabs and the status line) for a terminal of `height`.
pub(crate) fn body_height(app: &App, height: u16) -> usize {
    let extra = u16::from(banner(app, &theme(app)).is_some()) + u16::from(app.editing.is_some());
    height.saturating_sub(2 + extra) as usize
}

fn banner<'a>(app: &App, t: &Theme) -> Option<Line<'a>> {
    let s = &app.live;
    if s.disconnected_at_ms.is_some() {
        let mut spans = vec![Span::styled(
            " DISCONNECTED · stale data ",
            t.bad().add_modifier(ratatui::style::Modifier::REVERSED),
        )];
        if let crate::state::Conn::Waiting { error, .. } = &s.conn {
            spans.push(Span::styled(format!(" {error}"), t.bad()));
        }
        spans.push(Span::styled(" · R: reconnect now", t.dim()));
        return Some(Line::from(spans));
    }
    let restart = s
        .restart
        .as_ref()
        .filter(|r| app.now_ms - r.at_ms < 60_000)?;
    Some(Line::from(Span::styled(
        format!(
            " server restarted at {} (instance {} → {}): counters and tails were reset ",
            hms(restart.at_ms),
            widgets::status::short_id(&restart.old_instance),
            widgets::status::short_id(&restart.new_instance)
        ),
        t.warn().add_modifier(ratatui::style::Modifier::REVERSED),
    )))
}

fn tabs<'a>(app: &App, t: &Theme, width: u16) -> Line<'a> {
    let labels: usize = View::ALL
        .iter()
        .map(|v| v.title().chars().count() + 4)
        .sum();
    // The name goes first when the seven tabs would not fit beside it (80 columns).
    let mut spans = if labels + 11 <= width as usize {
        vec![Span::styled(" BaddyBugs ", t.bold())]
    } else {
        Vec::new()
    };
    for v in View::ALL {
        let label = format!(" {} {} ", v.index() + 1, v.title());
        let style = if v == app.view {
            t.selected().add_modifier(ratatui::style::Modifier::BOLD)
        } else {
            t.dim()
        };
        spans.push(Span::styled(label, style));
    }
    if let Some(at) = app.shown().last_data_ms {
        spans.push(Span::styled(
            format!("  data {} ago", age(app.now_ms - at)),
            t.dim(),
        ));
    }
    Line::from(spans)
}

/// A bordered block with a title.
pub(crate) fn block<'a>(title: impl Into<String>, t: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_set(t.border())
        .border_style(t.dim())
        .title(Span::styled(format!(" {} ", title.into()), t.bold()))
}

/// Draws the whole console.
pub(crate) fn render(f: &mut Frame, app: &App) {
    let t = theme(app);
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "The terminal is {}×{}; the console needs at least {MIN_WIDTH}×{MIN_HEIGHT}.\nEnlarge the window (q quits).",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let banner = banner(app, &t);
    let [top, banner_area, body, prompt, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(banner.is_some())),
        Constraint::Min(1),
        Constraint::Length(u16::from(app.editing.is_some())),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(tabs(app, &t, top.width)), top);
    if let Some(b) = banner {
        f.render_widget(Paragraph::new(b), banner_area);
    }
    match app.screen() {
        Some(screen) => render_screen(f, app, screen, body, &t),
        None => match app.view {
            View::Overview => overview::render(f, app, body, &t),
            View::Types => types::render(f, app, body, &t),
            View::Events => events::render(f, app, body, &t),
            View::Malformed => malformed::render(f, app, body, &t),
            View::Waterfalls => waterfalls::render(f, app, body, &t),
            View::Pipeline => pipeline::render(f, app, body, &t),
            View::Drift => drift::render(f, app, body, &t),
        },
    }
    if let Some(text) = &app.editing {
        let line = Line::from(vec![
            Span::styled("/", t.warn()),
            Span::raw(text.clone()),
            Span::styled("▏", t.accent()),
            Span::styled(
                "   type: name: app: env: status: is:error reason: words · Enter applies · Esc cancels",
                t.dim(),
            ),
        ]);
        f.render_widget(Paragraph::new(line), prompt);
    }
    f.render_widget(Paragraph::new(widgets::status::line(app, &t)), status);
    if app.help {
        help::render(f, app, area, &t);
    }
    if t.ascii {
        asciify(f.buffer_mut());
    }
}

/// `--ascii`: whatever a view wrote, only ASCII reaches the terminal.
fn asciify(buf: &mut ratatui::buffer::Buffer) {
    for cell in buf.content.iter_mut() {
        let sym = cell.symbol();
        if sym.is_ascii() {
            continue;
        }
        let replacement = match sym {
            "·" | "•" => ".",
            "●" => "*",
            "○" => "o",
            "—" | "─" | "–" => "-",
            "│" => "|",
            "…" => "~",
            "▸" | "→" => ">",
            "▾" | "↓" | "▼" => "v",
            "↑" | "▲" => "^",
            "←" => "<",
            "≤" => "<",
            "×" => "x",
            "µ" => "u",
            "█" | "▉" | "▊" | "▋" | "▌" => "#",
            "▏" | "▎" | "▍" => "|",
            "▁" | "▂" => ".",
            "▃" | "▄" => ":",
            "▅" | "▆" => "=",
            "▇" => "#",
            "░" => ".",
            _ => "?",
        };
        cell.set_symbol(replacement);
    }
}

fn render_screen(f: &mut Frame, app: &App, screen: &Screen, area: Rect, t: &Theme) {
    match screen {
        Screen::Event { event, scroll } => events::render_detail(f, event, *scroll, area, t),
        Screen::Trace { .. } => events::render_trace(f, screen, area, t),
        Screen::Malformed { item, scroll } => malformed::render_detail(f, item, *scroll, area, t),
        Screen::Waterfall {
            waterfall,
            selected,
            folded,
            trace,
        } => waterfalls::render_detail(
            f,
            app,
            waterfall,
            *selected,
            folded,
            trace.as_deref(),
            area,
            t,
        ),
    }
}
