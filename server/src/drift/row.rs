//! One drift key's aggregate, as kept in memory, written to the `schema_drift` table and read
//! back: the unit both stores and `GET /v1/drift` merge.

use baddybugs_common::drift::DriftKind;
use baddybugs_common::protocol::DriftEntry;
use baddybugs_common::query::DriftFilter;
use baddybugs_common::timestamp::format_millis;

/// Most agent versions and applications kept per key.
pub const MAX_VALUES_PER_KEY: usize = 8;

/// The aggregate of one (type, path, kind) key over some occurrences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftRow {
    /// The event type.
    pub event_type: String,
    /// JSON Pointer, indexes and map keys as `*`.
    pub path: String,
    /// The kind.
    pub kind: DriftKind,
    /// Occurrences.
    pub count: u64,
    /// First occurrence, epoch ms.
    pub first_seen_ms: i64,
    /// Last occurrence, epoch ms.
    pub last_seen_ms: i64,
    /// `X-Agent-Version`s seen, sorted, at most [`MAX_VALUES_PER_KEY`].
    pub agent_versions: Vec<String>,
    /// Applications seen, sorted, at most [`MAX_VALUES_PER_KEY`].
    pub applications: Vec<String>,
    /// The sample of the first occurrence (compact JSON, capped).
    pub sample: String,
    /// The id of the event of the sample.
    pub example_event_id: Option<String>,
}

/// Adds `value` to a sorted, bounded set (a full set keeps its values).
pub fn add_bounded(set: &mut Vec<String>, value: &str) {
    if let Err(at) = set.binary_search_by(|v| v.as_str().cmp(value)) {
        if set.len() < MAX_VALUES_PER_KEY {
            set.insert(at, value.to_owned());
        }
    }
}

impl DriftRow {
    /// The key it aggregates.
    pub fn key(&self) -> (&str, &str, DriftKind) {
        (&self.event_type, &self.path, self.kind)
    }

    /// Folds another aggregate of the same key in: counts add up, the time span widens, the
    /// sets unite (bounded), and the sample of the earlier first occurrence is kept.
    pub fn merge(&mut self, other: &DriftRow) {
        self.count += other.count;
        if other.first_seen_ms < self.first_seen_ms {
            self.first_seen_ms = other.first_seen_ms;
            self.sample.clone_from(&other.sample);
            self.example_event_id.clone_from(&other.example_event_id);
        }
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
        for v in &other.agent_versions {
            add_bounded(&mut self.agent_versions, v);
        }
        for a in &other.applications {
            add_bounded(&mut self.applications, a);
        }
    }

    /// Whether the row passes a filter.
    pub fn matches(&self, filter: &DriftFilter) -> bool {
        filter
            .event_type
            .as_ref()
            .is_none_or(|t| *t == self.event_type)
            && filter.kind.is_none_or(|k| k == self.kind)
            && filter
                .application
                .as_ref()
                .is_none_or(|a| self.applications.contains(a))
            && filter
                .agent_version
                .as_ref()
                .is_none_or(|v| self.agent_versions.contains(v))
            && filter.since_ms.is_none_or(|s| self.last_seen_ms >= s)
    }

    /// As `GET /v1/drift` reports it.
    pub fn entry(&self) -> DriftEntry {
        DriftEntry {
            event_type: self.event_type.clone(),
            path: self.path.clone(),
            kind: self.kind,
            count: self.count,
            first_seen: format_millis(self.first_seen_ms),
            last_seen: format_millis(self.last_seen_ms),
            agent_versions: self.agent_versions.clone(),
            applications: self.applications.clone(),
            sample: self.sample.clone(),
            example_event_id: self.example_event_id.clone(),
        }
    }
}

/// Merges rows of the same keys (from several nodes, flushes and memory) into one per key,
/// keeps those passing `filter`, most recently seen first.
pub fn merge_rows(rows: impl IntoIterator<Item = DriftRow>, filter: &DriftFilter) -> Vec<DriftRow> {
    let mut by_key: std::collections::HashMap<(String, String, DriftKind), DriftRow> =
        std::collections::HashMap::new();
    for row in rows {
        let key = (row.event_type.clone(), row.path.clone(), row.kind);
        match by_key.get_mut(&key) {
            Some(existing) => existing.merge(&row),
            None => {
                by_key.insert(key, row);
            }
        }
    }
    let mut out: Vec<DriftRow> = by_key.into_values().filter(|r| r.matches(filter)).collect();
    out.sort_by(|a, b| {
        b.last_seen_ms
            .cmp(&a.last_seen_ms)
            .then_with(|| a.key().cmp(&b.key()))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(count: u64, first: i64, last: i64, app: &str, sample: &str) -> DriftRow {
        DriftRow {
            event_type: "request".into(),
            path: "/payload/x".into(),
            kind: DriftKind::UnknownField,
            count,
            first_seen_ms: first,
            last_seen_ms: last,
            agent_versions: vec!["1.0.0".into()],
            applications: vec![app.into()],
            sample: sample.into(),
            example_event_id: Some(sample.into()),
        }
    }

    #[test]
    fn rows_of_one_key_merge_across_nodes() {
        let merged = merge_rows(
            [
                row(2, 50, 60, "shop", "b"),
                row(3, 10, 20, "blog", "a"),
                row(1, 70, 90, "shop", "c"),
            ],
            &DriftFilter::default(),
        );
        assert_eq!(merged.len(), 1);
        let r = &merged[0];
        assert_eq!((r.count, r.first_seen_ms, r.last_seen_ms), (6, 10, 90));
        assert_eq!(r.applications, ["blog", "shop"]);
        assert_eq!(r.sample, "a", "the first occurrence's sample");
        assert_eq!(r.example_event_id.as_deref(), Some("a"));
    }

    #[test]
    fn value_sets_are_bounded() {
        let mut set = Vec::new();
        for i in 0..20 {
            add_bounded(&mut set, &format!("v{i:02}"));
        }
        add_bounded(&mut set, "v00");
        assert_eq!(set.len(), MAX_VALUES_PER_KEY);
    }

    #[test]
    fn filters_and_order() {
        let mut other = row(1, 5, 500, "blog", "z");
        other.path = "/payload/y".into();
        other.kind = DriftKind::Coerced;
        let rows = vec![row(1, 1, 100, "shop", "a"), other];
        let all = merge_rows(rows.clone(), &DriftFilter::default());
        assert_eq!(all[0].path, "/payload/y", "newest first");
        let f = DriftFilter {
            application: Some("shop".into()),
            ..Default::default()
        };
        assert_eq!(merge_rows(rows.clone(), &f).len(), 1);
        let f = DriftFilter {
            since_ms: Some(200),
            ..Default::default()
        };
        assert_eq!(merge_rows(rows.clone(), &f)[0].kind, DriftKind::Coerced);
        let f = DriftFilter {
            agent_version: Some("2".into()),
            ..Default::default()
        };
        assert!(merge_rows(rows, &f).is_empty());
    }
}
