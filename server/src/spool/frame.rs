//! Segment files and record frames.
//!
//! A segment starts with the 8-byte magic `BBSPOOL1`; then frames, each
//! `u32 len | u32 crc32 | u64 lsn | u64 appended_unix_ms | payload` (little-endian), the CRC
//! covering lsn, time and payload. A frame that is short, too long or fails its CRC ends the
//! readable part of a file.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Segment file magic and version.
pub const MAGIC: &[u8; 8] = b"BBSPOOL1";
/// Bytes of a frame header.
pub const HEADER: usize = 24;
/// Largest payload the reader accepts (a sanity bound when reading a damaged file). The writer
/// refuses anything above [`MAX_RECORD`], one byte less, so what it acknowledges always reads.
pub const MAX_PAYLOAD: usize = 1 << 30;
/// Largest payload the writer takes.
pub const MAX_RECORD: usize = MAX_PAYLOAD - 1;

/// Encodes one frame.
pub fn encode(lsn: u64, appended_ms: u64, payload: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&lsn.to_le_bytes());
    crc.update(&appended_ms.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&appended_ms.to_le_bytes());
    out.extend_from_slice(payload);
}

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Sequence number.
    pub lsn: u64,
    /// Append time.
    pub appended_ms: u64,
    /// The record.
    pub payload: Vec<u8>,
    /// Offset of the frame in its file.
    pub offset: u64,
}

/// How reading a file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// At the end of the file, cleanly.
    Clean,
    /// At a damaged frame: offset and why.
    Damaged(u64, String),
}

/// Reads frames of a segment from `offset` (after the magic when 0), calling `each` until it
/// returns false; returns where reading stopped and how.
pub fn scan(
    path: &Path,
    offset: u64,
    mut each: impl FnMut(Frame) -> bool,
) -> std::io::Result<(u64, End)> {
    let mut raw = File::open(path)?;
    if offset > 0 {
        raw.seek(SeekFrom::Start(offset))?;
    }
    let mut file = BufReader::with_capacity(256 << 10, raw);
    let mut pos = offset;
    if offset == 0 {
        let mut magic = [0u8; 8];
        if let Err(e) = file.read_exact(&mut magic) {
            return if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Ok((0, End::Damaged(0, "file shorter than its header".into())))
            } else {
                Err(e)
            };
        }
        if &magic != MAGIC {
            return Ok((0, End::Damaged(0, "not a spool segment (bad magic)".into())));
        }
        pos = 8;
    }
    let mut header = [0u8; HEADER];
    loop {
        match read_full(&mut file, &mut header)? {
            0 => return Ok((pos, End::Clean)),
            n if n < HEADER => return Ok((pos, End::Damaged(pos, "torn frame header".into()))),
            _ => {}
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let lsn = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        let appended_ms = u64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
        if len > MAX_PAYLOAD {
            return Ok((
                pos,
                End::Damaged(pos, format!("frame length {len} is implausible")),
            ));
        }
        let mut payload = vec![0u8; len];
        if read_full(&mut file, &mut payload)? < len {
            return Ok((pos, End::Damaged(pos, "torn frame payload".into())));
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[8..24]);
        hasher.update(&payload);
        if hasher.finalize() != crc {
            return Ok((pos, End::Damaged(pos, "checksum mismatch".into())));
        }
        let frame = Frame {
            lsn,
            appended_ms,
            payload,
            offset: pos,
        };
        pos += (HEADER + len) as u64;
        if !each(frame) {
            return Ok((pos, End::Clean));
        }
    }
}

fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The segment files of a spool directory, sorted by first LSN.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(".seg") {
            if let Ok(first) = stem.parse::<u64>() {
                out.push((first, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The file name of the segment starting at `first_lsn`.
pub fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.seg")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(1));
        let mut bytes = MAGIC.to_vec();
        encode(1, 10, b"one", &mut bytes);
        encode(2, 11, b"two", &mut bytes);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        let mut seen = Vec::new();
        let (end, how) = scan(&path, 0, |f| {
            seen.push((f.lsn, f.payload));
            true
        })
        .unwrap();
        assert_eq!(how, End::Clean);
        assert_eq!(end, bytes.len() as u64);
        assert_eq!(seen, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
        // Flip a payload byte of the last frame.
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (stop, how) = scan(&path, 0, |_| true).unwrap();
        assert!(matches!(how, End::Damaged(_, ref r) if r == "checksum mismatch"));
        assert_eq!(stop, (8 + HEADER + 3) as u64);
    }
}
