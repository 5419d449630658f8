//! Starts the real `baddybugs-ingest` binary on port 0 with a fresh data directory, and posts
//! to it the way the real agent does (gzip level 6, Bearer key, HMAC signature).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The API key tests use.
pub const API_KEY: &str = "test-key";
/// Its signing secret.
pub const SECRET: &str = "test-secret";
/// The feed / query token tests use.
pub const FEED_TOKEN: &str = "test-token";

/// Path of a workspace binary, building the binaries once per test process.
///
/// They are built with the profile and into the target directory this test binary was built
/// with (read from its own path, `<target dir>/[<triple>/]<profile dir>/deps/<test>`), so
/// `cargo test --release`, `--target-dir`, `CARGO_TARGET_DIR` or `build.target-dir` test the
/// binaries of that build, not a stale debug build elsewhere.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let layout = BuildLayout::of_this_test()?;
            let mut command = Command::new(cargo);
            command.current_dir(&root).args([
                "build",
                "--bins",
                "-p",
                "baddybugs-ingest",
                "-p",
                "baddybugs-console",
                "--profile",
                &layout.profile,
            ]);
            command.arg("--target-dir").arg(&layout.target_dir);
            if let Some(triple) = &layout.triple {
                command.args(["--target", triple]);
            }
            let status = command
                .status()
                .map_err(|e| format!("cannot run cargo build: {e}"))?;
            if !status.success() {
                return Err("cargo build of the binaries failed".into());
            }
            Ok(layout.profile_dir)
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

/// Where and how the running test binary was built.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BuildLayout {
    /// The target directory (`target/` unless configured otherwise).
    target_dir: PathBuf,
    /// The target triple, when built with `--target`.
    triple: Option<String>,
    /// The cargo profile (`dev`, `release`, `test` builds into `debug`, …).
    profile: String,
    /// The directory the binaries land in.
    profile_dir: PathBuf,
}

impl BuildLayout {
    fn of_this_test() -> Result<BuildLayout, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find this test binary: {e}"))?;
        BuildLayout::from_test_path(&exe)
            .ok_or_else(|| format!("{} is not in a cargo target directory", exe.display()))
    }

    /// `<target dir>/[<triple>/]<profile dir>/deps/<test binary>`. The directory above the
    /// profile directory is a triple only when the one above it is marked as cargo's target
    /// directory; otherwise it is the target directory itself. Cargo writes `CACHEDIR.TAG` only
    /// into a target directory it creates (CI's chDB set-up creates `target/` first), so the
    /// rustc cache `.rustc_info.json`, written into every target directory, marks it too.
    fn from_test_path(exe: &Path) -> Option<BuildLayout> {
        let deps = exe
            .parent()
            .filter(|d| d.file_name().is_some_and(|n| n == "deps"))?;
        let profile_dir = deps.parent()?;
        let profile = match profile_dir.file_name()?.to_str()? {
            "debug" => "dev".to_owned(),
            other => other.to_owned(),
        };
        let above = profile_dir.parent()?;
        let is_target_dir =
            |dir: &Path| dir.join("CACHEDIR.TAG").exists() || dir.join(".rustc_info.json").exists();
        let (target_dir, triple) = match above.parent() {
            Some(parent) if !is_target_dir(above) && is_target_dir(parent) => {
                let triple = above.file_name()?.to_str()?.to_owned();
                (parent.to_owned(), Some(triple))
            }
            _ => (above.to_owned(), None),
        };
        Some(BuildLayout {
            target_dir,
            triple,
            profile,
            profile_dir: profile_dir.to_owned(),
        })
    }
}

/// Options of a test server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Run without the test key and token (development credentials).
    pub no_credentials: bool,
    /// A TOML configuration: written to `config.toml` in the server's temporary directory
    /// (removed with it) and passed with `--config`, at every start.
    pub config_toml: Option<String>,
    /// Start the server with this `RLIMIT_NOFILE` (soft and hard), through `sh -c 'ulimit -n'`.
    pub nofile_limit: Option<u64>,
}

/// A running server process.
pub struct TestServer {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The data directory (kept across restarts).
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    options: ServerOptions,
    /// What the server printed on stdout before it was ready.
    pub banner: String,
}

