//! The ClickHouse schema: DDL generated from the configuration, applied as numbered migrations
//! recorded in `schema_migrations`.
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so a start that crashed halfway through a
//! migration simply runs it again; a version is recorded only after all its statements ran. A
//! database whose `schema_migrations` holds a version newer than this build knows is refused.
//!
//! Why the tables look the way they do is explained in docs/SCHEMA.md; the short version:
//! - partitions and TTLs follow `received_at` (the server's clock), never the agent's
//!   `timestamp`: one batch with timestamps spread over years would make a single insert touch
//!   hundreds of monthly partitions (`TOO_MANY_PARTS`, which would block the sink forever), and
//!   an agent with a stale clock would have its fresh events deleted by the TTL;
//! - every MergeTree table keeps the hashes of its last inserted blocks
//!   (`non_replicated_deduplication_window`, or the replicated window on a cluster), which is
//!   what makes the batcher's `insert_deduplication_token` drop a replayed insert;
//! - `data`, `envelope` and the other JSON columns are ZSTD-compressed, and constraints refuse
//!   a row whose `data` or `envelope` is not JSON (the query API hands them out unchecked), so
//!   the batcher can quarantine that row and store its batch-mates.

use crate::config::ClickHouseConfig;

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: u32 = 3;

/// The tables the batcher inserts into, in insert order.
pub const TABLES: [&str; 5] = [
    "events",
    "lifecycle_spans",
    "exceptions",
    "malformed_events",
    "ingest_traces",
];

/// One schema change: a name and its statements, run one by one.
pub struct Migration {
    /// Version number, recorded in `schema_migrations` once every statement ran.
    pub version: u32,
    /// What it does.
    pub name: &'static str,
    /// The statements.
    pub statements: Vec<String>,
}

/// How the DDL is written for one configuration.
pub struct Ddl<'a> {
    db: String,
    cluster: Option<&'a str>,
    ttl_days: u32,
    quarantine_ttl_days: u32,
}

impl<'a> Ddl<'a> {
    /// The DDL for `config`.
    pub fn new(config: &'a ClickHouseConfig) -> Ddl<'a> {
        Ddl {
            db: quote_ident(&config.database),
            cluster: config.cluster.as_deref(),
            ttl_days: config.ttl_days,
            quarantine_ttl_days: config.quarantine_ttl_days,
        }
    }

    /// `` `db`.`table` ``.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{}", self.db, quote_ident(name))
    }

    fn on_cluster(&self) -> String {
        self.cluster
            .map(|c| format!(" ON CLUSTER {}", quote_ident(c)))
            .unwrap_or_default()
    }

    /// A MergeTree-family engine (`""`, `"Aggregating"`), replicated on a cluster.
    fn engine(&self, family: &str) -> String {
        match self.cluster {
            Some(_) => format!(
                "Replicated{family}MergeTree('/clickhouse/tables/{{shard}}/{{database}}/{{table}}', '{{replica}}')"
            ),
            None => format!("{family}MergeTree"),
        }
    }

