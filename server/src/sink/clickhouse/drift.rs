//! The `schema_drift` table on ClickHouse: each flush of each node appends one row per key it
//! saw since its previous flush; reads aggregate the rows of a key (sum of counts, earliest
//! first seen with its sample, latest last seen, union of versions and applications), so every
//! node writing to one ClickHouse reads the drift of all.

use std::sync::OnceLock;

use baddybugs_common::drift::DriftKind;
use baddybugs_common::query::DriftFilter;
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use crate::drift::{merge_rows, DriftRow, MAX_VALUES_PER_KEY};

/// This process, as the `node` column says (informational: which node flushed a row).
fn node() -> &'static str {
    static NODE: OnceLock<String> = OnceLock::new();
    NODE.get_or_init(|| uuid::Uuid::new_v4().to_string())
}

#[derive(Row, Serialize)]
struct DriftInsert<'a> {
    flushed_at: i64,
    node: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    path: &'a str,
    kind: &'a str,
    count: u64,
    first_seen: i64,
    last_seen: i64,
    agent_versions: &'a [String],
    applications: &'a [String],
    sample: &'a str,
    example_event_id: Option<&'a str>,
}

/// Appends the rows (one insert).
pub(super) async fn write_drift(
    client: &Client,
    rows: &[DriftRow],
) -> Result<(), clickhouse::error::Error> {
    let now = chrono::Utc::now().timestamp_millis();
    let client = client.clone().with_setting("async_insert", "0");
    let mut insert = client.insert::<DriftInsert<'_>>("schema_drift").await?;
    for row in rows {
        insert
            .write(&DriftInsert {
                flushed_at: now,
                node: node(),
                event_type: &row.event_type,
                path: &row.path,
                kind: row.kind.as_str(),
                count: row.count,
                first_seen: row.first_seen_ms,
                last_seen: row.last_seen_ms,
                agent_versions: &row.agent_versions,
                applications: &row.applications,
                sample: &row.sample,
                example_event_id: row.example_event_id.as_deref(),
            })
            .await?;
    }
    insert.end().await
}

/// One aggregated key (the aliases differ from the columns: ClickHouse would otherwise read
/// `first_seen` inside `argMin` as the `min(first_seen)` alias).
#[derive(Row, Deserialize)]
struct DriftRead {
    t: String,
    p: String,
    k: String,
    total: u64,
    first: i64,
    last: i64,
    versions: Vec<String>,
    apps: Vec<String>,
    first_sample: String,
    first_example: Option<String>,
}

/// The keys passing `filter`, aggregated across rows and nodes, most recently seen first.
pub(super) async fn query_drift(
    client: &Client,
    filter: &DriftFilter,
) -> Result<Vec<DriftRow>, clickhouse::error::Error> {
    let sql = format!(
        "SELECT type AS t, path AS p, kind AS k, sum(count) AS total, \
         toInt64(toUnixTimestamp64Milli(min(first_seen))) AS first, \
         toInt64(toUnixTimestamp64Milli(max(last_seen))) AS last, \
         arraySort(groupUniqArrayArray({MAX_VALUES_PER_KEY})(agent_versions)) AS versions, \
         arraySort(groupUniqArrayArray({MAX_VALUES_PER_KEY})(applications)) AS apps, \
         argMin(sample, first_seen) AS first_sample, \
         argMin(example_event_id, first_seen) AS first_example \
         FROM schema_drift \
         WHERE (? = '' OR type = ?) AND (? = '' OR kind = ?) \
         GROUP BY type, path, kind \
         HAVING last >= toInt64(?) \
         ORDER BY last DESC \
         LIMIT 100000"
    );
    let event_type = filter.event_type.clone().unwrap_or_default();
    let kind = filter.kind.map(DriftKind::as_str).unwrap_or_default();
    let rows = client
        .query(&sql)
        .bind(&event_type)
        .bind(&event_type)
        .bind(kind)
        .bind(kind)
        .bind(filter.since_ms.unwrap_or(i64::MIN))
        .fetch_all::<DriftRead>()
        .await?;
    let rows = rows.into_iter().filter_map(|r| {
        Some(DriftRow {
            kind: DriftKind::parse(&r.k)?,
            event_type: r.t,
            path: r.p,
            count: r.total,
            first_seen_ms: r.first,
            last_seen_ms: r.last,
            agent_versions: r.versions,
            applications: r.apps,
            sample: r.first_sample,
            example_event_id: r.first_example,
        })
    });
    Ok(merge_rows(rows, filter))
}
