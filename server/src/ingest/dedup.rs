//! Agent-retry detection: events whose `id` was accepted within the window are counted as
//! duplicates, not stored again.
//!
//! Ids are scoped by tenant (organization and application): one tenant's id never makes
//! another's event a duplicate. The window has two tiers, so that it holds its configured time
//! (`ingest.dedup_window_secs`) even at the peak acknowledged rate, within a stated memory:
//!
//! - the **exact tier** ([`exact`]) holds the newest ids (`ingest.dedup_max_ids`, ~40 bytes
//!   each with its index, as 128-bit hashes of (tenant, id) keyed per process: a collision is
//!   beyond any realistic count of events, and no client can aim one). Its answer is final.
//! - the **long tier** ([`filter`], `ingest.dedup_filter_bytes`) remembers every id of the
//!   window in ~2 bytes each, as Bloom filters. Its "maybe seen" is not an answer: the caller
//!   asks the store ([`Reservation::maybe_seen`], [`Reservation::settle`]), because a false
//!   "duplicate" would lose an event. Only an id the store holds is a duplicate.
//!
//! An id goes through three states, so that neither a refused batch nor two concurrent copies
//! of one batch can lie:
//!
//! 1. **reserved** by [`DedupWindow::reserve`] while its batch is being made durable. A second
//!    copy of the batch that arrives meanwhile (an agent that timed out and retried) *waits*
//!    for the first copy's outcome instead of passing the check too;
//! 2. **confirmed** by [`Reservation::confirm`] once the spool append succeeded: from then on,
//!    within the window, the id is a duplicate;
//! 3. **released** when the reservation is dropped unconfirmed (the append failed and the agent
//!    was answered 503): a retry of that batch is then new, as it must be.
//!
//! What the window cannot see: an id forgotten by the exact tier whose original is not yet in
//! the store either (the store more than `dedup_max_ids` events behind) is taken as new. SQLite
//! still stores it once (its key); ClickHouse reads show it once (`LIMIT 1 BY`).

mod exact;
pub mod filter;

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

pub use crate::metrics::DedupStats;
use exact::{ExactTier, IdHash};
pub use filter::FilterConfig;
use filter::SlicedFilter;

/// Recently accepted event ids, per tenant.
pub struct DedupWindow {
    window_ms: i64,
    max_ids: usize,
    /// This process's keys for [`DedupWindow::hash_id`]: nothing outlives the process, and
    /// keys a client cannot know keep it from aiming ids at one slot of the index.
    keys: RandomState,
    inner: Mutex<Inner>,
}

struct Inner {
    exact: ExactTier,
    /// Ids of batches being appended right now; dropping the sender wakes their waiters.
    pending: HashMap<IdHash, watch::Sender<()>>,
    /// The long tier, when configured.
    filter: Option<SlicedFilter>,
    /// Ids confirmed before this time may have left the exact tier (start, or eviction by count).
    exact_since_ms: i64,
}

/// How long a copy waits for another copy's outcome before giving up (503).
pub const PENDING_WAIT: Duration = Duration::from_secs(30);

/// Another copy of the batch is still being made durable after [`PENDING_WAIT`].
#[derive(Debug, thiserror::Error)]
#[error("another copy of this batch has been in progress for {}s", PENDING_WAIT.as_secs())]
pub struct StillPending;

/// The long tier's key: the low half.
fn short(h: IdHash) -> u64 {
    h[1]
}

/// The ids of one batch, reserved until confirmed or dropped.
#[must_use = "an unconfirmed reservation is released when dropped"]
pub struct Reservation<'w> {
    window: &'w DedupWindow,
    reserved: Vec<IdHash>,
    duplicates: Vec<bool>,
    /// Indexes (into the ids given) the long tier may have seen, with their hashes.
    maybe: Vec<(usize, IdHash)>,
}

