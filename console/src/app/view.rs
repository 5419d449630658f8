//! What the user is looking at: the six views, the drill-down screens stacked on each, and the
//! position in each list.

use std::collections::BTreeSet;

use baddybugs_common::protocol::{PipelineTrace, TailEvent, TailMalformed, Waterfall};

/// The six views, in key order (1–6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    Overview,
    Types,
    Events,
    Malformed,
    Waterfalls,
    Pipeline,
}

impl View {
    pub(crate) const ALL: [View; 6] = [
        View::Overview,
        View::Types,
        View::Events,
        View::Malformed,
        View::Waterfalls,
        View::Pipeline,
    ];

    pub(crate) fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    pub(crate) fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Types => "Types",
            View::Events => "Events",
            View::Malformed => "Malformed",
            View::Waterfalls => "Waterfalls",
            View::Pipeline => "Pipeline",
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Types => "types",
            View::Events => "events",
            View::Malformed => "malformed",
            View::Waterfalls => "waterfalls",
            View::Pipeline => "pipeline",
        }
    }
}

/// A position in a list that can follow its newest entry (the bottom).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListPos {
    pub(crate) selected: usize,
    pub(crate) follow: bool,
}

impl Default for ListPos {
    fn default() -> Self {
        ListPos {
            selected: 0,
            follow: true,
        }
    }
}

impl ListPos {
    /// Where each view's list starts: tails follow their newest entry, tables start at the top.
    pub(crate) fn initial() -> [ListPos; 6] {
        let mut all = [ListPos::default(); 6];
        all[View::Types.index()].follow = false;
        all
    }

    /// The selected index in a list of `len` entries.
    pub(crate) fn index(&self, len: usize) -> usize {
        if self.follow {
            len.saturating_sub(1)
        } else {
            self.selected.min(len.saturating_sub(1))
        }
    }

    /// Moves by `delta`; going up stops following, reaching the bottom does not resume it
    /// (`G` does).
    pub(crate) fn step(&mut self, len: usize, delta: isize) {
        let cur = self.index(len) as isize;
        let max = len.saturating_sub(1) as isize;
        self.selected = (cur + delta).clamp(0, max.max(0)) as usize;
        if delta < 0 {
            self.follow = false;
        }
    }

    pub(crate) fn bottom(&mut self) {
        self.follow = true;
    }
}

/// A drill-down screen on top of a view.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Screen {
    /// One accepted event, every field.
    Event { event: Box<TailEvent>, scroll: u16 },
    /// The events of one trace (from the store) and, when known, its waterfall.
    Trace {
        trace_id: String,
        loading: bool,
        error: Option<String>,
        events: Vec<TailEvent>,
        waterfall: Option<Box<Waterfall>>,
        pos: ListPos,
    },
    /// One rejected event: reasons above the original bytes.
    Malformed {
        item: Box<TailMalformed>,
        scroll: u16,
    },
    /// One waterfall, a span selected, some folded.
    Waterfall {
        waterfall: Box<Waterfall>,
        selected: usize,
        folded: BTreeSet<usize>,
        /// The pipeline trace it was drawn from, for its header.
        trace: Option<Box<PipelineTrace>>,
    },
}

/// Columns the Types table sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeSort {
    Name,
    Rate,
    Total,
    Rejected,
    Duplicates,
    P99,
}

impl TypeSort {
    pub(crate) const ALL: [TypeSort; 6] = [
        TypeSort::Name,
        TypeSort::Rate,
        TypeSort::Total,
        TypeSort::Rejected,
        TypeSort::Duplicates,
        TypeSort::P99,
    ];

    pub(crate) fn next(self) -> Self {
        let i = TypeSort::ALL.iter().position(|s| *s == self).unwrap_or(0);
        TypeSort::ALL[(i + 1) % TypeSort::ALL.len()]
    }
}

/// Spans visible in a waterfall once folded spans hide their descendants.
pub(crate) fn visible_spans(w: &Waterfall, folded: &BTreeSet<usize>) -> Vec<usize> {
    let mut out = Vec::with_capacity(w.spans.len());
    let mut hide_deeper_than: Option<u8> = None;
    for (i, s) in w.spans.iter().enumerate() {
        if let Some(d) = hide_deeper_than {
            if s.depth > d {
                continue;
            }
            hide_deeper_than = None;
        }
        out.push(i);
        if folded.contains(&i) {
            hide_deeper_than = Some(s.depth);
        }
    }
    out
}

/// Whether span `i` has children (the next span is deeper).
pub(crate) fn has_children(w: &Waterfall, i: usize) -> bool {
    match (w.spans.get(i), w.spans.get(i + 1)) {
        (Some(a), Some(b)) => b.depth > a.depth,
        _ => false,
    }
}
