//! `App::update(Action) -> Vec<Command>`: the only place the console's state changes.
//!
//! Keys (through the key map), network reports and clock ticks all arrive as [`Action`]s; what
//! the outside world must do (send a query, reconnect, copy, save a file, quit) leaves as
//! [`Command`]s. The clock is injected (`Action::Tick`), so tests and snapshots are exact.

pub(crate) mod detail;
mod drift;
#[cfg(test)]
mod fleet_tests;
mod handlers;
mod queries;
pub(crate) mod rows;
#[cfg(test)]
pub(crate) mod tests;
pub(crate) mod view;

use std::collections::HashMap;
use std::path::PathBuf;

use baddybugs_common::protocol::{ClientMessage, PipelineTrace};
use baddybugs_common::query::Query;

use crate::action::Action;
use crate::keymap::{KeyMap, Mode};
use crate::state::filter::Filter;
use crate::state::fleet::Node;
use crate::state::tail::NodeIx;
use crate::state::{FeedEvent, FeedState, Reply};
use view::{ListPos, Screen, TypeSort, View};

/// What the app asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// Send to the server (dropped with a notice when disconnected). Boxed: a query's filter
    /// is far larger than the other commands.
    Send(Box<ClientMessage>),
    /// Drop the connection (if any) and connect at once.
    Reconnect,
    /// Put text on the clipboard; answer with `Action::Notice` saying what was done. `what`
    /// names the text (`97 bytes`, `the first 16384 of 18334 bytes`).
    Copy {
        text: String,
        what: String,
    },
    /// Write a file; answer with `Action::Notice`.
    Save {
        path: PathBuf,
        contents: String,
    },
    Quit,
}

/// Settings the app needs from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) url: String,
    /// Every node's feed URL in fleet mode (two or more); empty when watching one server.
    pub(crate) fleet: Vec<String>,
    pub(crate) ascii: bool,
    pub(crate) color: bool,
    pub(crate) save_dir: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            url: "ws://127.0.0.1:8080/v1/feed".into(),
            fleet: Vec::new(),
            ascii: false,
            color: true,
            save_dir: PathBuf::from("."),
        }
    }
}

/// A frozen copy of the feed, shown while the live one keeps updating.
#[derive(Debug, Clone)]
pub(crate) struct Frozen {
    pub(crate) state: Box<FeedState>,
    pub(crate) frames_at: u64,
}

/// Query answers the app is waiting for.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Older,
    OlderMalformed,
    /// The stored copy of a rejection (batch id, index in the body).
    Raw(String, Option<u32>),
    Trace(String),
    Traces,
    /// The stored schema drift keys.
    Drift,
    /// A drift key's example event, by id.
    DriftExample(String),
}

/// The console.
#[derive(Debug)]
pub(crate) struct App {
    /// What the views show: the one server's feed, or in fleet mode the nodes' merged.
    pub(crate) live: FeedState,
    /// In fleet mode, each node's own feed; empty when watching one server.
    pub(crate) nodes: Vec<Node>,
    pub(crate) frozen: Option<Frozen>,
    pub(crate) settings: Settings,
    pub(crate) keymap: KeyMap,
    pub(crate) now_ms: i64,
    pub(crate) view: View,
    pub(crate) stacks: [Vec<Screen>; 7],
    pub(crate) pos: [ListPos; 7],
    pub(crate) filter: Filter,
    /// The filter being typed, when `/` is active.
    pub(crate) editing: Option<String>,
    pub(crate) help: bool,
    pub(crate) help_scroll: u16,
    pub(crate) type_sort: TypeSort,
    pub(crate) type_desc: bool,
    pub(crate) reason: Option<&'static str>,
    pub(crate) slowest_first: bool,
    pub(crate) stored_traces: Vec<PipelineTrace>,
    pub(crate) notice: Option<(String, i64)>,
    /// The body's height in rows at the last draw (for PgUp/PgDn).
    pub(crate) page: usize,
    /// The body's height in rows at the last draw (for keeping a list's window in place).
    pub(crate) body: usize,
    /// The width inside a detail screen's border at the last draw (where its text wraps).
    pub(crate) width: usize,
    pub(crate) dirty: bool,
    pub(crate) quit: bool,
    next_id: u64,
    pending: HashMap<String, Pending>,
    /// When the stored drift keys were last asked for (client ms).
    drift_asked_ms: i64,
}

