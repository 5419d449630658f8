//! `baddybugs-console`: a terminal client of the BaddyBugs Ingest live feed.
//!
//! This file parses the command line and the config file, sets up logging to a file, checks the
//! first connection (explaining what to fix if it fails) and then runs the event loop: keys,
//! network reports and clock ticks go into `App::update`; drawing happens only when something
//! changed: at once after a key, else at most 30 times a second.

mod action;
mod app;
mod config;
mod keymap;
mod net;
mod osc52;
#[cfg(test)]
mod snapshot_tests;
mod state;
mod stats;
mod ui;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use action::Action;
use app::{App, Command, Settings};
use config::FileConfig;
use keymap::KeyMap;
use net::{NetCommand, Target};

/// Terminal console of BaddyBugs Ingest: live ingest metrics, event and rejection tails,
/// request waterfalls and the server's own pipeline traces.
#[derive(Debug, Parser)]
#[command(name = "baddybugs-console", version)]
struct Cli {
    /// Feed URL [default: ws://127.0.0.1:8080/v1/feed]. Repeat it to watch a fleet: one
    /// connection per node, fleet totals and a row per node on the Overview, a node column in
    /// the lists (the token is the same for every node)
    #[arg(long)]
    url: Vec<String>,
    /// Feed token (else the config file's, else the feed_token in <data-dir>/dev-credentials.json)
    #[arg(long, env = "BADDYBUGS_FEED_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The server's data directory, to read dev-credentials.json from [default: ./data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Config file [default: ~/.config/baddybugs/console.toml]
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log file [default: ~/.local/state/baddybugs/console.log]
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// Where Ctrl-S saves JSONL files [default: .]
    #[arg(long)]
    save_dir: Option<PathBuf>,
    /// Draw with ASCII only (no box drawing or block characters)
    #[arg(long)]
    ascii: bool,
    /// Append one JSON line per second of the console's own performance to this file: frames
    /// drawn, messages applied, key press → frame latency (for benchmarks)
    #[arg(long, env = "BADDYBUGS_CONSOLE_STATS")]
    stats_file: Option<PathBuf>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn init_logging(path: &std::path::Path) -> Result<tracing_appender::non_blocking::WorkerGuard> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the log directory {}", dir.display()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the log file {}", path.display()))?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = tracing_subscriber::EnvFilter::try_from_env("BADDYBUGS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .init();
    Ok(guard)
}

struct Resolved {
    /// One per node (one for a single server).
    targets: Vec<Target>,
    settings: Settings,
    keymap: KeyMap,
    log_file: PathBuf,
    stats_file: Option<PathBuf>,
}

fn resolve(cli: Cli) -> Result<Resolved> {
    let (config_path, explicit) = match cli.config {
        Some(p) => (p, true),
        None => (
            config::home_path(".config/baddybugs/console.toml")
                .unwrap_or_else(|| "console.toml".into()),
            false,
        ),
    };
    let file = FileConfig::load(&config_path, explicit).map_err(anyhow::Error::msg)?;
    let keymap = KeyMap::with_overrides(&file.key_overrides())
        .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
    let urls: Vec<String> = if !cli.url.is_empty() {
        cli.url
    } else if !file.fleet.is_empty() {
        file.fleet.clone()
    } else {
        vec![file.url.clone().unwrap_or_else(|| Settings::default().url)]
    };
    let url = urls[0].clone();
    let data_dir = cli
        .data_dir
        .or(file.data_dir.clone())
        .unwrap_or_else(|| "data".into());
    let token = match cli.token.or(file.token.clone()) {
        Some(t) => Some(t),
        None => match config::token_from_data_dir(&data_dir) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("note: no feed token given and none read ({e}); connecting without one");
                None
            }
        },
    };
    let log_file = cli
        .log_file
        .or(file.log_file.clone())
        .or_else(|| config::home_path(".local/state/baddybugs/console.log"))
        .unwrap_or_else(|| "baddybugs-console.log".into());
    let settings = Settings {
        url,
        fleet: if urls.len() > 1 {
            urls.clone()
        } else {
            Vec::new()
        },
        ascii: cli.ascii || file.ascii.unwrap_or(false),
        color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        save_dir: cli
            .save_dir
            .or(file.save_dir.clone())
            .unwrap_or_else(|| ".".into()),
    };
    Ok(Resolved {
        targets: urls
            .into_iter()
            .map(|url| Target {
                url,
                token: token.clone(),
            })
            .collect(),
        settings,
        keymap,
        log_file,
        stats_file: cli.stats_file,
    })
}

/// The network tasks' command channels, one per node.
type Nets = [mpsc::UnboundedSender<NetCommand>];

fn execute(app: &mut App, commands: Vec<Command>, nets: &Nets) {
    for command in commands {
        match command {
            Command::Send(message) => {
                if let Some(node) = nets.get(app.query_node() as usize) {
                    let _ = node.send(NetCommand::Send(message));
                }
            }
            Command::Reconnect => {
                for node in nets {
                    let _ = node.send(NetCommand::Reconnect);
                }
            }
            Command::Copy { text, what } => {
                let notice = osc52::copy(&text, &what);
                let more = app.update(Action::Notice(notice));
                execute(app, more, nets);
            }
            Command::Save { path, contents } => {
                let notice = match std::fs::write(&path, contents) {
                    Ok(()) => format!("saved to {}", path.display()),
                    Err(e) => format!("cannot save to {}: {e}", path.display()),
                };
                let more = app.update(Action::Notice(notice));
                execute(app, more, nets);
            }
            Command::Quit => app.quit = true,
        }
    }
}

