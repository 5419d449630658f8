//! Schema drift: the in-memory aggregate of what accepted events carry that the catalog does not
//! describe, its periodic flush to the store's `schema_drift` table, and its reads.
//!
//! In: the divergences the validator found in each accepted, non-duplicate event
//! (`baddybugs_common::drift`), recorded once per request after the spool made it durable
//! ([`DriftRegistry::record`]), with the request's application and `X-Agent-Version`. Out: the
//! keys that are new to this process (announced on the feed's `drift` topic), the counters of
//! the metrics snapshot and of Prometheus, rows written to the store every
//! `drift.flush_interval_ms` ([`flush`]), and `GET /v1/drift`, which merges the stored rows of
//! every node with this process's unflushed ones ([`DriftRegistry::report`]).
//!
//! Bounded: at most `drift.max_types` types and `drift.max_keys_per_type` keys per type are
//! kept; further divergences only add to an overflow counter per type (a hostile agent sending
//! 100,000 distinct field names costs 256 keys and one counter). A key holds at most 8 agent
//! versions and 8 applications, a sample of at most `drift.sample_bytes` and a path and type
//! of at most [`MAX_NAME_BYTES`]. Requests without drift never take the lock.
//!
//! What can fail: a store write (the rows are kept and retried at the next flush; a crash
//! loses at most one interval of counts, never an event).

pub mod flush;
pub mod patch;
pub mod row;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use baddybugs_common::drift::{cut, Divergence, DriftKind};
use baddybugs_common::protocol::{DriftNotice, DriftOverflow, DriftReport};
use baddybugs_common::query::DriftFilter;
use baddybugs_common::timestamp::format_millis;
use parking_lot::Mutex;

use crate::config::DriftConfig;
use crate::metrics::Metrics;
pub use row::{add_bounded, merge_rows, DriftRow, MAX_VALUES_PER_KEY};

/// Longest type name and path kept, bytes (cut like a sample).
pub const MAX_NAME_BYTES: usize = 512;

/// The type label of overflow beyond `drift.max_types`.
pub const OTHER_TYPES: &str = "*";

/// What one request contributes: who sent it, and each accepted event's drift.
#[derive(Debug)]
pub struct DriftBatch<'a> {
    /// The key's application.
    pub application: &'a str,
    /// `X-Agent-Version`.
    pub agent_version: Option<&'a str>,
    /// Receipt time, epoch ms.
    pub received_ms: i64,
    /// (type, event id, divergences) of each accepted, non-duplicate event with drift.
    pub events: Vec<(&'a str, Option<&'a str>, &'a [Divergence])>,
}

#[derive(Debug, Default)]
struct TypeDrift {
    /// Every kept key; `Some` holds what was not flushed yet.
    keys: HashMap<(String, DriftKind), Option<DriftRow>>,
    overflow: u64,
}

#[derive(Debug, Default)]
struct Inner {
    types: HashMap<String, TypeDrift>,
    /// Overflow of types beyond `drift.max_types`.
    other_types_overflow: u64,
    /// Rows taken by a flush whose write has not finished (still reported).
    in_flight: Vec<DriftRow>,
}

/// The registry (shared as `Arc`).
pub struct DriftRegistry {
    config: DriftConfig,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
}

