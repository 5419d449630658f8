//! The dedup window's exact tier: the newest confirmed ids with their expiry, oldest forgotten
//! first, in about 40 bytes per id.
//!
//! Issue 18 (memory): the tier was a `HashMap<id, expiry>` beside a `VecDeque<(id, expiry)>`
//! for the order, each id stored twice; at the default 500k ids the map sat just past a
//! power-of-two bucket count, so the pair took 37 MiB (~78 bytes per id). Here the ids and their
//! expiries live once, in the order queue ([`Entry`], 24 bytes), and the map is only an index
//! into it: a [`HashTable`] of 32-bit positions (4 bytes and a control byte per bucket). The
//! ids are already uniformly distributed keyed hashes, so the index hashes nothing again.
//!
//! Written on `hashbrown`'s `HashTable` rather than a hand-rolled table: only the layout (what
//! is stored where) is this module's, the probing and growth are hashbrown's.

use std::collections::VecDeque;

use hashbrown::HashTable;

/// 128 bits of (tenant, id), as two 64-bit halves: 8-byte aligned, so an [`Entry`] takes 24
/// bytes where a `u128` key (16-byte aligned) would pad it to 32. The halves come from keyed
/// hashes, so either one is a uniform hash of the id.
pub(super) type IdHash = [u64; 2];

/// One confirmed id and when it stops being a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    /// The id.
    pub id: IdHash,
    /// When it leaves the window (ms since the epoch).
    pub expiry_ms: i64,
}

/// Confirmed ids in the order confirmed, with an index by id.
///
/// Every entry pushed gets the next sequence number; the queue's front is `head`. The index
/// holds, for each id, the low 32 bits of its newest entry's sequence number: the queue never
/// holds 2^32 entries (`DedupWindow` caps `max_ids` below that), so those bits name one entry of
/// the queue. An id confirmed again gets a new entry; its old one stays in the queue, no longer
/// indexed, until it reaches the front.
#[derive(Debug, Default)]
pub(super) struct ExactTier {
    queue: VecDeque<Entry>,
    /// Sequence number of `queue.front()`.
    head: u64,
    index: HashTable<u32>,
}

/// The most entries the queue may hold: positions are 32-bit.
pub(super) const MAX_ENTRIES: usize = u32::MAX as usize;

impl ExactTier {
    /// An empty tier whose first entry gets sequence number `first_seq` (tests start it near
    /// the 32-bit wrap).
    #[cfg(test)]
    fn starting_at(first_seq: u64) -> ExactTier {
        ExactTier {
            head: first_seq,
            ..ExactTier::default()
        }
    }

    /// Where the entry whose sequence number ends in `seq_low` sits in the queue.
    fn position(head: u64, seq_low: u32) -> usize {
        seq_low.wrapping_sub(head as u32) as usize
    }

    /// The index's hash of an id: its first half, already a keyed hash.
    fn hash(id: &IdHash) -> u64 {
        id[0]
    }

    /// When `id` leaves the window, if the tier holds it.
    pub fn expiry(&self, id: &IdHash) -> Option<i64> {
        let (queue, head) = (&self.queue, self.head);
        self.index
            .find(Self::hash(id), |&s| {
                queue[Self::position(head, s)].id == *id
            })
            .map(|&s| queue[Self::position(head, s)].expiry_ms)
    }

    /// Appends `id` as the newest entry; an entry it already had is no longer its answer.
    pub fn push(&mut self, id: IdHash, expiry_ms: i64) {
        debug_assert!(self.queue.len() < MAX_ENTRIES);
        let seq_low = (self.head + self.queue.len() as u64) as u32;
        self.queue.push_back(Entry { id, expiry_ms });
        let (queue, head) = (&self.queue, self.head);
        let hash = Self::hash(&id);
        match self
            .index
            .find_mut(hash, |&s| queue[Self::position(head, s)].id == id)
        {
            Some(newest) => *newest = seq_low,
            None => {
                self.index.insert_unique(hash, seq_low, |&s| {
                    Self::hash(&queue[Self::position(head, s)].id)
                });
            }
        }
    }

