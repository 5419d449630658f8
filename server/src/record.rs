//! The spool record of one ingest request: batch metadata, the accepted events' exact bytes and
//! the quarantined ones with their reasons.
//!
//! One record per request (not per event) keeps the spool's per-record overhead off the hot
//! path. Layout (version 1), all integers little-endian:
//!
//! ```text
//! u8 version | u32 header_len | header (JSON: BatchMeta) |
//! u32 n_events     | n × (u32 index | u32 len | event bytes)
//! u32 n_quarantine | n × (u32 len | kept bytes)          (same order as header.quarantined)
//! ```
//!
//! The header is JSON because it is small and must stay readable by `spool dump`; the event
//! bytes are stored raw so nothing is re-encoded. Decoding fails with [`RecordError`] on a
//! record that is cut or of an unknown version (the spool's checksums make that a bug).

use baddybugs_common::Problem;
use serde::{Deserialize, Serialize};

/// Format version written by this server.
pub const VERSION: u8 = 1;

/// One stage of the pipeline trace of a request (`stage`, `start_us`, `duration_us`), typed
/// in the protocol so that the same value goes from here to the store and the feed.
pub use baddybugs_common::protocol::StageTiming as Stage;

/// A rejected event (or a whole undecodable body) kept in the quarantine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    /// Index in the body; `None` for a whole body.
    pub index: Option<u32>,
    /// Its `type`, when readable.
    pub event_type: Option<String>,
    /// Its `id`, when readable.
    pub event_id: Option<String>,
    /// Every reason.
    pub reasons: Vec<Problem>,
    /// The original size in bytes (the kept bytes may be cut).
    pub raw_size: u64,
}

/// Metadata of one ingest request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchMeta {
    /// Batch id (UUID v7).
    pub batch_id: String,
    /// Receipt time, epoch ms.
    pub received_ms: i64,
    /// The key's organization.
    pub organization: String,
    /// The key's application.
    pub application: String,
    /// Client address.
    pub remote_addr: Option<String>,
    /// `X-Agent-Version`.
    pub agent_version: Option<String>,
    /// Body size as sent.
    pub bytes_compressed: u64,
    /// Body size inflated.
    pub bytes_inflated: u64,
    /// Events in the body.
    pub total_events: u32,
    /// Events recognised as agent retries (not stored again).
    pub duplicates: u32,
    /// Quarantined events, in order.
    pub quarantined: Vec<Quarantined>,
    /// Pipeline stages up to the spool append.
    pub stages: Vec<Stage>,
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Cut short or inconsistent.
    #[error("spool record is truncated or inconsistent at byte {0}")]
    Truncated(usize),
    /// Written by another version.
    #[error("spool record version {0} is not supported")]
    Version(u8),
    /// The header is not the expected JSON.
    #[error("spool record header: {0}")]
    Header(#[from] serde_json::Error),
}

