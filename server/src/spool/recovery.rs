//! What the spool reads back at open besides the segments: consumers' checkpoints (with a safe
//! answer when one cannot be read) and the cut note a stopped writer leaves behind.
//!
//! Checkpoints: `checkpoint.<consumer>` holds the last LSN the consumer made durable elsewhere.
//! When that file cannot be read or parsed, restarting the consumer at LSN 0 would hand the
//! store every record still on disk again. SQLite skips a replayed range (`sink_state.last_lsn`)
//! and ids it has, but ClickHouse only drops an insert whose deduplication token matches, i.e.
//! the same LSN range: a replay cut into different ranges is stored twice. So the consumer
//! resumes from its write intent (`intent.<consumer>`, the range it was storing, recorded after
//! the previous checkpoint): `first - 1` is never past the real checkpoint, and the batcher
//! replays exactly that range, which the store drops. Without a readable intent it resumes at
//! 0 (nothing is lost; ClickHouse may hold a second copy of what is replayed). Either way the
//! open warns, counts `spool_errors_total{op="checkpoint"}` and [`super::SpoolHealth`] lists it.
//!
//! Cut note: `cut` holds `<segment file> <length> <lsn>`, written by a writer that could not cut
//! refused frames off its segment (see `writer.rs`). The next open cuts that segment to that
//! length before scanning it, so the refused records are never read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{io_err, sync_dir, SpoolError, SpoolOp};

/// Name of the cut note in the spool directory.
pub(crate) const CUT_NOTE: &str = "cut";

/// A checkpoint file that could not be read.
#[derive(Debug, Clone)]
pub(crate) struct Unreadable {
    /// The consumer.
    pub consumer: String,
    /// Why.
    pub why: String,
    /// A bounded name of the cause.
    pub kind: &'static str,
    /// Where the consumer resumes instead.
    pub resume_after: u64,
}

/// The checkpoints on disk (unreadable ones resolved to a safe LSN, and listed).
pub(crate) fn read_checkpoints(dir: &Path) -> (HashMap<String, u64>, Vec<Unreadable>) {
    let mut out = HashMap::new();
    let mut unreadable = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (out, unreadable);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(consumer) = name.strip_prefix("checkpoint.") else {
            continue;
        };
        if consumer.ends_with(".tmp") {
            continue;
        }
        let parsed = match std::fs::read_to_string(entry.path()) {
            Ok(text) => text.trim().parse::<u64>().map_err(|e| {
                (
                    format!(
                        "not an LSN ({e}): {:?}",
                        text.chars().take(40).collect::<String>()
                    ),
                    "invalid_data",
                )
            }),
            Err(e) => Err((e.to_string(), super::kind_label(&e))),
        };
        match parsed {
            Ok(lsn) => {
                out.insert(consumer.to_owned(), lsn);
            }
            Err((why, kind)) => {
                let resume_after = read_intent(dir, consumer).map_or(0, |(first, _)| first - 1);
                out.insert(consumer.to_owned(), resume_after);
                unreadable.push(Unreadable {
                    consumer: consumer.to_owned(),
                    why,
                    kind,
                    resume_after,
                });
            }
        }
    }
    (out, unreadable)
}

/// The range in `intent.<consumer>`, if readable.
pub(crate) fn read_intent(dir: &Path, consumer: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(dir.join(format!("intent.{consumer}"))).ok()?;
    let (first, last) = text.trim().split_once(' ')?;
    let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
    (first >= 1 && last >= first).then_some((first, last))
}

/// Writes `contents` to `dir/name` atomically and durably (temp file, fsync, rename, dir fsync).
pub(crate) fn write_durably(dir: &Path, name: &str, contents: &str) -> Result<(), SpoolError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, contents).map_err(io_err(SpoolOp::Checkpoint, &tmp))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(SpoolOp::Checkpoint, &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(SpoolOp::Checkpoint, &path))?;
    sync_dir(dir)
}

/// Records that `segment` must be cut to `len` bytes (its frames through `lsn`) at the next open.
pub(crate) fn write_cut_note(
    dir: &Path,
    segment: &Path,
    len: u64,
    lsn: u64,
) -> Result<(), SpoolError> {
    let file = segment
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_durably(dir, CUT_NOTE, &format!("{file} {len} {lsn}\n"))
}

/// Applies a cut note left by a stopped writer, then removes it; returns the bytes cut.
pub(crate) fn apply_cut_note(dir: &Path) -> Result<u64, SpoolError> {
    let note = dir.join(CUT_NOTE);
    let text = match std::fs::read_to_string(&note) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(SpoolOp::Open, &note)(e)),
    };
    let damaged = |reason: &str| SpoolError::Corrupt {
        file: note.clone(),
        offset: 0,
        reason: format!("{reason} (expected `<segment file> <length> <lsn>`)"),
    };
    let mut fields = text.split_whitespace();
    let (Some(file), Some(len), Some(lsn)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(damaged("unreadable cut note"));
    };
    let (Ok(len), Ok(lsn)) = (len.parse::<u64>(), lsn.parse::<u64>()) else {
        return Err(damaged("unreadable cut note"));
    };
    if file.contains('/') || !file.ends_with(".seg") {
        return Err(damaged("the cut note names no segment"));
    }
    let segment: PathBuf = dir.join(file);
    let mut cut = 0;
    match std::fs::metadata(&segment) {
        Ok(meta) if meta.len() > len => {
            let handle = std::fs::OpenOptions::new()
                .write(true)
                .open(&segment)
                .map_err(io_err(SpoolOp::Truncate, &segment))?;
            handle
                .set_len(len)
                .and_then(|()| handle.sync_all())
                .map_err(io_err(SpoolOp::Truncate, &segment))?;
            cut = meta.len() - len;
            tracing::warn!(
                file = %segment.display(),
                kept_through_lsn = lsn,
                cut_bytes = cut,
                "spool: cut the records refused before the writer stopped"
            );
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(SpoolOp::Open, &segment)(e)),
    }
    std::fs::remove_file(&note).map_err(io_err(SpoolOp::Open, &note))?;
    sync_dir(dir)?;
    Ok(cut)
}
