//! Key actions: moving, drilling in and out, and the per-view commands.

use std::collections::BTreeSet;

use baddybugs_common::protocol::TailEvent;
use serde_json::{json, Value};

use super::detail::{event_lines, malformed_lines};
use super::rows::{self, Row};
use super::view::{visible_spans, ListPos, Screen, View};
use super::{Action, App, Command, Pending};
use crate::state::convert::{
    event_page, nest_spans, stored_event, trace_spans_waterfall, trace_waterfall,
};
use crate::state::{EventRow, OLDER_CAP};

impl App {
    /// Rows in the current view's top-level list.
    fn list_len(&self) -> usize {
        let s = self.shown();
        match self.view {
            View::Overview => 0,
            View::Types => rows::types(s, self.type_sort, self.type_desc).len(),
            View::Events => rows::events(s, &self.filter).len(),
            View::Malformed => rows::malformed(s, &self.filter, self.reason).len(),
            View::Waterfalls => rows::lifecycles(s, &self.filter).len(),
            View::Pipeline => rows::pipeline(s, self.slowest_first, &self.stored_traces).len(),
        }
    }

    pub(super) fn on_key(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::Up => self.step(-1),
            Action::Down => self.step(1),
            Action::PageUp => self.step(-(self.page.max(1) as isize)),
            Action::PageDown => self.step(self.page.max(1) as isize),
            Action::Top => self.step(isize::MIN / 2),
            Action::Bottom => {
                if self.screen().is_none() {
                    self.pos[self.view.index()].bottom();
                    Vec::new()
                } else {
                    self.step(isize::MAX / 2)
                }
            }
            Action::NextView => self.switch((self.view.index() + 1) % 6),
            Action::PrevView => self.switch((self.view.index() + 5) % 6),
            Action::View(i) => self.switch(i.min(5)),
            Action::Enter => self.enter(),
            Action::Back => self.back(),
            Action::Quit => {
                if self.screen().is_none() {
                    self.quit = true;
                    vec![Command::Quit]
                } else {
                    self.back()
                }
            }
            Action::SortNext if self.view == View::Types => {
                self.type_sort = self.type_sort.next();
                Vec::new()
            }
            Action::SortInvert if self.view == View::Types => {
                self.type_desc = !self.type_desc;
                Vec::new()
            }
            Action::CycleReason if self.view == View::Malformed => {
                let codes: Vec<&'static str> = rows::reason_counts(self.shown())
                    .into_iter()
                    .map(|(c, _)| c)
                    .collect();
                self.reason = match self.reason.and_then(|r| codes.iter().position(|c| *c == r)) {
                    None => codes.first().copied(),
                    Some(i) => codes.get(i + 1).copied(),
                };
                self.pos[self.view.index()] = ListPos::default();
                Vec::new()
            }
            Action::ToggleOrder if self.view == View::Pipeline => {
                self.slowest_first = !self.slowest_first;
                self.pos[self.view.index()] = ListPos::default();
                if self.slowest_first {
                    let q = self.query(
                        "traces",
                        json!({"order": "slowest", "limit": 100}),
                        Pending::Traces,
                    );
                    vec![q]
                } else {
                    Vec::new()
                }
            }
            Action::OpenTrace => self.open_trace(),
            Action::Copy => self.copy(),
            Action::Save => self.save(),
            _ => Vec::new(),
        }
    }

    fn switch(&mut self, i: usize) -> Vec<Command> {
        self.view = View::ALL[i];
        Vec::new()
    }

    fn step(&mut self, delta: isize) -> Vec<Command> {
        let page = self.page.max(1);
        match self.stacks[self.view.index()].last_mut() {
            Some(Screen::Event { event, scroll }) => {
                let max = event_lines(event).len().saturating_sub(page);
                *scroll = scroll_by(*scroll, delta, max);
            }
            Some(Screen::Malformed { item, scroll }) => {
                let max = malformed_lines(item).len().saturating_sub(page);
                *scroll = scroll_by(*scroll, delta, max);
            }
            Some(Screen::Trace { events, pos, .. }) => pos.step(events.len(), delta),
            Some(Screen::Waterfall {
                waterfall,
                selected,
                folded,
                ..
            }) => {
                let n = visible_spans(waterfall, folded).len() as isize;
                *selected = (*selected as isize + delta).clamp(0, (n - 1).max(0)) as usize;
            }
            None => {
                let len = self.list_len();
                let i = self.view.index();
                let at_top = self.pos[i].index(len) == 0;
                self.pos[i].step(len, delta);
                if delta < 0 && at_top && self.view == View::Events {
                    return self.fetch_older();
                }
            }
        }
        Vec::new()
    }

    fn selected_event(&self) -> Option<TailEvent> {
        match self.screen() {
            Some(Screen::Event { event, .. }) => Some((**event).clone()),
            Some(Screen::Trace { events, pos, .. }) => events.get(pos.index(events.len())).cloned(),
            Some(_) => None,
            None if self.view == View::Events => {
                let rows = rows::events(self.shown(), &self.filter);
                let i = self.pos[self.view.index()].index(rows.len());
                rows.get(i).and_then(Row::item).cloned()
            }
            None => None,
        }
    }

    fn enter(&mut self) -> Vec<Command> {
        let i = self.view.index();
        let s = self.shown();
        let screen = match (self.view, self.stacks[i].last()) {
            (
                _,
                Some(Screen::Waterfall {
                    waterfall,
                    selected,
                    folded,
                    ..
                }),
            ) => {
                if let Some(&span) = visible_spans(waterfall, folded).get(*selected) {
                    if let Some(Screen::Waterfall { folded, .. }) = self.screen_mut() {
                        if !folded.remove(&span) {
                            folded.insert(span);
                        }
                    }
                }
                return Vec::new();
            }
            (_, Some(Screen::Trace { .. })) => self.selected_event().map(|e| Screen::Event {
                event: Box::new(e),
                scroll: 0,
            }),
            (_, Some(_)) => None,
            (View::Overview, None) => None,
            (View::Types, None) => {
                let types = rows::types(s, self.type_sort, self.type_desc);
                let name = types
                    .get(self.pos[i].index(types.len()))
                    .map(|t| t.event_type.clone());
                if let Some(name) = name {
                    self.set_filter(&format!("type:{name}"));
                    self.view = View::Events;
                }
                None
            }
            (View::Events, None) => self.selected_event().map(|e| Screen::Event {
                event: Box::new(e),
                scroll: 0,
            }),
            (View::Malformed, None) => {
                let rows = rows::malformed(s, &self.filter, self.reason);
                rows.get(self.pos[i].index(rows.len()))
                    .and_then(Row::item)
                    .map(|m| Screen::Malformed {
                        item: Box::new(m.clone()),
                        scroll: 0,
                    })
            }
            (View::Waterfalls, None) => {
                let rows = rows::lifecycles(s, &self.filter);
                rows.get(self.pos[i].index(rows.len()))
                    .and_then(Row::item)
                    .map(|w| Screen::Waterfall {
                        waterfall: Box::new(nest_spans(w)),
                        selected: 0,
                        folded: BTreeSet::new(),
                        trace: None,
                    })
            }
            (View::Pipeline, None) => {
                let rows = rows::pipeline(s, self.slowest_first, &self.stored_traces);
                rows.get(self.pos[i].index(rows.len()))
                    .and_then(Row::item)
                    .map(|t| Screen::Waterfall {
                        waterfall: Box::new(trace_waterfall(t)),
                        selected: 0,
                        folded: BTreeSet::new(),
                        trace: Some(Box::new(t.clone())),
                    })
            }
        };
        if let Some(screen) = screen {
            self.stacks[self.view.index()].push(screen);
        }
        Vec::new()
    }

    fn back(&mut self) -> Vec<Command> {
        if self.help {
            self.help = false;
        } else if self.stacks[self.view.index()].pop().is_none() && !self.filter.is_empty() {
            self.set_filter("");
            self.say("filter cleared");
        }
        Vec::new()
    }

    fn open_trace(&mut self) -> Vec<Command> {
        let (trace_id, event_id) = match (self.view, self.screen()) {
            (View::Waterfalls, None) => {
                let rows = rows::lifecycles(self.shown(), &self.filter);
                let w = rows
                    .get(self.pos[self.view.index()].index(rows.len()))
                    .and_then(Row::item);
                (w.and_then(|w| w.trace_id.clone()), w.map(|w| w.id.clone()))
            }
            (View::Waterfalls, Some(Screen::Waterfall { waterfall, .. })) => {
                (waterfall.trace_id.clone(), Some(waterfall.id.clone()))
            }
            _ => match self.selected_event() {
                Some(e) => (e.trace_id.clone(), Some(e.id.clone())),
                None => {
                    self.say("select an event to open its trace");
                    return Vec::new();
                }
            },
        };
        let Some(trace_id) = trace_id else {
            self.say("this event has no trace id");
            return Vec::new();
        };
        let s = self.shown();
        let waterfall = s
            .lifecycles
            .items()
            .find(|w| Some(&w.id) == event_id.as_ref())
            .or_else(|| {
                s.lifecycles
                    .items()
                    .find(|w| w.trace_id.as_ref() == Some(&trace_id))
            })
            .map(|w| Box::new(nest_spans(w)));
        self.stacks[self.view.index()].push(Screen::Trace {
            trace_id: trace_id.clone(),
            loading: true,
            error: None,
            events: Vec::new(),
            waterfall,
            pos: ListPos {
                selected: 0,
                follow: false,
            },
        });
        let params = json!({ "trace_id": trace_id });
        vec![self.query("trace", params, Pending::Trace(trace_id))]
    }

    pub(super) fn on_trace(&mut self, id: &str, data: Result<Value, String>) {
        for stack in &mut self.stacks {
            for screen in stack.iter_mut() {
                if let Screen::Trace {
                    trace_id,
                    loading,
                    error,
                    events,
                    waterfall,
                    ..
                } = screen
                {
                    if trace_id != id || !*loading {
                        continue;
                    }
                    *loading = false;
                    match &data {
                        Ok(v) => {
                            *events = v
                                .get("events")
                                .and_then(Value::as_array)
                                .map(|a| a.iter().map(stored_event).collect())
                                .unwrap_or_default();
                            events.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
                            if waterfall.is_none() {
                                *waterfall = trace_spans_waterfall(id, v).map(Box::new);
                            }
                        }
                        Err(e) => *error = Some(e.clone()),
                    }
                }
            }
        }
    }

    fn fetch_older(&mut self) -> Vec<Command> {
        let older = &self.live.older;
        if older.loading || older.exhausted || !self.live_is_connected() {
            return Vec::new();
        }
        let oldest = older
            .rows
            .first()
            .or_else(|| self.live.events.items().next())
            .map(|r| r.ev.timestamp.clone());
        let mut params = json!({ "limit": 100 });
        match (&older.cursor, oldest) {
            (Some(c), _) => params["cursor"] = json!(c),
            (None, Some(t)) => params["until"] = json!(t),
            (None, None) => {}
        }
        let f = &self.filter;
        for (k, v) in [
            ("type", &f.event_type),
            ("name", &f.name),
            ("environment", &f.environment),
            ("trace_id", &f.trace_id),
        ] {
            if let Some(v) = v {
                params[k] = json!(v);
            }
        }
        self.live.older.loading = true;
        self.say("loading older events from the store…");
        vec![self.query("events", params, Pending::Older)]
    }

    fn live_is_connected(&self) -> bool {
        matches!(self.live.conn, crate::state::Conn::Connected { .. })
    }

    pub(super) fn on_older(&mut self, data: Result<Value, String>) {
        self.live.older.loading = false;
        let data = match data {
            Ok(d) => d,
            Err(e) => {
                self.say(format!("older events: {e}"));
                return;
            }
        };
        let (events, cursor) = event_page(&data);
        let known = |id: &str, s: &crate::state::FeedState| {
            s.older.rows.iter().any(|r| r.ev.id == id) || s.events.items().any(|r| r.ev.id == id)
        };
        let mut fresh: Vec<EventRow> = events
            .into_iter()
            .filter(|e| !known(&e.id, &self.live))
            .map(EventRow::new)
            .collect();
        fresh.reverse();
        let added = fresh.len();
        let older = &mut self.live.older;
        older.exhausted = cursor.is_none() || added == 0 || older.rows.len() + added >= OLDER_CAP;
        older.cursor = cursor;
        let mut rows = fresh;
        rows.append(&mut older.rows);
        older.rows = rows;
        if let Some(f) = &mut self.frozen {
            f.state.older = self.live.older.clone();
        }
        let pos = &mut self.pos[View::Events.index()];
        if !pos.follow {
            pos.selected += added;
        }
        self.say(format!("{added} older events loaded from the store"));
    }

    fn copy(&mut self) -> Vec<Command> {
        let text = match (self.view, self.screen()) {
            (View::Malformed, Some(Screen::Malformed { item, .. })) => Some(item.raw.clone()),
            (View::Malformed, None) => {
                let rows = rows::malformed(self.shown(), &self.filter, self.reason);
                rows.get(self.pos[self.view.index()].index(rows.len()))
                    .and_then(Row::item)
                    .map(|m| m.raw.clone())
            }
            _ => self
                .selected_event()
                .and_then(|e| serde_json::to_string(&e).ok()),
        };
        match text {
            Some(t) => {
                self.say(format!(
                    "copied {} bytes to the clipboard (OSC 52)",
                    t.len()
                ));
                vec![Command::Copy(t)]
            }
            None => {
                self.say("nothing to copy here");
                Vec::new()
            }
        }
    }

    fn save(&mut self) -> Vec<Command> {
        let s = self.shown();
        let lines: Vec<String> = match self.view {
            View::Events => jsonl(rows::events(s, &self.filter)),
            View::Malformed => jsonl(rows::malformed(s, &self.filter, self.reason)),
            View::Waterfalls => jsonl(rows::lifecycles(s, &self.filter)),
            View::Pipeline => jsonl(rows::pipeline(s, self.slowest_first, &self.stored_traces)),
            View::Overview | View::Types => s
                .metrics
                .iter()
                .filter_map(|m| serde_json::to_string(m).ok())
                .collect(),
        };
        if lines.is_empty() {
            self.say("nothing to save in this view");
            return Vec::new();
        }
        let stamp = chrono::DateTime::from_timestamp_millis(self.now_ms)
            .map(|t| t.format("%Y%m%d-%H%M%S").to_string())
            .unwrap_or_default();
        let path = self
            .settings
            .save_dir
            .join(format!("baddybugs-{}-{stamp}.jsonl", self.view.slug()));
        let mut contents = lines.join("\n");
        contents.push('\n');
        vec![Command::Save { path, contents }]
    }
}

fn jsonl<T: serde::Serialize>(rows: Vec<Row<'_, T>>) -> Vec<String> {
    rows.iter()
        .filter_map(Row::item)
        .filter_map(|t| serde_json::to_string(t).ok())
        .collect()
}

fn scroll_by(scroll: u16, delta: isize, max: usize) -> u16 {
    (scroll as isize + delta)
        .clamp(0, max as isize)
        .min(u16::MAX as isize) as u16
}