/// Encodes a record.
pub fn encode(meta: &BatchMeta, events: &[(u32, &[u8])], quarantined_raw: &[&[u8]]) -> Vec<u8> {
    let header = serde_json::to_vec(meta).unwrap_or_default();
    let body: usize = events.iter().map(|(_, b)| b.len() + 8).sum::<usize>()
        + quarantined_raw.iter().map(|b| b.len() + 4).sum::<usize>();
    let mut out = Vec::with_capacity(1 + 4 + header.len() + 8 + body);
    out.push(VERSION);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for (index, bytes) in events {
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(&(quarantined_raw.len() as u32).to_le_bytes());
    for bytes in quarantined_raw {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// How many accepted events a record holds, read from its layout without decoding the header
/// (the batcher sizes its batches with it). `None` for a record it cannot read.
pub fn event_count(data: &[u8]) -> Option<usize> {
    let header_len = u32::from_le_bytes(data.get(1..5)?.try_into().ok()?) as usize;
    let at = 5usize.checked_add(header_len)?;
    let count = data.get(at..at + 4)?;
    Some(u32::from_le_bytes(count.try_into().ok()?) as usize)
}

/// A decoded record, borrowing the spool payload.
#[derive(Debug)]
pub struct DecodedRecord<'a> {
    /// The metadata.
    pub meta: BatchMeta,
    /// Accepted events: index in the body and exact bytes.
    pub events: Vec<(u32, &'a [u8])>,
    /// Kept bytes of each quarantined entry, same order as `meta.quarantined`.
    pub quarantined_raw: Vec<&'a [u8]>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        let end = end.ok_or(RecordError::Truncated(self.pos))?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// Decodes a record.
pub fn decode(data: &[u8]) -> Result<DecodedRecord<'_>, RecordError> {
    let mut r = Reader { data, pos: 0 };
    let version = r.take(1)?[0];
    if version != VERSION {
        return Err(RecordError::Version(version));
    }
    let header_len = r.u32()? as usize;
    let meta: BatchMeta = serde_json::from_slice(r.take(header_len)?)?;
    let n_events = r.u32()? as usize;
    let mut events = Vec::with_capacity(n_events.min(100_000));
    for _ in 0..n_events {
        let index = r.u32()?;
        let len = r.u32()? as usize;
        events.push((index, r.take(len)?));
    }
    let n_quarantined = r.u32()? as usize;
    let mut quarantined_raw = Vec::with_capacity(n_quarantined.min(100_000));
    for _ in 0..n_quarantined {
        let len = r.u32()? as usize;
        quarantined_raw.push(r.take(len)?);
    }
    if r.pos != data.len() || quarantined_raw.len() != meta.quarantined.len() {
        return Err(RecordError::Truncated(r.pos));
    }
    Ok(DecodedRecord {
        meta,
        events,
        quarantined_raw,
    })
}

#[cfg(test)]
impl BatchMeta {
    /// The metadata of a request of `total_events` events with nothing quarantined (tests).
    pub(crate) fn for_test(total_events: u32) -> BatchMeta {
        BatchMeta {
            batch_id: "b".into(),
            received_ms: 1_749_567_234_300,
            organization: "o".into(),
            application: "a".into(),
            remote_addr: None,
            agent_version: None,
            bytes_compressed: 0,
            bytes_inflated: 0,
            total_events,
            duplicates: 0,
            quarantined: Vec::new(),
            stages: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let meta = BatchMeta {
            batch_id: "b".into(),
            received_ms: 5,
            organization: "o".into(),
            application: "a".into(),
            remote_addr: Some("127.0.0.1:5".into()),
            agent_version: Some("1.0.0".into()),
            bytes_compressed: 10,
            bytes_inflated: 20,
            total_events: 3,
            duplicates: 0,
            quarantined: vec![Quarantined {
                index: Some(1),
                event_type: None,
                event_id: None,
                reasons: vec![],
                raw_size: 3,
            }],
            stages: vec![],
        };
        let raw = encode(&meta, &[(0, b"{\"a\":\"\\/\"}"), (2, b"{}")], &[b"\xffx"]);
        let decoded = decode(&raw).unwrap();
        assert_eq!(decoded.meta, meta);
        assert_eq!(
            decoded.events,
            vec![(0, &b"{\"a\":\"\\/\"}"[..]), (2, &b"{}"[..])]
        );
        assert_eq!(decoded.quarantined_raw, vec![&b"\xffx"[..]]);
        assert!(decode(&raw[..raw.len() - 1]).is_err());
        assert_eq!(event_count(&raw), Some(2));
    }
}

/// A deterministic id for an event that arrived without one: a UUID-shaped digest of its batch
/// and index, so a spool replay assigns the same id again.
pub fn assigned_id(batch_id: &str, index: u32) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{batch_id}:{index}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8: custom
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    uuid::Uuid::from_bytes(bytes).to_string()
}

#[cfg(test)]
mod assigned_id_tests {
    use super::assigned_id;

    #[test]
    fn assigned_ids_are_deterministic() {
        assert_eq!(assigned_id("b", 1), assigned_id("b", 1));
        assert_ne!(assigned_id("b", 1), assigned_id("b", 2));
        assert_eq!(assigned_id("b", 1).len(), 36);
    }
}