impl DriftRegistry {
    /// An empty registry.
    pub fn new(config: DriftConfig, metrics: Arc<Metrics>) -> DriftRegistry {
        DriftRegistry {
            config,
            metrics,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether detection is on (`drift.enabled`).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Records one request's drift; returns a notice for each key this process had not seen.
    pub fn record(&self, batch: &DriftBatch<'_>) -> Vec<DriftNotice> {
        let mut notices = Vec::new();
        if batch.events.is_empty() {
            return notices;
        }
        let counters = &self.metrics.drift;
        let mut inner = self.inner.lock();
        let Inner {
            types,
            other_types_overflow,
            ..
        } = &mut *inner;
        for (event_type, event_id, divergences) in &batch.events {
            let type_name = cut(event_type, MAX_NAME_BYTES);
            for d in divergences.iter() {
                let kind_index = DriftKind::ALL
                    .iter()
                    .position(|k| *k == d.kind)
                    .unwrap_or(0);
                counters.by_kind[kind_index].fetch_add(1, Ordering::Relaxed);
                if !types.contains_key(&type_name) {
                    if types.len() >= self.config.max_types {
                        *other_types_overflow += 1;
                        counters.overflow.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    types.insert(type_name.clone(), TypeDrift::default());
                }
                let Some(entry) = types.get_mut(&type_name) else {
                    continue;
                };
                let key = (cut(&d.path, MAX_NAME_BYTES), d.kind);
                let known = match entry.keys.get_mut(&key) {
                    // The common case of a known key: counted in place.
                    Some(Some(pending)) => {
                        pending.count += 1;
                        pending.last_seen_ms = pending.last_seen_ms.max(batch.received_ms);
                        if let Some(v) = batch.agent_version {
                            add_bounded(&mut pending.agent_versions, &cut(v, MAX_NAME_BYTES));
                        }
                        add_bounded(&mut pending.applications, batch.application);
                        continue;
                    }
                    Some(None) => true,
                    None => false,
                };
                if !known && entry.keys.len() >= self.config.max_keys_per_type {
                    entry.overflow += 1;
                    counters.overflow.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let occurrence = DriftRow {
                    event_type: type_name.clone(),
                    path: key.0.clone(),
                    kind: d.kind,
                    count: 1,
                    first_seen_ms: batch.received_ms,
                    last_seen_ms: batch.received_ms,
                    agent_versions: batch
                        .agent_version
                        .map(|v| vec![cut(v, MAX_NAME_BYTES)])
                        .unwrap_or_default(),
                    applications: vec![batch.application.to_owned()],
                    sample: cut(&d.sample, self.config.sample_bytes),
                    example_event_id: event_id.map(str::to_owned),
                };
                if !known {
                    counters.keys.fetch_add(1, Ordering::Relaxed);
                    notices.push(DriftNotice {
                        event_type: occurrence.event_type.clone(),
                        path: occurrence.path.clone(),
                        drift_kind: d.kind,
                        sample: occurrence.sample.clone(),
                        example_event_id: occurrence.example_event_id.clone(),
                        application: batch.application.to_owned(),
                        agent_version: batch.agent_version.map(str::to_owned),
                        seen_at: format_millis(batch.received_ms),
                    });
                }
                entry.keys.insert(key, Some(occurrence));
            }
        }
        notices
    }

    /// Takes the rows not flushed yet (they stay reported as in flight until
    /// [`DriftRegistry::flushed`] or [`DriftRegistry::restore`]).
    pub fn take_pending(&self) -> Vec<DriftRow> {
        let mut inner = self.inner.lock();
        let mut out = Vec::new();
        for drift in inner.types.values_mut() {
            out.extend(drift.keys.values_mut().filter_map(Option::take));
        }
        inner.in_flight.extend(out.iter().cloned());
        out
    }

    /// The taken rows are stored.
    pub fn flushed(&self) {
        self.inner.lock().in_flight.clear();
    }

    /// The taken rows could not be stored: they are pending again.
    pub fn restore(&self) {
        let mut inner = self.inner.lock();
        let rows = std::mem::take(&mut inner.in_flight);
        for row in rows {
            let Some(drift) = inner.types.get_mut(&row.event_type) else {
                continue;
            };
            match drift.keys.entry((row.path.clone(), row.kind)).or_default() {
                Some(pending) => pending.merge(&row),
                slot @ None => *slot = Some(row),
            }
        }
    }

    /// This process's rows not in the store yet (pending and in flight).
    pub fn unflushed(&self) -> Vec<DriftRow> {
        let inner = self.inner.lock();
        let mut out = inner.in_flight.clone();
        for drift in inner.types.values() {
            out.extend(drift.keys.values().filter_map(Clone::clone));
        }
        out
    }

    /// The overflow per type since start.
    pub fn overflow(&self) -> Vec<DriftOverflow> {
        let inner = self.inner.lock();
        let mut out: Vec<DriftOverflow> = inner
            .types
            .iter()
            .filter(|(_, d)| d.overflow > 0)
            .map(|(t, d)| DriftOverflow {
                event_type: t.clone(),
                count: d.overflow,
            })
            .collect();
        if inner.other_types_overflow > 0 {
            out.push(DriftOverflow {
                event_type: OTHER_TYPES.to_owned(),
                count: inner.other_types_overflow,
            });
        }
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.event_type.cmp(&b.event_type)));
        out
    }

    /// `GET /v1/drift`: the stored rows merged with the unflushed ones.
    pub fn report(&self, stored: Vec<DriftRow>, filter: &DriftFilter) -> DriftReport {
        let rows = merge_rows(stored.into_iter().chain(self.unflushed()), filter);
        DriftReport {
            drift: rows.iter().map(DriftRow::entry).collect(),
            overflow: self
                .overflow()
                .into_iter()
                .filter(|o| {
                    filter
                        .event_type
                        .as_ref()
                        .is_none_or(|t| *t == o.event_type)
                })
                .collect(),
        }
    }

    /// Distinct keys kept in memory (for tests and the snapshot).
    pub fn key_count(&self) -> usize {
        self.inner.lock().types.values().map(|d| d.keys.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max_keys: usize, max_types: usize) -> DriftRegistry {
        DriftRegistry::new(
            DriftConfig {
                max_keys_per_type: max_keys,
                max_types,
                sample_bytes: 32,
                ..DriftConfig::default()
            },
            Arc::new(Metrics::new("t".into())),
        )
    }

    fn field(path: &str, sample: &str) -> Divergence {
        Divergence {
            path: path.into(),
            kind: DriftKind::UnknownField,
            sample: sample.into(),
        }
    }

    fn batch<'a>(events: Vec<(&'a str, Option<&'a str>, &'a [Divergence])>) -> DriftBatch<'a> {
        DriftBatch {
            application: "shop",
            agent_version: Some("1.2.3"),
            received_ms: 1_000,
            events,
        }
    }