    /// Settings of the tables the batcher inserts into: deduplication of replayed inserts.
    fn dedup_settings(&self) -> &'static str {
        match self.cluster {
            Some(_) => "SETTINGS replicated_deduplication_window = 10000, index_granularity = 8192",
            None => {
                "SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 8192"
            }
        }
    }

    fn ttl(&self, days: u32) -> String {
        format!("TTL toDateTime(received_at) + toIntervalDay({days})")
    }

    /// The TTL clause expected on `table` for this configuration (`None` for tables without).
    pub fn ttl_days_of(&self, table: &str) -> Option<u32> {
        match table {
            "malformed_events" => Some(self.quarantine_ttl_days),
            "events" | "lifecycle_spans" | "exceptions" | "ingest_traces" | "schema_drift" => {
                Some(self.ttl_days)
            }
            _ => None,
        }
    }

    /// The time column a table's TTL follows (`flushed_at` for `schema_drift`, whose rows are
    /// flushes, not receipts).
    fn ttl_column(table: &str) -> &'static str {
        match table {
            "schema_drift" => "flushed_at",
            _ => "received_at",
        }
    }

    /// `ALTER TABLE … MODIFY TTL` for a table whose retention was reconfigured. Existing parts
    /// are not rewritten (the new TTL applies as parts merge), so this is cheap at start.
    pub fn modify_ttl(&self, table: &str) -> Option<String> {
        let days = self.ttl_days_of(table)?;
        Some(format!(
            "ALTER TABLE {}{} MODIFY TTL toDateTime({}) + toIntervalDay({days}) \
             SETTINGS materialize_ttl_after_modify = 0",
            self.table(table),
            self.on_cluster(),
            Self::ttl_column(table)
        ))
    }

    /// `CREATE DATABASE` (nothing for `default`, which always exists).
    pub fn create_database(&self) -> Option<String> {
        (self.db != "`default`").then(|| {
            format!(
                "CREATE DATABASE IF NOT EXISTS {}{}",
                self.db,
                self.on_cluster()
            )
        })
    }

    /// The table recording applied migrations.
    pub fn create_migrations_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {}{} (
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = {}
ORDER BY version",
            self.table("schema_migrations"),
            self.on_cluster(),
            self.engine("")
        )
    }

    /// Every migration, oldest first. Append only: a published migration is never edited.
    pub fn migrations(&self) -> Vec<Migration> {
        vec![
            Migration {
                version: 1,
                name: "initial schema",
                statements: self.v1(),
            },
            Migration {
                version: 2,
                name: "plain String instead of LowCardinality in the inserted tables",
                statements: self.v2(),
            },
            Migration {
                version: 3,
                name: "schema_drift",
                statements: self.v3(),
            },
        ]
    }

    /// Migration 3: `schema_drift` (issue 17). One row per key and flush of each node: every
    /// node appends what it saw since its last flush, and reads aggregate (sum of counts, min
    /// first seen, max last seen, union of versions and applications), so nodes writing to one
    /// ClickHouse share their drift without coordinating. Rows expire after `ttl_days` like
    /// the events they describe.
    fn v3(&self) -> Vec<String> {
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {drift}{c} (
    flushed_at       DateTime64(3, 'UTC'),
    node             String,
    type             String,
    path             String,
    kind             LowCardinality(String),
    count            UInt64,
    first_seen       DateTime64(3, 'UTC'),
    last_seen        DateTime64(3, 'UTC'),
    agent_versions   Array(String),
    applications     Array(String),
    sample           String CODEC(ZSTD(3)),
    example_event_id Nullable(String)
) ENGINE = {mt}
PARTITION BY toYYYYMM(flushed_at)
ORDER BY (type, path, kind, flushed_at)
TTL toDateTime(flushed_at) + toIntervalDay({days})",
            drift = self.table("schema_drift"),
            c = self.on_cluster(),
            mt = self.engine(""),
            days = self.ttl_days,
        )]
    }

    /// Migration 2: `LowCardinality` out of `events`, `lifecycle_spans` and `exceptions`.
    ///
    /// The batcher inserts RowBinary (the crate's format), and ClickHouse parses a
    /// `LowCardinality` value of a row format one row at a time through the column's dictionary:
    /// on 10,000 `events` rows, 92 ms against 54 ms with plain `String` (chDB 26.9, the same
    /// engine; docs/BENCHMARKS.md). These columns lead the sorting keys or repeat a handful of
    /// values, so LZ4 already stores them in next to nothing, and the console's queries filter
    /// them through the primary key. The small tables (groups, quarantine, traces) keep theirs.
    /// `MODIFY COLUMN` to the same type is a no-op, so the statements can run again.
    fn v2(&self) -> Vec<String> {
        let c = self.on_cluster();
        let plain = |table: &str, columns: &[(&str, &str)]| {
            let clauses: Vec<String> = columns
                .iter()
                .map(|(column, ty)| format!("MODIFY COLUMN {} {ty}", quote_ident(column)))
                .collect();
            format!(
                "ALTER TABLE {}{c} {}",
                self.table(table),
                clauses.join(", ")
            )
        };
        vec![
            plain(
                "events",
                &[
                    ("organization", "String"),
                    ("application", "String"),
                    ("environment", "String"),
                    ("type", "String"),
                    ("timestamp_source", "String"),
                    ("release", "Nullable(String)"),
                    ("host", "Nullable(String)"),
                    ("deployment_hash", "Nullable(String)"),
                    ("severity", "Nullable(String)"),
                ],
            ),
            plain(
                "lifecycle_spans",
                &[
                    ("organization", "String"),
                    ("application", "String"),
                    ("kind", "String"),
                    ("span_type", "String"),
                    ("http_method", "Nullable(String)"),
                ],
            ),
            plain(
                "exceptions",
                &[
                    ("organization", "String"),
                    ("application", "String"),
                    ("environment", "String"),
                    ("severity", "String"),
                    ("method", "Nullable(String)"),
                ],
            ),
        ]
    }

    fn v1(&self) -> Vec<String> {
        let c = self.on_cluster();
        let ttl = self.ttl(self.ttl_days);
        let quarantine_ttl = self.ttl(self.quarantine_ttl_days);
        let dedup = self.dedup_settings();
        let mt = self.engine("");
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {events}{c} (
    event_id         String,
    organization     LowCardinality(String),
    application      LowCardinality(String),
    environment      LowCardinality(String),
    type             LowCardinality(String),
    name             String,
    timestamp        DateTime64(3, 'UTC'),
    timestamp_source LowCardinality(String),
    received_at      DateTime64(3, 'UTC'),
    trace_id         String,
    session_id       Nullable(String),
    release          LowCardinality(Nullable(String)),
    host             LowCardinality(Nullable(String)),
    deployment_hash  LowCardinality(Nullable(String)),
    batch_id         String,
    lsn              UInt64,
    idx              UInt32,
    known_type       Bool,
    duration_ms      Nullable(Float64),
    user_id          Nullable(String),
    status_code      Nullable(UInt16),
    is_error         Bool,
    severity         LowCardinality(Nullable(String)),
    request_id       Nullable(String),
    job_id           Nullable(String),
    data             String CODEC(ZSTD(3)),
    envelope         String CODEC(ZSTD(3)),
    INDEX idx_event_id    event_id    TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace_id    trace_id    TYPE bloom_filter(0.01)  GRANULARITY 1,
    INDEX idx_user_id     user_id     TYPE bloom_filter(0.01)  GRANULARITY 4,
    INDEX idx_request_id  request_id  TYPE bloom_filter(0.01)  GRANULARITY 4,
    INDEX idx_job_id      job_id      TYPE bloom_filter(0.01)  GRANULARITY 4,
    INDEX idx_name        name        TYPE bloom_filter(0.01)  GRANULARITY 4,
    INDEX idx_timestamp   timestamp   TYPE minmax              GRANULARITY 1,
    INDEX idx_status_code status_code TYPE minmax              GRANULARITY 4,
    INDEX idx_is_error    is_error    TYPE set(2)              GRANULARITY 4,
    CONSTRAINT data_is_json     CHECK isValidJSON(data),
    CONSTRAINT envelope_is_json CHECK isValidJSON(envelope)
) ENGINE = {mt}
PARTITION BY toYYYYMM(received_at)
ORDER BY (organization, application, type, timestamp, event_id)
{ttl}
{dedup}",
                events = self.table("events"),
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {spans}{c} (
    trace_id        String,
    timestamp       DateTime64(3, 'UTC'),
    received_at     DateTime64(3, 'UTC'),
    event_id        String,
    organization    LowCardinality(String),
    application     LowCardinality(String),
    kind            LowCardinality(String),
    span_id         UInt32,
    span_type       LowCardinality(String),
    label           String,
    start_offset_ms Float64,
    duration_ms     Float64,
    depth           UInt8,
    started_at      Nullable(DateTime64(3, 'UTC')),
    sql             Nullable(String) CODEC(ZSTD(3)),
    cache_key       Nullable(String),
    http_url        Nullable(String),
    http_method     LowCardinality(Nullable(String)),
    http_status     Nullable(UInt16),
    job_class       Nullable(String)
) ENGINE = {mt}
PARTITION BY toYYYYMM(received_at)
ORDER BY (trace_id, timestamp, kind, start_offset_ms, event_id, span_id)
{ttl}
{dedup}",
                spans = self.table("lifecycle_spans"),
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {exceptions}{c} (
    organization    LowCardinality(String),
    application     LowCardinality(String),
    fingerprint     String,
    timestamp       DateTime64(3, 'UTC'),
    received_at     DateTime64(3, 'UTC'),
    event_id        String,
    trace_id        String,
    environment     LowCardinality(String),
    exception_class String,
    message         String,
    file            String,
    line            UInt32,
    code            Nullable(String),
    trace           String CODEC(ZSTD(3)),
    source_code     Nullable(String) CODEC(ZSTD(3)),
    breadcrumbs     Nullable(String) CODEC(ZSTD(3)),
    severity        LowCardinality(String),
    handled         Bool,
    user_id         Nullable(String),
    url             Nullable(String),
    method          LowCardinality(Nullable(String)),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01)  GRANULARITY 1
) ENGINE = {mt}
PARTITION BY toYYYYMM(received_at)
ORDER BY (organization, application, fingerprint, timestamp)
{ttl}
{dedup}",
                exceptions = self.table("exceptions"),
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {groups}{c} (
    organization     LowCardinality(String),
    application      LowCardinality(String),
    fingerprint      String,
    first_seen       SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen        SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    occurrence_count SimpleAggregateFunction(sum, UInt64),
    exception_class  AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    last_message     AggregateFunction(argMax, String, DateTime64(3, 'UTC'))
) ENGINE = {agg}
ORDER BY (organization, application, fingerprint)
{dedup}",
                groups = self.table("exception_groups"),
                agg = self.engine("Aggregating"),
            ),
            // Fed by each insert into `exceptions`. A replayed insert still reaches the view
            // (ClickHouse pushes deduplicated blocks to dependent views); the insert sets
            // `deduplicate_blocks_in_dependent_materialized_views = 1` and the target keeps a
            // deduplication window too, so the replay is dropped there as well and occurrence
            // counts never double.
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {mv}{c} TO {groups} AS
SELECT
    organization,
    application,
    fingerprint,
    min(timestamp)                        AS first_seen,
    max(timestamp)                        AS last_seen,
    toUInt64(count())                     AS occurrence_count,
    argMaxState(exception_class, timestamp) AS exception_class,
    argMaxState(message, timestamp)         AS last_message
