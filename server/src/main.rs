//! `baddybugs-ingest`: parses the command line and the configuration, sets up logging, and
//! hands over to the library (`serve`), or runs one of the operator tools.

use std::path::PathBuf;

use anyhow::Context as _;
use baddybugs_common::catalog;
use baddybugs_ingest::config::{Config, FlagOverrides, LogFormat};
use baddybugs_ingest::{server, spool};
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// jemalloc instead of the system allocator. With glibc's malloc the server's RSS under a steady
/// load crept up to ~250–320 MB (per-thread arenas keep freed request buffers and batches);
/// jemalloc returns freed pages to the system, so RSS follows what is really held
/// (docs/BENCHMARKS.md, memory over a soak); `.cargo/config.toml` makes it do so after 1 s.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// BaddyBugs Ingest: receives the BaddyBugs PHP agent's events, keeps every one durably and
/// stores them in ClickHouse or the embedded SQLite store.
#[derive(Debug, Parser)]
#[command(name = "baddybugs-ingest", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// TOML configuration file (precedence: defaults < file < BADDYBUGS_* env < flags).
    #[arg(long, global = true, env = "BADDYBUGS_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Data directory: spool, embedded store, logs, development credentials [default: ./data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// API key an agent may use, `KEY[:SECRET]` (repeatable; env BADDYBUGS_API_KEYS, comma-separated).
    #[arg(long = "api-key", global = true)]
    api_keys: Vec<String>,
    /// Token for the feed and the query API (env BADDYBUGS_FEED_TOKEN).
    #[arg(long, global = true)]
    feed_token: Option<String>,
    /// Log format on stderr and in the log files.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// ClickHouse HTTP URL; makes ClickHouse the store (env BADDYBUGS_CLICKHOUSE_URL).
    #[arg(long, global = true)]
    clickhouse_url: Option<String>,
    /// Create and migrate the ClickHouse schema at start (`false` leaves DDL to a DBA).
    #[arg(long, global = true)]
    clickhouse_migrate: Option<bool>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the event catalog (a table; --json for machines; --markdown for docs/CATALOG.md).
    Catalog {
        /// JSON output.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// Markdown output (docs/CATALOG.md).
        #[arg(long)]
        markdown: bool,
    },
    /// Print the effective configuration (secrets masked).
    PrintConfig,
    /// Print the ClickHouse DDL (for a DBA when --clickhouse-migrate=false).
    Schema,
    /// Inspect or repair the spool.
    Spool {
        #[command(subcommand)]
        command: SpoolCommand,
    },
    /// Print the schema drift stored by the configured store (what agents send that the
    /// catalog does not describe); a running server's last `drift.flush_interval_ms` is not in
    /// the store yet (`GET /v1/drift` has it).
    Drift {
        /// Only keys seen within this long (`24h`, `30m`, `7d`) or since this date-time.
        #[arg(long)]
        since: Option<String>,
        /// JSON output (the body of `GET /v1/drift`).
        #[arg(long, conflicts_with = "catalog_patch")]
        json: bool,
        /// Print the catalog additions for the unknown fields and types instead.
        #[arg(long)]
        catalog_patch: bool,
        /// Only this event type.
        #[arg(long = "type")]
        event_type: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum SpoolCommand {
    /// Segments, bytes, records pending per consumer, oldest age.
    Status,
    /// Check every record's checksum; --truncate cuts a damaged tail of the last segment.
    Verify {
        /// Cut a damaged tail.
        #[arg(long)]
        truncate: bool,
    },
    /// Print records as JSON lines.
    Dump {
        /// First LSN to print.
        #[arg(long)]
        from: Option<u64>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("baddybugs-ingest: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    let flags = FlagOverrides {
        listen: cli.global.listen.clone(),
        data_dir: cli.global.data_dir.clone(),
        feed_token: cli.global.feed_token.clone(),
        log_format: cli.global.log_format,
        api_keys: cli.global.api_keys.clone(),
        clickhouse_url: cli.global.clickhouse_url.clone(),
        clickhouse_migrate: cli.global.clickhouse_migrate,
    };
    baddybugs_ingest::metrics::memory::set_jemalloc_global();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Catalog { json, markdown } = command {
        let text = if json {
            serde_json::to_string_pretty(&catalog::catalog_json())? + "\n"
        } else if markdown {
            catalog::catalog_markdown()
        } else {
            catalog::catalog_table()
        };
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
        return Ok(());
    }
    let config = Config::load(cli.global.config.as_deref(), &flags)?;
    match command {
        Command::Catalog { .. } => Ok(()),
        Command::PrintConfig => {
            print!("{}", config.to_toml_masked());
            Ok(())
        }
        Command::Schema => {
            print!(
                "{}",
                baddybugs_ingest::sink::clickhouse::schema_sql(&config.clickhouse)
            );
            Ok(())
        }
        Command::Spool { command } => spool_tool(&config, command),
        Command::Drift {
            since,
            json,
            catalog_patch,
            event_type,
        } => drift_tool(&config, since, json, catalog_patch, event_type),
        Command::Serve => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!(
                    "cannot create the data directory {}",
                    config.data_dir.display()
                )
            })?;
            let _guard = init_logging(&config)?;
            baddybugs_ingest::accept::log_panics();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("ingest")
                .on_thread_start(baddybugs_ingest::arenas::bind_this_thread)
                .build()?;
            runtime.block_on(server::run(config))
        }
    }
}

