//! A ClickHouse server for tests.
//!
//! When `CLICKHOUSE_URL` is set, [`ClickHouseFront`] points at that server and starts nothing.
//! Otherwise it runs the real ClickHouse engine embedded in chDB behind `tests/clickhouse/chfront.py`
//! (a small ClickHouse-HTTP-compatible front, see `tests/clickhouse/README.md`): the virtualenv
//! is created once by `tests/clickhouse/setup.sh`, each front gets a fresh temp data directory and
//! a free port, and the process is stopped when the handle is dropped.
//!
//! Environment:
//! - `CLICKHOUSE_URL`: use this server instead of starting a front (e.g. `http://localhost:8123`).
//! - `CHFRONT_PYTHON`: the Python interpreter to run the front with (skips `setup.sh`).
//! - `CHFRONT_LOG=inherit`: let the front log to this process's stderr instead of a file.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// How long to wait for the front to print `LISTENING <port>` and answer `/ping`.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopped front gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running ClickHouse for a test: a chDB front process owned by this handle, or an external
/// server named by `CLICKHOUSE_URL`.
#[derive(Debug)]
pub struct ClickHouseFront {
    url: String,
    port: u16,
    child: Option<Child>,
    /// `Some` for a front started by this handle: holds the data dir and the log file.
    dir: Option<tempfile::TempDir>,
    python: Option<PathBuf>,
}

impl ClickHouseFront {
    /// Starts a front (or connects to `CLICKHOUSE_URL`) and waits until it answers `/ping`.
    ///
    /// The first call in a process runs `tests/clickhouse/setup.sh`, which creates the
    /// virtualenv under the cargo target directory (a download of ~150 MB the first time).
    pub async fn start() -> anyhow::Result<ClickHouseFront> {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .context("the task starting the ClickHouse front panicked")?
    }

    /// Blocking variant of [`ClickHouseFront::start`], for synchronous tests.
    pub fn start_blocking() -> anyhow::Result<ClickHouseFront> {
        if let Some(url) = std::env::var("CLICKHOUSE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            let url = url.trim().trim_end_matches('/').to_string();
            let port = url_port(&url);
            return Ok(ClickHouseFront {
                url,
                port,
                child: None,
                dir: None,
                python: None,
            });
        }
        let python = venv_python()?;
        let dir = tempfile::Builder::new()
            .prefix("chfront-")
            .tempdir()
            .context("creating the data directory of the ClickHouse front")?;
        let mut front = ClickHouseFront {
            url: String::new(),
            port: 0,
            child: None,
            dir: Some(dir),
            python: Some(python),
        };
        front.spawn(0)?;
        Ok(front)
    }

    /// The base URL of the server, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The TCP port of the server (0 if unknown for an external URL without a port).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True when this handle points at an external server (`CLICKHOUSE_URL`), which it can
    /// neither stop nor restart.
    pub fn is_external(&self) -> bool {
        self.dir.is_none()
    }

