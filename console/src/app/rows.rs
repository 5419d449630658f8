//! The rows each list shows, after the filter: one function per view, shared by navigation
//! (in `App`) and rendering (in `ui/`), so both always agree on what index means what.

use baddybugs_common::protocol::{PipelineTrace, TailEvent, TailMalformed, TypeStats, Waterfall};

use super::view::TypeSort;
use crate::state::filter::Filter;
use crate::state::tail::{Entry, NodeIx, Tail};
use crate::state::{EventRow, FeedState};

/// What a row shows: an item, or a marker where the stream had a gap.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shown<'a, T> {
    Item(&'a T),
    Marker(&'a str),
}

/// A row and, in lists that grow live, its key: stable while the row is in the list and
/// increasing from the oldest row to the newest, so a selection can hold on to a row (not to an
/// index) while rows arrive below and old ones are evicted above. Lists sorted by value have no
/// keys; their selection is an index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row<'a, T> {
    pub(crate) key: Option<i64>,
    pub(crate) shown: Shown<'a, T>,
    /// The fleet node a live row came from; `None` for rows read from the store.
    pub(crate) node: Option<NodeIx>,
}

impl<'a, T> Row<'a, T> {
    pub(crate) fn item(&self) -> Option<&'a T> {
        match self.shown {
            Shown::Item(t) => Some(t),
            Shown::Marker(_) => None,
        }
    }

    fn unkeyed(item: &'a T) -> Self {
        Row {
            key: None,
            shown: Shown::Item(item),
            node: None,
        }
    }
}

/// The keys of `rows`, for the list position.
pub(crate) fn keys<T>(rows: &[Row<'_, T>]) -> Vec<Option<i64>> {
    rows.iter().map(|r| r.key).collect()
}

/// A tail's rows, keyed by the tail's insertion numbers (never negative); in a fleet, only
/// the rows of the nodes `node:` names.
fn rows<'a, T: 'a, U: 'a>(
    s: &'a FeedState,
    f: &Filter,
    tail: &'a Tail<T>,
    keep: impl Fn(&T) -> bool,
    map: impl Fn(&'a T) -> &'a U,
) -> Vec<Row<'a, U>> {
    tail.numbered()
        .filter_map(|(n, node, e)| {
            let shown = match e {
                Entry::Item(t) if node_matches(s, f, node) && keep(t) => Shown::Item(map(t)),
                Entry::Item(_) => return None,
                Entry::Marker(m) => Shown::Marker(m.as_str()),
            };
            let key = Some(i64::try_from(n).unwrap_or(i64::MAX));
            Some(Row {
                key,
                shown,
                node: (!s.node_names.is_empty()).then_some(node),
            })
        })
        .collect()
}

/// Whether a live row of `node` passes the filter's `node:` term (a case-insensitive substring
/// of the node's name); always true outside a fleet.
fn node_matches(s: &FeedState, f: &Filter, node: NodeIx) -> bool {
    let Some(want) = &f.node else {
        return true;
    };
    s.node_names
        .get(node as usize)
        .is_none_or(|name| name.to_ascii_lowercase().contains(want.as_str()))
}

/// Rows fetched from the store, oldest first, before a live tail: a row's key counts back from
/// the newest stored row (-1, -2, …), below every live key, so pages added at the front keep
/// the keys of the rows already shown.
fn stored<'a, T, U>(
    older: &'a [T],
    keep: impl Fn(&T) -> bool,
    map: impl Fn(&'a T) -> &'a U,
) -> Vec<Row<'a, U>> {
    let n = older.len() as i64;
    older
        .iter()
        .enumerate()
        .filter(|(_, t)| keep(t))
        .map(|(i, t)| Row {
            key: Some(i as i64 - n),
            shown: Shown::Item(map(t)),
            node: None,
        })
        .collect()
}

/// Stored older events (oldest first), then the live tail. Older pages are added at the front,
/// so a stored row's key counts back from the newest stored row: -1, -2, … (below every live key).
pub(crate) fn events<'a>(s: &'a FeedState, f: &Filter) -> Vec<Row<'a, TailEvent>> {
    let keep = |r: &EventRow| f.matches_event(&r.ev, &r.hay);
    // Stored rows do not say which node took them: a `node:` filter shows live rows only.
    let mut out = match f.node {
        None => stored(&s.older.rows, keep, |r| &r.ev),
        Some(_) => Vec::new(),
    };
    out.extend(rows(s, f, &s.events, keep, |r| &r.ev));
    out
}