fn spool_tool(config: &Config, command: SpoolCommand) -> anyhow::Result<()> {
    let dir = config.data_dir.clone();
    match command {
        SpoolCommand::Status => {
            let mut status = spool::status_offline(&dir)?;
            status.quota_bytes = config.spool.quota_bytes;
            println!("{}", serde_json::to_string_pretty(&status)?);
        }
        SpoolCommand::Verify { truncate } => {
            let report = spool::verify(&dir, truncate)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.ok {
                anyhow::bail!(
                    "the spool is damaged (see above); `spool verify --truncate` cuts a damaged tail of the last segment"
                );
            }
        }
        SpoolCommand::Dump { from } => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            spool::dump(&dir, from, &mut out, render_record)?;
        }
    }
    Ok(())
}

/// `drift`: reads the `schema_drift` table of the configured store and prints it.
fn drift_tool(
    config: &Config,
    since: Option<String>,
    json: bool,
    catalog_patch: bool,
    event_type: Option<String>,
) -> anyhow::Result<()> {
    use baddybugs_common::query::DriftFilter;
    use baddybugs_ingest::drift::{patch::catalog_patch as patch, DriftRow};

    let mut params = std::collections::HashMap::new();
    params.extend(since.map(|s| ("since".to_owned(), s)));
    params.extend(event_type.map(|t| ("type".to_owned(), t)));
    let now = chrono::Utc::now().timestamp_millis();
    let filter = DriftFilter::from_params(&params, now).map_err(|err| {
        anyhow::anyhow!("{}", err.to_string().replace("query parameter", "option"))
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(async {
        let store = server::open_store(config).await?;
        store
            .query_drift(filter)
            .await
            .map_err(|err| anyhow::anyhow!("cannot read the schema drift: {}", err.chain()))
    })?;
    let mut out = String::new();
    if catalog_patch {
        out = patch(&rows);
    } else if json {
        let report = baddybugs_common::protocol::DriftReport {
            drift: rows.iter().map(DriftRow::entry).collect(),
            overflow: Vec::new(),
        };
        out = serde_json::to_string_pretty(&report)? + "\n";
    } else {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "{:<20} {:<40} {:<22} {:>8}  {:<20} {:<20} SAMPLE",
            "TYPE", "PATH", "KIND", "COUNT", "FIRST SEEN", "LAST SEEN"
        );
        for row in &rows {
            let e = row.entry();
            let _ = writeln!(
                out,
                "{:<20} {:<40} {:<22} {:>8}  {:<20} {:<20} {}",
                e.event_type,
                if e.path.is_empty() { "-" } else { &e.path },
                e.kind.as_str(),
                e.count,
                &e.first_seen[..e.first_seen.len().min(19)],
                &e.last_seen[..e.last_seen.len().min(19)],
                baddybugs_common::drift::cut(&e.sample, 60)
            );
        }
        let _ = writeln!(
            out,
            "\n{} drift keys stored. A running server stores what it saw every {} s (drift.flush_interval_ms); GET /v1/drift also shows what it has not stored yet.",
            rows.len(),
            config.drift.flush_interval_ms / 1000
        );
    }
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    Ok(())
}

/// Renders a spool record for `spool dump`: the batch metadata and the events as JSON.
fn render_record(payload: &[u8]) -> serde_json::Value {
    match baddybugs_ingest::record::decode(payload) {
        Ok(rec) => serde_json::json!({
            "batch": rec.meta,
            "events": rec.events.iter().map(|(i, bytes)| {
                let text = String::from_utf8_lossy(bytes);
                serde_json::json!({"index": i, "event": serde_json::from_str::<serde_json::Value>(&text).unwrap_or(serde_json::Value::String(text.into_owned()))})
            }).collect::<Vec<_>>(),
            "quarantined": rec.quarantined_raw.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect::<Vec<_>>(),
        }),
        Err(err) => serde_json::json!({"undecodable": err.to_string(), "bytes": payload.len()}),
    }
}

/// stderr (concise) plus daily-rolling files in `<data_dir>/logs`.
fn init_logging(config: &Config) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    let filter = || {
        EnvFilter::try_from_env("BADDYBUGS_LOG")
            .or_else(|_| EnvFilter::try_new(&config.log_level))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let log_dir = config.data_dir.join("logs");
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create the log directory {}", log_dir.display()))?;
    let appender = tracing_appender::rolling::daily(&log_dir, "baddybugs-ingest.log");
    let (file_writer, guard) = tracing_appender::non_blocking(appender);
    let json = config.log_format == LogFormat::Json;
    let file_layer = if json {
        fmt::layer()
            .json()
            .with_writer(file_writer)
            .with_filter(filter())
            .boxed()
    } else {
        fmt::layer()
            .with_ansi(false)
            .with_writer(file_writer)
            .with_filter(filter())
            .boxed()
    };
    let stderr_layer = if json {
        fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    } else {
        fmt::layer()
            .compact()
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    };
    tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init()
        .context("cannot set up logging")?;
    Ok(guard)
}
