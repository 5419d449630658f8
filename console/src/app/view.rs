//! What the user is looking at: the seven views, the drill-down screens stacked on each, and the
//! position in each list.

use std::collections::BTreeSet;

use baddybugs_common::protocol::{PipelineTrace, TailEvent, TailMalformed, Waterfall};

/// The seven views, in key order (1–7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    Overview,
    Types,
    Events,
    Malformed,
    Waterfalls,
    Pipeline,
    Drift,
}

impl View {
    pub(crate) const ALL: [View; 7] = [
        View::Overview,
        View::Types,
        View::Events,
        View::Malformed,
        View::Waterfalls,
        View::Pipeline,
        View::Drift,
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
            View::Drift => "Drift",
        }
    }

    /// Rows of a list this view shows in a body `body` rows tall: less the list's borders and
    /// header, and Malformed's line of reasons (as drawn in `ui/`).
    pub(crate) fn list_rows(self, body: usize) -> usize {
        let chrome = if self == View::Malformed { 4 } else { 3 };
        body.saturating_sub(chrome).max(1)
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Types => "types",
            View::Events => "events",
            View::Malformed => "malformed",
            View::Waterfalls => "waterfalls",
            View::Pipeline => "pipeline",
            View::Drift => "drift",
        }
    }
}

/// A position in a list that can follow its newest entry (the bottom).
///
/// In a list with keys (every live tail) the selection and the first visible row are held by
/// key, so they stay on the same rows while new rows arrive and old ones are evicted; in a list
/// without keys (sorted tables) they are indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListPos {
    pub(crate) selected: usize,
    pub(crate) follow: bool,
    /// The key of the selected row.
    pub(crate) anchor: Option<i64>,
    /// The key of the first visible row.
    pub(crate) top: Option<i64>,
    /// The newest key when following stopped: rows with a greater key arrived since.
    pub(crate) seen: Option<i64>,
}

impl Default for ListPos {
    fn default() -> Self {
        ListPos {
            selected: 0,
            follow: true,
            anchor: None,
            top: None,
            seen: None,
        }
    }
}

/// The first row whose key is at least `key` (the row itself, or, once it is gone, the oldest
/// row after it); `None` when the list has no keys.
fn find(keys: &[Option<i64>], key: i64) -> Option<usize> {
    if keys.iter().all(Option::is_none) {
        return None;
    }
    Some(
        keys.iter()
            .position(|k| k.is_some_and(|k| k >= key))
            .unwrap_or(keys.len().saturating_sub(1)),
    )
}

impl ListPos {
    /// Where each view's list starts: tails follow their newest entry, tables start at the top.
    pub(crate) fn initial() -> [ListPos; 7] {
        let mut all = [ListPos::default(); 7];
        all[View::Types.index()].follow = false;
        all[View::Drift.index()].follow = false;
        all
    }

    /// A list that starts at its top and does not follow.
    pub(crate) fn at_top() -> ListPos {
        ListPos {
            follow: false,
            ..ListPos::default()
        }
    }

    /// The selected index in a list of `len` entries without keys.
    pub(crate) fn index(&self, len: usize) -> usize {
        self.index_in(&vec![None; len])
    }

    /// The selected index in a list with these keys.
    pub(crate) fn index_in(&self, keys: &[Option<i64>]) -> usize {
        let last = keys.len().saturating_sub(1);
        if self.follow {
            return last;
        }
        self.anchor
            .and_then(|a| find(keys, a))
            .unwrap_or(self.selected.min(last))
    }

    /// The first visible row of a list with these keys, `height` rows tall: the same row as
    /// before unless the selection left the window.
    pub(crate) fn start_in(&self, keys: &[Option<i64>], height: usize) -> usize {
        let len = keys.len();
        let sel = self.index_in(keys);
        if height == 0 || len <= height {
            return 0;
        }
        let bottom_aligned = (sel + 1).saturating_sub(height).min(len - height);
        let top = match self.top.and_then(|t| find(keys, t)) {
            Some(top) if !self.follow => top,
            _ => return bottom_aligned,
        };
        let top = if sel < top {
            sel
        } else if sel >= top + height {
            sel + 1 - height
        } else {
            top
        };
        top.min(len - height)
    }

    /// Moves by `delta` in a list of `len` entries without keys.
    pub(crate) fn step(&mut self, len: usize, delta: isize) {
        self.step_in(&vec![None; len], delta, len.max(1));
    }

    /// Moves by `delta` in a list with these keys, `height` rows visible; going up stops
    /// following, reaching the bottom does not resume it (`G` does).
    pub(crate) fn step_in(&mut self, keys: &[Option<i64>], delta: isize, height: usize) {
        let height = height.max(1);
        let cur = self.index_in(keys);
        let start = self.start_in(keys, height);
        let max = keys.len().saturating_sub(1) as isize;
        let next = (cur as isize + delta).clamp(0, max.max(0)) as usize;
        let start = if next < start {
            next
        } else if next >= start + height {
            next + 1 - height
        } else {
            start
        };
        if delta < 0 && self.follow {
            self.follow = false;
            self.seen = keys.iter().rev().find_map(|k| *k);
        }
        self.selected = next;
        self.anchor = keys.get(next).copied().flatten();
        self.top = keys.get(start).copied().flatten();
    }

    /// Follows the newest entry again.
    pub(crate) fn bottom(&mut self) {
        *self = ListPos::default();
    }

    /// Rows below the selection that arrived since following stopped (0 while following).
    pub(crate) fn new_below(&self, keys: &[Option<i64>]) -> usize {
        let Some(seen) = self.seen.filter(|_| !self.follow) else {
            return 0;
        };
        let sel = self.index_in(keys);
        keys.iter()
            .skip(sel + 1)
            .filter(|k| k.is_some_and(|k| k > seen))
            .count()
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
