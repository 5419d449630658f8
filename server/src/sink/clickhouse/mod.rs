//! The production store: ClickHouse, through the official `clickhouse` crate (HTTP, RowBinary,
//! LZ4), with TLS when the URL is `https://`.
//!
//! In: [`SinkBatch`]es from the batcher, one insert per table per batch with a deterministic
//! deduplication token (`write.rs`). Out: the query API's answers, the same shapes as the
//! embedded store's (`read.rs`). Schema and migrations: `schema.rs`, printed for a DBA by
//! `baddybugs-ingest schema`.
//!
//! The schema is brought up to date before the first write rather than only at start: if
//! ClickHouse is unreachable when the server starts, ingest still runs (the spool absorbs), the
//! writes fail as retryable with the reason in /readyz, and the first write after ClickHouse
//! comes back migrates then inserts. With `migrate = false` the server only checks that the
//! schema a DBA applied is the version it needs.
//!
//! Failures, as [`SinkError`] (see [`classify`]): network errors, timeouts, HTTP 5xx without a
//! code and the ClickHouse codes of transient conditions (too many parts, memory limit, read-only
//! replica, keeper, unknown insert status …) → `Retryable`; codes that mean a value the table
//! cannot take (a violated constraint, a parse or type error) → `Rejected`, which makes the
//! batcher bisect the batch down to the refused rows and quarantine them with this error; the
//! rest → `Other` (retried as well, and logged).

mod drift;
pub mod http;
mod read;
pub mod schema;
mod write;

use std::sync::Arc;
use std::time::Duration;

use clickhouse::Client;
use tokio::sync::Mutex;

use crate::config::{ClickHouseCompression, ClickHouseConfig};
use crate::sink::{
    BoxFuture, EventFilter, EventLookup, EventPage, ExceptionGroup, MalformedFilter, SinkBatch,
    SinkError, Store, StoreCause, StoreHealth, StoredEvent, StoredMalformed, StoredTrace,
    TraceFilter,
};
use schema::{Ddl, SCHEMA_VERSION, TABLES};

/// The ClickHouse store. Cheap to share (`Arc<dyn Store>`).
pub struct ClickHouseStore {
    /// Client with the database selected.
    client: Client,
    /// Client without a database (for `CREATE DATABASE`).
    root: Client,
    config: ClickHouseConfig,
    /// The URL without credentials, for logs and health.
    location: String,
    timeout: Duration,
    /// Set once the schema is known to be up to date.
    schema_ready: Mutex<bool>,
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("location", &self.location)
            .field("database", &self.config.database)
            .finish_non_exhaustive()
    }
}

/// The URL without `user:password@`.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// The password from `password` or `password_file` (trailing newline removed).
fn password(config: &ClickHouseConfig) -> Result<Option<String>, SinkError> {
    if let Some(password) = &config.password {
        return Ok(Some(password.clone()));
    }
    let Some(path) = &config.password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|err| {
        SinkError::other(format!("clickhouse.password_file {}", path.display()), err)
    })?;
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
}

impl ClickHouseStore {
    /// Builds the store for `config` (which must have a URL) and tries to bring the schema up
    /// to date. An unreachable server is not an error here (the first write retries it); a
    /// schema newer than this build, a bad password file or a refused DDL statement is.
    pub async fn connect(config: &ClickHouseConfig) -> Result<Arc<dyn Store>, SinkError> {
        let store = Self::new(config)?;
        match store.ensure_schema().await {
            Ok(()) => {}
            Err(err @ SinkError::Retryable { .. }) => {
                tracing::warn!(location = %store.location, error = %err.chain(), "ClickHouse store not ready yet; ingest continues into the spool and writes wait until it is");
            }
            Err(err) => return Err(err),
        }
        Ok(Arc::new(store))
    }

    /// Builds the store without contacting the server.
    pub fn new(config: &ClickHouseConfig) -> Result<ClickHouseStore, SinkError> {
        let url = config
            .url
            .as_deref()
            .ok_or_else(|| SinkError::other_msg("clickhouse.url is not set"))?;
        let mut root = http::client()
            .with_url(url)
            .with_compression(match config.compression {
                ClickHouseCompression::Lz4 => clickhouse::Compression::Lz4,
                ClickHouseCompression::None => clickhouse::Compression::None,
            })
            .with_product_info("baddybugs-ingest", env!("CARGO_PKG_VERSION"));
        if let Some(user) = &config.user {
            root = root.with_user(user);
        }
        if let Some(password) = password(config)? {
            root = root.with_password(password);
        }
        Ok(ClickHouseStore {
            client: root.clone().with_database(&config.database),
            root,
            location: redact_url(url),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            config: config.clone(),
            schema_ready: Mutex::new(false),
        })
    }

