//! What the ingest endpoint answered, by HTTP status: the totals since the server started (from
//! each metrics snapshot's `responses`) and how many of each in the last 60 s, so a request
//! refused before any event was read (401 wrong key, 413, 415, 429, 503) is as visible as a
//! rejected event.

use std::collections::VecDeque;

use baddybugs_common::protocol::{Refusal, SenderRefusal};

/// How far back "recent" reaches, in seconds of server uptime.
pub(crate) const WINDOW_SECS: f64 = 60.0;

/// The response counts of the recent snapshots.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HttpAnswers {
    /// (server uptime in s, responses by status, refusals by status and code), oldest first,
    /// spanning at most the window.
    samples: VecDeque<Sample>,
}

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    at: f64,
    responses: Vec<(u16, u64)>,
    refusals: Vec<Refusal>,
    senders: Vec<SenderRefusal>,
}

/// Refusals of one sender with one status and code: since start and in the last 60 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SenderCount {
    /// `organization/application`, or a key's fingerprint (never the key).
    pub(crate) sender: String,
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) total: u64,
    pub(crate) recent: u64,
}

/// One status: its total since start and its count in the last 60 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatusCount {
    pub(crate) status: u16,
    pub(crate) total: u64,
    pub(crate) recent: u64,
}

impl StatusCount {
    /// Whether the request was refused (anything but 2xx).
    pub(crate) fn failed(&self) -> bool {
        !(200..300).contains(&self.status)
    }
}

impl HttpAnswers {
    /// Adds a snapshot's counts (`uptime_secs` from the same snapshot).
    pub(crate) fn record(
        &mut self,
        uptime_secs: f64,
        responses: &[(u16, u64)],
        refusals: &[Refusal],
        senders: &[SenderRefusal],
    ) {
        if self.samples.back().is_some_and(|s| s.at > uptime_secs) {
            // Uptime went back: another server instance. Its counts start again.
            self.samples.clear();
        }
        self.samples.push_back(Sample {
            at: uptime_secs,
            responses: responses.to_vec(),
            refusals: refusals.to_vec(),
            senders: senders.to_vec(),
        });
        // Keep one sample at or before the window's start, the base of "recent".
        while self
            .samples
            .get(1)
            .is_some_and(|s| uptime_secs - s.at >= WINDOW_SECS)
        {
            self.samples.pop_front();
        }
    }

    /// Every status answered, by status code.
    pub(crate) fn counts(&self) -> Vec<StatusCount> {
        let Some(latest) = self.samples.back().map(|s| &s.responses) else {
            return Vec::new();
        };
        let base = self.samples.front().map(|s| s.responses.as_slice());
        let single = self.samples.len() == 1;
        latest
            .iter()
            .map(|&(status, total)| {
                let before = base
                    .and_then(|b| b.iter().find(|(s, _)| *s == status))
                    .map_or(0, |(_, n)| *n);
                // With one snapshot there is no "before": what it counts is all we know.
                let recent = if single {
                    total
                } else {
                    total.saturating_sub(before)
                };
                StatusCount {
                    status,
                    total,
                    recent,
                }
            })
            .collect()
    }

    /// The error codes a status was answered with in the last 60 s, with their counts, the
    /// most frequent first (servers of before the codes send none).
    pub(crate) fn recent_codes(&self, status: u16) -> Vec<(String, u64)> {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return Vec::new();
        };
        let single = self.samples.len() == 1;
        let mut out: Vec<(String, u64)> = last
            .refusals
            .iter()
            .filter(|r| r.status == status)
            .filter_map(|r| {
                let before = first
                    .refusals
                    .iter()
                    .find(|b| b.status == status && b.code == r.code)
                    .map_or(0, |b| b.count);
                let n = if single {
                    r.count
                } else {
                    r.count.saturating_sub(before)
                };
                (n > 0).then(|| (r.code.clone(), n))
            })
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Refusals by sender (servers of before the senders send none): those of the last 60 s
    /// first, the most frequent first.
    pub(crate) fn senders(&self) -> Vec<SenderCount> {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return Vec::new();
        };
        let single = self.samples.len() == 1;
        let mut out: Vec<SenderCount> = last
            .senders
            .iter()
            .map(|r| {
                let before = first
                    .senders
                    .iter()
                    .find(|b| b.sender == r.sender && b.status == r.status && b.code == r.code)
                    .map_or(0, |b| b.count);
                SenderCount {
                    sender: r.sender.clone(),
                    status: r.status,
                    code: r.code.clone(),
                    total: r.count,
                    recent: if single {
                        r.count
                    } else {
                        r.count.saturating_sub(before)
                    },
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.recent
                .cmp(&a.recent)
                .then(b.total.cmp(&a.total))
                .then_with(|| a.sender.cmp(&b.sender))
        });
        out
    }

    /// The refused (non-2xx) statuses with a count in the last 60 s.
    pub(crate) fn recent_failures(&self) -> Vec<StatusCount> {
        self.counts()
            .into_iter()
            .filter(|c| c.failed() && c.recent > 0)
            .collect()
    }
}

/// What a status means to someone sending events (for the Warnings panel).
pub(crate) fn meaning(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        401 => "wrong API key or signature",
        403 => "forbidden",
        404 => "wrong URL",
        408 => "body too slow",
        413 => "body or batch over the limit",
        415 => "unsupported Content-Encoding",
        429 => "rate limited",
        500 => "server error",
        503 => "spool full or shutting down",
        s if s >= 500 => "server error",
        _ => "refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_totals_and_the_last_minute() {
        let mut h = HttpAnswers::default();
        h.record(10.0, &[(202, 100)], &[], &[]);
        assert_eq!(
            h.counts(),
            vec![StatusCount {
                status: 202,
                total: 100,
                recent: 100
            }]
        );
        assert!(h.recent_failures().is_empty());
        let refused = |n| Refusal {
            status: 401,
            code: "unknown_key".into(),
            count: n,
        };
        let sender = |n| SenderRefusal {
            sender: "key sha256:9f86d081".into(),
            status: 401,
            code: "unknown_key".into(),
            count: n,
        };
        h.record(11.0, &[(202, 150), (401, 3)], &[refused(3)], &[sender(3)]);
        let senders = h.senders();
        assert_eq!((senders[0].total, senders[0].recent), (3, 3));
        assert_eq!(h.recent_codes(401), vec![("unknown_key".to_owned(), 3)]);
        assert_eq!(
            h.recent_failures(),
            vec![StatusCount {
                status: 401,
                total: 3,
                recent: 3
            }]
        );
        // 70 s later with no new 401: still counted in total, no longer recent.
        for t in 12..=81 {
            h.record(
                t as f64,
                &[(202, 150), (401, 3)],
                &[refused(3)],
                &[sender(3)],
            );
        }
        assert!(h.recent_failures().is_empty(), "{:?}", h.counts());
        assert!(h.recent_codes(401).is_empty());
        assert_eq!((h.senders()[0].total, h.senders()[0].recent), (3, 0));
        assert_eq!(h.counts()[1].total, 3);
        // Another instance (uptime back to 1 s): its own counts.
        h.record(1.0, &[(413, 2)], &[], &[]);
        assert_eq!(h.recent_failures()[0].status, 413);
        assert_eq!(h.counts().len(), 1);
    }
}
