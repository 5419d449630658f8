//! Answers from the store: a trace (`t`), and older events when scrolling past the live tail.

use baddybugs_common::protocol::{TailEvent, TailMalformed};
use baddybugs_common::query::{EventFilter, MalformedFilter, Query};
use baddybugs_common::timestamp::parse_timestamp_str;
use serde_json::Value;

use super::detail::malformed_detail;
use super::rows::{self, Row};
use super::view::{ListPos, Screen, View};
use super::{App, Command, Pending};
use crate::state::convert::{event_page, nest_spans, stored_event, trace_spans_waterfall};
use crate::state::{EventRow, OLDER_CAP};

/// Rejections asked for per page of the stored quarantine.
const MALFORMED_PAGE: u32 = 100;

impl App {
    pub(super) fn open_trace(&mut self) -> Vec<Command> {
        let (trace_id, event_id) = match (self.view, self.screen()) {
            (View::Waterfalls, None) => {
                let rows = rows::lifecycles(self.shown(), &self.filter);
                let w = rows
                    .get(self.pos[self.view.index()].index_in(&rows::keys(&rows)))
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
            pos: ListPos::at_top(),
        });
        let query = Query::Trace {
            trace_id: trace_id.clone(),
        };
        vec![self.query(query, Pending::Trace(trace_id))]
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

    /// Opens one rejection at its fault; when the feed carried only the first bytes, asks the
    /// store for all of them.
    pub(super) fn open_malformed(&mut self, m: TailMalformed) -> Vec<Command> {
        let scroll = self.fault_scroll(&m);
        let cut = (m.raw.len() as u64) < m.raw_size;
        let received = parse_timestamp_str(&m.received_at);
        let query = (cut && self.live_is_connected())
            .then_some(received)
            .flatten()
            .map(|at| {
                // The stored row has the batch's receipt time to the millisecond.
                let filter = MalformedFilter {
                    application: Some(m.application.clone()),
                    since_ms: Some(at),
                    until_ms: Some(at + 1),
                    limit: Some(1000),
                    ..MalformedFilter::default()
                };
                (filter, Pending::Raw(m.batch_id.clone(), m.index))
            });
        self.stacks[self.view.index()].push(Screen::Malformed {
            item: Box::new(m),
            scroll,
        });
        match query {
            Some((filter, pending)) => {
                self.say("loading all the bytes from the store…");
                vec![self.query(Query::Malformed(filter), pending)]
            }
            None => Vec::new(),
        }
    }

    /// Where a rejection's screen opens: a few rows above its fault.
    fn fault_scroll(&self, m: &TailMalformed) -> u16 {
        let (lines, focus) = malformed_detail(m, self.width);
        let max = lines.len().saturating_sub(self.page.max(1));
        focus
            .map_or(0, |f| f.saturating_sub(3).min(max))
            .min(u16::MAX as usize) as u16
    }

    /// The stored copy of a rejection: its bytes replace the feed's first part.
    pub(super) fn on_raw(&mut self, batch: &str, index: Option<u32>, data: Result<Value, String>) {
        let rows = match data {
            Ok(v) => v.as_array().cloned().unwrap_or_default(),
            Err(e) => {
                self.say(format!("the stored bytes: {e}"));
                return;
            }
        };
        let row = rows.iter().find(|r| {
            r.get("batch_id").and_then(Value::as_str) == Some(batch)
                && r.get("index").and_then(Value::as_u64) == index.map(u64::from)
        });
        let Some(row) = row else {
            self.say(
                "the store has no copy of it yet (written within seconds): Esc, then Enter again",
            );
            return;
        };
        let raw = row
            .get("raw")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let truncated = row
            .get("truncated")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut opened = None;
        for stack in &mut self.stacks {
            for screen in stack.iter_mut() {
                if let Screen::Malformed { item, .. } = screen {
                    if item.batch_id == batch && item.index == index && raw.len() > item.raw.len() {
                        item.raw = raw.clone();
                        opened = Some((**item).clone());
                    }
                }
            }
        }
        let Some(item) = opened else {
            // The store has no more than the row already shows (it keeps the first
            // `ingest.quarantine_raw_cap_bytes` of one event).
            let size = row
                .get("raw_size")
                .and_then(Value::as_u64)
                .unwrap_or_default();
            self.say(format!(
                "the store keeps the first {} of {size} bytes",
                raw.len()
            ));
            return;
        };
        let scroll = self.fault_scroll(&item);
        for stack in &mut self.stacks {
            if let Some(Screen::Malformed { item: i, scroll: s }) = stack.last_mut() {
                if i.batch_id == batch && i.index == index {
                    *s = scroll;
                }
            }
        }
        if truncated {
            self.say(format!(
                "the store keeps the first {} of {} bytes",
                raw.len(),
                item.raw_size
            ));
        } else {
            self.say(format!("all {} bytes loaded from the store", raw.len()));
        }
    }

    pub(super) fn fetch_older(&mut self) -> Vec<Command> {
        let older = &self.live.older;
        if older.loading || older.exhausted || !self.live_is_connected() {
            return Vec::new();
        }
        let oldest = older
            .rows
            .first()
            .or_else(|| self.live.events.items().next())
            .map(|r| r.ev.timestamp.clone());
        // A cursor continues the store's own pages; without one, older than the oldest shown.
        let (cursor, until_ms) = match (&older.cursor, oldest) {
            (Some(c), _) => (Some(c.clone()), None),
            (None, Some(t)) => (None, parse_timestamp_str(&t)),
            (None, None) => (None, None),
        };
        let f = &self.filter;
        let filter = EventFilter {
            // Type names are lower case: the server matches them exactly, the tail does not.
            event_type: f.event_type.as_ref().map(|t| t.to_ascii_lowercase()),
            // `name:` matches a part of the name here, the store an exact name: filtered here.
            environment: f.environment.clone(),
            trace_id: f.trace_id.clone(),
            application: f.application.clone(),
            organization: f.organization.clone(),
            is_error: f.is_error.then_some(true),
            until_ms,
            limit: Some(100),
            cursor,
            ..EventFilter::default()
        };
        self.live.older.loading = true;
        self.say("loading older events from the store…");
        vec![self.query(Query::Events(filter), Pending::Older)]
    }

    /// Asks the stored quarantine for the page of rejections before the oldest one held
    /// (newest first, the filter's type and reason applied by the server).
    pub(super) fn fetch_older_malformed(&mut self) -> Vec<Command> {
        let older = &self.live.older_malformed;
        if older.loading || !self.live_is_connected() {
            return Vec::new();
        }
        let until_ms = older.until_ms.or_else(|| {
            older
                .rows
                .first()
                .or_else(|| self.live.malformed.items().next())
                .and_then(|m| parse_timestamp_str(&m.received_at))
                // Inclusive of the oldest held row's millisecond: its neighbours may share it.
                .map(|t| t + 1)
        });
        let f = &self.filter;
        let filter = MalformedFilter {
            event_type: f.event_type.as_ref().map(|t| t.to_ascii_lowercase()),
            reason: self
                .reason
                .map(str::to_owned)
                .or_else(|| f.reason.as_ref().map(|r| r.to_ascii_lowercase())),
            application: f.application.clone(),
            until_ms,
            limit: Some(MALFORMED_PAGE),
            ..MalformedFilter::default()
        };
        self.live.older_malformed.loading = true;
        self.say("loading older rejections from the store…");
        vec![self.query(Query::Malformed(filter), Pending::OlderMalformed)]
    }

    pub(super) fn on_older_malformed(&mut self, data: Result<Value, String>) {
        self.live.older_malformed.loading = false;
        let page: Vec<TailMalformed> = match data {
            Ok(v) => v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| serde_json::from_value(r.clone()).ok())
                        .collect()
                })
                .unwrap_or_default(),
            Err(e) => {
                self.say(format!("older rejections: {e}"));
                return;
            }
        };
        let full = page.len() >= MALFORMED_PAGE as usize;
        let oldest_ms = page
            .iter()
            .filter_map(|m| parse_timestamp_str(&m.received_at))
            .min();
        let same =
            |a: &TailMalformed, b: &TailMalformed| a.batch_id == b.batch_id && a.index == b.index;
        let s = &self.live;
        let mut fresh: Vec<TailMalformed> = page
            .into_iter()
            .filter(|m| {
                !s.older_malformed.rows.iter().any(|o| same(o, m))
                    && !s.malformed.items().any(|o| same(o, m))
            })
            .collect();
        fresh.reverse();
        let added = fresh.len();
        let older = &mut self.live.older_malformed;
        older.exhausted = !full || older.rows.len() + added >= OLDER_CAP;
        // The next page: before this page's oldest millisecond, that millisecond included
        // unless this page brought nothing new (then past it, so paging moves on).
        if let Some(t) = oldest_ms {
            older.until_ms = Some(if added == 0 { t } else { t + 1 });
        }
        fresh.append(&mut older.rows);
        older.rows = fresh;
        let exhausted = older.exhausted;
        if let Some(f) = &mut self.frozen {
            f.state.older_malformed = self.live.older_malformed.clone();
        }
        if exhausted {
            self.say(format!(
                "{added} older rejections loaded: the store has no more before them"
            ));
        } else {
            self.say(format!("{added} older rejections loaded from the store"));
        }
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
        // An event is (organization, application, id): two tenants may share an id. A tail
        // event from a server of before that carries no organization, and matches any.
        let same = |a: &TailEvent, b: &TailEvent| {
            a.id == b.id
                && a.application == b.application
                && (a.organization == b.organization
                    || a.organization.is_empty()
                    || b.organization.is_empty())
        };
        let known = |e: &TailEvent, s: &crate::state::FeedState| {
            s.older.rows.iter().any(|r| same(&r.ev, e)) || s.events.items().any(|r| same(&r.ev, e))
        };
        let mut fresh: Vec<EventRow> = events
            .into_iter()
            .filter(|e| !known(e, &self.live))
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
        self.say(format!("{added} older events loaded from the store"));
    }
}
