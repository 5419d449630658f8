//! Operator tools that work on a spool directory without a running server: `spool status`,
//! `spool verify [--truncate]`, `spool dump`.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::frame::{list_segments, scan, End};
use super::recovery::read_checkpoints;
use super::{io_err, ConsumerStatus, SpoolError, SpoolOp, SpoolStatus, SPOOL_DIR};

/// What `verify` found in one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file.
    pub file: String,
    /// Good records.
    pub records: u64,
    /// First and last LSN.
    pub lsns: Option<(u64, u64)>,
    /// Bytes.
    pub bytes: u64,
    /// First damage: offset and reason.
    pub damage: Option<(u64, String)>,
    /// Whether the damaged tail was cut.
    pub truncated: bool,
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Per file.
    pub files: Vec<FileReport>,
    /// Whether every record checked out.
    pub ok: bool,
}

/// Checks every record's checksum; with `truncate`, cuts a damaged tail of the last segment.
pub fn verify(data_dir: &Path, truncate: bool) -> Result<VerifyReport, SpoolError> {
    let dir = data_dir.join(SPOOL_DIR);
    let files = list_segments(&dir).map_err(io_err(SpoolOp::Read, &dir))?;
    let mut reports = Vec::new();
    for (i, (_, path)) in files.iter().enumerate() {
        let mut records = 0;
        let mut lsns: Option<(u64, u64)> = None;
        let (end, how) = scan(path, 0, |f| {
            records += 1;
            lsns = Some(lsns.map_or((f.lsn, f.lsn), |(a, _)| (a, f.lsn)));
            true
        })
        .map_err(io_err(SpoolOp::Read, path))?;
        let damage = match how {
            End::Clean => None,
            End::Damaged(offset, reason) => Some((offset, reason)),
        };
        let mut truncated = false;
        if truncate && damage.is_some() && i + 1 == files.len() {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err(SpoolOp::Truncate, path))?;
            let magic = super::frame::MAGIC;
            if end < magic.len() as u64 {
                // Shorter than its magic (or not a segment at all): make it an empty segment.
                file.set_len(0)
                    .and_then(|()| std::fs::write(path, magic))
                    .map_err(io_err(SpoolOp::Truncate, path))?;
            } else {
                file.set_len(end).map_err(io_err(SpoolOp::Truncate, path))?;
            }
            file.sync_all().map_err(io_err(SpoolOp::Sync, path))?;
            truncated = true;
        }
        reports.push(FileReport {
            file: path.display().to_string(),
            records,
            lsns,
            bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            damage,
            truncated,
        });
    }
    let ok = reports.iter().all(|r| r.damage.is_none() || r.truncated);
    Ok(VerifyReport { files: reports, ok })
}

/// Prints records as JSON lines: lsn, appended_at, bytes and the rendered payload.
pub fn dump(
    data_dir: &Path,
    from_lsn: Option<u64>,
    out: &mut impl Write,
    render: impl Fn(&[u8]) -> serde_json::Value,
) -> Result<u64, SpoolError> {
    let dir = data_dir.join(SPOOL_DIR);
    let mut count = 0;
    let mut write_error = None;
    for (_, path) in list_segments(&dir).map_err(io_err(SpoolOp::Read, &dir))? {
        scan(&path, 0, |f| {
            if from_lsn.is_some_and(|from| f.lsn < from) {
                return true;
            }
            let line = serde_json::json!({
                "lsn": f.lsn,
                "appended_at": baddybugs_common::timestamp::format_millis(f.appended_ms as i64),
                "bytes": f.payload.len(),
                "record": render(&f.payload),
            });
            if let Err(e) = writeln!(out, "{line}") {
                write_error = Some(e);
                return false;
            }
            count += 1;
            true
        })
        .map_err(io_err(SpoolOp::Read, &path))?;
        if let Some(e) = write_error.take() {
            return Err(SpoolError::Io {
                op: SpoolOp::Write,
                path,
                source: e,
            });
        }
    }
    Ok(count)
}

/// The spool's status read from disk.
pub fn status_offline(data_dir: &Path) -> Result<SpoolStatus, SpoolError> {
    let dir = data_dir.join(SPOOL_DIR);
    let files = list_segments(&dir).map_err(io_err(SpoolOp::Read, &dir))?;
    let mut bytes = 0;
    // (lsn, appended_ms, events)
    let mut records: Vec<(u64, u64, u64)> = Vec::new();
    for (_, path) in &files {
        bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        scan(path, 0, |f| {
            records.push((f.lsn, f.appended_ms, super::record_events(&f.payload)));
            true
        })
        .map_err(io_err(SpoolOp::Read, path))?;
    }
    let last_lsn = records.last().map_or(0, |r| r.0);
    let mut consumers: Vec<ConsumerStatus> = read_checkpoints(&dir)
        .0
        .into_iter()
        .map(|(name, lsn)| ConsumerStatus {
            name,
            checkpoint_lsn: lsn,
            pending_records: last_lsn.saturating_sub(lsn),
            pending_events: records.iter().filter(|r| r.0 > lsn).map(|r| r.2).sum(),
            oldest_pending_unix_ms: records.iter().find(|r| r.0 > lsn).map(|r| r.1),
        })
        .collect();
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(SpoolStatus {
        segments: files.len(),
        bytes_on_disk: bytes,
        quota_bytes: 0,
        last_lsn,
        consumers,
    })
}