impl TestServer {
    /// Starts a server with the test key, secret and token.
    pub fn start() -> anyhow::Result<TestServer> {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a server with options, in a fresh temporary data directory.
    pub fn start_with(options: ServerOptions) -> anyhow::Result<TestServer> {
        let temp = tempfile::tempdir()?;
        let data_dir = temp.path().join("data");
        let mut options = options;
        if let Some(toml) = options.config_toml.take() {
            let path = temp.path().join("config.toml");
            std::fs::write(&path, toml).context("cannot write the test configuration")?;
            options.args.push("--config".into());
            options.args.push(path.display().to_string());
        }
        let mut server = TestServer {
            child: None,
            addr: String::new(),
            data_dir,
            _temp: Some(temp),
            options,
            banner: String::new(),
        };
        server.spawn("127.0.0.1:0")?;
        Ok(server)
    }

    fn spawn(&mut self, listen: &str) -> anyhow::Result<()> {
        let mut cmd = match self.options.nofile_limit {
            None => Command::new(binary("baddybugs-ingest")),
            Some(limit) => {
                // `exec` keeps the process id: kill and wait reach the server itself.
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(binary("baddybugs-ingest"));
                cmd
            }
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(&self.data_dir);
        if !self.options.no_credentials {
            cmd.arg("--api-key")
                // `:optional`: the suites also post unsigned requests; `admission.rs` checks
                // that a key given with a secret requires signatures by default.
                .arg(format!("{API_KEY}:{SECRET}:optional"))
                .arg("--feed-token")
                .arg(FEED_TOKEN);
        }
        cmd.args(&self.options.args)
            .env("BADDYBUGS_LOG", "warn")
            .env_remove("BADDYBUGS_API_KEYS")
            .env_remove("BADDYBUGS_FEED_TOKEN")
            .env_remove("BADDYBUGS_CLICKHOUSE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("cannot start baddybugs-ingest")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut banner = String::new();
            let mut sent = false;
            while let Some(Ok(line)) = lines.next() {
                if !sent {
                    banner.push_str(&line);
                    banner.push('\n');
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        let _ = tx.send((addr, banner.clone()));
                        sent = true;
                    }
                } else if line.is_empty() {
                    continue;
                }
            }
            if !sent {
                let _ = tx.send((String::new(), banner));
            }
        });
        let (addr, banner) = rx
            .recv_timeout(Duration::from_secs(60))
            .context("the server did not say it was listening within 60 s")?;
        if addr.is_empty() {
            let status = child.wait()?;
            bail!("the server exited before listening ({status}); it printed:\n{banner}");
        }
        self.addr = addr;
        self.banner = banner;
        self.child = Some(child);
        Ok(())
    }

    /// `http://addr<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://addr/v1/feed`.
    pub fn feed_url(&self) -> String {
        format!("ws://{}/v1/feed", self.addr)
    }

