//! Who sends what: events per application, refused requests per sender, and the accepted /
//! rejected / duplicate rates of the last minute, for the console's Overview and Types views.
//!
//! In: one call per ingest request ([`Senders::batch`], [`Senders::refusal`]), one short lock
//! each. Out: the snapshot's `apps`, `refusals_by_sender` and `throughput`, built at each tick.
//! Bounds: at most [`MAX_SENDERS`] applications and senders are counted apart, the rest together
//! as `other`; a sender is never the key itself (see [`sender_of_key`]).

use std::collections::{BTreeMap, HashMap, VecDeque};

use baddybugs_common::protocol::{AppStats, SenderRefusal, Throughput, MAX_SENDERS};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// The sender of a request whose key is not configured: a fingerprint that tells one wrong key
/// from another without showing it.
pub fn sender_of_key(key: Option<&str>) -> String {
    match key {
        None => "no key".to_owned(),
        Some(key) => {
            let digest = Sha256::digest(key.as_bytes());
            format!("key sha256:{}", &hex::encode(digest)[..8])
        }
    }
}

/// Totals at the last 61 ticks, newest last: 60 per-second differences.
#[derive(Debug, Default)]
pub(super) struct Series(VecDeque<u64>);

impl Series {
    /// Records the total at this tick.
    pub(super) fn push(&mut self, total: u64) {
        self.0.push_back(total);
        while self.0.len() > 61 {
            self.0.pop_front();
        }
    }

    /// Per second, the last 60 seconds, oldest first (`None` before the first ticks).
    pub(super) fn per_second(&self) -> Vec<Option<u64>> {
        let diffs = self
            .0
            .iter()
            .zip(self.0.iter().skip(1))
            .map(|(a, b)| Some(b.saturating_sub(*a)));
        let mut out = vec![None; 60usize.saturating_sub(self.0.len().saturating_sub(1))];
        out.extend(diffs);
        out
    }

    /// The mean per second over the last `secs` seconds (0 before two ticks).
    pub(super) fn rate(&self, secs: usize) -> f64 {
        let n = self.0.len().saturating_sub(1).min(secs);
        if n == 0 {
            return 0.0;
        }
        let last = self.0[self.0.len() - 1];
        let first = self.0[self.0.len() - 1 - n];
        last.saturating_sub(first) as f64 / n as f64
    }
}

#[derive(Debug, Default)]
struct AppCounter {
    accepted: u64,
    rejected: u64,
    duplicates: u64,
    received_series: Series,
    rejected_series: Series,
}

impl AppCounter {
    fn received(&self) -> u64 {
        self.accepted + self.rejected + self.duplicates
    }
}

/// The registry's part that counts by sender.
#[derive(Debug, Default)]
pub(super) struct Senders {
    apps: Mutex<HashMap<(String, String), AppCounter>>,
    other_app: Mutex<AppCounter>,
    refusals: Mutex<BTreeMap<(String, u16, &'static str), u64>>,
    throughput: Mutex<[Series; 3]>,
}

/// Events of one request of one application.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchCounts {
    /// Accepted (new) events.
    pub accepted: u64,
    /// Rejected events.
    pub rejected: u64,
    /// Duplicates.
    pub duplicates: u64,
}

impl Senders {
    /// Counts one request's events for its application.
    pub(super) fn batch(&self, organization: &str, application: &str, counts: BatchCounts) {
        let mut apps = self.apps.lock();
        let key = (organization.to_owned(), application.to_owned());
        let add = |c: &mut AppCounter| {
            c.accepted += counts.accepted;
            c.rejected += counts.rejected;
            c.duplicates += counts.duplicates;
        };
        if let Some(c) = apps.get_mut(&key) {
            add(c);
        } else if apps.len() < MAX_SENDERS {
            add(apps.entry(key).or_default());
        } else {
            drop(apps);
            add(&mut self.other_app.lock());
        }
    }