impl Reservation<'_> {
    /// For each id given to [`DedupWindow::reserve`], whether it is a duplicate.
    pub fn duplicates(&self) -> &[bool] {
        &self.duplicates
    }

    /// Indexes of the ids only the long tier may have seen: ask the store, then [`settle`]
    /// them. Until then they count as new (and stay reserved).
    ///
    /// [`settle`]: Reservation::settle
    pub fn maybe_seen(&self) -> Vec<usize> {
        self.maybe.iter().map(|(i, _)| *i).collect()
    }

    /// Settles [`maybe_seen`](Reservation::maybe_seen): `stored[k]` says whether the store
    /// holds the k-th of them. A stored id is a duplicate (and goes into the exact tier); the
    /// others stay new and reserved.
    pub fn settle(&mut self, stored: &[bool], now_ms: i64) {
        let maybe = std::mem::take(&mut self.maybe);
        let mut known = Vec::new();
        for ((index, h), stored) in maybe.into_iter().zip(stored) {
            if *stored {
                self.duplicates[index] = true;
                known.push(h);
            }
        }
        if !known.is_empty() {
            let known_set: HashSet<IdHash> = known.iter().copied().collect();
            self.reserved.retain(|r| !known_set.contains(r));
            // Confirming releases their reservation too: a parked copy wakes and finds them.
            self.window.confirm(&known, now_ms);
        }
    }

    /// The batch is durable: its ids are duplicates from now on, within the window.
    pub fn confirm(mut self, now_ms: i64) {
        let reserved = std::mem::take(&mut self.reserved);
        self.window.confirm(&reserved, now_ms);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.reserved.is_empty() {
            let mut inner = self.window.inner.lock();
            for h in &self.reserved {
                inner.pending.remove(h);
            }
        }
    }
}

impl DedupWindow {
    /// A window of `window_secs` holding at most `max_ids` ids, exact tier only.
    pub fn new(window_secs: u64, max_ids: usize) -> DedupWindow {
        DedupWindow::with_filter(window_secs, max_ids, None, 0)
    }

    /// A window with a long tier (`filter`, None = off), started at `now_ms`.
    pub fn with_filter(
        window_secs: u64,
        max_ids: usize,
        filter: Option<FilterConfig>,
        now_ms: i64,
    ) -> DedupWindow {
        let window_ms = (window_secs as i64).saturating_mul(1000);
        DedupWindow {
            window_ms,
            max_ids: max_ids.clamp(1, exact::MAX_ENTRIES),
            keys: RandomState::new(),
            inner: Mutex::new(Inner {
                exact: ExactTier::default(),
                pending: HashMap::new(),
                filter: filter
                    .filter(|f| f.budget_bytes > 0)
                    .map(|f| SlicedFilter::new(window_ms, f, now_ms)),
                exact_since_ms: now_ms,
            }),
        }
    }

    /// 128 bits of (tenant, id): two SipHash runs with this process's keys.
    fn hash_id(&self, tenant: &str, id: &str) -> IdHash {
        let half = |salt: u8| {
            let mut h = self.keys.build_hasher();
            salt.hash(&mut h);
            tenant.hash(&mut h);
            id.hash(&mut h);
            h.finish()
        };
        [half(1), half(2)]
    }

