//! The `schema_drift` table of the embedded store: one row per (type, path, kind), merged with
//! each flush in the write transaction (SQLite has one writer, so no row needs merging on
//! read; the read still merges like ClickHouse's, which keeps one row per flush and node).

use baddybugs_common::drift::DriftKind;
use baddybugs_common::query::DriftFilter;
use rusqlite::{params, Connection, OptionalExtension};

use super::read::ReadError;
use crate::drift::{merge_rows, DriftRow};

fn json_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DriftRow> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let text: String = row.get(i)?;
        serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
        })
    };
    let kind: String = row.get(2)?;
    Ok(DriftRow {
        event_type: row.get(0)?,
        path: row.get(1)?,
        kind: DriftKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("unknown drift kind {kind:?}").into(),
            )
        })?,
        count: row.get::<_, i64>(3)?.max(0) as u64,
        first_seen_ms: row.get(4)?,
        last_seen_ms: row.get(5)?,
        agent_versions: list(6)?,
        applications: list(7)?,
        sample: row.get(8)?,
        example_event_id: row.get(9)?,
    })
}

const COLUMNS: &str = "type, path, kind, count, first_seen_ms, last_seen_ms, agent_versions, \
                       applications, sample, example_event_id";

/// Merges the rows into the table, in one transaction.
pub(super) fn write_drift(conn: &mut Connection, rows: &[DriftRow]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut select = tx.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM schema_drift WHERE type = ?1 AND path = ?2 AND kind = ?3"
        ))?;
        let mut upsert = tx.prepare_cached(&format!(
            "INSERT OR REPLACE INTO schema_drift ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))?;
        for row in rows {
            let mut merged = select
                .query_row(
                    params![row.event_type, row.path, row.kind.as_str()],
                    from_row,
                )
                .optional()?
                .unwrap_or_else(|| DriftRow {
                    count: 0,
                    ..row.clone()
                });
            if merged.count > 0 {
                merged.merge(row);
            } else {
                merged = row.clone();
            }
            upsert.execute(params![
                merged.event_type,
                merged.path,
                merged.kind.as_str(),
                i64::try_from(merged.count).unwrap_or(i64::MAX),
                merged.first_seen_ms,
                merged.last_seen_ms,
                json_list(&merged.agent_versions),
                json_list(&merged.applications),
                merged.sample,
                merged.example_event_id,
            ])?;
        }
    }
    tx.commit()
}

/// The stored keys passing `filter`, most recently seen first.
pub(super) fn query_drift(
    conn: &Connection,
    filter: &DriftFilter,
) -> Result<Vec<DriftRow>, ReadError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM schema_drift WHERE last_seen_ms >= ?1 \
         AND (?2 IS NULL OR type = ?2) AND (?3 IS NULL OR kind = ?3)"
    ))?;
    let rows = stmt
        .query_map(
            params![
                filter.since_ms.unwrap_or(i64::MIN),
                filter.event_type,
                filter.kind.map(DriftKind::as_str),
            ],
            from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(merge_rows(rows, filter))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sink::sqlite::SqliteStore;
    use crate::sink::Store;

    fn row(path: &str, kind: DriftKind, count: u64, first: i64, last: i64, app: &str) -> DriftRow {
        DriftRow {
            event_type: "log".into(),
            path: path.into(),
            kind,
            count,
            first_seen_ms: first,
            last_seen_ms: last,
            agent_versions: vec!["1.0.0".into()],
            applications: vec![app.into()],
            sample: format!("\"{app}\""),
            example_event_id: Some(format!("{app}-{first}")),
        }
    }

    /// Flushes add up in the key's one row; the first occurrence's sample stays; the reads
    /// filter like the API.
    #[tokio::test]
    async fn flushes_merge_into_one_row_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("s.sqlite")).unwrap());
        store
            .write_drift(vec![
                row("/payload/a", DriftKind::UnknownField, 2, 100, 200, "shop"),
                row("/payload/b", DriftKind::Coerced, 1, 150, 150, "shop"),
            ])
            .await
            .unwrap();
        store
            .write_drift(vec![row(
                "/payload/a",
                DriftKind::UnknownField,
                3,
                50,
                400,
                "blog",
            )])
            .await
            .unwrap();
        let all = store.query_drift(DriftFilter::default()).await.unwrap();
        assert_eq!(all.len(), 2);
        let a = &all[0];
        assert_eq!(
            (a.path.as_str(), a.count),
            ("/payload/a", 5),
            "newest first: {all:?}"
        );
        assert_eq!((a.first_seen_ms, a.last_seen_ms), (50, 400));
        assert_eq!(a.applications, ["blog", "shop"]);
        assert_eq!(a.example_event_id.as_deref(), Some("blog-50"));
        let coerced = DriftFilter {
            kind: Some(DriftKind::Coerced),
            ..Default::default()
        };
        assert_eq!(
            store.query_drift(coerced).await.unwrap()[0].path,
            "/payload/b"
        );
        let recent = DriftFilter {
            since_ms: Some(300),
            ..Default::default()
        };
        assert_eq!(store.query_drift(recent).await.unwrap().len(), 1);
        let other_type = DriftFilter {
            event_type: Some("request".into()),
            ..Default::default()
        };
        assert!(store.query_drift(other_type).await.unwrap().is_empty());
    }
}