    /// Counts a refused request of `sender` (see [`sender_of_key`]).
    pub(super) fn refusal(&self, sender: String, status: u16, code: &'static str) {
        let mut map = self.refusals.lock();
        let known = map.keys().any(|(s, _, _)| *s == sender);
        let distinct = if known {
            0
        } else {
            map.keys()
                .map(|(s, _, _)| s.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        let sender = if known || distinct < MAX_SENDERS {
            sender
        } else {
            "other".to_owned()
        };
        *map.entry((sender, status, code)).or_default() += 1;
    }

    /// The refusals by sender, status and code.
    pub(super) fn refusals(&self) -> Vec<SenderRefusal> {
        self.refusals
            .lock()
            .iter()
            .map(|((sender, status, code), count)| SenderRefusal {
                sender: sender.clone(),
                status: *status,
                code: (*code).to_owned(),
                count: *count,
            })
            .collect()
    }

    /// Advances the histories (once a second) with the totals of every type together.
    pub(super) fn tick(&self, accepted: u64, rejected: u64, duplicates: u64) {
        let mut t = self.throughput.lock();
        t[0].push(accepted);
        t[1].push(rejected);
        t[2].push(duplicates);
        drop(t);
        let mut apps = self.apps.lock();
        let mut other = self.other_app.lock();
        for c in apps.values_mut().chain(std::iter::once(&mut *other)) {
            let received = c.received();
            c.received_series.push(received);
            c.rejected_series.push(c.rejected);
        }
    }

    /// The last minute's rates, per second.
    pub(super) fn throughput(&self) -> Throughput {
        let t = self.throughput.lock();
        Throughput {
            accepted: t[0].per_second(),
            rejected: t[1].per_second(),
            duplicates: t[2].per_second(),
        }
    }

    /// Per application, the most events first, `other` last (when it counted any).
    pub(super) fn apps(&self) -> Vec<AppStats> {
        let stats = |organization: &str, application: &str, c: &AppCounter| AppStats {
            organization: organization.to_owned(),
            application: application.to_owned(),
            received: c.received(),
            accepted: c.accepted,
            rejected: c.rejected,
            duplicates: c.duplicates,
            rate_10s: c.received_series.rate(10),
            rate_60s: c.received_series.rate(60),
            rejected_rate_60s: c.rejected_series.rate(60),
        };
        let mut out: Vec<AppStats> = self
            .apps
            .lock()
            .iter()
            .map(|((org, app), c)| stats(org, app, c))
            .collect();
        out.sort_by(|a, b| {
            b.received
                .cmp(&a.received)
                .then_with(|| a.application.cmp(&b.application))
                .then_with(|| a.organization.cmp(&b.organization))
        });
        let other = self.other_app.lock();
        if other.received() > 0 {
            out.push(stats("", "other", &other));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_gives_per_second_values_and_rates() {
        let mut s = Series::default();
        assert_eq!(s.per_second(), vec![None; 60]);
        assert_eq!(s.rate(60), 0.0);
        for total in [10, 13, 19, 19] {
            s.push(total);
        }
        let v = s.per_second();
        assert_eq!(v.len(), 60);
        assert_eq!(&v[57..], &[Some(3), Some(6), Some(0)]);
        assert_eq!(v[56], None);
        assert_eq!(s.rate(1), 0.0);
        assert_eq!(s.rate(60), 3.0);
        for total in 20..100 {
            s.push(total);
        }
        assert_eq!(s.per_second(), vec![Some(1); 60]);
    }

    #[test]
    fn applications_and_senders_are_bounded() {
        let s = Senders::default();
        for i in 0..MAX_SENDERS + 3 {
            s.batch(
                "acme",
                &format!("app{i:03}"),
                BatchCounts {
                    accepted: 2,
                    rejected: 1,
                    duplicates: 0,
                },
            );
            s.refusal(sender_of_key(Some(&format!("k{i}"))), 401, "unknown_key");
        }
        s.batch(
            "acme",
            "app000",
            BatchCounts {
                accepted: 10,
                ..BatchCounts::default()
            },
        );
        s.tick(0, 0, 0);
        let apps = s.apps();
        assert_eq!(apps.len(), MAX_SENDERS + 1);
        assert_eq!(
            (apps[0].application.as_str(), apps[0].received),
            ("app000", 13)
        );
        let other = apps.last().unwrap();
        assert_eq!((other.application.as_str(), other.received), ("other", 9));
        let refusals = s.refusals();
        assert_eq!(refusals.len(), MAX_SENDERS + 1);
        let other = refusals.iter().find(|r| r.sender == "other").unwrap();
        assert_eq!(other.count, 3);
    }

    #[test]
    fn a_sender_never_shows_the_key() {
        let sender = sender_of_key(Some("sk_live_secret_123"));
        assert!(sender.starts_with("key sha256:"), "{sender}");
        assert!(!sender.contains("secret"));
        assert_eq!(sender, sender_of_key(Some("sk_live_secret_123")));
        assert_ne!(sender, sender_of_key(Some("sk_live_secret_124")));
        assert_eq!(sender_of_key(None), "no key");
    }
}