/// Draws one frame (an error ends the loop, which still restores the terminal).
fn draw(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    stats: &mut Option<stats::Stats>,
) -> Result<()> {
    let started = Instant::now();
    let size = terminal.size()?;
    app.body = ui::body_height(app, size.height);
    app.page = app.body.saturating_sub(4).max(1);
    app.width = size.width.saturating_sub(2) as usize;
    terminal.draw(|f| ui::render(f, app))?;
    app.dirty = false;
    if let Some(stats) = stats {
        stats.drawn(started, Instant::now());
    }
    Ok(())
}

/// Applies up to `most` reports already waiting; returns how many.
fn drain(app: &mut App, rx: &mut Reports, most: usize) -> u64 {
    let mut applied = 0;
    while applied < most as u64 {
        match rx.try_recv() {
            Ok((node, report)) => {
                app.update(Action::NetFrom(node, report));
                applied += 1;
            }
            Err(_) => break,
        }
    }
    applied
}

/// What the network tasks report, tagged with their node.
type Reports = mpsc::Receiver<(state::tail::NodeIx, state::FeedEvent)>;

async fn run_tui(resolved: Resolved, firsts: Vec<Option<net::Ws>>) -> Result<()> {
    // One channel for every node: a fleet's reports are applied in the order they came.
    let (tx, mut rx) = mpsc::channel(1024);
    let mut nets = Vec::new();
    let mut net_tasks = Vec::new();
    for (node, (target, first)) in resolved.targets.iter().zip(firsts).enumerate() {
        let (net_tx, net_rx) = mpsc::unbounded_channel();
        let reports = net::Reports::new(node as state::tail::NodeIx, tx.clone());
        net_tasks.push(tokio::spawn(net::run(
            first,
            target.clone(),
            reports,
            net_rx,
        )));
        nets.push(net_tx);
    }
    drop(tx);
    let mut stats = match &resolved.stats_file {
        Some(path) => Some(
            stats::Stats::open(path)
                .with_context(|| format!("opening the stats file {}", path.display()))?,
        ),
        None => None,
    };
    let mut app = App::new(resolved.settings, resolved.keymap, now_ms());
    let mut terminal = ratatui::init();
    let mut input = EventStream::new();
    let mut frame = tokio::time::interval(Duration::from_millis(33));
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let result: Result<()> = loop {
        tokio::select! {
            event = input.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    let read_at = Instant::now();
                    if let Some(action) = app.keymap.action(app.mode(), &key) {
                        let commands = app.update(action);
                        execute(&mut app, commands, &nets);
                        // A key is answered at once, not at the next frame tick.
                        if app.dirty && !app.quit {
                            if let Some(stats) = &mut stats {
                                stats.key(read_at);
                            }
                            if let Err(e) = draw(&mut terminal, &mut app, &mut stats) {
                                break Err(e);
                            }
                        }
                    }
                }
                Some(Ok(Event::Resize(..))) => {
                    app.update(Action::Resize);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e.into()),
                None => break Ok(()),
            },
            // While a frame is pending, reports wait in the channel and are applied all at
            // once just before it is drawn: one wake-up per frame instead of one per message
            // (thousands a second under load). The channel holds 1024, over 30 ms of a busy feed.
            Some((node, report)) = rx.recv(), if !app.dirty => {
                app.update(Action::NetFrom(node, report));
                let applied = 1 + drain(&mut app, &mut rx, 512);
                if let Some(stats) = &mut stats {
                    stats.applied(applied);
                }
            }
            _ = frame.tick() => {
                let applied = drain(&mut app, &mut rx, 4096);
                let commands = app.update(Action::Tick(now_ms()));
                execute(&mut app, commands, &nets);
                if app.dirty {
                    if let Err(e) = draw(&mut terminal, &mut app, &mut stats) {
                        break Err(e);
                    }
                }
                if let Some(stats) = &mut stats {
                    stats.applied(applied);
                    stats.tick(Instant::now(), app.now_ms, &app.live);
                }
            }
        }
        if app.quit {
            break Ok(());
        }
    };
    ratatui::restore();
    for task in net_tasks {
        task.abort();
    }
    result
}

async fn start(cli: Cli) -> Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("baddybugs-console needs a terminal: run it in an interactive shell (not piped or redirected)");
    }
    let resolved = resolve(cli)?;
    let _guard = init_logging(&resolved.log_file)?;
    let urls: Vec<&str> = resolved.targets.iter().map(|t| t.url.as_str()).collect();
    tracing::info!(urls = ?urls, "console starting");
    // Every node at once; a fleet starts while one node answers (the others are shown down and
    // retried), a single server only once it answers.
    let attempts = futures_util::future::join_all(resolved.targets.iter().map(net::connect)).await;
    if attempts.iter().all(Result::is_err) {
        let why: Vec<String> = resolved
            .targets
            .iter()
            .zip(&attempts)
            .filter_map(|(t, a)| a.as_ref().err().map(|e| e.explain(&t.url)))
            .collect();
        bail!("{}", why.join("\n"));
    }
    for (t, a) in resolved.targets.iter().zip(&attempts) {
        if let Err(e) = a {
            tracing::warn!(url = %t.url, error = %e.explain(&t.url), "node down at start");
        }
    }
    let firsts = attempts.into_iter().map(Result::ok).collect();
    run_tui(resolved, firsts).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match start(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baddybugs-console: {e:#}");
            ExitCode::FAILURE
        }
    }
}