    /// Everything the server wrote to its log files so far.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(dir) = std::fs::read_dir(self.data_dir.join("logs")) {
            for entry in dir.flatten() {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL (a crash).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> anyhow::Result<bool> {
        let Some(mut child) = self.child.take() else {
            return Ok(false);
        };
        // Sent straight from this process (no `kill` child in between, so it can arrive the
        // moment the banner is read). The process may already be exiting after an earlier
        // signal: a failed kill is fine.
        if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the server did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same address and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        let addr = self.addr.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.spawn(&addr) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Gzip at level 6, as the agent does.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(body).expect("in-memory write");
    enc.finish().expect("in-memory write")
}

/// The agent's signature: hex HMAC-SHA256 over `"<timestamp>.<body>"`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Builds `{"events":[…]}` from raw event texts, byte-for-byte.
pub fn batch_body(events: &[&str]) -> String {
    format!("{{\"events\":[{}]}}", events.join(","))
}

/// Posts a JSON body exactly as the agent does: gzip, Bearer key, signature, agent headers.
pub async fn post_as_agent(
    client: &reqwest::Client,
    server: &TestServer,
    body: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = sign(SECRET, &timestamp, body.as_bytes());
    let response = client
        .post(server.url("/v1/ingest"))
        .header("Authorization", format!("Bearer {API_KEY}"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .header("X-Agent-Version", "1.0.0")
        .header("X-BaddyBugs-Internal", "true")
        .header("X-Timestamp", &timestamp)
        .header("X-Signature", signature)
        .body(gzip(body.as_bytes()))
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok((status, json))
}

/// GET with the feed token; returns status and JSON.
pub async fn get_json(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let response = client
        .get(server.url(path))
        .header("Authorization", format!("Bearer {FEED_TOKEN}"))
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    ))
}

/// The text of `GET /metrics`, read with the feed token.
pub async fn metrics_text(client: &reqwest::Client, server: &TestServer) -> anyhow::Result<String> {
    Ok(client
        .get(server.url("/metrics"))
        .header("Authorization", format!("Bearer {FEED_TOKEN}"))
        .send()
        .await?
        .text()
        .await?)
}

/// Polls `condition` every 50 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(
    timeout: Duration,
    what: &str,
    mut condition: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until everything the server acknowledged before this call is stored: the sink lag
/// (`/v1/stats` `sink.lag_events`, and `buffers.pending_records`) is 0 in a snapshot measured
/// after the call began. The metrics ticker reads the spool once a second and stamps each
/// snapshot (`at`) after reading it, so a snapshot that follows one stamped after the start was
/// measured after the start too: a lag of 0 there covers every earlier 202.
pub async fn wait_until_stored(
    client: &reqwest::Client,
    server: &TestServer,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = chrono::Utc::now();
    let mut first_after_start: Option<String> = None;
    let deadline = Instant::now() + timeout;
    loop {
        let (status, stats) = get_json(client, server, "/v1/stats").await?;
        if status != 200 {
            bail!("GET /v1/stats answered {status}: {stats}");
        }
        let at = stats["at"].as_str().unwrap_or_default().to_owned();
        let stamped_after_start = chrono::DateTime::parse_from_rfc3339(&at)
            .is_ok_and(|t| t.with_timezone(&chrono::Utc) > start);
        match &first_after_start {
            None if stamped_after_start => first_after_start = Some(at),
            Some(first) if *first != at => {
                let lag = stats["sink"]["lag_events"].as_u64();
                let pending = stats["buffers"]["pending_records"].as_u64();
                if (lag, pending) == (Some(0), Some(0)) {
                    return Ok(());
                }
            }
            _ => {}
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {timeout:?} waiting for the sink lag to reach 0; last stats: sink {} buffers {}",
                stats["sink"], stats["buffers"]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts stored events matching a query string (follows cursors).
pub async fn count_events(
    client: &reqwest::Client,
    server: &TestServer,
    query: &str,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/events?limit=1000&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get_json(client, server, &path).await?;
        if status != 200 {
            bail!("GET {path} answered {status}: {page}");
        }
        for event in page["events"].as_array().cloned().unwrap_or_default() {
            ids.push(event["id"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(ids),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_are_built_like_the_test_that_needs_them() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("custom-target");
        std::fs::create_dir_all(target.join("release/deps")).unwrap();
        std::fs::write(target.join("CACHEDIR.TAG"), "").unwrap();
        let layout = BuildLayout::from_test_path(&target.join("release/deps/ingest-0123")).unwrap();
        assert_eq!(
            layout,
            BuildLayout {
                target_dir: target.clone(),
                triple: None,
                profile: "release".into(),
                profile_dir: target.join("release"),
            }
        );
        let cross = BuildLayout::from_test_path(
            &target.join("x86_64-unknown-linux-gnu/debug/deps/ingest-0123"),
        )
        .unwrap();
        assert_eq!(cross.target_dir, target);
        assert_eq!(cross.triple.as_deref(), Some("x86_64-unknown-linux-gnu"));
        assert_eq!(cross.profile, "dev");
        assert!(BuildLayout::from_test_path(Path::new("/usr/bin/true")).is_none());
    }

    #[test]
    fn a_target_directory_made_before_cargo_ran_is_not_taken_for_a_triple() {
        // CI creates `target/` (the chDB virtualenv) before the first build, so cargo never
        // writes its CACHEDIR.TAG there; only `.rustc_info.json` marks it, or nothing at all.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir_all(target.join("debug/deps")).unwrap();
        let exe = target.join("debug/deps/admission-0123");
        let unmarked = BuildLayout::from_test_path(&exe).unwrap();
        assert_eq!(unmarked.target_dir, target);
        assert_eq!(unmarked.triple, None);
        std::fs::write(target.join(".rustc_info.json"), "{}").unwrap();
        let marked = BuildLayout::from_test_path(&exe).unwrap();
        assert_eq!(marked.target_dir, target);
        assert_eq!(marked.triple, None);
        let cross =
            BuildLayout::from_test_path(&target.join("aarch64-unknown-linux-gnu/debug/deps/t-1"))
                .unwrap();
        assert_eq!(cross.target_dir, target);
        assert_eq!(cross.triple.as_deref(), Some("aarch64-unknown-linux-gnu"));
    }
}