    /// The client (database selected), for tests and tools.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `f` under the configured timeout; a timeout is retryable.
    async fn timed<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, SinkError>>,
    ) -> Result<T, SinkError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .unwrap_or_else(|_| {
                Err(SinkError::retryable_msg(format!(
                    "clickhouse {what} timed out after {} s",
                    self.timeout.as_secs()
                )))
            })
    }

    /// Applies the missing migrations (or, with `migrate = false`, checks the version), once.
    pub async fn ensure_schema(&self) -> Result<(), SinkError> {
        let mut ready = self.schema_ready.lock().await;
        if *ready {
            return Ok(());
        }
        let ddl = Ddl::new(&self.config);
        let result = if self.config.migrate {
            self.timed("migration", self.migrate(&ddl)).await
        } else {
            self.timed("schema check", self.check_version()).await
        };
        result?;
        *ready = true;
        Ok(())
    }

    async fn applied_versions(&self) -> Result<Vec<u32>, SinkError> {
        self.client
            .query("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all::<u32>()
            .await
            .map_err(classify)
    }

    async fn migrate(&self, ddl: &Ddl<'_>) -> Result<(), SinkError> {
        if let Some(statement) = ddl.create_database() {
            self.ddl(&self.root, &statement).await?;
        }
        self.ddl(&self.root, &ddl.create_migrations_table()).await?;
        let applied = self.applied_versions().await?;
        if let Some(newest) = applied
            .iter()
            .copied()
            .filter(|v| *v > SCHEMA_VERSION)
            .max()
        {
            return Err(SinkError::other_msg(format!(
                "the ClickHouse schema is at version {newest}, newer than this server's ({SCHEMA_VERSION}); upgrade the server"
            )));
        }
        for migration in ddl.migrations() {
            if applied.contains(&migration.version) {
                continue;
            }
            for statement in &migration.statements {
                self.ddl(&self.root, statement).await?;
            }
            self.client
                .query("INSERT INTO schema_migrations (version, name) VALUES (?, ?)")
                .bind(migration.version)
                .bind(migration.name)
                .execute()
                .await
                .map_err(classify)?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "clickhouse migration applied"
            );
        }
        self.sync_ttls(ddl).await?;
        tracing::info!(location = %self.location, database = %self.config.database, version = SCHEMA_VERSION, "clickhouse store ready");
        Ok(())
    }

    /// Brings each table's TTL to the configured retention when it changed since the tables
    /// were created.
    async fn sync_ttls(&self, ddl: &Ddl<'_>) -> Result<(), SinkError> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct TableEngine {
            name: String,
            engine_full: String,
        }
        let tables = self
            .client
            .query("SELECT name, engine_full FROM system.tables WHERE database = ?")
            .bind(&self.config.database)
            .fetch_all::<TableEngine>()
            .await
            .map_err(classify)?;
        for table in tables {
            let Some(days) = ddl.ttl_days_of(&table.name) else {
                continue;
            };
            if table
                .engine_full
                .contains(&format!("toIntervalDay({days})"))
            {
                continue;
            }
            if let Some(alter) = ddl.modify_ttl(&table.name) {
                self.ddl(&self.root, &alter).await?;
                tracing::info!(table = %table.name, days, "clickhouse TTL updated");
            }
        }
        Ok(())
    }

    async fn check_version(&self) -> Result<(), SinkError> {
        let applied = self.applied_versions().await.map_err(|err| {
            SinkError::Retryable {
                context: format!(
                    "cannot read {}.schema_migrations; with clickhouse.migrate = false the schema must be applied by a DBA: see `baddybugs-ingest schema`",
                    self.config.database
                ),
                source: Some(StoreCause::Other(Box::new(err))),
            }
        })?;
        match applied.iter().max() {
            Some(&v) if v == SCHEMA_VERSION => Ok(()),
            Some(&v) if v > SCHEMA_VERSION => Err(SinkError::other_msg(format!(
                "the ClickHouse schema is at version {v}, newer than this server's ({SCHEMA_VERSION}); upgrade the server"
            ))),
            found => Err(SinkError::retryable_msg(format!(
                "the ClickHouse schema is at version {}, this server needs {SCHEMA_VERSION}; apply `baddybugs-ingest schema` (clickhouse.migrate = false)",
                found.map_or("none".to_owned(), u32::to_string)
            ))),
        }
    }

    async fn ddl(&self, client: &Client, statement: &str) -> Result<(), SinkError> {
        client
            .query(statement)
            .execute()
            .await
            .map_err(|err| match classify(err) {
                SinkError::Rejected { source, .. } | SinkError::Other { source, .. } => {
                    SinkError::Other {
                        context: format!("DDL failed: {statement}"),
                        source,
                    }
                }
                retryable => retryable,
            })
    }
}

