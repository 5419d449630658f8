//! Copy to the clipboard: inside tmux through tmux itself (`load-buffer -w`: its paste buffer,
//! and the outer terminal's clipboard where tmux can reach it), since tmux 3.3 drops an
//! application's OSC 52 by default; elsewhere with the OSC 52 escape (works over SSH). What
//! was done is reported as it is: a terminal never confirms OSC 52, so that is not called a
//! success.

use std::io::Write;
use std::process::{Command, Stdio};

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Puts `text` on the clipboard; returns what to tell the user (`what` names the bytes).
pub(crate) fn copy(text: &str, what: &str) -> String {
    if std::env::var_os("TMUX").is_some() {
        return match tmux_load_buffer(text) {
            Ok(()) => format!(
                "copied {what} into tmux's paste buffer (prefix ]) and, where tmux can, the clipboard"
            ),
            Err(e) => format!("copy failed: {e}; Ctrl-S saves to a file"),
        };
    }
    let mut out = std::io::stdout();
    match out
        .write_all(sequence(text, false).as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => format!(
            "sent {what} to the terminal's clipboard (OSC 52; terminals that ignore it say nothing: Ctrl-S saves to a file)"
        ),
        Err(e) => format!("copy failed: {e}; Ctrl-S saves to a file"),
    }
}

/// `tmux load-buffer -w -`, the text on its standard input.
fn tmux_load_buffer(text: &str) -> Result<(), String> {
    let mut child = Command::new("tmux")
        .args(["load-buffer", "-w", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run tmux: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("tmux load-buffer: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("tmux load-buffer: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "tmux load-buffer: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The escape sequence that puts `text` on the clipboard; `tmux`: wrapped in its passthrough
/// (which tmux 3.3+ drops unless `allow-passthrough` is on).
pub(crate) fn sequence(text: &str, tmux: bool) -> String {
    let osc = format!("\x1b]52;c;{}\x07", base64(text.as_bytes()));
    if tmux {
        format!("\x1bPtmux;{}\x1b\\", osc.replace('\x1b', "\x1b\x1b"))
    } else {
        osc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(sequence("hi", false), "\x1b]52;c;aGk=\x07");
        assert_eq!(
            sequence("hi", true),
            "\x1bPtmux;\x1b\x1b]52;c;aGk=\x07\x1b\\"
        );
    }
}
