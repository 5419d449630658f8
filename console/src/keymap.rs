//! (mode, key) → [`Action`]: the one table of key bindings, which also writes the help screen.
//! The config file's `[keys]` section rebinds an action by name (`freeze = "f"`).

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::action::Action;

/// What keys mean depends on what the user is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Normal,
    /// Typing a `/` filter.
    Filter,
    /// The help overlay is open.
    Help,
}

/// One key with its modifiers (Shift is folded into the character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    code: KeyCode,
    ctrl: bool,
}

impl Key {
    fn from_event(e: &KeyEvent) -> Self {
        Key {
            code: e.code,
            ctrl: e.modifiers.contains(KeyModifiers::CONTROL),
        }
    }

    /// Parses `q`, `G`, `ctrl-s`, `enter`, `esc`, `tab`, `shift-tab`, `space`, `up`, `pgdn`, …
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let lower = text.to_ascii_lowercase();
        let (ctrl, rest) = match lower.strip_prefix("ctrl-").or(lower.strip_prefix("c-")) {
            Some(_) => (true, &text[text.find('-')? + 1..]),
            None => (false, text),
        };
        let code = match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "shift-tab" | "backtab" => KeyCode::BackTab,
            "space" => KeyCode::Char(' '),
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pgup" | "pageup" => KeyCode::PageUp,
            "pgdn" | "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "backspace" => KeyCode::Backspace,
            _ => {
                let mut chars = rest.chars();
                let c = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                KeyCode::Char(if ctrl { c.to_ascii_lowercase() } else { c })
            }
        };
        Some(Key { code, ctrl })
    }

    fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "Shift-Tab".into(),
            KeyCode::Char(' ') => "Space".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::Char(c) if self.ctrl => c.to_ascii_uppercase().to_string(),
            KeyCode::Char(c) => c.to_string(),
            other => format!("{other:?}"),
        };
        if self.ctrl {
            format!("Ctrl-{base}")
        } else {
            base
        }
    }
}

/// One binding: an action, its keys, and what the help screen says about it.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub(crate) name: &'static str,
    pub(crate) keys: Vec<Key>,
    pub(crate) action: Action,
    pub(crate) help: &'static str,
}

/// The key map.
#[derive(Debug, Clone)]
pub(crate) struct KeyMap {
    bindings: Vec<Binding>,
}

fn keys(list: &[&str]) -> Vec<Key> {
    list.iter().filter_map(|k| Key::parse(k)).collect()
}

impl Default for KeyMap {
    fn default() -> Self {
        use Action as A;
        let b = |name, k: &[&str], action, help| Binding {
            name,
            keys: keys(k),
            action,
            help,
        };
        let mut bindings = vec![
            b("down", &["j", "down"], A::Down, "move down"),
            b(
                "up",
                &["k", "up"],
                A::Up,
                "move up (stops following; the row stays put as rows arrive)",
            ),
            b("top", &["g", "home"], A::Top, "go to the top"),
            b(
                "bottom",
                &["G", "end"],
                A::Bottom,
                "go to the bottom (follow the tail again)",
            ),
            b("page_up", &["pgup", "ctrl-b"], A::PageUp, "page up"),
            b("page_down", &["pgdn", "ctrl-f"], A::PageDown, "page down"),
            b(
                "enter",
                &["enter"],
                A::Enter,
                "open / drill in / fold a span",
            ),
            b("back", &["esc"], A::Back, "go back (never quits)"),
            b("next_view", &["tab"], A::NextView, "next view"),
            b("prev_view", &["shift-tab"], A::PrevView, "previous view"),
        ];
        const VIEWS: [&str; 7] = ["1", "2", "3", "4", "5", "6", "7"];
        const NAMES: [&str; 7] = [
            "view_1", "view_2", "view_3", "view_4", "view_5", "view_6", "view_7",
        ];
        const HELPS: [&str; 7] = [
            "Overview",
            "Types",
            "Events",
            "Malformed",
            "Waterfalls",
            "Pipeline",
            "Drift: fields and types the catalog does not know",
        ];
        for i in 0..7 {
            bindings.push(b(NAMES[i], &[VIEWS[i]], A::View(i), HELPS[i]));
        }
        bindings.extend([
            b(
                "filter",
                &["/"],
                A::StartFilter,
                "filter: type: name: app: org: env: status: is:error trace: reason: text",
            ),
            b(
                "freeze",
                &["space"],
                A::Freeze,
                "freeze / unfreeze the view (the feed keeps flowing)",
            ),
            b("help", &["?"], A::Help, "this help"),
            b("reconnect", &["R"], A::Reconnect, "reconnect now"),
            b(
                "sort",
                &["s"],
                A::SortNext,
                "Types: sort by the next column",
            ),
            b(
                "invert",
                &["i"],
                A::SortInvert,
                "Types: invert the sort order",
            ),
            b(
                "trace",
                &["t"],
                A::OpenTrace,
                "Events: open the event's trace",
            ),
            b(
                "reason",
                &["r"],
                A::CycleReason,
                "Malformed: show one reason after another",
            ),
            b(
                "copy",
                &["y"],
                A::Copy,
                "Malformed / Events: copy the raw event (inside tmux through tmux, else OSC 52)",
            ),
            b(
                "save",
                &["ctrl-s"],
                A::Save,
                "save the view's events to a JSONL file",
            ),
            b(
                "order",
                &["o"],
                A::ToggleOrder,
                "Pipeline: recent / slowest and failed first",
            ),
            b(
                "quit",
                &["q"],
                A::Quit,
                "quit (from the top level; Ctrl-C quits anywhere)",
            ),
        ]);
        KeyMap { bindings }
    }
}