/// The ClickHouse error code in a message (`Code: 252. DB::Exception: …`).
fn error_code(message: &str) -> Option<u32> {
    let start = message.find("Code: ")? + "Code: ".len();
    let digits: String = message[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Codes of transient conditions: worth retrying as is.
const RETRYABLE_CODES: &[u32] = &[
    3,    // UNEXPECTED_END_OF_FILE
    32,   // ATTEMPT_TO_READ_AFTER_EOF (a cut request body)
    60,   // UNKNOWN_TABLE (schema not applied yet)
    81,   // UNKNOWN_DATABASE (idem)
    159,  // TIMEOUT_EXCEEDED
    164,  // READONLY
    202,  // TOO_MANY_SIMULTANEOUS_QUERIES
    203,  // NO_FREE_CONNECTION
    209,  // SOCKET_TIMEOUT
    210,  // NETWORK_ERROR
    236,  // ABORTED
    241,  // MEMORY_LIMIT_EXCEEDED
    242,  // TABLE_IS_READ_ONLY
    243,  // NOT_ENOUGH_SPACE
    252,  // TOO_MANY_PARTS
    285,  // TOO_FEW_LIVE_REPLICAS
    286,  // UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
    319,  // UNKNOWN_STATUS_OF_INSERT
    394,  // QUERY_WAS_CANCELLED
    425,  // SYSTEM_ERROR
    439,  // CANNOT_SCHEDULE_TASK
    999,  // KEEPER_EXCEPTION
    1000, // POCO_EXCEPTION
];

/// Codes that mean a value the table cannot take: bisect and quarantine the row.
const REJECTED_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    469, // VIOLATED_CONSTRAINT
];

/// Classifies a client error (see the module doc).
pub fn classify(err: clickhouse::error::Error) -> SinkError {
    use clickhouse::error::Error as E;
    #[derive(PartialEq)]
    enum Class {
        Retryable,
        Rejected,
        Other,
    }
    let class = match &err {
        E::Network(_) | E::TimedOut => Class::Retryable,
        E::BadResponse(message) => match error_code(message) {
            Some(code) if REJECTED_CODES.contains(&code) => Class::Rejected,
            Some(code) if RETRYABLE_CODES.contains(&code) => Class::Retryable,
            Some(_) => Class::Other,
            // No code: the HTTP status ("503 Service Unavailable" from a proxy or a
            // restarting server).
            None if message.starts_with('5') => Class::Retryable,
            None => Class::Other,
        },
        _ => Class::Other,
    };
    match class {
        Class::Retryable => SinkError::retryable("clickhouse", err),
        Class::Rejected => SinkError::rejected("clickhouse", err),
        Class::Other => SinkError::other("clickhouse", err),
    }
}

impl Store for ClickHouseStore {
    fn write(&self, batch: Arc<SinkBatch>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            self.ensure_schema().await?;
            self.timed("insert", async {
                write::write_batch(&self.client, &batch)
                    .await
                    .map_err(classify)
            })
            .await?;
            tracing::debug!(
                first_lsn = batch.first_lsn,
                last_lsn = batch.last_lsn,
                part = %batch.part,
                events = batch.events.len(),
                "clickhouse: batch written"
            );
            Ok(())
        })
    }

    fn query_events(&self, filter: EventFilter) -> BoxFuture<'_, Result<EventPage, SinkError>> {
        Box::pin(self.timed("query", async move {
            read::query_events(&self.client, &filter).await
        }))
    }

    fn get_event(&self, lookup: EventLookup) -> BoxFuture<'_, Result<Vec<StoredEvent>, SinkError>> {
        Box::pin(self.timed("query", async move {
            read::get_event(&self.client, &lookup).await
        }))
    }

    fn query_malformed(
        &self,
        filter: MalformedFilter,
    ) -> BoxFuture<'_, Result<Vec<StoredMalformed>, SinkError>> {
        Box::pin(self.timed("query", async move {
            read::query_malformed(&self.client, &filter).await
        }))
    }

    fn get_malformed(
        &self,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<StoredMalformed>, SinkError>> {
        Box::pin(self.timed("query", async move {
            read::get_malformed(&self.client, &ids).await
        }))
    }

    fn malformed_raw(&self, id: String) -> BoxFuture<'_, Result<Option<Vec<u8>>, SinkError>> {
        Box::pin(self.timed("query", async move {
            read::malformed_raw(&self.client, &id).await
        }))
    }

    fn exception_groups(
        &self,
        filter: EventFilter,
    ) -> BoxFuture<'_, Result<Vec<ExceptionGroup>, SinkError>> {
        Box::pin(self.timed("query", async move {
            read::exception_groups(&self.client, &filter).await
        }))
    }

    fn trace_spans(
        &self,
        trace_id: String,
    ) -> BoxFuture<'_, Result<Vec<serde_json::Value>, SinkError>> {
        Box::pin(self.timed("query", async move {
            read::trace_spans(&self.client, &trace_id).await
        }))
    }

    fn query_traces(
        &self,
        filter: TraceFilter,
    ) -> BoxFuture<'_, Result<Vec<StoredTrace>, SinkError>> {
        Box::pin(self.timed("query", async move {
            read::query_traces(&self.client, &filter).await
        }))
    }

    fn write_drift(
        &self,
        rows: Vec<crate::drift::DriftRow>,
    ) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            self.ensure_schema().await?;
            self.timed("drift insert", async {
                drift::write_drift(&self.client, &rows)
                    .await
                    .map_err(classify)
            })
            .await
        })
    }

    fn query_drift(
        &self,
        filter: baddybugs_common::query::DriftFilter,
    ) -> BoxFuture<'_, Result<Vec<crate::drift::DriftRow>, SinkError>> {
        Box::pin(self.timed("query", async move {
            drift::query_drift(&self.client, &filter)
                .await
                .map_err(classify)
        }))
    }

    fn stored_event_ids(
        &self,
        organization: String,
        application: String,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<String>, SinkError>> {
        Box::pin(self.timed("query", async move {
            read::stored_event_ids(&self.client, &organization, &application, &ids).await
        }))
    }

    fn extra_copies(&self, window: Duration) -> BoxFuture<'_, Result<Option<u64>, SinkError>> {
        Box::pin(self.timed("query", async move {
            read::extra_copies(&self.client, window).await.map(Some)
        }))
    }

    fn health(&self) -> BoxFuture<'_, StoreHealth> {
        Box::pin(async move {
            let probe = async {
                self.client
                    .query("SELECT 1")
                    .fetch_one::<u8>()
                    .await
                    .map_err(classify)?;
                self.ensure_schema().await
            };
            let checked = tokio::time::timeout(Duration::from_secs(5), probe)
                .await
                .unwrap_or_else(|_| {
                    Err(SinkError::retryable_msg(
                        "clickhouse did not answer within 5 s",
                    ))
                });
            StoreHealth {
                kind: "clickhouse",
                location: self.location.clone(),
                reachable: checked.is_ok(),
                error: checked.err().map(|e| e.chain()),
            }
        })
    }
}

