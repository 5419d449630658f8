//! Decode: from the request body to the raw bytes of each event (runs on the `ingest-cpu` pool).
//!
//! In: the body as sent, its `Content-Encoding` and `Content-Type`, and the key whose
//! signature covers the inflated body. Out ([`decode_body`]): the inflated body
//! (inflated once; what is stored is never re-encoded) and the slices of it that are the
//! events. Accepted bodies: `{"events":[…]}` (the agent's), a bare array, a single event object,
//! or NDJSON (`Content-Type: application/x-ndjson`, one event per line — there a broken line is
//! one bad event, not a bad body). Encodings: gzip, deflate (zlib or raw), zstd, identity.
//!
//! Fails with a [`DecodeError`]: an unsupported encoding (→ 415), a body that inflates past the
//! limit (→ 413; the inflater stops at the limit, so a gzip bomb costs at most that much memory
//! and time), or a body that cannot be decoded at all (broken compression, invalid UTF-8,
//! invalid JSON, wrong top-level shape — quarantined whole by the caller). The signature is
//! checked over the inflated body, before it is split (→ 401 when it does not match).

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::ops::Range;

use baddybugs_common::ReasonCode;
use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::admit::RequestFacts;
use super::keys::{AuthError, KeyInfo, Signed};
use super::trace::StageTimer;
use crate::config::IngestConfig;
use crate::http::error::ApiError;
use baddybugs_common::protocol::StageName;

/// Where one event is in the inflated body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpan {
    /// Its bytes.
    pub range: Range<usize>,
    /// Whether they are UTF-8 (always, but for an NDJSON line).
    pub utf8: bool,
}

/// A body split into events, owned.
#[derive(Debug, Clone)]
pub struct DecodedBody {
    /// The inflated body.
    pub inflated: Bytes,
    /// Its events, in order.
    pub events: Vec<EventSpan>,
    /// `X-Signature`, when the request was signed and the signature verified (replay
    /// protection remembers it).
    pub signature: Option<String>,
}

impl DecodedBody {
    /// The bytes of an event.
    pub fn bytes(&self, span: &EventSpan) -> &[u8] {
        &self.inflated[span.range.clone()]
    }
}

/// A body that cannot be decoded: what to quarantine.
#[derive(Debug, Clone)]
pub struct Undecodable {
    /// The bytes to keep: the inflated body, or the body as sent when it could not be inflated.
    pub bytes: Bytes,
    /// Inflated size (0 when it could not be inflated).
    pub bytes_inflated: usize,
    /// Why.
    pub code: ReasonCode,
    /// What went wrong, for people.
    pub message: String,
}

/// What the decode stage made of a body.
#[derive(Debug)]
pub enum Decoded {
    /// Its events.
    Events(DecodedBody),
    /// Nothing readable: quarantined whole.
    Undecodable(Undecodable),
}

/// The decode stage: inflate once, check the signature over the inflated body, split.
pub fn decode_body(
    key: &KeyInfo,
    facts: &RequestFacts,
    body: Bytes,
    limits: &IngestConfig,
    timer: &mut StageTimer,
) -> Result<Decoded, ApiError> {
    let inflated = match inflate(facts.encoding, &body, limits.max_inflated_bytes) {
        Ok(Cow::Borrowed(_)) => body.clone(),
        Ok(Cow::Owned(inflated)) => Bytes::from(inflated),
        Err(DecodeError::InflatedTooLarge { limit }) => {
            return Err(ApiError::TooLarge(format!(
                "the body inflates past the limit of {limit} bytes (ingest.max_inflated_bytes)"
            )))
        }
        Err(DecodeError::Undecodable { code, message }) => {
            timer.mark(StageName::Inflated);
            if key.requires_signature() {
                // Nothing verifiable: the signature covers the inflated body.
                let unsigned = facts.signature == Default::default();
                return Err(if unsigned {
                    AuthError::SignatureRequired
                } else {
                    AuthError::SignatureMismatch
                }
                .into());
            }
            return Ok(Decoded::Undecodable(Undecodable {
                bytes: body,
                bytes_inflated: 0,
                code,
                message,
            }));
        }
        Err(other @ (DecodeError::UnsupportedEncoding(_) | DecodeError::TooManyEvents { .. })) => {
            return Err(ApiError::internal("inflating the body", other))
        }
    };
    timer.mark(StageName::Inflated);
    let signed = key.verify_signature(
        &facts.signature,
        &inflated,
        facts.received_ms / 1000,
        limits.signature_skew_secs,
    )?;
    let signature = match signed {
        Signed::Yes => facts
            .signature
            .signature
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase()),
        Signed::No => None,
    };
    timer.mark(StageName::Authenticated);
    let events = match split(&inflated, facts.ndjson, limits.max_events_per_batch) {
        Ok(split) => split
            .events
            .iter()
            .map(|raw| EventSpan {
                range: subslice_range(&inflated, raw.bytes()),
                utf8: matches!(raw, RawEvent::Text(_)),
            })
            .collect(),
        Err(DecodeError::TooManyEvents { count, limit }) => {
            return Err(ApiError::TooLarge(format!(
                "{count} events in one request; the limit is {limit} (ingest.max_events_per_batch)"
            )))
        }
        Err(DecodeError::Undecodable { code, message }) => {
            timer.mark(StageName::Parsed);
            return Ok(Decoded::Undecodable(Undecodable {
                bytes_inflated: inflated.len(),
                bytes: inflated,
                code,
                message,
            }));
        }
        Err(other) => return Err(ApiError::internal("splitting the body", other)),
    };
    timer.mark(StageName::Parsed);
    Ok(Decoded::Events(DecodedBody {
        inflated,
        events,
        signature,
    }))
}

