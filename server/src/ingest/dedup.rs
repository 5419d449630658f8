//! Agent-retry detection: events whose `id` was accepted within the window are counted as
//! duplicates, not stored again.
//!
//! Ids are scoped by tenant (organization and application): one tenant's id never makes
//! another's event a duplicate. The window remembers 64-bit hashes of (tenant, id), not the ids,
//! and is bounded twice: by age (`ingest.dedup_window_secs`) and by count
//! (`ingest.dedup_max_ids`, oldest forgotten first), so its memory never grows with load.
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

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

/// Recently accepted event ids, per tenant.
pub struct DedupWindow {
    window_ms: i64,
    max_ids: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    expiry: HashMap<u64, i64>,
    order: VecDeque<(u64, i64)>,
    /// Ids of batches being appended right now; dropping the sender wakes their waiters.
    pending: HashMap<u64, watch::Sender<()>>,
}

/// How long a copy waits for another copy's outcome before giving up (503).
pub const PENDING_WAIT: Duration = Duration::from_secs(30);

/// Another copy of the batch is still being made durable after [`PENDING_WAIT`].
#[derive(Debug, thiserror::Error)]
#[error("another copy of this batch has been in progress for {}s", PENDING_WAIT.as_secs())]
pub struct StillPending;

fn hash_id(tenant: &str, id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    tenant.hash(&mut h);
    id.hash(&mut h);
    h.finish()
}

/// The ids of one batch, reserved until confirmed or dropped.
#[must_use = "an unconfirmed reservation is released when dropped"]
pub struct Reservation<'w> {
    window: &'w DedupWindow,
    reserved: Vec<u64>,
    duplicates: Vec<bool>,
}

impl Reservation<'_> {
    /// For each id given to [`DedupWindow::reserve`], whether it is a duplicate.
    pub fn duplicates(&self) -> &[bool] {
        &self.duplicates
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
    /// A window of `window_secs` holding at most `max_ids` ids.
    pub fn new(window_secs: u64, max_ids: usize) -> DedupWindow {
        DedupWindow {
            window_ms: (window_secs as i64).saturating_mul(1000),
            max_ids: max_ids.max(1),
            inner: Mutex::new(Inner {
                expiry: HashMap::new(),
                order: VecDeque::new(),
                pending: HashMap::new(),
            }),
        }
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
        let hashes: Vec<Option<u64>> = ids
            .iter()
            .map(|id| id.map(|id| hash_id(tenant, id)))
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
        hashes: &[Option<u64>],
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
        let duplicates = hashes
            .iter()
            .map(|h| {
                let Some(h) = *h else { return false };
                let seen = inner.expiry.get(&h).is_some_and(|exp| *exp > now_ms);
                let repeated = !in_batch.insert(h);
                if !seen && !repeated {
                    inner.pending.insert(h, watch::channel(()).0);
                    reserved.push(h);
                }
                seen || repeated
            })
            .collect();
        Ok(Reservation {
            window: self,
            reserved,
            duplicates,
        })
    }

    fn confirm(&self, hashes: &[u64], now_ms: i64) {
        let mut inner = self.inner.lock();
        let expiry = now_ms.saturating_add(self.window_ms);
        for &h in hashes {
            inner.pending.remove(&h);
            inner.expiry.insert(h, expiry);
            inner.order.push_back((h, expiry));
        }
        // Forget what expired, then the oldest beyond the count bound.
        while let Some(&(h, exp)) = inner.order.front() {
            if exp > now_ms && inner.order.len() <= self.max_ids {
                break;
            }
            inner.order.pop_front();
            if inner.expiry.get(&h) == Some(&exp) {
                inner.expiry.remove(&h);
            }
        }
    }

    /// Ids currently remembered (confirmed, not yet forgotten).
    pub fn len(&self) -> usize {
        self.inner.lock().expiry.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ids reserved by batches in progress.
    pub fn pending(&self) -> usize {
        self.inner.lock().pending.len()
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
}