    /// Reserves the ids of one batch of `tenant` (None = the event has no id). An id is a
    /// duplicate when it was confirmed within the window or repeats an earlier id of the list.
    /// When another batch holds one of the ids reserved, waits for that batch's outcome first
    /// (at most [`PENDING_WAIT`]).
    pub async fn reserve(
        &self,
        tenant: &str,
        ids: &[Option<&str>],
        now_ms: i64,
    ) -> Result<Reservation<'_>, StillPending> {
        let hashes: Vec<Option<IdHash>> = ids
            .iter()
            .map(|id| id.map(|id| self.hash_id(tenant, id)))
            .collect();
        let deadline = tokio::time::Instant::now() + PENDING_WAIT;
        loop {
            let waits = match self.try_reserve(&hashes, now_ms) {
                Ok(reservation) => return Ok(reservation),
                Err(waits) => waits,
            };
            for mut wait in waits {
                // Err = the other copy resolved (its sender dropped): what we wait for.
                let waited = tokio::time::timeout_at(deadline, wait.changed()).await;
                if waited.is_err() {
                    return Err(StillPending);
                }
            }
        }
    }

    /// Reserves every id, or returns what to wait for if another batch holds one of them.
    fn try_reserve(
        &self,
        hashes: &[Option<IdHash>],
        now_ms: i64,
    ) -> Result<Reservation<'_>, Vec<watch::Receiver<()>>> {
        let mut inner = self.inner.lock();
        let waits: Vec<watch::Receiver<()>> = hashes
            .iter()
            .flatten()
            .filter_map(|h| inner.pending.get(h).map(watch::Sender::subscribe))
            .collect();
        if !waits.is_empty() {
            return Err(waits);
        }
        let mut in_batch = HashSet::new();
        let mut reserved = Vec::new();
        let mut maybe = Vec::new();
        let inner = &mut *inner;
        let duplicates = hashes
            .iter()
            .enumerate()
            .map(|(index, h)| {
                let Some(h) = *h else { return false };
                let seen = inner.exact.expiry(&h).is_some_and(|exp| exp > now_ms);
                let repeated = !in_batch.insert(h);
                if !seen && !repeated {
                    inner.pending.insert(h, watch::channel(()).0);
                    reserved.push(h);
                    if let Some(filter) = inner.filter.as_mut() {
                        if filter.may_contain(short(h), now_ms) {
                            maybe.push((index, h));
                        }
                    }
                }
                seen || repeated
            })
            .collect();
        Ok(Reservation {
            window: self,
            reserved,
            duplicates,
            maybe,
        })
    }

    fn confirm(&self, hashes: &[IdHash], now_ms: i64) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let expiry = now_ms.saturating_add(self.window_ms);
        for &h in hashes {
            inner.pending.remove(&h);
            // Room first, so the tables never hold more than `max_ids` (their memory bound).
            self.forget(inner, now_ms, self.max_ids.saturating_sub(1));
            inner.exact.push(h, expiry);
            if let Some(filter) = inner.filter.as_mut() {
                filter.insert(short(h), now_ms);
            }
        }
        self.forget(inner, now_ms, self.max_ids);
    }

    /// Forgets what expired, then the oldest beyond `keep` ids.
    fn forget(&self, inner: &mut Inner, now_ms: i64, keep: usize) {
        while let Some(oldest) = inner.exact.oldest() {
            let expired = oldest.expiry_ms <= now_ms;
            if !expired && inner.exact.entries() <= keep {
                break;
            }
            let confirmed_ms = oldest.expiry_ms.saturating_sub(self.window_ms);
            inner.exact.pop_oldest();
            if !expired {
                inner.exact_since_ms = inner.exact_since_ms.max(confirmed_ms + 1);
            }
        }
    }

    /// Ids currently remembered by the exact tier (confirmed, not yet forgotten).
    pub fn len(&self) -> usize {
        self.inner.lock().exact.len()
    }

    /// Whether the exact tier remembers no id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ids reserved by batches in progress.
    pub fn pending(&self) -> usize {
        self.inner.lock().pending.len()
    }

    /// Bytes of the exact tier's tables as allocated now (by capacity: a table that grew keeps
    /// its room).
    pub fn exact_bytes(&self) -> u64 {
        self.inner.lock().exact.bytes()
    }

    /// Bytes of the long tier (0 when it is off).
    pub fn filter_bytes(&self) -> u64 {
        self.inner
            .lock()
            .filter
            .as_ref()
            .map_or(0, SlicedFilter::bytes)
    }

    /// The most the exact tier's tables take, at `ingest.dedup_max_ids` ids.
    pub fn exact_limit_bytes(&self) -> u64 {
        ExactTier::limit_bytes(self.max_ids)
    }

    /// What the window holds at `now_ms`, and how far back each tier remembers.
    pub fn stats(&self, now_ms: i64) -> DedupStats {
        let inner = self.inner.lock();
        let filter = inner.filter.as_ref();
        DedupStats {
            exact_ids: inner.exact.len() as u64,
            exact_span_ms: (now_ms - inner.exact_since_ms).clamp(0, self.window_ms),
            filter_ids: filter.map_or(0, SlicedFilter::ids),
            filter_bytes: filter.map_or(0, SlicedFilter::bytes),
            filter_span_ms: filter.map_or(0, |f| f.span_ms(now_ms)),
            filter_slices_dropped_early: filter.map_or(0, SlicedFilter::dropped_early),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn check(w: &DedupWindow, tenant: &str, ids: &[Option<&str>], now: i64) -> Vec<bool> {
        w.reserve(tenant, ids, now)
            .await
            .unwrap()
            .duplicates()
            .to_vec()
    }

    /// Issue 18: the exact tier's memory as reported stays within the bound reported for
    /// `dedup_max_ids`.
    #[tokio::test]
    async fn exact_tier_bytes_stay_within_the_reported_bound() {
        let w = DedupWindow::new(600, 1000);
        assert_eq!(w.exact_bytes(), 0);
        let ids: Vec<String> = (0..5000).map(|i| format!("id-{i}")).collect();
        for chunk in ids.chunks(100) {
            let refs: Vec<Option<&str>> = chunk.iter().map(|i| Some(i.as_str())).collect();
            w.reserve("o/a", &refs, 0).await.unwrap().confirm(0);
        }
        assert_eq!(w.len(), 1000);
        assert!(w.exact_bytes() > 1000 * 24, "{}", w.exact_bytes());
        assert!(
            w.exact_bytes() <= w.exact_limit_bytes(),
            "{} > {}",
            w.exact_bytes(),
            w.exact_limit_bytes()
        );
    }

    #[tokio::test]
    async fn window_by_age_and_count() {
        let w = DedupWindow::new(10, 3);
        assert_eq!(
            check(&w, "o/a", &[Some("a"), Some("a"), None, None], 0).await,
            vec![false, true, false, false]
        );
        w.reserve("o/a", &[Some("a"), Some("b")], 0)
            .await
            .unwrap()
            .confirm(0);
        assert_eq!(
            check(&w, "o/a", &[Some("a"), Some("c")], 5_000).await,
            vec![true, false]
        );
        assert_eq!(
            check(&w, "o/other-app", &[Some("a")], 5_000).await,
            vec![false],
            "per tenant"
        );
        assert_eq!(
            check(&w, "o/a", &[Some("a")], 10_001).await,
            vec![false],
            "expired"
        );
        w.reserve("o/a", &[Some("c"), Some("d"), Some("e")], 1_000)
            .await
            .unwrap()
            .confirm(1_000);
        assert!(w.len() <= 3);
        assert_eq!(
            check(&w, "o/a", &[Some("a")], 1_000).await,
            vec![false],
            "evicted by count"
        );
        assert_eq!(w.pending(), 0, "dropped reservations are released");
    }

    /// Issue 15: a second copy of a batch that arrives while the first is being appended
    /// waits for the first's outcome: a duplicate if it was stored, new if it was refused.
    #[tokio::test]
    async fn a_concurrent_copy_waits_for_the_first_outcome() {
        let w = std::sync::Arc::new(DedupWindow::new(60, 100));
        let first = w.reserve("t", &[Some("x")], 0).await.unwrap();
        assert_eq!(first.duplicates(), [false]);
        let w2 = w.clone();
        let second = tokio::spawn(async move {
            let r = w2.reserve("t", &[Some("x")], 1).await.unwrap();
            r.duplicates().to_vec()
        });
        // The second copy is parked on the first's reservation, not answered.
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        first.confirm(0);
        assert_eq!(second.await.unwrap(), vec![true], "stored once");

        // A refused first copy (dropped unconfirmed) lets the retry through as new.
        let refused = w.reserve("t", &[Some("y")], 0).await.unwrap();
        let w3 = w.clone();
        let retry = tokio::spawn(async move {
            let r = w3.reserve("t", &[Some("y")], 1).await.unwrap();
            let dup = r.duplicates().to_vec();
            r.confirm(1);
            dup
        });
        tokio::task::yield_now().await;
        drop(refused);
        assert_eq!(retry.await.unwrap(), vec![false], "not lost");
        assert_eq!(w.pending(), 0);
    }

    fn long_tier(fp: f64) -> Option<FilterConfig> {
        Some(FilterConfig {
            budget_bytes: 1 << 20,
            false_positive_rate: fp,
        })
    }

    /// Issue 15: an id the exact tier forgot is still recognised within the window, but only
    /// once the store confirms it: the long tier's "maybe" alone never makes a duplicate.
    #[tokio::test]
    async fn the_long_tier_asks_the_store_before_calling_a_duplicate() {
        let w = DedupWindow::with_filter(600, 2, long_tier(0.001), 0);
        w.reserve("t", &[Some("a"), Some("b"), Some("c")], 0)
            .await
            .unwrap()
            .confirm(0);
        assert_eq!(w.len(), 2, "the exact tier keeps the newest two");
        let stats = w.stats(1_000);
        assert_eq!(stats.filter_ids, 3);
        assert_eq!(stats.filter_span_ms, 1_000);
        assert_eq!(
            stats.exact_span_ms, 999,
            "a was forgotten by the exact tier at 0 ms"
        );

        // `a` left the exact tier: a maybe, settled by the store.
        let mut r = w
            .reserve("t", &[Some("a"), Some("new")], 5_000)
            .await
            .unwrap();
        assert_eq!(r.duplicates(), [false, false]);
        assert_eq!(r.maybe_seen(), vec![0]);
        r.settle(&[true], 5_000);
        assert_eq!(r.duplicates(), [true, false]);
        r.confirm(5_000);
        // Settled as stored, it is back in the exact tier: no second store lookup.
        let again = w.reserve("t", &[Some("a")], 6_000).await.unwrap();
        assert_eq!(again.duplicates(), [true]);
        assert!(again.maybe_seen().is_empty());
        drop(again);

        // The store says no: new, and stored.
        let mut r = w.reserve("t", &[Some("b")], 7_000).await.unwrap();
        if !r.maybe_seen().is_empty() {
            r.settle(&[false], 7_000);
        }
        assert_eq!(r.duplicates(), [false]);
        drop(r);
        assert_eq!(w.pending(), 0);
    }

    /// A long tier that says "maybe" to half of all fresh ids (false-positive rate 0.5) still
    /// makes no fresh id a duplicate: every maybe goes to the store, which says no.
    #[tokio::test]
    async fn false_maybes_never_make_a_duplicate() {
        let w = DedupWindow::with_filter(600, 10, long_tier(0.5), 0);
        let old: Vec<String> = (0..2_000).map(|i| format!("old-{i}")).collect();
        let old_ids: Vec<Option<&str>> = old.iter().map(|s| Some(s.as_str())).collect();
        w.reserve("t", &old_ids, 0).await.unwrap().confirm(0);
        let fresh: Vec<String> = (0..2_000).map(|i| format!("fresh-{i}")).collect();
        let fresh_ids: Vec<Option<&str>> = fresh.iter().map(|s| Some(s.as_str())).collect();
        let mut r = w.reserve("t", &fresh_ids, 1_000).await.unwrap();
        let maybe = r.maybe_seen();
        assert!(
            maybe.len() > 100,
            "the long tier was asked: {} maybes",
            maybe.len()
        );
        r.settle(&vec![false; maybe.len()], 1_000);
        assert!(r.duplicates().iter().all(|d| !d));
    }
}