/// Where `part`, a slice of `whole`, is in it. The splitter only ever returns slices of the
/// body it was given (borrowed `RawValue`s, trimmed lines), so this is pointer arithmetic on
/// two slices of one allocation; the bounds are checked all the same.
fn subslice_range(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    assert!(
        start <= whole.len() && part.len() <= whole.len() - start,
        "an event is not a slice of its body"
    );
    start..start + part.len()
}

/// A supported `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No compression.
    Identity,
    /// gzip (the agent's, level 6).
    Gzip,
    /// deflate (zlib-wrapped, or raw as some clients send it).
    Deflate,
    /// zstd.
    Zstd,
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// `Content-Encoding` not supported (→ 415).
    #[error("unsupported Content-Encoding {0:?}: use gzip, deflate, zstd or none")]
    UnsupportedEncoding(String),
    /// The inflated body is larger than the limit (→ 413).
    #[error("the body inflates past the limit of {limit} bytes")]
    InflatedTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Too many events in one body (→ 413).
    #[error("{count} events in one body; the limit is {limit}")]
    TooManyEvents {
        /// Events found.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The body could not be decoded; quarantined whole.
    #[error("{message}")]
    Undecodable {
        /// The reason code.
        code: ReasonCode,
        /// What went wrong, for people.
        message: String,
    },
}

impl DecodeError {
    fn undecodable(code: ReasonCode, message: impl Into<String>) -> DecodeError {
        DecodeError::Undecodable {
            code,
            message: message.into(),
        }
    }
}

/// Reads a `Content-Encoding` header value.
pub fn parse_encoding(value: Option<&str>) -> Result<Encoding, DecodeError> {
    let Some(value) = value else {
        return Ok(Encoding::Identity);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        "zstd" => Ok(Encoding::Zstd),
        other => Err(DecodeError::UnsupportedEncoding(other.to_owned())),
    }
}

