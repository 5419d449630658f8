//! Enrich: what the server adds to a batch before it is spooled, and agent-retry detection.
//!
//! In: the checked events of one request and the API key. Out: the batch metadata (batch id,
//! receipt time, the key's organization and application, client address, agent version,
//! pipeline stages) that the spool record carries, and the verdict "already accepted" for
//! events whose `id` was accepted within the dedup window.
//!
//! Denormalised columns and derived rows are *not* stored in the spool: they are a pure function
//! of the event (`baddybugs_common::check_event`) and are recomputed where rows are built, so the
//! spool holds only what was sent plus this metadata.
//!
//! The [`DedupWindow`] is bounded twice: by age (`dedup_window_secs`) and by count
//! (`dedup_max_ids`, oldest forgotten first), so its memory never grows with load. It remembers
//! 64-bit hashes of ids, not the ids. Ids are remembered only after the spool append succeeded,
//! so a batch refused with 503 is not flagged as a duplicate when the agent retries it.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use parking_lot::Mutex;

/// Recently accepted event ids, per organization.
pub struct DedupWindow {
    window_ms: i64,
    max_ids: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    expiry: HashMap<u64, i64>,
    order: VecDeque<(u64, i64)>,
}

fn hash_id(organization: &str, id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    organization.hash(&mut h);
    id.hash(&mut h);
    h.finish()
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
            }),
        }
    }

    /// For each id (None = the event has no id), whether it is a duplicate: accepted within the
    /// window, or repeated earlier in the same list.
    pub fn check(&self, organization: &str, ids: &[Option<&str>], now_ms: i64) -> Vec<bool> {
        let inner = self.inner.lock();
        let mut in_batch = HashSet::new();
        ids.iter()
            .map(|id| {
                let Some(id) = id else { return false };
                let h = hash_id(organization, id);
                let seen = inner.expiry.get(&h).is_some_and(|exp| *exp > now_ms);
                !in_batch.insert(h) || seen
            })
            .collect()
    }

    /// Remembers ids that were just made durable.
    pub fn remember<'a>(
        &self,
        organization: &str,
        ids: impl IntoIterator<Item = &'a str>,
        now_ms: i64,
    ) {
        let mut inner = self.inner.lock();
        let expiry = now_ms.saturating_add(self.window_ms);
        for id in ids {
            let h = hash_id(organization, id);
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

    /// Ids currently remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().expiry.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A deterministic id for an event that arrived without one: a UUID-shaped digest of its batch
/// and index, so a spool replay assigns the same id again.
pub fn assigned_id(batch_id: &str, index: u32) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{batch_id}:{index}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8: custom
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    uuid::Uuid::from_bytes(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_by_age_and_count() {
        let w = DedupWindow::new(10, 3);
        assert_eq!(
            w.check("o", &[Some("a"), Some("a"), None, None], 0),
            vec![false, true, false, false]
        );
        w.remember("o", ["a", "b"], 0);
        assert_eq!(
            w.check("o", &[Some("a"), Some("c")], 5_000),
            vec![true, false]
        );
        assert_eq!(
            w.check("other", &[Some("a")], 5_000),
            vec![false],
            "per organization"
        );
        assert_eq!(w.check("o", &[Some("a")], 10_001), vec![false], "expired");
        w.remember("o", ["c", "d", "e"], 1_000);
        assert!(w.len() <= 3);
        assert_eq!(
            w.check("o", &[Some("a")], 1_000),
            vec![false],
            "evicted by count"
        );
    }

    #[test]
    fn assigned_ids_are_deterministic() {
        assert_eq!(assigned_id("b", 1), assigned_id("b", 1));
        assert_ne!(assigned_id("b", 1), assigned_id("b", 2));
        assert_eq!(assigned_id("b", 1).len(), 36);
    }
}