    /// The oldest entry, if any.
    pub fn oldest(&self) -> Option<&Entry> {
        self.queue.front()
    }

    /// Removes the oldest entry (and the id, when that entry is still its newest).
    pub fn pop_oldest(&mut self) -> Option<Entry> {
        let entry = self.queue.pop_front()?;
        let seq_low = self.head as u32;
        self.head += 1;
        if let Ok(indexed) = self
            .index
            .find_entry(Self::hash(&entry.id), |&s| s == seq_low)
        {
            indexed.remove();
        }
        Some(entry)
    }

    /// Ids held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Entries queued (ids held, plus the older entries of ids confirmed again).
    pub fn entries(&self) -> usize {
        self.queue.len()
    }

    /// Bytes allocated now: the index's allocation (`capacity()` would miss the buckets
    /// tombstones hold) and the queue's room.
    pub fn bytes(&self) -> u64 {
        (self.index.allocation_size() + self.queue.capacity() * std::mem::size_of::<Entry>()) as u64
    }

    /// The most bytes a tier holding at most `max_entries` entries allocates, however long it
    /// runs.
    ///
    /// Filling up, the index takes the buckets `max_entries` needs (hashbrown keeps at most 7/8
    /// of a power-of-two bucket count full). Then every forgotten id may leave a tombstone, and
    /// once tombstones use up the room hashbrown rehashes the table in place if the ids fit in
    /// half its capacity, and doubles it otherwise. A table just big enough for `max_entries`
    /// is always more than half full, so a tier that keeps forgetting may end in twice the
    /// buckets a fill takes (a large one does), and stays there
    /// (`the_bound_holds_while_ids_keep_coming_and_going`):
    /// 2^20 buckets for the default 450,000 ids (up to 458,752), 2^21 for 500,000, 5 MiB more.
    /// The queue, a `VecDeque`, has room for the next power of two of its entries.
    pub fn limit_bytes(max_entries: usize) -> u64 {
        let filled = index_buckets(max_entries);
        let buckets = if max_entries <= bucket_capacity(filled) / 2 {
            filled
        } else {
            filled * 2
        };
        table_bytes(bucket_capacity(buckets), max_entries.next_power_of_two())
    }
}

/// Ids a hashbrown table of `buckets` buckets holds before it must grow or rehash.
fn bucket_capacity(buckets: usize) -> usize {
    if buckets < 8 {
        buckets.saturating_sub(1)
    } else {
        buckets / 8 * 7
    }
}

/// Buckets of a hashbrown table with room for `items`.
fn index_buckets(items: usize) -> usize {
    match items {
        0 => 0,
        1..=3 => 4,
        4..=7 => 8,
        _ => (items.saturating_mul(8) / 7).next_power_of_two(),
    }
}