/// Inflates a body, stopping as soon as it passes `limit` bytes.
///
/// Memory: the output is allocated at most twice. A gzip body says its inflated size in its
/// last four bytes (ISIZE); when that is at most [`SIZE_HINT_MAX`], the output starts at
/// exactly that size, which is every body the agent sends (tens of KiB). Otherwise, or once
/// the body writes past what it declared (a lie, or several gzip members), the output is
/// `limit + 1` bytes of address space of which only what is written becomes resident, so a
/// bomb costs `limit` bytes plus at most [`SIZE_HINT_MAX`] and no more. (Growing a `Vec` by
/// doubling would, at the last step, hold the full old buffer and its copy at once: twice the
/// limit under jemalloc, which moves a large block to grow it.) Reserving `limit` for every
/// body cost jemalloc a purge of the unused tens of MiB after each request: 4 % of the ingest
/// path's CPU in `madvise` (docs/BENCHMARKS.md). zstd is decoded in one pass into a buffer of
/// `limit` bytes, which is then also its window: a frame that asks for a long window
/// (`--long`, up to 2 GiB) costs no window buffer of its own.
pub fn inflate(
    encoding: Encoding,
    body: &[u8],
    limit: usize,
) -> Result<Cow<'_, [u8]>, DecodeError> {
    fn read_capped(
        reader: impl Read,
        limit: usize,
        declared: Option<usize>,
        what: &str,
    ) -> Result<Vec<u8>, DecodeError> {
        let whole = limit.saturating_add(1);
        let mut reader = reader.take(whole as u64);
        let first = first_capacity(limit, declared);
        let mut out = Vec::with_capacity(first);
        let mut read = (&mut reader).take(first as u64).read_to_end(&mut out);
        if read.is_ok() && out.len() == first && first < whole {
            // More than declared: the one growth, to the limit.
            out.reserve_exact(whole - out.len());
            read = reader.read_to_end(&mut out);
        }
        match read {
            Ok(_) if out.len() > limit => Err(DecodeError::InflatedTooLarge { limit }),
            Ok(_) => Ok(fitted(out)),
            Err(e) => Err(DecodeError::undecodable(
                ReasonCode::BadEncoding,
                format!("the {what} body cannot be decompressed: {e}"),
            )),
        }
    }
    match encoding {
        Encoding::Identity => {
            if body.len() > limit {
                return Err(DecodeError::InflatedTooLarge { limit });
            }
            Ok(Cow::Borrowed(body))
        }
        Encoding::Gzip => {
            let declared = gzip_declared_size(body);
            read_capped(
                flate2::read::MultiGzDecoder::new(body),
                limit,
                declared,
                "gzip",
            )
            .map(Cow::Owned)
        }
        Encoding::Deflate => {
            match read_capped(flate2::read::ZlibDecoder::new(body), limit, None, "deflate") {
                Ok(out) => Ok(Cow::Owned(out)),
                Err(DecodeError::Undecodable { .. }) => read_capped(
                    flate2::read::DeflateDecoder::new(body),
                    limit,
                    None,
                    "deflate",
                )
                .map(Cow::Owned),
                Err(e) => Err(e),
            }
        }
        Encoding::Zstd => inflate_zstd(body, limit).map(Cow::Owned),
    }
}

/// The largest inflated size a gzip body's own declaration is trusted to size its output
/// (1 MiB): far above the agent's bodies, small beside what a lying one could make the output
/// hold twice.
pub const SIZE_HINT_MAX: usize = 1 << 20;

/// The output's first allocation: one byte past a declared size of at most [`SIZE_HINT_MAX`]
/// (that byte tells a body that writes more than it declared), else `limit + 1`.
fn first_capacity(limit: usize, declared: Option<usize>) -> usize {
    let whole = limit.saturating_add(1);
    declared
        .filter(|&n| n <= SIZE_HINT_MAX)
        .map_or(whole, |n| n.saturating_add(1).min(whole))
}

/// What a gzip body declares as its inflated size: the ISIZE field of its last member (the
/// size modulo 2^32), or `None` when the body is too short to have one. Only a hint: the
/// reader never trusts it to stop.
fn gzip_declared_size(body: &[u8]) -> Option<usize> {
    const HEADER_AND_TRAILER: usize = 18;
    if body.len() < HEADER_AND_TRAILER || body[..2] != [0x1f, 0x8b] {
        return None;
    }
    let isize: [u8; 4] = body[body.len() - 4..].try_into().ok()?;
    usize::try_from(u32::from_le_bytes(isize)).ok()
}

/// Gives back the address space an inflated body did not use (jemalloc shrinks a large block
/// in place), so that the bodies the feed tap and the spool hold are their size.
fn fitted(mut out: Vec<u8>) -> Vec<u8> {
    out.shrink_to_fit();
    out
}

/// zstd in one pass into a buffer of `limit` bytes (every frame of the body, skippable frames
/// skipped). The decoder writes into the buffer and reads its matches back from it, so the only
/// memory is the output and the decoder's context (~100 KiB).
fn inflate_zstd(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    use zstd::zstd_safe;
    let mut out = Vec::with_capacity(limit);
    let mut context = zstd_safe::DCtx::create();
    match context.decompress(&mut out, body) {
        Ok(_) => Ok(fitted(out)),
        // zstd's stable text for ZSTD_error_dstSize_tooSmall (the code itself is only
        // reachable through an unsafe call): the body inflates past the buffer.
        Err(code) if zstd_safe::get_error_name(code) == "Destination buffer is too small" => {
            Err(DecodeError::InflatedTooLarge { limit })
        }
        Err(code) => Err(DecodeError::undecodable(
            ReasonCode::BadEncoding,
            format!(
                "the zstd body cannot be decompressed: {}",
                zstd_safe::get_error_name(code)
            ),
        )),
    }
}