/// Stored older rejections (oldest first, keyed -1, -2, … back from the newest, as
/// [`events`]), then the live tail.
pub(crate) fn malformed<'a>(
    s: &'a FeedState,
    f: &Filter,
    reason: Option<&str>,
) -> Vec<Row<'a, TailMalformed>> {
    let keep = |m: &TailMalformed| {
        f.matches_malformed(m)
            && reason.is_none_or(|r| m.reasons.iter().any(|p| p.code.as_str() == r))
    };
    let mut out = match f.node {
        None => stored(&s.older_malformed.rows, keep, |m| m),
        Some(_) => Vec::new(),
    };
    out.extend(rows(s, f, &s.malformed, keep, |m| m));
    out
}

/// The distinct reason codes of one rejection, in order.
pub(crate) fn unique_codes(m: &TailMalformed) -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = Vec::new();
    for p in &m.reasons {
        if !codes.contains(&p.code.as_str()) {
            codes.push(p.code.as_str());
        }
    }
    codes
}

/// Reason codes present in the malformed tail, with counts, most frequent first.
pub(crate) fn reason_counts(s: &FeedState) -> Vec<(&'static str, usize)> {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for m in s.malformed.items() {
        for code in unique_codes(m) {
            match counts.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => counts.push((code, 1)),
            }
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
}

pub(crate) fn lifecycles<'a>(s: &'a FeedState, f: &Filter) -> Vec<Row<'a, Waterfall>> {
    let same = |want: &Option<String>, have: &str| {
        want.as_ref().is_none_or(|v| v.eq_ignore_ascii_case(have))
    };
    let keep = |w: &Waterfall| {
        f.trace_id
            .as_ref()
            .is_none_or(|t| w.trace_id.as_ref() == Some(t))
            && same(&f.application, &w.application)
            && same(&f.organization, &w.organization)
            && crate::state::filter::status_matches(&f.status, w.status_code)
            && (!f.is_error || w.status_code.is_some_and(|c| c >= 500))
            && f.words.iter().all(|word| {
                w.url
                    .as_deref()
                    .unwrap_or("")
                    .to_lowercase()
                    .contains(word.as_str())
                    || w.id.to_lowercase().contains(word.as_str())
            })
    };
    rows(s, f, &s.lifecycles, keep, |w| w)
}

/// The live pipeline traces, or, in "slowest and failed first" order, those and the stored
/// ones merged: failed first, then by duration. In a fleet, `node:` keeps one node's live rows.
pub(crate) fn pipeline<'a>(
    s: &'a FeedState,
    f: &Filter,
    slowest: bool,
    stored: &'a [PipelineTrace],
) -> Vec<Row<'a, PipelineTrace>> {
    if !slowest {
        return rows(s, f, &s.pipeline, |_| true, |p| p);
    }
    let fleet = !s.node_names.is_empty();
    let mut all: Vec<(Option<NodeIx>, &PipelineTrace)> = s
        .pipeline
        .numbered()
        .filter(|(_, node, _)| node_matches(s, f, *node))
        .filter_map(|(_, node, e)| Some((fleet.then_some(node), e.item()?)))
        .collect();
    if f.node.is_none() {
        for t in stored {
            if !all.iter().any(|(_, a)| a.batch_id == t.batch_id) {
                all.push((None, t));
            }
        }
    }
    all.sort_by(|(_, a), (_, b)| {
        failed(b)
            .cmp(&failed(a))
            .then(b.total_ms.total_cmp(&a.total_ms))
            .then(a.batch_id.cmp(&b.batch_id))
    });
    all.into_iter()
        .map(|(node, t)| Row {
            node,
            ..Row::unkeyed(t)
        })
        .collect()
}

/// A batch that failed: answered other than 2xx, or refused by the store. A batch with some
/// rejected events (`partial`) is not a failure. (A stored trace has no status: 0.)
pub(crate) fn failed(t: &PipelineTrace) -> bool {
    (t.status != 0 && !(200..300).contains(&t.status)) || t.outcome == "refused"
}

/// Every type of the latest snapshot, sorted.
pub(crate) fn types(s: &FeedState, sort: TypeSort, descending: bool) -> Vec<&TypeStats> {
    let Some(m) = &s.metrics else {
        return Vec::new();
    };
    let mut v: Vec<&TypeStats> = m.types.iter().collect();
    v.sort_by(|a, b| {
        let ord = match sort {
            TypeSort::Name => a.event_type.cmp(&b.event_type),
            TypeSort::Rate => a.rate_10s.total_cmp(&b.rate_10s),
            TypeSort::Total => a.received.cmp(&b.received),
            TypeSort::Rejected => a.rejected.cmp(&b.rejected),
            TypeSort::Duplicates => a.duplicates.cmp(&b.duplicates),
            TypeSort::P99 => a
                .duration_p99_ms
                .unwrap_or(-1.0)
                .total_cmp(&b.duration_p99_ms.unwrap_or(-1.0)),
        };
        let ord = if descending { ord.reverse() } else { ord };
        ord.then(a.event_type.cmp(&b.event_type))
    });
    v
}
