//! Key actions: moving, drilling in and out, and the per-view commands.

use std::collections::BTreeSet;

use baddybugs_common::protocol::TailEvent;
use baddybugs_common::query::{Query, TraceFilter, TraceOrder};

use super::detail::{event_lines, malformed_lines};
use super::rows::{self, Row};
use super::view::{visible_spans, ListPos, Screen, View};
use super::{App, Command, Pending};
use crate::action::Action;
use crate::state::convert::{nest_spans, trace_waterfall};

impl App {
    /// The keys of the rows in the current view's top-level list (`None` for a sorted table).
    pub(crate) fn list_keys(&self) -> Vec<Option<i64>> {
        let s = self.shown();
        match self.view {
            View::Overview => Vec::new(),
            View::Types => vec![None; rows::types(s, self.type_sort, self.type_desc).len()],
            View::Events => rows::keys(&rows::events(s, &self.filter)),
            View::Malformed => rows::keys(&rows::malformed(s, &self.filter, self.reason)),
            View::Waterfalls => rows::keys(&rows::lifecycles(s, &self.filter)),
            View::Pipeline => rows::keys(&rows::pipeline(
                s,
                &self.filter,
                self.slowest_first,
                &self.stored_traces,
            )),
            View::Drift => vec![None; s.drift.rows().len()],
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
            Action::NextView => self.switch((self.view.index() + 1) % View::ALL.len()),
            Action::PrevView => {
                self.switch((self.view.index() + View::ALL.len() - 1) % View::ALL.len())
            }
            Action::View(i) => self.switch(i.min(View::ALL.len() - 1)),
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
                // Stored pages were asked for with the old reason.
                self.live.older_malformed = Default::default();
                self.pos[self.view.index()] = ListPos::default();
                Vec::new()
            }
            Action::ToggleOrder if self.view == View::Pipeline => {
                self.slowest_first = !self.slowest_first;
                // "Slowest first" opens on the first (slowest) row, not following the end.
                self.pos[self.view.index()] = if self.slowest_first {
                    ListPos::at_top()
                } else {
                    ListPos::default()
                };
                if self.slowest_first {
                    let traces = TraceFilter {
                        order: TraceOrder::Slowest,
                        failed_only: false,
                        limit: Some(100),
                    };
                    let q = self.query(Query::Traces(traces), Pending::Traces);
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
        if self.view == View::Drift {
            return self.refresh_drift();
        }
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
                let max = malformed_lines(item, self.width).len().saturating_sub(page);
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
                let keys = self.list_keys();
                let i = self.view.index();
                let at_top = self.pos[i].index_in(&keys) == 0;
                self.pos[i].step_in(&keys, delta, self.view.list_rows(self.body));
                if delta < 0 && at_top {
                    match self.view {
                        View::Events => return self.fetch_older(),
                        View::Malformed => return self.fetch_older_malformed(),
                        _ => {}
                    }
                }
            }
        }
        Vec::new()
    }

    pub(super) fn selected_event(&self) -> Option<TailEvent> {
        match self.screen() {
            Some(Screen::Event { event, .. }) => Some((**event).clone()),
            Some(Screen::Trace { events, pos, .. }) => events.get(pos.index(events.len())).cloned(),
            Some(_) => None,
            None if self.view == View::Events => {
                let rows = rows::events(self.shown(), &self.filter);
                let i = self.pos[self.view.index()].index_in(&rows::keys(&rows));
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
                let item = rows
                    .get(self.pos[i].index_in(&rows::keys(&rows)))
                    .and_then(Row::item)
                    .cloned();
                if let Some(m) = item {
                    return self.open_malformed(m);
                }
                None
            }
            (View::Waterfalls, None) => {
                let rows = rows::lifecycles(s, &self.filter);
                rows.get(self.pos[i].index_in(&rows::keys(&rows)))
                    .and_then(Row::item)
                    .map(|w| Screen::Waterfall {
                        waterfall: Box::new(nest_spans(w)),
                        selected: 0,
                        folded: BTreeSet::new(),
                        trace: None,
                    })
            }
            (View::Drift, None) => {
                let rows = s.drift.rows();
                let example = rows
                    .get(self.pos[i].index(rows.len()))
                    .map(|e| e.example_event_id.clone());
                return match example {
                    Some(Some(id)) => self.open_drift_example(id),
                    Some(None) => {
                        self.say("this key's example event had no id: search its type in Events");
                        Vec::new()
                    }
                    None => Vec::new(),
                };
            }
            (View::Pipeline, None) => {
                let rows = rows::pipeline(s, &self.filter, self.slowest_first, &self.stored_traces);
                rows.get(self.pos[i].index_in(&rows::keys(&rows)))
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

    fn copy(&mut self) -> Vec<Command> {
        let text = match (self.view, self.screen()) {
            (View::Malformed, Some(Screen::Malformed { item, .. })) => {
                return self.copy_raw(item.raw.clone(), item.raw_size);
            }
            (View::Malformed, None) => {
                let rows = rows::malformed(self.shown(), &self.filter, self.reason);
                let raw = rows
                    .get(self.pos[self.view.index()].index_in(&rows::keys(&rows)))
                    .and_then(Row::item)
                    .map(|m| (m.raw.clone(), m.raw_size));
                match raw {
                    Some((raw, size)) => return self.copy_raw(raw, size),
                    None => None,
                }
            }
            _ => self
                .selected_event()
                .and_then(|e| serde_json::to_string(&e).ok()),
        };
        match text {
            Some(t) => {
                let what = format!("{} bytes", t.len());
                vec![Command::Copy { text: t, what }]
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
            View::Pipeline => jsonl(rows::pipeline(
                s,
                &self.filter,
                self.slowest_first,
                &self.stored_traces,
            )),
            View::Drift => s
                .drift
                .rows()
                .into_iter()
                .filter_map(|e| serde_json::to_string(e).ok())
                .collect(),
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

impl App {
    /// Copies a rejection's bytes, saying when they are only the first part.
    fn copy_raw(&mut self, raw: String, size: u64) -> Vec<Command> {
        let what = if (raw.len() as u64) < size {
            format!(
                "the first {} of {size} bytes (Enter loads them all)",
                raw.len()
            )
        } else {
            format!("{} bytes", raw.len())
        };
        vec![Command::Copy { text: raw, what }]
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