/// Bytes of an index with room for `index_capacity` ids and a queue of `queue_capacity`
/// entries: per index bucket a position and a control byte (plus one group of control bytes),
/// per queue slot an entry.
fn table_bytes(index_capacity: usize, queue_capacity: usize) -> u64 {
    const GROUP_WIDTH: usize = 16;
    let buckets = index_buckets(index_capacity);
    let index = if buckets == 0 {
        0
    } else {
        buckets * (std::mem::size_of::<u32>() + 1) + GROUP_WIDTH
    };
    (index + queue_capacity * std::mem::size_of::<Entry>()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> IdHash {
        // Spread like a real hash, so the index probes as it does in service.
        let mixed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (n >> 7);
        [mixed, n]
    }

    /// Pushes `pushes` ids into a tier that keeps at most `max` entries, as `DedupWindow`
    /// does (room first), and returns the tier and the most bytes it took on the way.
    fn churn(max: usize, pushes: u64) -> (ExactTier, u64) {
        let mut tier = ExactTier::default();
        let mut most = 0;
        for n in 0..pushes {
            while tier.entries() >= max {
                tier.pop_oldest();
            }
            tier.push(id(n), 1);
            most = most.max(tier.bytes());
        }
        (tier, most)
    }

    /// Issue 18: an entry is 24 bytes, and at the default `dedup_max_ids` (450k) the tier is
    /// at most ~40 bytes per id (the map and queue it replaced took ~78), also after it has
    /// forgotten several times its size.
    #[test]
    fn the_tier_takes_under_forty_bytes_per_id_at_the_default_size() {
        let default = crate::config::IngestConfig::default().dedup_max_ids;
        assert_eq!(std::mem::size_of::<Entry>(), 24);
        let limit = ExactTier::limit_bytes(default);
        assert!(
            limit <= default as u64 * 40,
            "{limit} bytes for {default} ids"
        );

        let (tier, most) = churn(default, 4 * default as u64);
        assert_eq!(tier.len(), default);
        assert_eq!(most, limit, "the churn ends at the bound, not above it");
        assert!(tier.bytes() >= default as u64 * 28, "{}", tier.bytes());
    }

    /// A tier that keeps forgetting its oldest ids fills its index with tombstones: hashbrown
    /// then rehashes in place or doubles the table, depending on how full it is. The bound
    /// allows for it (twice the buckets the same ids take when they only arrive), holds over a
    /// long churn, and is what a long churn of a large tier ends with (a server at 500k ids
    /// showed 22 MiB against a stated 17 MiB before the bound said so).
    #[test]
    fn the_bound_holds_while_ids_keep_coming_and_going() {
        for (max, reached) in [(1_000, false), (20_000, true)] {
            let limit = ExactTier::limit_bytes(max);
            let (tier, most) = churn(max, 20 * max as u64);
            assert_eq!(tier.len(), max);
            assert!(most <= limit, "{max} ids: {most} bytes > the bound {limit}");
            let queue = (max.next_power_of_two() * std::mem::size_of::<Entry>()) as u64;
            let filled = table_bytes(max, 0) - 16;
            assert_eq!(
                limit - queue - 16,
                2 * filled,
                "{max} ids: twice the buckets of a fill"
            );
            if reached {
                assert_eq!(most, limit, "{max} ids: a long churn doubles the index");
            }
        }
    }

    #[test]
    fn ids_are_found_until_their_entry_leaves() {
        let mut tier = ExactTier::default();
        for n in 0..1_000 {
            tier.push(id(n), n as i64);
        }
        assert_eq!(tier.expiry(&id(7)), Some(7));
        assert_eq!(tier.expiry(&id(1_000)), None);
        for n in 0..10 {
            assert_eq!(tier.pop_oldest().map(|e| e.id), Some(id(n)));
        }
        assert_eq!(tier.expiry(&id(7)), None, "popped");
        assert_eq!(tier.expiry(&id(10)), Some(10));
        assert_eq!((tier.len(), tier.entries()), (990, 990));
    }

    /// An id confirmed again answers with its newest expiry, and popping its older entry
    /// forgets nothing.
    #[test]
    fn an_id_confirmed_again_keeps_its_newest_entry() {
        let mut tier = ExactTier::default();
        tier.push(id(1), 100);
        tier.push(id(2), 100);
        tier.push(id(1), 500);
        assert_eq!((tier.len(), tier.entries()), (2, 3));
        assert_eq!(tier.expiry(&id(1)), Some(500));
        assert_eq!(tier.pop_oldest().map(|e| e.expiry_ms), Some(100));
        assert_eq!(
            tier.expiry(&id(1)),
            Some(500),
            "the old entry left, not the id"
        );
        tier.pop_oldest();
        assert_eq!(tier.expiry(&id(2)), None);
        tier.pop_oldest();
        assert_eq!(tier.expiry(&id(1)), None);
        assert_eq!((tier.len(), tier.entries()), (0, 0));
    }

    /// Sequence numbers past 2^32 (a long-running server) still name the right entries.
    #[test]
    fn positions_survive_the_32_bit_wrap() {
        let mut tier = ExactTier::starting_at(u64::from(u32::MAX) - 50);
        for n in 0..200 {
            tier.push(id(n), n as i64);
            if tier.entries() > 64 {
                tier.pop_oldest();
            }
        }
        assert_eq!(tier.len(), 64);
        for n in 136..200 {
            assert_eq!(tier.expiry(&id(n)), Some(n as i64), "id {n}");
        }
        assert_eq!(tier.expiry(&id(135)), None);
    }
}