impl App {
    pub(crate) fn new(settings: Settings, keymap: KeyMap, now_ms: i64) -> Self {
        let nodes: Vec<Node> = if settings.fleet.len() > 1 {
            crate::state::fleet::nodes(&settings.fleet)
        } else {
            Vec::new()
        };
        let live = FeedState {
            node_names: nodes.iter().map(|n| n.name.clone()).collect(),
            ..FeedState::default()
        };
        App {
            live,
            nodes,
            frozen: None,
            settings,
            keymap,
            now_ms,
            view: View::Overview,
            stacks: Default::default(),
            pos: ListPos::initial(),
            filter: Filter::default(),
            editing: None,
            help: false,
            help_scroll: 0,
            type_sort: TypeSort::Total,
            type_desc: true,
            reason: None,
            slowest_first: false,
            stored_traces: Vec::new(),
            notice: None,
            page: 10,
            body: 14,
            width: 78,
            dirty: true,
            quit: false,
            next_id: 0,
            pending: HashMap::new(),
            drift_asked_ms: i64::MIN / 2,
        }
    }

    /// The feed as shown: the frozen copy while paused, else the live one.
    pub(crate) fn shown(&self) -> &FeedState {
        self.frozen.as_ref().map_or(&self.live, |f| &f.state)
    }

    pub(crate) fn mode(&self) -> Mode {
        if self.help {
            Mode::Help
        } else if self.editing.is_some() {
            Mode::Filter
        } else {
            Mode::Normal
        }
    }

    pub(crate) fn screen(&self) -> Option<&Screen> {
        self.stacks[self.view.index()].last()
    }

    fn screen_mut(&mut self) -> Option<&mut Screen> {
        self.stacks[self.view.index()].last_mut()
    }

    /// Frames that arrived since the view was frozen.
    pub(crate) fn arrived_while_frozen(&self) -> Option<u64> {
        self.frozen
            .as_ref()
            .map(|f| self.live.frames.saturating_sub(f.frames_at))
    }

    fn say(&mut self, text: impl Into<String>) {
        self.notice = Some((text.into(), self.now_ms));
    }

    fn query(&mut self, query: Query, pending: Pending) -> Command {
        self.next_id += 1;
        let id = format!("c{}", self.next_id);
        self.pending.insert(id.clone(), pending);
        Command::Send(Box::new(ClientMessage::Query { id, query }))
    }

    /// Applies one action; the only place state changes.
    pub(crate) fn update(&mut self, action: Action) -> Vec<Command> {
        if let Action::Tick(now) = action {
            // Ages on screen change once a second; redraw then, not at every tick.
            if now / 1000 != self.now_ms / 1000 {
                self.dirty = true;
            }
            self.now_ms = now;
            if self.notice.as_ref().is_some_and(|(_, at)| now - at > 5_000) {
                self.notice = None;
                self.dirty = true;
            }
            return self.tick_drift();
        }
        self.dirty = true;
        match action {
            Action::Tick(_) => Vec::new(),
            Action::NetFrom(ix, event) if !self.nodes.is_empty() => self.on_node(ix, event),
            Action::NetFrom(_, event) => self.on_net(event),
            Action::Resize => Vec::new(),
            Action::Notice(text) => {
                self.say(text);
                Vec::new()
            }
            Action::ForceQuit => {
                self.quit = true;
                vec![Command::Quit]
            }
            Action::Help => {
                self.help = !self.help;
                self.help_scroll = 0;
                Vec::new()
            }
            Action::Down if self.help => {
                self.help_scroll = self
                    .help_scroll
                    .saturating_add(1)
                    .min(self.keymap.help_lines().len() as u16);
                Vec::new()
            }
            Action::Up if self.help => {
                self.help_scroll = self.help_scroll.saturating_sub(1);
                Vec::new()
            }
            Action::StartFilter => {
                self.editing = Some(self.filter.describe());
                Vec::new()
            }
            Action::FilterChar(c) => {
                if let Some(text) = &mut self.editing {
                    text.push(c);
                }
                Vec::new()
            }
            Action::FilterBackspace => {
                if let Some(text) = &mut self.editing {
                    text.pop();
                }
                Vec::new()
            }
            Action::FilterClear => {
                if let Some(text) = &mut self.editing {
                    text.clear();
                }
                Vec::new()
            }
            Action::FilterSubmit => {
                if let Some(text) = self.editing.take() {
                    self.set_filter(&text);
                }
                Vec::new()
            }
            Action::FilterCancel => {
                self.editing = None;
                Vec::new()
            }
            Action::Freeze => {
                self.toggle_freeze();
                Vec::new()
            }
            Action::Reconnect => {
                self.say("reconnecting now");
                vec![Command::Reconnect]
            }
            other => self.on_key(other),
        }
    }

