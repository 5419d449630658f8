//! Colours and glyphs: colour unless `NO_COLOR` (then bold / reverse only), Unicode blocks
//! unless `--ascii`.

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;

/// How to draw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Theme {
    pub(crate) color: bool,
    pub(crate) ascii: bool,
}

const ASCII_BORDER: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

impl Theme {
    pub(crate) fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }
    pub(crate) fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }
    pub(crate) fn bold(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    pub(crate) fn ok(&self) -> Style {
        self.fg(Color::Green)
    }
    pub(crate) fn warn(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
    pub(crate) fn bad(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub(crate) fn accent(&self) -> Style {
        self.fg(Color::Cyan)
    }
    pub(crate) fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    pub(crate) fn highlight(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Yellow)
        } else {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }
    pub(crate) fn border(&self) -> border::Set {
        if self.ascii {
            ASCII_BORDER
        } else {
            border::PLAIN
        }
    }
    /// Eighth blocks, from one eighth to full (ASCII: `#`).
    pub(crate) fn eighth(&self, n: usize) -> &'static str {
        const BLOCKS: [&str; 8] = ["▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"];
        if self.ascii {
            if n >= 4 {
                "#"
            } else {
                "|"
            }
        } else {
            BLOCKS[n.clamp(1, 8) - 1]
        }
    }
    /// Vertical eighths, 0 (blank) to 8 (full).
    pub(crate) fn vbar(&self, n: usize) -> &'static str {
        const BARS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
        const ASCII: [&str; 9] = [" ", ".", ".", ":", ":", "=", "=", "#", "#"];
        if self.ascii {
            ASCII[n.min(8)]
        } else {
            BARS[n.min(8)]
        }
    }
    pub(crate) fn gap(&self) -> &'static str {
        if self.ascii {
            "_"
        } else {
            "·"
        }
    }
    pub(crate) fn full(&self) -> &'static str {
        if self.ascii {
            "#"
        } else {
            "█"
        }
    }
    pub(crate) fn empty(&self) -> &'static str {
        if self.ascii {
            "."
        } else {
            "░"
        }
    }
    pub(crate) fn hline(&self) -> &'static str {
        if self.ascii {
            "-"
        } else {
            "─"
        }
    }
    pub(crate) fn sep(&self) -> &'static str {
        if self.ascii {
            "|"
        } else {
            "│"
        }
    }
    pub(crate) fn ellipsis(&self) -> &'static str {
        if self.ascii {
            "~"
        } else {
            "…"
        }
    }

    /// A colour per span type, stable across draws.
    pub(crate) fn span_style(&self, kind: &str, span_type: &str) -> Style {
        let t = span_type.to_ascii_uppercase();
        let c = if kind == "phase" && !t.is_empty() && !matches!(t.as_str(), "QUERY" | "HTTP") {
            match t.as_str() {
                "BOOTSTRAP" | "RECEIVED" | "AUTHENTICATED" => Color::Gray,
                "MIDDLEWARE" | "INFLATED" | "PARSED" => Color::LightBlue,
                "CONTROLLER" | "VALIDATED" => Color::LightCyan,
                "RESPONSE" | "ACKNOWLEDGED" => Color::LightGreen,
                "SPOOLED" => Color::LightYellow,
                "INSERTED" => Color::LightMagenta,
                _ => Color::White,
            }
        } else if t.starts_with("QUERY") || t.starts_with("DB") {
            Color::Blue
        } else if t.starts_with("CACHE") {
            Color::Green
        } else if t.starts_with("HTTP") {
            Color::Magenta
        } else if t.starts_with("JOB") || t.starts_with("QUEUE") {
            Color::Yellow
        } else if t.starts_with("VIEW") || t.starts_with("RENDER") {
            Color::Cyan
        } else if t.contains("EXCEPTION") || t.contains("ERROR") {
            Color::Red
        } else {
            Color::LightBlue
        };
        self.fg(c)
    }
}

/// Pads or cuts `s` to exactly `w` columns (counting chars), as a table cell: a value that does
/// not leave one column free is cut with an ellipsis before a space.
/// The width of the application column and what it shows: the application, and from 150
/// columns on `organization/application`.
pub(crate) fn app_column(width: usize) -> usize {
    if width >= 150 {
        24
    } else {
        11
    }
}

/// The text of the application column (see [`app_column`]).
pub(crate) fn app_text(organization: &str, application: &str, width: usize) -> String {
    if width >= 150 && !organization.is_empty() {
        format!("{organization}/{application}")
    } else {
        application.to_owned()
    }
}

pub(crate) fn fit(s: &str, w: usize, theme: &Theme) -> String {
    let n = s.chars().count();
    if n < w || (n == w && w < 2) {
        format!("{s}{}", " ".repeat(w - n))
    } else if w < 2 {
        s.chars().take(w).collect()
    } else {
        // A cell never touches the next one: a value that fills the column is cut with an
        // ellipsis and keeps one space (`notification` in 12 columns read "notificationmissing_field").
        let mut out: String = s.chars().take(w - 2).collect();
        out.push_str(theme.ellipsis());
        out.push(' ');
        out
    }
}

/// Right-aligns `s` in `w` columns (cutting on the left if needed).
pub(crate) fn rfit(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        format!("{}{s}", " ".repeat(w - n))
    } else {
        s.chars().skip(n - w).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_never_touch_the_next_column() {
        let t = Theme {
            color: false,
            ascii: false,
        };
        assert_eq!(fit("cache", 8, &t), "cache   ");
        assert_eq!(fit("notification", 12, &t), "notificati… ");
        assert_eq!(fit("livewire_performance", 12, &t), "livewire_p… ");
        assert_eq!(fit("notification", 12, &t).chars().count(), 12);
        assert_eq!(fit("ab", 1, &t), "a");
        assert_eq!(fit("", 0, &t), "");
    }
}