FROM {exceptions}
GROUP BY organization, application, fingerprint",
                mv = self.table("exception_groups_mv"),
                groups = self.table("exception_groups"),
                exceptions = self.table("exceptions"),
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {malformed}{c} (
    received_at   DateTime64(3, 'UTC'),
    id            String,
    lsn           UInt64,
    organization  LowCardinality(String),
    application   LowCardinality(String),
    batch_id      String,
    idx           Nullable(UInt32),
    type          LowCardinality(Nullable(String)),
    event_id      Nullable(String),
    codes         Array(LowCardinality(String)),
    reasons       String CODEC(ZSTD(3)),
    raw           String CODEC(ZSTD(3)),
    raw_size      UInt64,
    agent_version LowCardinality(Nullable(String)),
    remote_addr   Nullable(String),
    INDEX idx_id    id    TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_codes codes TYPE bloom_filter(0.01)  GRANULARITY 1
) ENGINE = {mt}
PARTITION BY toYYYYMM(received_at)
ORDER BY (received_at, id)
{quarantine_ttl}
{dedup}",
                malformed = self.table("malformed_events"),
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {traces}{c} (
    received_at      DateTime64(3, 'UTC'),
    batch_id         String,
    lsn              UInt64,
    organization     LowCardinality(String),
    application      LowCardinality(String),
    outcome          LowCardinality(String),
    total_us         UInt64,
    stages           String CODEC(ZSTD(3)),
    bytes_compressed UInt64,
    bytes_inflated   UInt64,
    events           UInt32,
    accepted         UInt32,
    rejected         UInt32,
    duplicates       UInt32,
    INDEX idx_total_us total_us TYPE minmax GRANULARITY 1
) ENGINE = {mt}
PARTITION BY toYYYYMM(received_at)
ORDER BY (received_at, batch_id)
{ttl}
{dedup}",
                traces = self.table("ingest_traces"),
            ),
        ]
    }

    /// Every statement, as a DBA would run them (`baddybugs-ingest schema`).
    pub fn script(&self) -> String {
        let mut out = String::from(
            "-- BaddyBugs Ingest: ClickHouse schema (generated by `baddybugs-ingest schema`).\n\
             -- Run the statements in order; then record the version so the server does not\n\
             -- apply them again when started with --clickhouse-migrate=true.\n\n",
        );
        if let Some(db) = self.create_database() {
            out.push_str(&db);
            out.push_str(";\n\n");
        }
        out.push_str(&self.create_migrations_table());
        out.push_str(";\n\n");
        for migration in self.migrations() {
            out.push_str(&format!(
                "-- migration {}: {}\n",
                migration.version, migration.name
            ));
            for statement in &migration.statements {
                out.push_str(statement);
                out.push_str(";\n\n");
            }
            out.push_str(&format!(
                "INSERT INTO {} (version, name) VALUES ({}, '{}');\n\n",
                self.table("schema_migrations"),
                migration.version,
                migration.name.replace('\'', "''")
            ));
        }
        out
    }
}