/// The events of a body: each one's index in the body and its exact text (or, for an NDJSON
/// line that is not UTF-8, its bytes).
#[derive(Debug)]
pub struct SplitBody<'a> {
    /// The events in order.
    pub events: Vec<RawEvent<'a>>,
}

/// One event's bytes.
#[derive(Debug, Clone, Copy)]
pub enum RawEvent<'a> {
    /// Valid UTF-8 text, one JSON value (not yet checked to be an event).
    Text(&'a str),
    /// Bytes that are not UTF-8 (NDJSON only; JSON bodies are checked whole).
    Invalid(&'a [u8]),
}

impl RawEvent<'_> {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            RawEvent::Text(t) => t.as_bytes(),
            RawEvent::Invalid(b) => b,
        }
    }
}

/// Whether a `Content-Type` announces NDJSON.
pub fn is_ndjson(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.contains("ndjson") || ct.contains("jsonlines") || ct.contains("json-seq")
    })
}

/// Splits an inflated body into events.
pub fn split(body: &[u8], ndjson: bool, max_events: usize) -> Result<SplitBody<'_>, DecodeError> {
    let events = if ndjson {
        split_ndjson(body)
    } else {
        let strict = std::str::from_utf8(body)
            .map_err(|e| {
                DecodeError::undecodable(
                    ReasonCode::InvalidUtf8,
                    format!(
                        "the body is not valid UTF-8 (first bad byte at offset {})",
                        e.valid_up_to()
                    ),
                )
            })
            .and_then(split_json);
        match strict {
            Ok(events) => events,
            // One bad byte or token must not cost its batch-mates: find the events by
            // structure and let validation reject only the broken one.
            Err(err) => match super::salvage::salvage_elements(body) {
                Some(ranges) if !ranges.is_empty() => ranges
                    .into_iter()
                    .map(|r| {
                        let bytes = &body[r];
                        match std::str::from_utf8(bytes) {
                            Ok(text) => RawEvent::Text(text),
                            Err(_) => RawEvent::Invalid(bytes),
                        }
                    })
                    .collect(),
                _ => return Err(err),
            },
        }
    };
    if events.len() > max_events {
        return Err(DecodeError::TooManyEvents {
            count: events.len(),
            limit: max_events,
        });
    }
    Ok(SplitBody { events })
}

fn split_ndjson(body: &[u8]) -> Vec<RawEvent<'_>> {
    body.split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
        .map(|line| match std::str::from_utf8(line) {
            Ok(text) => RawEvent::Text(text.trim()),
            Err(_) => RawEvent::Invalid(line),
        })
        .collect()
}

enum TopLevel<'a> {
    List(Vec<&'a RawValue>),
    Wrapped(Vec<&'a RawValue>),
    Single,
    Other(&'static str),
}

fn split_json(text: &str) -> Result<Vec<RawEvent<'_>>, DecodeError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = de
        .deserialize_any(TopVisitor)
        .and_then(|top| de.end().map(|()| top));
    match parsed {
        Ok(TopLevel::List(items)) | Ok(TopLevel::Wrapped(items)) => {
            Ok(items.into_iter().map(|raw| RawEvent::Text(raw.get())).collect())
        }
        Ok(TopLevel::Single) => Ok(vec![RawEvent::Text(text.trim())]),
        Ok(TopLevel::Other(kind)) => Err(DecodeError::undecodable(
            ReasonCode::BadShape,
            format!(
                "the body is a JSON {kind}; expected {{\"events\":[…]}}, an array of events, one event object, or NDJSON"
            ),
        )),
        Err(e) => Err(DecodeError::undecodable(
            baddybugs_common::json::parse_error_code(&e),
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// The elements of an array, each as its exact text.
fn raw_elements<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<&'de RawValue>, A::Error> {
    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
    while let Some(item) = seq.next_element::<&'de RawValue>()? {
        items.push(item);
    }
    Ok(items)
}

/// The value of a top-level `events` member: its elements when it is an array, else `None`
/// (the body is then taken as one event, as before). A scalar member is parsed, where the old
/// raw read only scanned it: a number beyond `f64` there (`{"events":1e400,…}`) now fails
/// the body (`invalid_json`, quarantined) instead of that one event (`invalid_json` at
/// `/events`). Both refuse it; no agent sends a number there.
struct EventsMember<'de>(Option<Vec<&'de RawValue>>);

impl<'de> de::Deserialize<'de> for EventsMember<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EventsMemberVisitor)
    }
}