/// The DDL of every table, as `baddybugs-ingest schema` prints it.
pub fn schema_sql(config: &ClickHouseConfig) -> String {
    Ddl::new(config).script()
}

/// Writes the rows of `batch` with `client` exactly as the store does (one RowBinary insert per
/// table), without the schema check, the timeout or the error classification. For the insert
/// benchmark (`server/benches/clickhouse_insert.rs`), which points `client` at a local HTTP
/// endpoint that discards the body, to measure the client side alone.
#[doc(hidden)]
pub async fn write_rows(
    client: &Client,
    batch: &SinkBatch,
) -> Result<(), clickhouse::error::Error> {
    write::write_batch(client, batch).await
}

/// The tables the store writes (for tools and tests).
pub fn tables() -> &'static [&'static str] {
    &TABLES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_not_shown() {
        assert_eq!(
            redact_url("https://bb:s3cret@ch.example.com:8443/path"),
            "https://ch.example.com:8443/path"
        );
        assert_eq!(redact_url("http://localhost:8123"), "http://localhost:8123");
    }

    #[test]
    fn errors_are_classified_by_code() {
        use clickhouse::error::Error as E;
        let bad = |m: &str| classify(E::BadResponse(m.to_owned()));
        assert!(matches!(
            bad("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)"),
            SinkError::Retryable { .. }
        ));
        assert!(matches!(
            bad("Code: 469. DB::Exception: Constraint `data_is_json` for table default.events (…) is violated at row 3. (VIOLATED_CONSTRAINT)"),
            SinkError::Rejected { .. }
        ));
        assert!(matches!(
            bad("503 Service Unavailable"),
            SinkError::Retryable { .. }
        ));
        assert!(matches!(
            bad("Code: 62. DB::Exception: Syntax error. (SYNTAX_ERROR)"),
            SinkError::Other { .. }
        ));
        assert!(matches!(classify(E::TimedOut), SinkError::Retryable { .. }));
        assert_eq!(error_code("Code: 60. DB::Exception"), Some(60));
        assert_eq!(error_code("nothing"), None);
    }
}