    /// The file the front logs to (one line per request), when it was started by this handle.
    pub fn log_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("chfront.log"))
    }

    /// The chDB data directory of a front started by this handle.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("data"))
    }

    /// A `clickhouse` crate client for this server (default compression, validation on).
    pub fn client(&self) -> ::clickhouse::Client {
        ::clickhouse::Client::default().with_url(self.url())
    }

    /// Stops the front process (SIGTERM, then SIGKILL after a grace period), keeping its data
    /// directory, so that requests fail as during an outage. No-op for an external server or
    /// an already stopped front.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }

    /// Stops the front if it runs, then starts it again on the SAME port with the SAME data
    /// directory, and waits until it answers `/ping`. Blocks for a second or two.
    ///
    /// Fails for an external server (`CLICKHOUSE_URL`).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.is_external() {
            bail!("cannot restart the external ClickHouse at {}", self.url);
        }
        self.stop();
        let port = self.port;
        // The port was just released; retry a little in case the bind races with the kernel.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn(port) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("[chfront] restart on port {port} failed, retrying: {e:#}");
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `sql` over HTTP and returns the response body in `TabSeparated` format (empty for
    /// statements without a result). A ClickHouse error becomes an `Err` with its message.
    pub async fn query_text(&self, sql: &str) -> anyhow::Result<String> {
        let response = reqwest::Client::new()
            .post(format!("{}/?default_format=TabSeparated", self.url))
            .body(sql.to_string())
            .send()
            .await
            .with_context(|| format!("sending a query to ClickHouse at {}", self.url))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .context("reading the ClickHouse response")?;
        if !status.is_success() {
            bail!("ClickHouse answered {status}: {}", body.trim());
        }
        Ok(body)
    }

    /// Creates a database with a unique name starting with `prefix` and returns its name, so
    /// that tests sharing one server (e.g. a real `CLICKHOUSE_URL`) do not see each other.
    pub async fn fresh_database(&self, prefix: &str) -> anyhow::Result<String> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        self.query_text(&format!("CREATE DATABASE IF NOT EXISTS `{name}`"))
            .await?;
        Ok(name)
    }

    /// Starts the front process on `port` (0 = any) and waits for `/ping`.
    fn spawn(&mut self, port: u16) -> anyhow::Result<()> {
        let (Some(dir), Some(python)) = (self.dir.as_ref(), self.python.as_ref()) else {
            bail!("not a front started by this handle");
        };
        let script = clickhouse_dir().join("chfront.py");
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("chfront.log");
        let mut command = Command::new(python);
        command
            .arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if std::env::var("CHFRONT_LOG").as_deref() == Ok("inherit") {
            command.stderr(Stdio::inherit());
        } else {
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening {}", log_path.display()))?;
            command.stderr(Stdio::from(log));
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;

        // Read `LISTENING <port>` from stdout, then keep draining stdout so the child never
        // blocks on a full pipe.
        let stdout = child
            .stdout
            .take()
            .context("the front's stdout is not piped")?;
        let (tx, rx) = mpsc::channel::<u16>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(p) = line.strip_prefix("LISTENING ") {
                    if let (Some(tx), Ok(p)) = (tx.take(), p.trim().parse::<u16>()) {
                        let _ = tx.send(p);
                    }
                }
            }
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let bound = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(p) => break p,
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Some(status) = child.try_wait()? {
                        bail!(
                            "the ClickHouse front exited with {status} before listening{}",
                            log_tail(&log_path)
                        );
                    }
                }
                Err(_) => {
                    terminate(&mut child);
                    bail!(
                        "the ClickHouse front did not start in time{}",
                        log_tail(&log_path)
                    );
                }
            }
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], bound));
        while !ping(addr) {
            if Instant::now() > deadline {
                terminate(&mut child);
                bail!(
                    "the ClickHouse front does not answer /ping{}",
                    log_tail(&log_path)
                );
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the ClickHouse front exited with {status}{}",
                    log_tail(&log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.port = bound;
        self.url = format!("http://127.0.0.1:{bound}");
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for ClickHouseFront {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `tests/clickhouse/` in the source tree.
fn clickhouse_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clickhouse")
}

/// The virtualenv's Python, set up once per process by `setup.sh` (or `CHFRONT_PYTHON`).
fn venv_python() -> anyhow::Result<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("CHFRONT_PYTHON").filter(|p| !p.is_empty()) {
                return Ok(PathBuf::from(p));
            }
            run_setup().map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

fn run_setup() -> anyhow::Result<PathBuf> {
    let script = clickhouse_dir().join("setup.sh");
    // setup.sh prints its progress on stderr (inherited, so a first-time install is visible)
    // and `VENV_PYTHON=<path>` as its last stdout line.
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed with {}", script.display(), output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let python = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("VENV_PYTHON="))
        .with_context(|| format!("{} did not print VENV_PYTHON=…: {stdout}", script.display()))?;
    Ok(PathBuf::from(python.trim()))
}

/// `GET /ping` with a raw socket (usable from blocking code, no runtime needed).
fn ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200") && response.ends_with("Ok.\n")
}

/// SIGTERM, wait for a clean exit, then SIGKILL.
fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last lines of the front's log, for error messages.
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            format!("\n--- {} (tail) ---\n{tail}", path.display())
        }
        Err(_) => String::new(),
    }
}

/// The port of an `http(s)://host:port/...` URL (the scheme's default when absent).
fn url_port(url: &str) -> u16 {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    match host_port.rsplit_once(':') {
        Some((_, p)) if !p.contains(']') => p.parse().unwrap_or(0),
        _ if scheme == "https" => 443,
        _ => 80,
    }
}

/// A real server storing into `database` on `front`, with short flush (100 ms) and retry
/// (500 ms) intervals; `extra` flags are appended to its command line.
pub fn server_on(
    front: &ClickHouseFront,
    database: &str,
    extra: &[&str],
) -> anyhow::Result<crate::server::TestServer> {
    server_on_with_env(front, database, extra, &[])
}

/// [`server_on`], with more environment variables (`BADDYBUGS_…` settings).
pub fn server_on_with_env(
    front: &ClickHouseFront,
    database: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<crate::server::TestServer> {
    let mut args = vec!["--clickhouse-url".to_owned(), front.url()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut vars: Vec<(String, String)> = vec![
        ("BADDYBUGS_CLICKHOUSE__DATABASE".into(), database.into()),
        ("BADDYBUGS_BATCH__FLUSH_INTERVAL_MS".into(), "100".into()),
        ("BADDYBUGS_BATCH__RETRY_MAX_MS".into(), "500".into()),
    ];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    crate::server::TestServer::start_with(crate::server::ServerOptions {
        args,
        env: vars,
        ..Default::default()
    })
}
