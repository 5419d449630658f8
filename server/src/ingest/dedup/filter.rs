//! The long tier of the dedup window: time slices of Bloom filters within a memory budget.
//!
//! The exact tier ([`super::DedupWindow`]) costs ~40 bytes per id, so at the ~170k events/s
//! the server can acknowledge it holds a few seconds, not the configured ten minutes. This
//! tier remembers every confirmed id of the window in ~2 bytes (a blocked Bloom filter at the
//! configured false-positive rate), so the window holds its time at the peak rate within
//! `ingest.dedup_filter_bytes`. A Bloom filter answers "maybe seen" or "never seen": a "maybe"
//! is never taken as a duplicate by itself (that would lose an event); the submit stage asks
//! the store whether the id is stored (`Store::stored_event_ids`), and only a stored id is a
//! duplicate.
//!
//! Time is cut into [`SLICES`] slices of `window / SLICES`; ids go into the newest slice, and a
//! slice is forgotten once its newest id is older than the window. Each new slice is sized for
//! the rate of the one before (so an idle server holds a few KiB, a busy one what its rate
//! needs); a slice that fills before its time is sealed early and the next one is twice as big.
//! When the slices would exceed the budget, the oldest is forgotten early: the window is then
//! shorter than configured, and [`SlicedFilter::span_ms`] (the `dedup_window_span_seconds`
//! metric) says by how much.
//!
//! Hand-written around `fastbloom` (the filter itself) because the slicing by time, the sizing
//! by observed rate and the budget are the product's dedup semantics, not a filter's.

use std::collections::VecDeque;

use fastbloom::BloomFilter;

/// Slices per window: an id is remembered between `window` and `window + window / SLICES`.
pub const SLICES: i64 = 8;

/// Smallest slice, in ids (a few KiB at the default false-positive rate).
const MIN_CAPACITY: usize = 4096;

/// Headroom over the rate observed in the previous slice.
const RATE_HEADROOM: f64 = 1.25;

/// The long tier's settings.
#[derive(Debug, Clone, Copy)]
pub struct FilterConfig {
    /// Memory budget of all slices together, bytes.
    pub budget_bytes: u64,
    /// False-positive rate of one slice (each "maybe" costs one store lookup).
    pub false_positive_rate: f64,
}

struct Slice {
    filter: BloomFilter,
    /// When its first id could have been inserted.
    started_ms: i64,
    /// When its newest id was inserted.
    newest_ms: i64,
    count: usize,
    capacity: usize,
}

impl Slice {
    fn new(capacity: usize, fp: f64, now_ms: i64) -> Slice {
        Slice {
            filter: BloomFilter::with_false_pos(fp).expected_items(capacity.max(1)),
            started_ms: now_ms,
            newest_ms: now_ms,
            count: 0,
            capacity,
        }
    }

    fn bytes(&self) -> u64 {
        self.filter.num_bits() as u64 / 8
    }
}

/// Time-sliced Bloom filters (see the module doc).
pub struct SlicedFilter {
    window_ms: i64,
    slice_ms: i64,
    config: FilterConfig,
    /// The most ids one slice may be sized for (budget / (SLICES + 1)).
    max_capacity: usize,
    current: Slice,
    /// Sealed slices, oldest first.
    sealed: VecDeque<Slice>,
    /// Ids confirmed before this time may be forgotten (process start, or the newest id of a
    /// slice dropped early for the budget).
    remembered_since_ms: i64,
    dropped_early: u64,
}

impl SlicedFilter {
    /// An empty filter for a window of `window_ms`, started at `now_ms`.
    pub fn new(window_ms: i64, config: FilterConfig, now_ms: i64) -> SlicedFilter {
        let window_ms = window_ms.max(SLICES);
        let probe = Slice::new(MIN_CAPACITY, config.false_positive_rate, now_ms);
        let bytes_per_id = (probe.bytes() as f64 / MIN_CAPACITY as f64).max(0.125);
        let per_slice = config.budget_bytes as f64 / (SLICES + 1) as f64;
        let max_capacity = ((per_slice / bytes_per_id) as usize).max(1);
        SlicedFilter {
            window_ms,
            slice_ms: window_ms / SLICES,
            config,
            max_capacity,
            current: Slice::new(
                MIN_CAPACITY.min(max_capacity),
                config.false_positive_rate,
                now_ms,
            ),
            sealed: VecDeque::new(),
            remembered_since_ms: now_ms,
            dropped_early: 0,
        }
    }

    /// Remembers `hash` (an id confirmed at `now_ms`).
    pub fn insert(&mut self, hash: u64, now_ms: i64) {
        self.rotate(now_ms);
        if self.current.count >= self.current.capacity {
            self.seal(now_ms);
        }
        self.current.filter.insert_hash(hash);
        self.current.count += 1;
        self.current.newest_ms = self.current.newest_ms.max(now_ms);
    }

    /// Whether `hash` may have been inserted within the window (false: it was not).
    pub fn may_contain(&mut self, hash: u64, now_ms: i64) -> bool {
        self.rotate(now_ms);
        self.current.count > 0 && self.current.filter.contains_hash(hash)
            || self.sealed.iter().any(|s| s.filter.contains_hash(hash))
    }

    /// How far back every confirmed id is remembered: the window, or less after a restart
    /// or when the budget made the oldest slice go early.
    pub fn span_ms(&self, now_ms: i64) -> i64 {
        (now_ms - self.remembered_since_ms).clamp(0, self.window_ms)
    }