/// A ClickHouse identifier in backquotes.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_puts_on_cluster_and_replicated_engines_everywhere() {
        let config = ClickHouseConfig {
            cluster: Some("prod".into()),
            database: "bb".into(),
            ..ClickHouseConfig::default()
        };
        let ddl = Ddl::new(&config);
        let migrations = ddl.migrations();
        for statement in migrations[0]
            .statements
            .iter()
            .chain(&migrations[2].statements)
        {
            assert!(statement.contains(" ON CLUSTER `prod`"), "{statement}");
            if statement.starts_with("CREATE TABLE") {
                assert!(statement.contains("ENGINE = Replicated"), "{statement}");
            }
        }
        assert!(ddl.create_database().unwrap().contains("ON CLUSTER"));
        assert!(!ddl.script().contains("non_replicated_deduplication_window"));
    }

    #[test]
    fn single_node_uses_plain_engines_with_deduplication() {
        let config = ClickHouseConfig::default();
        let ddl = Ddl::new(&config);
        assert!(ddl.create_database().is_none(), "default always exists");
        let script = ddl.script();
        assert!(!script.contains("ON CLUSTER"));
        assert!(!script.contains("Replicated"));
        assert_eq!(
            script
                .matches("non_replicated_deduplication_window = 10000")
                .count(),
            TABLES.len() + 1,
            "every inserted table and the exception groups"
        );
        assert!(script.contains("toIntervalDay(90)") && script.contains("toIntervalDay(30)"));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a`b"), "`a\\`b`");
    }
}