impl KeyMap {
    /// The default map with `overrides` (action name → key or keys) applied; unknown names and
    /// keys are returned as errors so the config file's mistakes are named.
    pub(crate) fn with_overrides(
        overrides: &BTreeMap<String, Vec<String>>,
    ) -> Result<Self, String> {
        let mut map = KeyMap::default();
        for (name, list) in overrides {
            let binding = map
                .bindings
                .iter_mut()
                .find(|b| b.name == name)
                .ok_or_else(|| format!("[keys] {name}: no such action"))?;
            let mut parsed = Vec::new();
            for k in list {
                parsed.push(
                    Key::parse(k).ok_or_else(|| format!("[keys] {name}: cannot read key {k:?}"))?,
                );
            }
            binding.keys = parsed;
        }
        Ok(map)
    }

    pub(crate) fn action(&self, mode: Mode, event: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(event);
        if key.ctrl && key.code == KeyCode::Char('c') {
            return Some(Action::ForceQuit);
        }
        match mode {
            Mode::Filter => match key.code {
                KeyCode::Esc => Some(Action::FilterCancel),
                KeyCode::Enter => Some(Action::FilterSubmit),
                KeyCode::Backspace => Some(Action::FilterBackspace),
                KeyCode::Char('u') if key.ctrl => Some(Action::FilterClear),
                KeyCode::Char(c) if !key.ctrl => Some(Action::FilterChar(c)),
                _ => None,
            },
            Mode::Help => match key.code {
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') => Some(Action::Help),
                KeyCode::Char('j') | KeyCode::Down => Some(Action::Down),
                KeyCode::Char('k') | KeyCode::Up => Some(Action::Up),
                _ => None,
            },
            Mode::Normal => self
                .bindings
                .iter()
                .find(|b| b.keys.contains(&key))
                .map(|b| b.action.clone()),
        }
    }

    /// (keys, description) lines of the help screen, in table order.
    pub(crate) fn help_lines(&self) -> Vec<(String, &'static str)> {
        let mut lines: Vec<(String, &'static str)> = self
            .bindings
            .iter()
            .map(|b| {
                let keys: Vec<String> = b.keys.iter().map(Key::label).collect();
                (keys.join(" "), b.help)
            })
            .collect();
        lines.push(("Ctrl-C".into(), "quit from anywhere"));
        lines
    }
}

/// A key event from the same text the config file uses (for tests driving the app).
#[cfg(test)]
pub(crate) fn key_event(text: &str) -> KeyEvent {
    let key = Key::parse(text).unwrap_or_else(|| panic!("bad key {text:?}"));
    let mut mods = if key.ctrl {
        KeyModifiers::CONTROL
    } else {
        KeyModifiers::NONE
    };
    if matches!(key.code, KeyCode::BackTab)
        || matches!(key.code, KeyCode::Char(c) if c.is_ascii_uppercase())
    {
        mods |= KeyModifiers::SHIFT;
    }
    KeyEvent::new(key.code, mods)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn defaults_and_modes() {
        let k = KeyMap::default();
        let n = Mode::Normal;
        assert_eq!(
            k.action(n, &ev(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Action::Down)
        );
        assert_eq!(
            k.action(n, &ev(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Bottom)
        );
        assert_eq!(
            k.action(n, &ev(KeyCode::Char('3'), KeyModifiers::NONE)),
            Some(Action::View(2))
        );
        assert_eq!(
            k.action(n, &ev(KeyCode::BackTab, KeyModifiers::SHIFT)),
            Some(Action::PrevView)
        );
        assert_eq!(
            k.action(n, &ev(KeyCode::Char('s'), KeyModifiers::CONTROL)),
            Some(Action::Save)
        );
        assert_eq!(
            k.action(n, &ev(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::ForceQuit)
        );
        assert_eq!(
            k.action(Mode::Filter, &ev(KeyCode::Char('q'), KeyModifiers::NONE)),
            Some(Action::FilterChar('q'))
        );
        assert_eq!(
            k.action(Mode::Filter, &ev(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::ForceQuit)
        );
        assert_eq!(
            k.action(Mode::Help, &ev(KeyCode::Esc, KeyModifiers::NONE)),
            Some(Action::Help)
        );
        assert_eq!(
            k.action(Mode::Help, &ev(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Action::Down)
        );
        assert_eq!(
            k.action(Mode::Help, &ev(KeyCode::Char('x'), KeyModifiers::NONE)),
            None
        );
    }

    #[test]
    fn overrides_rebind_and_name_mistakes() {
        let mut o = BTreeMap::new();
        o.insert("freeze".to_owned(), vec!["f".to_owned()]);
        let k = KeyMap::with_overrides(&o).unwrap();
        assert_eq!(
            k.action(Mode::Normal, &ev(KeyCode::Char('f'), KeyModifiers::NONE)),
            Some(Action::Freeze)
        );
        assert_eq!(
            k.action(Mode::Normal, &ev(KeyCode::Char(' '), KeyModifiers::NONE)),
            None
        );
        assert!(k
            .help_lines()
            .iter()
            .any(|(keys, help)| keys == "f" && help.starts_with("freeze")));
        o.insert("nope".to_owned(), vec!["x".to_owned()]);
        assert!(KeyMap::with_overrides(&o).unwrap_err().contains("nope"));
        let mut bad = BTreeMap::new();
        bad.insert("quit".to_owned(), vec!["ctrl-".to_owned()]);
        assert!(KeyMap::with_overrides(&bad).is_err());
    }
}