    /// Bytes held by the slices.
    pub fn bytes(&self) -> u64 {
        self.current.bytes() + self.sealed.iter().map(Slice::bytes).sum::<u64>()
    }

    /// Ids held (within the window, in every slice).
    pub fn ids(&self) -> u64 {
        (self.current.count + self.sealed.iter().map(|s| s.count).sum::<usize>()) as u64
    }

    /// Slices forgotten before their time to stay within the budget.
    pub fn dropped_early(&self) -> u64 {
        self.dropped_early
    }

    /// Seals the current slice when its time is up; forgets slices older than the window.
    fn rotate(&mut self, now_ms: i64) {
        if now_ms - self.current.started_ms >= self.slice_ms {
            self.seal(now_ms);
        }
        while self
            .sealed
            .front()
            .is_some_and(|s| s.newest_ms + self.window_ms <= now_ms)
        {
            self.sealed.pop_front();
        }
    }

    fn seal(&mut self, now_ms: i64) {
        let filled_early = self.current.count >= self.current.capacity;
        let elapsed = (now_ms - self.current.started_ms).max(1) as f64;
        let predicted = self.current.count as f64 / elapsed * self.slice_ms as f64 * RATE_HEADROOM;
        let mut capacity = predicted.ceil() as usize;
        if filled_early {
            capacity = capacity.max(self.current.capacity.saturating_mul(2));
        }
        let capacity = capacity.clamp(MIN_CAPACITY.min(self.max_capacity), self.max_capacity);
        let next = Slice::new(capacity, self.config.false_positive_rate, now_ms);
        let sealed = std::mem::replace(&mut self.current, next);
        if sealed.count > 0 {
            self.sealed.push_back(sealed);
        }
        // Within the budget: forget the oldest slices first, and say so in the span.
        while self.bytes() > self.config.budget_bytes {
            let Some(oldest) = self.sealed.pop_front() else {
                break;
            };
            self.dropped_early += 1;
            self.remembered_since_ms = self.remembered_since_ms.max(oldest.newest_ms + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn config(budget_bytes: u64) -> FilterConfig {
        FilterConfig {
            budget_bytes,
            false_positive_rate: 0.001,
        }
    }

    #[test]
    fn remembers_every_id_for_the_window_then_forgets() {
        let mut f = SlicedFilter::new(80_000, config(64 * MIB), 0);
        for i in 0..50_000u64 {
            f.insert(
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                (i / 1000) as i64 * 1000,
            );
        }
        // No false negative, across every slice the ids went into.
        for i in 0..50_000u64 {
            assert!(f.may_contain(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), 50_000));
        }
        // The last id was inserted at 49 s: all forgotten once it is older than the window.
        assert!(!f.may_contain(49_999u64.wrapping_mul(0x9E37_79B9_7F4A_7C15), 129_001));
        assert_eq!(f.ids(), 0);
        assert_eq!(f.span_ms(129_001), 80_000, "nothing was dropped early");
    }

    #[test]
    fn false_positives_stay_near_the_rate() {
        let mut f = SlicedFilter::new(600_000, config(64 * MIB), 0);
        for i in 0..200_000u64 {
            f.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xABCD, 1_000);
        }
        let fresh = (1_000_000..1_100_000u64)
            .filter(|i| f.may_contain(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xABCD, 1_000))
            .count();
        // Slices sealed early (each at its capacity): a handful, each at 0.1 %.
        assert!(fresh < 1_000, "{fresh} of 100,000 fresh ids looked seen");
    }

    /// Issue 15: at the peak acknowledged rate (~170k ids/s) the window holds its time within
    /// the default budget. Scaled by ten to stay quick: a 60 s window in a tenth of the default
    /// budget is the same number of ids per byte as 600 s in all of it. A budget too small for
    /// the rate shortens the span, and says so.
    #[test]
    fn the_window_holds_at_the_peak_rate_within_the_budget() {
        let window = 60_000;
        let rate_per_sec = 170_000u64;
        let budget = crate::config::DEFAULT_DEDUP_FILTER_BYTES / 10;
        let mut f = SlicedFilter::new(window, config(budget), 0);
        let mut small = SlicedFilter::new(window, config(budget / 4), 0);
        let mut next = 0u64;
        // 70 s of ids, 10 ms apart in groups of 1,700.
        for tick in 0..7_000i64 {
            for _ in 0..rate_per_sec / 100 {
                let h = next.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                f.insert(h, tick * 10);
                small.insert(h, tick * 10);
                next += 1;
            }
        }
        let now = 70_000;
        assert_eq!(f.span_ms(now), window, "{} bytes", f.bytes());
        assert_eq!(f.dropped_early(), 0);
        assert!(f.bytes() <= budget);
        // The id confirmed at 10.01 s (59.99 s ago) is still known.
        let early = (1_001 * rate_per_sec / 100).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        assert!(f.may_contain(early, now));
        assert!(small.bytes() <= budget / 4);
        assert!(small.dropped_early() > 0);
        assert!(small.span_ms(now) < window);
    }

    #[test]
    fn an_idle_window_stays_small() {
        let mut f = SlicedFilter::new(600_000, config(256 * MIB), 0);
        for t in 0..600 {
            f.insert(t as u64, t * 1_000);
        }
        assert!(f.bytes() < 64 * 1024, "{} bytes for 600 ids", f.bytes());
    }
}