    pub(crate) fn set_filter(&mut self, text: &str) {
        self.filter = Filter::parse(text);
        self.pos = ListPos::initial();
        // Stored pages were asked for with the old filter (the server applies it).
        self.live.older_malformed = Default::default();
        if let Some(f) = &mut self.frozen {
            f.state.older_malformed = Default::default();
        }
    }

    fn toggle_freeze(&mut self) {
        if self.frozen.take().is_some() {
            self.say("unfrozen: following the feed again");
        } else {
            self.frozen = Some(Frozen {
                state: Box::new(self.live.clone()),
                frames_at: self.live.frames,
            });
        }
    }

    fn on_net(&mut self, event: FeedEvent) -> Vec<Command> {
        let was_restart = self.live.restart.clone();
        let Some(reply) = self.live.apply(event, self.now_ms) else {
            if self.live.restart != was_restart {
                // Counters and tails reset: positions into them are meaningless now.
                self.pos = ListPos::initial();
                self.stored_traces.clear();
                self.say("the server restarted: counters and tails were reset");
            }
            return Vec::new();
        };
        self.on_reply(reply)
    }

    /// A report of node `ix` of the fleet.
    fn on_node(&mut self, ix: NodeIx, event: FeedEvent) -> Vec<Command> {
        let Some(node) = self.nodes.get(ix as usize) else {
            return Vec::new();
        };
        let was_restart = node.state.restart.clone();
        let reply = self
            .live
            .apply_from(&mut self.nodes, ix, event, self.now_ms);
        let node = &self.nodes[ix as usize];
        if node.state.restart != was_restart {
            let text = format!("node {} restarted: its counters start again", node.name);
            self.say(text);
        }
        match reply {
            Some(reply) => self.on_reply(reply),
            None => Vec::new(),
        }
    }

    /// The node queries go to: the first one connected (in a fleet writing to one ClickHouse,
    /// any node reads the same store), else the first.
    pub(crate) fn query_node(&self) -> NodeIx {
        self.nodes.iter().position(Node::is_up).unwrap_or(0) as NodeIx
    }

    fn on_reply(&mut self, reply: Reply) -> Vec<Command> {
        match self.pending.remove(&reply.id) {
            Some(Pending::Older) => self.on_older(reply.data),
            Some(Pending::OlderMalformed) => self.on_older_malformed(reply.data),
            Some(Pending::Raw(batch, index)) => self.on_raw(&batch, index, reply.data),
            Some(Pending::Trace(trace_id)) => self.on_trace(&trace_id, reply.data),
            Some(Pending::Traces) => match reply.data {
                Ok(v) => {
                    self.stored_traces = v
                        .as_array()
                        .map(|a| a.iter().map(crate::state::convert::stored_trace).collect())
                        .unwrap_or_default();
                }
                Err(e) => self.say(format!("pipeline traces: {e}")),
            },
            Some(Pending::Drift) => self.live.drift.answer(reply.data),
            Some(Pending::DriftExample(event_id)) => self.on_drift_example(&event_id, reply.data),
            None => tracing::debug!(id = %reply.id, "answer to an unknown request"),
        }
        Vec::new()
    }
}
