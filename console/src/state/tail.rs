//! A bounded tail: the newest `cap` entries of a live stream, with markers where the stream had
//! a gap (a reconnect, messages the server dropped) so a reader never mistakes a hole for calm.

use std::collections::VecDeque;

/// One line of a tail: an item or a marker explaining a discontinuity.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry<T> {
    Item(T),
    Marker(String),
}

impl<T> Entry<T> {
    pub(crate) fn item(&self) -> Option<&T> {
        match self {
            Entry::Item(t) => Some(t),
            Entry::Marker(_) => None,
        }
    }
}

/// The node of the fleet an entry came from (0 for a console watching one server).
pub(crate) type NodeIx = u16;

/// The newest `cap` entries, oldest first, each with its insertion number and the node it came
/// from.
#[derive(Debug, Clone)]
pub(crate) struct Tail<T> {
    entries: VecDeque<(u64, NodeIx, Entry<T>)>,
    cap: usize,
    /// The insertion number of the next entry: never reused, not even after `clear`, so a list
    /// position anchored on an entry can tell it from any entry that arrives later.
    next: u64,
    /// Items pushed since the last reset (including those evicted).
    pub(crate) pushed: u64,
}

impl<T> Tail<T> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(cap.min(1024)),
            cap: cap.max(1),
            next: 0,
            pushed: 0,
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        self.push_from(0, item);
    }

    /// Adds an item that node `node` of a fleet sent.
    pub(crate) fn push_from(&mut self, node: NodeIx, item: T) {
        self.pushed += 1;
        self.insert(node, Entry::Item(item));
    }

    /// Adds a marker, unless the newest entry already is one (two gaps in a row read as one).
    pub(crate) fn mark(&mut self, text: impl Into<String>) {
        if matches!(self.entries.back(), Some((_, _, Entry::Marker(_))) | None) {
            if let Some((_, _, Entry::Marker(last))) = self.entries.back_mut() {
                *last = text.into();
            }
            return;
        }
        self.insert(0, Entry::Marker(text.into()));
    }

    fn insert(&mut self, node: NodeIx, entry: Entry<T>) {
        while self.entries.len() >= self.cap {
            self.entries.pop_front();
        }
        self.entries.push_back((self.next, node, entry));
        self.next += 1;
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.pushed = 0;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry<T>> + '_ {
        self.entries.iter().map(|(_, _, e)| e)
    }

    /// The entries with their insertion numbers (increasing, stable while an entry is kept) and
    /// the node each came from.
    pub(crate) fn numbered(
        &self,
    ) -> impl DoubleEndedIterator<Item = (u64, NodeIx, &Entry<T>)> + '_ {
        self.entries.iter().map(|(n, node, e)| (*n, *node, e))
    }

    /// The newest item, when the newest entry is one.
    pub(crate) fn newest(&self) -> Option<&T> {
        self.entries.back().and_then(|(_, _, e)| e.item())
    }

    pub(crate) fn items(&self) -> impl DoubleEndedIterator<Item = &T> + '_ {
        self.entries().filter_map(Entry::item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_keeps_newest() {
        let mut t = Tail::new(3);
        for i in 0..10 {
            t.push(i);
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.items().copied().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(t.pushed, 10);
        let numbers: Vec<u64> = t.numbered().map(|(n, _, _)| n).collect();
        assert_eq!(
            numbers,
            vec![7, 8, 9],
            "an entry keeps its number as older ones go"
        );
        t.clear();
        t.push(10);
        assert_eq!(
            t.numbered().next().map(|(n, _, _)| n),
            Some(10),
            "never reused"
        );
    }

    #[test]
    fn markers_do_not_stack_and_not_first() {
        let mut t: Tail<u32> = Tail::new(10);
        t.mark("nothing before");
        assert_eq!(t.len(), 0);
        t.push(1);
        t.mark("gap a");
        t.mark("gap b");
        assert_eq!(t.len(), 2);
        assert_eq!(t.entries().last(), Some(&Entry::Marker("gap b".into())));
        t.clear();
        assert_eq!((t.len(), t.pushed), (0, 0));
    }

    #[test]
    fn an_entry_keeps_the_node_it_came_from() {
        let mut t = Tail::new(10);
        t.push_from(2, "b");
        t.push("a");
        let nodes: Vec<NodeIx> = t.numbered().map(|(_, node, _)| node).collect();
        assert_eq!(nodes, vec![2, 0]);
        assert_eq!(t.newest(), Some(&"a"));
    }
}
