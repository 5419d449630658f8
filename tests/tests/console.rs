//! The real console in a real terminal (tmux) against the real server: the Types view shows the
//! posted types with their counts, the Malformed view the reason of a bad event, the Waterfalls
//! view draws a lifecycle; the server is killed (the console says it is reconnecting and keeps
//! its data) and restarted (it recovers on its own). Issue 16: a rejection's bytes are shown as
//! sent and copied as sent; a rejection older than the live tail is found by paging the stored quarantine;
//! requests refused with 401 are on the Overview (with their sender) and in Pipeline; the
//! Types view counts per application; a scrolled list holds its selected row
//! while events keep arriving. Issue 19: with three nodes the console's fleet Overview flags the
//! node killed with `kill -9` and sees it come back.

use std::process::Command;
use std::time::{Duration, Instant};

use baddybugs_tests::server::{
    batch_body, binary, get_json, post_as_agent, wait_for, ServerOptions, TestServer, FEED_TOKEN,
};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> anyhow::Result<Tmux> {
        let socket = format!("bbtest-{}", uuid::Uuid::new_v4());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                "-s",
                "console",
                command,
            ])
            .status()?;
        anyhow::ensure!(status.success(), "tmux new-session failed");
        Ok(Tmux { socket })
    }

    fn keys(&self, keys: &[&str]) -> anyhow::Result<()> {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "console"])
            .args(keys)
            .status()?;
        anyhow::ensure!(status.success(), "tmux send-keys failed");
        Ok(())
    }

    /// tmux's newest paste buffer.
    fn buffer(&self) -> String {
        Command::new("tmux")
            .args(["-L", &self.socket, "show-buffer"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The selected row of a list (drawn reversed) as plain text, from the screen with its
    /// attributes.
    fn selected_row(&self) -> Option<String> {
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "capture-pane",
                "-p",
                "-e",
                "-t",
                "console",
            ])
            .output()
            .ok()?;
        let screen = String::from_utf8_lossy(&out.stdout).into_owned();
        screen.lines().find_map(|line| {
            let mut text = String::new();
            let mut reversed = false;
            let mut rest = line;
            while let Some(i) = rest.find("\x1b[") {
                text.push_str(&rest[..i]);
                let after = &rest[i + 2..];
                let end = after.find(|c: char| c.is_ascii_alphabetic())?;
                if after.as_bytes()[end] == b'm' && after[..end].split(';').any(|p| p == "7") {
                    reversed = true;
                }
                rest = &after[end + 1..];
            }
            text.push_str(rest);
            // A list row starts with the list's border (the tab bar has a reversed tab too).
            let in_list = text.starts_with('|') || text.starts_with('│');
            (reversed && in_list).then_some(text)
        })
    }

    fn screen(&self) -> String {
        Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "console"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the screen satisfies `check`; fails with the last screen.
    fn wait(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            let screen = self.screen();
            if check(&screen) {
                eprintln!("{what}: after {:.1} s", started.elapsed().as_secs_f64());
                return Ok(screen);
            }
            if Instant::now() > deadline {
                anyhow::bail!("timed out waiting for {what}; the screen was:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// The console in tmux (120×40, ASCII), connected to `server`; the log goes to `log_dir`.
fn console_for(server: &TestServer, log_dir: &std::path::Path) -> anyhow::Result<Tmux> {
    let console = binary("baddybugs-console");
    let tmux = Tmux::start(&format!(
        "{} --url {} --token {FEED_TOKEN} --log-file {} --ascii",
        console.display(),
        server.feed_url(),
        log_dir.join("console.log").display()
    ))?;
    tmux.wait("connected", Duration::from_secs(20), |s| {
        s.contains("CONNECTED")
    })?;
    Ok(tmux)
}

fn require_tmux() -> anyhow::Result<()> {
    if Command::new("tmux").arg("-V").output().is_err() {
        anyhow::bail!("tmux is required for this test (apt-get install tmux)");
    }
    Ok(())
}

/// A rejected event as a PHP agent writes it: `\/` in a string, keys in its own order.
const BAD: &str =
    r#"{"type":"cache","name":"a\/b","id":"bad-1","payload":{"store":"redis","action":"explode"}}"#;

const LIFECYCLE: &str = r#"{"id":"66666666-0000-4000-8000-000000000001","trace_id":"7a0c3b1e2d4a4b6c8e0f1a2b3c4d5e6f","session_id":null,"release":null,"git_sha":null,"env":"production","type":"lifecycle","name":"http_request","payload":{"trace_id":"7a0c3b1e2d4a4b6c8e0f1a2b3c4d5e6f","total_duration_ms":84.3,"request":{"method":"GET","url":"\/api\/orders","full_url":"https:\/\/shop.test\/api\/orders","status_code":200},"phases":[{"name":"BOOTSTRAP","duration_ms":12.1,"start_offset_ms":0,"percentage":14.4},{"name":"MIDDLEWARE","duration_ms":0,"start_offset_ms":12.1,"percentage":0},{"name":"CONTROLLER","label":"OrderController@index","duration_ms":70.2,"start_offset_ms":12.1,"percentage":83.3}],"spans":[{"span_id":1,"trace_id":"7a0c3b1e2d4a4b6c8e0f1a2b3c4d5e6f","type":"QUERY","label":"select * from `orders`","duration_ms":3.2,"start_offset_ms":15,"depth":1,"sql":"select * from `orders` where `user_id` = ?","bindings":[7],"connection":"mysql"},{"span_id":2,"trace_id":"7a0c3b1e2d4a4b6c8e0f1a2b3c4d5e6f","type":"CACHE_HIT","label":"orders:7","duration_ms":0.4,"start_offset_ms":19,"depth":1,"key":"orders:7"}],"counts":{"queries":1,"cache_hits":1,"cache_misses":0,"cache_writes":0,"outgoing_requests":0,"jobs_dispatched":0},"route":{"name":"orders.index","uri":"api\/orders","methods":["GET","HEAD"],"parameters":[]},"controller":{"class":"App\\Http\\Controllers\\OrderController","action":"index","full":"App\\Http\\Controllers\\OrderController@index"},"middleware":{"global":[],"route":["api"],"total_count":1},"breakdown":{"bootstrap":{"duration_ms":12.1,"percentage":14.4},"middleware":{"duration_ms":0,"percentage":0},"controller":{"duration_ms":70.2,"percentage":83.3}},"memory":{"peak_bytes":4194304,"peak_mb":4,"current_bytes":2097152,"current_mb":2},"environment":{"php_version":"8.2.10","laravel_version":"10.48.4","sapi":"fpm-fcgi"},"timestamp":"2025-06-10T17:53:54+02:00"},"context":[],"timestamp":1749567234.202922,"datetime":"2025-06-10T17:53:54+02:00","host":"web-1","memory":4194304}"#;

#[tokio::test]
async fn console_in_tmux_against_the_real_server() -> anyhow::Result<()> {
    require_tmux()?;
    let mut server = TestServer::start()?;
    let client = reqwest::Client::new();
    let log_dir = tempfile::tempdir()?;
    let tmux = console_for(&server, log_dir.path())?;

    let mut events: Vec<String> = (0..7)
        .map(|i| format!(r#"{{"id":"66666666-1111-4000-8000-{i:012}","trace_id":"t-console","env":"production","type":"cache","name":"k{i}","payload":{{"action":"hit","store":"redis","tags":[]}},"timestamp":1749567234.5}}"#))
        .collect();
    events.extend((0..3).map(|i| format!(r#"{{"id":"66666666-2222-4000-8000-{i:012}","trace_id":"t-console","env":"production","type":"log","name":"error","payload":{{"level":"error","message":"boom {i}","context":[]}},"timestamp":1749567234.5}}"#)));
    events.push(LIFECYCLE.to_owned());
    events.push(BAD.to_owned());
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let (status, body) = post_as_agent(&client, &server, &batch_body(&refs)).await?;
    assert_eq!(status, 202, "{body}");

    // Types view: the posted types with their counts.
    tmux.keys(&["2"])?;
    let types = tmux.wait("types with counts", Duration::from_secs(20), |s| {
        let line_of = |t: &str| {
            s.lines()
                .map(|l| l.trim_start_matches(['|', '│', ' ']))
                .find(|l| l.split_whitespace().next() == Some(t))
                .map(str::to_owned)
        };
        line_of("cache").is_some_and(|l| l.split_whitespace().any(|w| w == "8"))
            && line_of("log").is_some_and(|l| l.split_whitespace().any(|w| w == "3"))
    })?;
    assert!(types.contains("lifecycle"));
    // Issue 16, item 4: the same per application (the test key's), its 12 events, 1 rejected.
    tmux.wait("the application's counts", Duration::from_secs(20), |s| {
        s.contains("by application")
            && s.lines().any(|l| {
                let words: Vec<&str> = l
                    .trim_start_matches(['|', '│', ' '])
                    .split_whitespace()
                    .collect();
                words.first() == Some(&"default/default")
                    && words.get(2) == Some(&"12")
                    && words.get(3) == Some(&"1")
            })
    })?;

    // Malformed view: the reason of the bad event.
    tmux.keys(&["4"])?;
    tmux.wait("the rejection reason", Duration::from_secs(20), |s| {
        s.contains("not_allowed")
    })?;
    tmux.keys(&["Enter"])?;
    // Issue 16, item 2: the bytes as sent, PHP's `\/` and the key order kept.
    tmux.wait(
        "the pointer and the exact bytes",
        Duration::from_secs(10),
        |s| s.contains("/payload/action") && s.lines().any(|l| l.contains(BAD)),
    )?;
    // Issue 16, item 10: under tmux the copy goes through tmux, and says so only once done.
    tmux.keys(&["y"])?;
    let copied = format!("copied {} bytes into tmux's paste buffer", BAD.len());
    tmux.wait("the copy's notice", Duration::from_secs(10), |s| {
        s.contains(&copied)
    })?;
    assert_eq!(tmux.buffer(), BAD, "the copy is the bytes as sent");
    tmux.keys(&["Escape"])?;

    // Waterfalls view: a lifecycle drawn.
    tmux.keys(&["5"])?;
    tmux.wait("the lifecycle in the list", Duration::from_secs(20), |s| {
        s.contains("/api/orders")
    })?;
    tmux.keys(&["Enter"])?;
    tmux.wait("the waterfall", Duration::from_secs(10), |s| {
        s.contains("BOOTSTRAP")
            && s.contains("OrderController@index")
            && s.contains("select * from `orders`")
            && s.contains("#####")
    })?;
    tmux.keys(&["Escape", "2"])?;

    // The server dies: the console says so and keeps its data.
    server.kill9();
    let screen = tmux.wait("reconnecting", Duration::from_secs(20), |s| {
        s.contains("RECONNECTING")
    })?;
    assert!(
        screen.contains("cache"),
        "the last data stays on screen:\n{screen}"
    );
    // It comes back: the console recovers on its own.
    server.restart()?;
    tmux.wait("connected again", Duration::from_secs(60), |s| {
        s.contains("CONNECTED") && !s.contains("RECONNECTING")
    })?;
    tmux.keys(&["q"])?;
    Ok(())
}

/// Issue 16, item 5: an agent with a wrong key is refused with 401 before any event is read;
/// the Overview counts the 401s and the Warnings panel says what they mean.
#[tokio::test]
async fn requests_refused_with_401_are_on_the_overview() -> anyhow::Result<()> {
    require_tmux()?;
    let server = TestServer::start()?;
    let client = reqwest::Client::new();
    let log_dir = tempfile::tempdir()?;
    let tmux = console_for(&server, log_dir.path())?;
    let body = batch_body(&[
        r#"{"id":"66666666-4444-4000-8000-000000000001","type":"cache","name":"k","payload":{"action":"hit","store":"redis"}}"#,
    ]);
    for _ in 0..3 {
        let response = client
            .post(server.url("/v1/ingest"))
            .header("Authorization", "Bearer not-the-key")
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 401);
    }
    tmux.keys(&["1"])?;
    let screen = tmux.wait("the 401s on the Overview", Duration::from_secs(20), |s| {
        s.contains("401 x3 (3 in 60 s)")
    })?;
    assert!(
        screen.contains("HTTP 401 x3 in 60 s: wrong API key or signature"),
        "the Warnings panel names the refusals:\n{screen}"
    );
    // And the server's error code (the panel wraps the line: look for the part).
    tmux.wait("the refusals' code", Duration::from_secs(10), |s| {
        s.contains("unknown_key x3")
    })?;
    // Who sent them: a fingerprint of the wrong key, never the key itself.
    use sha2::Digest;
    let sender = format!(
        "key sha256:{}",
        &hex::encode(sha2::Sha256::digest(b"not-the-key"))[..8]
    );
    let screen = tmux.wait("the refusals by sender", Duration::from_secs(10), |s| {
        s.contains(&format!("{sender} 401 unknown_key x3 (3 in 60 s)"))
    })?;
    assert!(!screen.contains("not-the-key"), "the key is never shown");
    // Pipeline lists each refused request with its status and reason.
    tmux.keys(&["6"])?;
    tmux.wait(
        "the refused requests in Pipeline",
        Duration::from_secs(10),
        |s| {
            s.lines()
                .filter(|l| {
                    l.contains(" refused ") && l.contains(" 401 ") && l.contains("unknown_key")
                })
                .count()
                == 3
        },
    )?;
    tmux.keys(&["q"])?;
    Ok(())
}

/// Issue 16, item 3: the Malformed view pages back through the stored quarantine past the live
/// tail (here the server keeps 5 for a new client), and finds the one rare rejection.
#[tokio::test]
async fn an_old_rejection_is_found_by_paging_the_quarantine() -> anyhow::Result<()> {
    require_tmux()?;
    let server = TestServer::start_with(ServerOptions {
        config_toml: Some("[feed]\ntail_retention = 5\n[batch]\nflush_interval_ms = 100\n".into()),
        ..ServerOptions::default()
    })?;
    let client = reqwest::Client::new();
    let rare = r#"{"type":"cache","name":"rare","id":"old-rare","payload":{"action":"hit"}}"#;
    let (status, body) = post_as_agent(&client, &server, &batch_body(&[rare])).await?;
    assert_eq!(status, 202, "{body}");
    let common: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"type":"cache","name":"c{i}","id":"common-{i}","payload":{{"action":"explode","store":"redis"}}}}"#))
        .collect();
    let refs: Vec<&str> = common.iter().map(String::as_str).collect();
    let (status, body) = post_as_agent(&client, &server, &batch_body(&refs)).await?;
    assert_eq!(status, 202, "{body}");
    wait_for(
        Duration::from_secs(20),
        "21 rows in the quarantine",
        || async {
            let (_, v) = get_json(&client, &server, "/v1/malformed?limit=1000")
                .await
                .ok()?;
            (v["malformed"].as_array()?.len() == 21).then_some(())
        },
    )
    .await?;

    let log_dir = tempfile::tempdir()?;
    let tmux = console_for(&server, log_dir.path())?;
    tmux.keys(&["4"])?;
    let screen = tmux.wait("the live tail", Duration::from_secs(20), |s| {
        s.contains("of 5 received")
    })?;
    assert!(
        !screen.contains("/payload/store"),
        "the rare rejection is older than the live tail:\n{screen}"
    );
    tmux.keys(&["g", "k"])?;
    let screen = tmux.wait(
        "the rare rejection from the store",
        Duration::from_secs(20),
        |s| s.contains("/payload/store") && s.contains("16 from the store"),
    )?;
    assert!(screen.contains("missing_field"), "{screen}");
    tmux.keys(&["q"])?;
    Ok(())
}

/// The name `ev-N` in a row of the Events list.
fn event_name(row: &str) -> Option<String> {
    row.split_whitespace()
        .find(|w| w.starts_with("ev-"))
        .map(str::to_owned)
}

/// Issue 16 (item 1's check): under a steady stream of events, a list scrolled up keeps the
/// same row selected while new rows arrive below it, and `G` follows again.
// Two workers: the waits below block theirs while the load runs on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrolled_list_holds_its_row_under_load() -> anyhow::Result<()> {
    require_tmux()?;
    let server = std::sync::Arc::new(TestServer::start()?);
    let log_dir = tempfile::tempdir()?;
    let tmux = console_for(&server, log_dir.path())?;
    tmux.keys(&["3"])?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (server, stop) = (server.clone(), stop.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0;
            // The load itself: 5 events every 50 ms until told to stop.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let events: Vec<String> = (n..n + 5)
                    .map(|i| format!(r#"{{"type":"cache","name":"ev-{i}","id":"load-{i}","payload":{{"action":"hit","store":"redis"}}}}"#))
                    .collect();
                n += 5;
                let refs: Vec<&str> = events.iter().map(String::as_str).collect();
                let _ = post_as_agent(&client, &server, &batch_body(&refs)).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tmux.wait("events flowing", Duration::from_secs(20), |s| {
        s.contains("ev-40")
    })?;
    // One key, then the frame that shows it handled (the title says "scrolled"): reading the
    // selection before the console has handled every key pressed would race with it.
    tmux.keys(&["k"])?;
    tmux.wait("the list scrolled", Duration::from_secs(10), |s| {
        s.contains("scrolled")
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let held = loop {
        if let Some(name) = tmux.selected_row().as_deref().and_then(event_name) {
            break name;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no selected event row:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let new_below = |s: &str| {
        s.split(" new below")
            .next()
            .filter(|head| head.len() < s.len())
            .and_then(|head| head.split_whitespace().last()?.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let screen = tmux.wait(
        "30 new rows below the selection",
        Duration::from_secs(30),
        |s| new_below(s) >= 30,
    )?;
    let now = tmux.selected_row().as_deref().and_then(event_name);
    assert_eq!(
        now.as_deref(),
        Some(held.as_str()),
        "the selected row stayed put:\n{screen}"
    );
    tmux.keys(&["G"])?;
    tmux.wait("following again", Duration::from_secs(10), |s| {
        s.contains("following") && new_below(s) == 0
    })?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await?;
    tmux.keys(&["q"])?;
    Ok(())
}

/// The port of a test server, as fleet mode names a node when every node is on one host.
fn port_of(server: &TestServer) -> String {
    let url = server.url("/");
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap_or_default();
    format!(":{port}")
}

/// The line of the Overview's Nodes panel for `node`.
fn node_row(screen: &str, node: &str) -> Option<String> {
    screen
        .lines()
        .map(|l| l.trim_start_matches(['|', '│', ' ']))
        .find(|l| l.split_whitespace().next() == Some(node))
        .map(str::to_owned)
}

/// Issue 19: `--url` three times watches a fleet: fleet totals, a row per node, each node's
/// events with its name; a node killed with `kill -9` is flagged down (and in Warnings) while
/// the others keep going, and its return as a new instance is seen without a keypress.
#[tokio::test]
async fn the_fleet_overview_flags_a_dead_node_and_sees_it_recover() -> anyhow::Result<()> {
    require_tmux()?;
    let mut nodes = [
        TestServer::start()?,
        TestServer::start()?,
        TestServer::start()?,
    ];
    let client = reqwest::Client::new();
    let log_dir = tempfile::tempdir()?;
    let console = binary("baddybugs-console");
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("--url {}", n.feed_url()))
        .collect();
    let tmux = Tmux::start(&format!(
        "{} {} --token {FEED_TOKEN} --log-file {} --ascii",
        console.display(),
        urls.join(" "),
        log_dir.path().join("console.log").display()
    ))?;
    let names: Vec<String> = nodes.iter().map(port_of).collect();
    tmux.wait("every node up", Duration::from_secs(30), |s| {
        s.contains("FLEET 3 of 3 nodes up")
            && names
                .iter()
                .all(|n| node_row(s, n).is_some_and(|row| row.contains("up ")))
    })?;

    // One event per node: the Events view shows each with its node.
    for (i, node) in nodes.iter().enumerate() {
        let event = format!(
            r#"{{"id":"66666666-5555-4000-8000-{i:012}","type":"cache","name":"from-node-{i}","payload":{{"action":"hit","store":"redis"}}}}"#
        );
        let (status, body) = post_as_agent(&client, node, &batch_body(&[&event])).await?;
        assert_eq!(status, 202, "{body}");
    }
    tmux.keys(&["3"])?;
    tmux.wait(
        "each node's event with its node",
        Duration::from_secs(20),
        |s| {
            (0..3).all(|i| {
                s.lines().any(|l| {
                    l.contains(&format!("from-node-{i}"))
                        && l.trim_start_matches(['|', '│', ' ']).starts_with(&names[i])
                })
            })
        },
    )?;
    // `node:` keeps one node's rows.
    tmux.keys(&["/"])?;
    tmux.keys(&[&format!("node{}", names[1])])?;
    tmux.keys(&["Enter"])?;
    tmux.wait(
        "only the second node's event",
        Duration::from_secs(10),
        |s| s.contains("from-node-1") && !s.contains("from-node-0") && !s.contains("from-node-2"),
    )?;
    tmux.keys(&["Escape", "1"])?;

    // The third node dies: flagged down on its row and in Warnings; the others stay up.
    nodes[2].kill9();
    let screen = tmux.wait("the dead node flagged", Duration::from_secs(30), |s| {
        s.contains("FLEET 2 of 3 nodes up")
            && node_row(s, &names[2]).is_some_and(|row| row.contains("DOWN"))
            && s.contains(&format!("node {}: DOWN", names[2]))
    })?;
    for name in &names[..2] {
        let row = node_row(&screen, name).unwrap_or_default();
        assert!(row.contains("up "), "{name} stays up: {row}\n{screen}");
    }

    // It comes back (a new instance): seen on its own, the flag gone.
    nodes[2].restart()?;
    tmux.wait("the node back", Duration::from_secs(60), |s| {
        s.contains("FLEET 3 of 3 nodes up")
            && node_row(s, &names[2]).is_some_and(|row| row.contains("up ") && !row.contains('!'))
            && !s.contains(&format!("node {}: DOWN", names[2]))
    })?;
    tmux.keys(&["q"])?;
    Ok(())
}

/// Issue 17: an agent sends a field the catalog does not know. The Overview warns of the new
/// key at once; the Drift view (7) lists it with its kind and sample, read from the server; Enter
/// opens the event that showed it, from the store.
#[tokio::test]
async fn a_new_field_is_warned_listed_in_drift_and_its_example_opens() -> anyhow::Result<()> {
    require_tmux()?;
    let server = TestServer::start()?;
    let client = reqwest::Client::new();
    let log_dir = tempfile::tempdir()?;
    let tmux = console_for(&server, log_dir.path())?;
    let event = r#"{"id":"66666666-8888-4000-8000-000000000001","type":"cache","name":"k","payload":{"action":"hit","store":"redis","zone_hint":"eu-west-1"},"timestamp":1749567234.5}"#;
    let (status, body) = post_as_agent(&client, &server, &batch_body(&[event])).await?;
    assert_eq!(status, 202, "{body}");

    tmux.wait("the new key in Warnings", Duration::from_secs(20), |s| {
        // The line wraps in the Warnings panel.
        s.contains("schema drift: new unknown_field") && s.contains("cache/payload/zone_hint")
    })?;
    tmux.keys(&["7"])?;
    tmux.wait("the key in the Drift view", Duration::from_secs(20), |s| {
        s.lines().any(|l| {
            l.contains("cache")
                && l.contains("/payload/zone_hint")
                && l.contains("new field") // unknown_field, as 120 columns show it
                && l.contains("\"eu-west-1\"")
        })
    })?;
    tmux.keys(&["Enter"])?;
    tmux.wait("the example event", Duration::from_secs(20), |s| {
        s.contains("66666666-8888-4000-8000-000000000001") && s.contains("zone_hint")
    })?;
    tmux.keys(&["q"])?;
    Ok(())
}