struct EventsMemberVisitor;

impl<'de> Visitor<'de> for EventsMemberVisitor {
    type Value = EventsMember<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        raw_elements(seq).map(|items| EventsMember(Some(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        de::IgnoredAny.visit_map(map).map(|_| EventsMember(None))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(EventsMember(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(EventsMember(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(EventsMember(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(EventsMember(None))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(EventsMember(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(EventsMember(None))
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = TopLevel<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        raw_elements(seq).map(TopLevel::List)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut events = None;
        let mut has_type = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                // The array's elements are delimited in this same pass: reading the member
                // as one raw value and splitting that again scanned every event twice.
                "events" => {
                    if let EventsMember(Some(items)) = map.next_value()? {
                        events = Some(items);
                    }
                }
                "type" => {
                    has_type = true;
                    map.next_value::<de::IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        match events {
            Some(items) if !has_type => Ok(TopLevel::Wrapped(items)),
            _ => Ok(TopLevel::Single),
        }
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("null"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn texts(split: &SplitBody<'_>) -> Vec<String> {
        split
            .events
            .iter()
            .map(|e| String::from_utf8_lossy(e.bytes()).into_owned())
            .collect()
    }

    #[test]
    fn shapes() {
        let wrapped = br#"{"events":[{"type":"a","payload":{"x":"\/"}}, {"type":"b"}]}"#;
        let s = split(wrapped, false, 10).unwrap();
        assert_eq!(
            texts(&s),
            vec![r#"{"type":"a","payload":{"x":"\/"}}"#, r#"{"type":"b"}"#]
        );
        assert_eq!(split(b"[{},{}]", false, 10).unwrap().events.len(), 2);
        assert_eq!(
            split(br#" {"type":"x","payload":{}} "#, false, 10)
                .unwrap()
                .events
                .len(),
            1
        );
        let nd = b"{\"type\":\"a\"}\n\n{broken\r\n\xff\xfe\n";
        let s = split(nd, true, 10).unwrap();
        assert_eq!(s.events.len(), 3);
        assert!(matches!(s.events[2], RawEvent::Invalid(_)));
        assert!(split(b"", false, 10).unwrap().events.is_empty());
    }

    /// The wrapper's `events` member is split in the same pass as the body; every other
    /// shape of the member keeps its old meaning (the body is then one event).
    #[test]
    fn the_events_member_is_split_in_one_pass_with_its_old_meaning() {
        let events = |body: &str| texts(&split(body.as_bytes(), false, 10).unwrap());
        // Other members before and after, of every kind, and whitespace inside the array.
        assert_eq!(
            events(
                r#"{"meta":{"a":[1,{"b":null}]},"events":[ {"type":"a"} ,
                   [1,2], "x" ],"n":-1.5e3,"t":true,"z":null}"#
            ),
            vec![r#"{"type":"a"}"#, "[1,2]", r#""x""#]
        );
        assert_eq!(events(r#"{"events":[]}"#), Vec::<String>::new());
        // `events` that is not an array: the body is one event.
        for member in [
            r#""s""#,
            "1",
            "-2",
            "1.5",
            "true",
            "null",
            r#"{"events":[{}]}"#,
        ] {
            let body = format!(r#"{{"events":{member},"payload":{{}}}}"#);
            assert_eq!(events(&body), vec![body.clone()], "{member}");
        }
        // With a `type`, before or after the array, it is one event too.
        for body in [
            r#"{"type":"x","events":[{}]}"#,
            r#"{"events":[{}],"type":"x"}"#,
        ] {
            assert_eq!(events(body), vec![body.to_owned()]);
        }
        // Of two `events` members, the last array wins; a later non-array does not undo it.
        assert_eq!(
            events(r#"{"events":[{"n":1}],"events":[{"n":2}],"events":"x"}"#),
            vec![r#"{"n":2}"#]
        );
        // A syntax error inside one event is that event's (salvaged, issue 15); one that
        // leaves the body undelimitable is the body's.
        assert_eq!(
            events(r#"{"events":[{"a":1},{"b":}]}"#),
            vec![r#"{"a":1}"#, r#"{"b":}"#]
        );
        assert!(split(br#"{"events":[{"a":1}],"x":[}"#, false, 10).is_err());
    }

    #[test]
    fn undecodable_bodies() {
        let code = |body: &[u8]| match split(body, false, 10).unwrap_err() {
            DecodeError::Undecodable { code, .. } => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(b"12"), ReasonCode::BadShape);
        assert_eq!(code(b"{\"events\":[{}"), ReasonCode::InvalidJson);
        assert_eq!(code(b"[\"\xff\"] x"), ReasonCode::InvalidUtf8);
        // Issue 15: a bad byte inside one event of a delimitable body costs only that event.
        let salvaged = split(b"[{\"a\":1},{\"b\":\"\xff\"},{\"c\":NaN}]", false, 10).unwrap();
        assert_eq!(salvaged.events.len(), 3);
        assert!(matches!(salvaged.events[0], RawEvent::Text(r#"{"a":1}"#)));
        assert!(matches!(salvaged.events[1], RawEvent::Invalid(_)));
        assert!(matches!(salvaged.events[2], RawEvent::Text(r#"{"c":NaN}"#)));
        // Deep nesting is one event's problem (too_deep at that event), not the body's.
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(split(deep.as_bytes(), false, 10).unwrap().events.len(), 1);
        assert!(matches!(
            split(b"[1,2,3]", false, 2),
            Err(DecodeError::TooManyEvents { count: 3, limit: 2 })
        ));
    }

    #[test]
    fn inflate_limits_and_errors() {
        let body = gzip(b"hello world");
        assert_eq!(
            &*inflate(Encoding::Gzip, &body, 100).unwrap(),
            b"hello world"
        );
        let bomb = gzip(&vec![b'a'; 10 << 20]);
        assert!(bomb.len() < 20_000);
        assert_eq!(
            inflate(Encoding::Gzip, &bomb, 1 << 20).unwrap_err(),
            DecodeError::InflatedTooLarge { limit: 1 << 20 }
        );
        let truncated = &body[..body.len() - 6];
        assert!(matches!(
            inflate(Encoding::Gzip, truncated, 100),
            Err(DecodeError::Undecodable {
                code: ReasonCode::BadEncoding,
                ..
            })
        ));
        let z = zstd::encode_all(&b"zz"[..], 3).unwrap();
        assert_eq!(&*inflate(Encoding::Zstd, &z, 10).unwrap(), b"zz");
        assert_eq!(&*inflate(Encoding::Zstd, &z, 2).unwrap(), b"zz");
        assert_eq!(
            inflate(Encoding::Zstd, &z, 1).unwrap_err(),
            DecodeError::InflatedTooLarge { limit: 1 }
        );
        assert!(matches!(
            inflate(Encoding::Zstd, &z[..z.len() - 2], 10),
            Err(DecodeError::Undecodable {
                code: ReasonCode::BadEncoding,
                ..
            })
        ));
        assert!(parse_encoding(Some("br")).is_err());
        assert_eq!(parse_encoding(Some("GZIP")).unwrap(), Encoding::Gzip);
    }

    /// A gzip body's output starts at the size it declares (ISIZE) when that is small, and a
    /// body that declares less than it holds (a lie, several members) is still inflated whole,
    /// or refused past the limit: the declaration sizes the buffer, it never stops the reader.
    #[test]
    fn a_gzip_body_is_inflated_into_its_declared_size_and_a_lie_changes_nothing() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let body = gzip(&text);
        assert_eq!(gzip_declared_size(&body), Some(text.len()));
        assert_eq!(first_capacity(64 << 20, Some(text.len())), text.len() + 1);
        assert_eq!(first_capacity(64 << 20, None), (64 << 20) + 1);
        assert_eq!(
            first_capacity(64 << 20, Some(SIZE_HINT_MAX + 1)),
            (64 << 20) + 1,
            "a large declaration is not trusted"
        );
        assert_eq!(
            first_capacity(100, Some(1_000)),
            101,
            "never past the limit"
        );
        assert_eq!(gzip_declared_size(b"{\"events\":[]}"), None);
        assert_eq!(
            &*inflate(Encoding::Gzip, &body, 64 << 20).unwrap(),
            &text[..]
        );

        let with_isize = |body: &[u8], isize: u32| {
            let mut b = body.to_vec();
            let n = b.len();
            b[n - 4..].copy_from_slice(&isize.to_le_bytes());
            b
        };
        // A trailer that declares less: flate2 checks ISIZE once the member ends, so the body is
        // refused as undecodable, never cut short at its declaration.
        for lie in [0, 10, text.len() as u32 - 1] {
            assert!(matches!(
                inflate(Encoding::Gzip, &with_isize(&body, lie), 64 << 20),
                Err(DecodeError::Undecodable {
                    code: ReasonCode::BadEncoding,
                    ..
                })
            ));
        }
        // Two members: the last one declares only its own size; both are inflated.
        let mut two = gzip(&text);
        two.extend(gzip(b"tail"));
        assert_eq!(gzip_declared_size(&two), Some(4));
        let both = inflate(Encoding::Gzip, &two, 64 << 20).unwrap();
        assert_eq!(both.len(), text.len() + 4);
        assert_eq!(&both[text.len()..], b"tail");
        // A bomb behind a small last member: refused at the limit.
        let mut bomb = gzip(&vec![b'a'; 10 << 20]);
        bomb.extend(gzip(b"x"));
        assert_eq!(
            inflate(Encoding::Gzip, &bomb, 1 << 20).unwrap_err(),
            DecodeError::InflatedTooLarge { limit: 1 << 20 }
        );
    }

    /// Issue 14: bombs cost the limit, whatever the encoding; a zstd frame that asks for a
    /// window far larger than the limit (`zstd --long=27`: 128 MiB) is decoded within it, and
    /// two concatenated frames are one body.
    #[test]
    fn bombs_and_long_windows_stop_at_the_limit() {
        let zeros = vec![0u8; 8 << 20];
        let mut long = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        long.long_distance_matching(true).unwrap();
        long.window_log(27).unwrap();
        std::io::Write::write_all(&mut long, &zeros).unwrap();
        let long = long.finish().unwrap();
        assert_eq!(
            inflate(Encoding::Zstd, &long, 1 << 20).unwrap_err(),
            DecodeError::InflatedTooLarge { limit: 1 << 20 }
        );
        assert_eq!(
            inflate(Encoding::Zstd, &long, 8 << 20).unwrap().len(),
            8 << 20
        );
        let mut two = zstd::encode_all(&b"ab"[..], 3).unwrap();
        two.extend(zstd::encode_all(&b"cd"[..], 3).unwrap());
        assert_eq!(&*inflate(Encoding::Zstd, &two, 10).unwrap(), b"abcd");
        let deflate = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut e, &zeros).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(
            inflate(Encoding::Deflate, &deflate, 1 << 20).unwrap_err(),
            DecodeError::InflatedTooLarge { limit: 1 << 20 }
        );
    }

    /// Issue 14: an undecodable body for a key that requires signatures cannot be verified;
    /// unsigned, it is told a signature is required, not that it mismatches.
    #[test]
    fn an_undecodable_body_for_a_signing_key_is_refused_with_the_right_code() {
        use crate::config::ApiKeyConfig;
        use crate::ingest::keys::{KeyRing, SignatureHeaders};
        let ring = KeyRing::new(
            &[ApiKeyConfig::parse_short("k:s").unwrap()],
            &IngestConfig::default(),
        );
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", "Bearer k".parse().unwrap());
        let key = ring.authenticate(&headers).unwrap();
        let mut facts = RequestFacts {
            received_ms: 0,
            remote_addr: None,
            agent_version: None,
            encoding: Encoding::Gzip,
            ndjson: false,
            signature: SignatureHeaders::default(),
        };
        let broken = Bytes::from_static(b"not gzip at all");
        let mut timer = StageTimer::new(std::time::Instant::now());
        let limits = IngestConfig::default();
        let code = |facts: &RequestFacts, timer: &mut StageTimer| match decode_body(
            &key,
            facts,
            broken.clone(),
            &limits,
            timer,
        ) {
            Err(ApiError::Unauthorized(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(&facts, &mut timer), AuthError::SignatureRequired);
        facts.signature.signature = Some("00".repeat(32));
        facts.signature.timestamp = Some("0".into());
        assert_eq!(code(&facts, &mut timer), AuthError::SignatureMismatch);
    }
}