    #[test]
    fn a_key_is_announced_once_and_counted_every_time() {
        let r = registry(4, 4);
        let d = [field("/payload/x", "1")];
        let n = r.record(&batch(vec![
            ("request", Some("e1"), &d),
            ("request", Some("e2"), &d),
        ]));
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].example_event_id.as_deref(), Some("e1"));
        assert!(r
            .record(&batch(vec![("request", Some("e3"), &d)]))
            .is_empty());
        let rows = r.unflushed();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].count, 3);
        assert_eq!(rows[0].agent_versions, ["1.2.3"]);
        assert_eq!(r.metrics.drift.stats().occurrences, 3);
    }

    #[test]
    fn keys_per_type_and_types_are_capped_with_overflow_counted() {
        let r = registry(3, 2);
        let many: Vec<Divergence> = (0..1000)
            .map(|i| field(&format!("/payload/f{i}"), "1"))
            .collect();
        r.record(&batch(vec![("request", None, &many)]));
        assert_eq!(r.key_count(), 3);
        let d = [field("/payload/x", "1")];
        r.record(&batch(vec![
            ("a", None, &d),
            ("b", None, &d),
            ("c", None, &d),
        ]));
        assert_eq!(r.key_count(), 4, "a second type kept, the third not");
        let overflow = r.overflow();
        assert_eq!(overflow[0].event_type, "request");
        assert_eq!(overflow[0].count, 997);
        assert!(overflow
            .iter()
            .any(|o| o.event_type == OTHER_TYPES && o.count == 2));
        assert_eq!(r.metrics.drift.stats().overflow, 999);
        assert_eq!(r.metrics.drift.stats().keys, 4);
    }

    #[test]
    fn samples_and_names_are_cut() {
        let r = registry(4, 4);
        let long_path = format!("/payload/{}", "é".repeat(1000));
        let d = [field(&long_path, &"x".repeat(100))];
        let n = r.record(&batch(vec![("request", None, &d)]));
        assert!(n[0].sample.len() <= 32 && baddybugs_common::drift::is_cut(&n[0].sample));
        assert!(n[0].path.len() <= MAX_NAME_BYTES);
    }

    #[test]
    fn a_failed_flush_keeps_its_rows() {
        let r = registry(4, 4);
        let d = [field("/payload/x", "1")];
        r.record(&batch(vec![("request", None, &d)]));
        let taken = r.take_pending();
        assert_eq!(taken.len(), 1);
        assert_eq!(r.unflushed().len(), 1, "in flight still reported");
        r.record(&batch(vec![("request", None, &d)]));
        r.restore();
        let rows = r.unflushed();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].count, 2);
        r.take_pending();
        r.flushed();
        assert!(r.unflushed().is_empty());
        assert!(r.take_pending().is_empty());
    }
}
