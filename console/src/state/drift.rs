//! Schema drift as the console knows it: the keys the server reported (the `drift` query: the
//! stored keys of every node, counted) merged with the keys announced live on the `drift` topic
//! since, which also feed the Warnings panel for a minute.

use std::collections::VecDeque;

use baddybugs_common::protocol::{DriftEntry, DriftNotice};
use serde_json::Value;

/// How long a newly announced key stays in Warnings, ms.
pub(crate) const NEW_KEY_WARNING_MS: i64 = 60_000;

/// At most this many announced keys are remembered for Warnings.
const RECENT_CAP: usize = 50;

/// The drift keys and what the console knows of them.
#[derive(Debug, Clone, Default)]
pub(crate) struct DriftKeys {
    entries: Vec<DriftEntry>,
    /// A query for the stored keys is out.
    pub(crate) loading: bool,
    /// The stored keys were read at least once.
    pub(crate) loaded: bool,
    /// Why the last query failed.
    pub(crate) error: Option<String>,
    /// Keys announced live, with the console's time, oldest first.
    recent: VecDeque<(i64, DriftNotice)>,
}

fn same_key(e: &DriftEntry, event_type: &str, path: &str, kind: &str) -> bool {
    e.event_type == event_type && e.path == path && e.kind.as_str() == kind
}

impl DriftKeys {
    /// The answer to a `drift` query (`{"drift": […]}`, or the bare list): the stored keys
    /// replace what was known, keeping the keys announced live that the answer does not hold
    /// yet (the server flushes its counts to the store every few seconds).
    pub(crate) fn answer(&mut self, data: Result<Value, String>) {
        self.loading = false;
        let value = match data {
            Ok(v) => v,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        let list = value.get("drift").cloned().unwrap_or(value);
        match serde_json::from_value::<Vec<DriftEntry>>(list) {
            Ok(stored) => {
                let live_only: Vec<DriftEntry> = self
                    .entries
                    .drain(..)
                    .filter(|e| {
                        !stored
                            .iter()
                            .any(|s| same_key(s, &e.event_type, &e.path, e.kind.as_str()))
                    })
                    .collect();
                self.entries = stored;
                self.entries.extend(live_only);
                self.loaded = true;
                self.error = None;
            }
            Err(e) => self.error = Some(format!("unreadable drift answer: {e}")),
        }
    }

    /// A key announced on the `drift` topic at console time `now_ms`.
    pub(crate) fn announce(&mut self, n: DriftNotice, now_ms: i64) {
        match self
            .entries
            .iter_mut()
            .find(|e| same_key(e, &n.event_type, &n.path, n.drift_kind.as_str()))
        {
            Some(e) => {
                if n.seen_at > e.last_seen {
                    e.last_seen = n.seen_at.clone();
                }
            }
            None => self.entries.push(DriftEntry {
                event_type: n.event_type.clone(),
                path: n.path.clone(),
                kind: n.drift_kind,
                count: 1,
                first_seen: n.seen_at.clone(),
                last_seen: n.seen_at.clone(),
                agent_versions: n.agent_version.iter().cloned().collect(),
                applications: vec![n.application.clone()],
                sample: n.sample.clone(),
                example_event_id: n.example_event_id.clone(),
            }),
        }
        self.recent.push_back((now_ms, n));
        while self.recent.len() > RECENT_CAP {
            self.recent.pop_front();
        }
    }

    /// Every key: by type, then the most recently seen first, then by path.
    pub(crate) fn rows(&self) -> Vec<&DriftEntry> {
        let mut rows: Vec<&DriftEntry> = self.entries.iter().collect();
        rows.sort_by(|a, b| {
            a.event_type
                .cmp(&b.event_type)
                .then(b.last_seen.cmp(&a.last_seen))
                .then(a.path.cmp(&b.path))
                .then(a.kind.as_str().cmp(b.kind.as_str()))
        });
        rows
    }

    /// Distinct types with drift.
    pub(crate) fn types(&self) -> usize {
        let mut types: Vec<&str> = self.entries.iter().map(|e| e.event_type.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        types.len()
    }

    /// Keys announced in the last minute, newest first.
    pub(crate) fn new_keys(&self, now_ms: i64) -> Vec<&DriftNotice> {
        self.recent
            .iter()
            .rev()
            .filter(|(at, _)| now_ms - at < NEW_KEY_WARNING_MS)
            .map(|(_, n)| n)
            .collect()
    }

    /// Forgets everything (a restarted server).
    pub(crate) fn clear(&mut self) {
        *self = DriftKeys::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baddybugs_common::drift::DriftKind;
    use serde_json::json;

    fn notice(path: &str, at: &str) -> DriftNotice {
        DriftNotice {
            event_type: "request".into(),
            path: path.into(),
            drift_kind: DriftKind::UnknownField,
            sample: "\"x\"".into(),
            example_event_id: Some("evt-1".into()),
            application: "shop".into(),
            agent_version: Some("1.4.2".into()),
            seen_at: at.into(),
        }
    }

    #[test]
    fn stored_keys_replace_and_live_ones_stay_until_stored() {
        let mut d = DriftKeys::default();
        d.announce(
            notice("/payload/new_field", "2026-12-03T08:00:00.000Z"),
            1_000,
        );
        d.announce(notice("/payload/other", "2026-12-03T08:00:01.000Z"), 2_000);
        d.answer(Ok(json!({"drift": [{
            "type": "request", "path": "/payload/new_field", "kind": "unknown_field",
            "count": 42, "first_seen": "2026-12-03T07:00:00.000Z",
            "last_seen": "2026-12-03T08:00:00.000Z", "agent_versions": ["1.4.2"],
            "applications": ["shop", "blog"], "sample": "\"x\"", "example_event_id": "evt-1"
        }]})));
        let rows = d.rows();
        assert_eq!(rows.len(), 2, "the stored key once, the live-only key kept");
        assert_eq!(rows[0].path, "/payload/other", "newest first within a type");
        assert_eq!(rows[1].count, 42, "the stored count wins");
        assert_eq!(d.types(), 1);
        assert!(d.loaded && d.error.is_none());
    }

    #[test]
    fn a_new_key_is_a_warning_for_a_minute() {
        let mut d = DriftKeys::default();
        d.announce(notice("/payload/a", "2026-12-03T08:00:00.000Z"), 1_000);
        assert_eq!(d.new_keys(2_000).len(), 1);
        assert!(d.new_keys(1_000 + NEW_KEY_WARNING_MS).is_empty());
    }

    #[test]
    fn a_failed_or_unreadable_answer_is_said() {
        let mut d = DriftKeys::default();
        d.answer(Err("no store".into()));
        assert_eq!(d.error.as_deref(), Some("no store"));
        d.answer(Ok(json!({"drift": 3})));
        assert!(d.error.unwrap().starts_with("unreadable drift answer"));
    }
}
