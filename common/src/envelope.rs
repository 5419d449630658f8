//! The envelope of one event: its type, name, ids, time and the raw payload slice.
//!
//! In: the exact bytes of one event (a slice of the request body). Out: an [`Envelope`] that
//! borrows from those bytes; the payload is kept as the untouched [`RawValue`] slice that was
//! sent, because that slice is what gets stored (`\/` and `\u00e9` included).
//!
//! Both envelopes are accepted: the brief's `{type, name, data, timestamp (ISO-8601),
//! trace_id, environment, deployment_hash?}` and the real agent's `{id, trace_id, session_id,
//! release, git_sha, env, type, name, payload, context, timestamp (epoch seconds), datetime,
//! host, memory, git_*, deployment_*}`. Aliases: `payload`↔`data`, `env`↔`environment`.
//!
//! What rejects an event (each a stable code, see docs/PROTOCOL.md):
//! - `invalid_json` / `invalid_utf8` / `too_deep`: the bytes cannot be read as JSON;
//! - `not_object`: the event is not a JSON object;
//! - `missing_field` at `/type`, `wrong_type` at `/type` (not a string) or `not_allowed` (empty);
//! - `wrong_type` at `/name` when present and not a string or null;
//! - `missing_field` at `/payload` when neither `payload` nor `data` is present, `wrong_type`
//!   when it is neither an object nor PHP's empty array `[]`;
//! - `too_deep` or `invalid_json` (a number out of range, `1e400`) at `/<field>` for any other
//!   top-level field: every envelope field meets the payload's limits (nesting under 128
//!   levels, finite numbers, and the event's `ingest.max_event_bytes` for strings), so that
//!   no stored field can break a reader.
//!
//! What never rejects: a missing or unreadable `timestamp` (falls back to `datetime`, then to
//! the time of receipt, with a `bad_timestamp` warning when a value was there but unreadable);
//! a timestamp further ahead of the receipt than [`crate::timestamp::max_future_ms`] (the
//! receipt time is used, with a `future_timestamp` warning; the original stays in `extra`);
//! an old timestamp; any other top-level field within the limits above, which is kept
//! verbatim in [`Envelope::extra`].

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::json::{check_value, kind_name, parse_error_code, CowStr, Node, PointerBuf};
use crate::reason::{describe_found, Problem, ReasonCode};
use crate::timestamp::{format_millis, max_future_ms, read_timestamp, TimestampSource};

/// Which key carried the payload: the pointers of payload problems start with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKey {
    /// The brief's `data`.
    Data,
    /// The real agent's `payload`.
    Payload,
}

impl PayloadKey {
    /// The key as sent (`data` or `payload`), also the pointer prefix without the slash.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadKey::Data => "data",
            PayloadKey::Payload => "payload",
        }
    }
}

/// One event's envelope, borrowing from the event's bytes.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// The whole event text as received.
    pub raw: &'a str,
    /// `type`.
    pub event_type: Cow<'a, str>,
    /// `name` (empty when absent or null).
    pub name: Cow<'a, str>,
    /// Which key held the payload.
    pub payload_key: PayloadKey,
    /// The payload exactly as sent.
    pub payload: &'a RawValue,
    /// `id`, the agent's idempotency key (an ordered UUID).
    pub id: Option<Cow<'a, str>>,
    /// `trace_id` (any string: UUIDs, 32-hex W3C ids, header values).
    pub trace_id: Option<Cow<'a, str>>,
    /// `session_id`.
    pub session_id: Option<Cow<'a, str>>,
    /// `environment` or `env`.
    pub environment: Option<Cow<'a, str>>,
    /// `release`.
    pub release: Option<Cow<'a, str>>,
    /// `host`.
    pub host: Option<Cow<'a, str>>,
    /// `deployment_hash`.
    pub deployment_hash: Option<Cow<'a, str>>,
    /// The event time in epoch milliseconds (UTC).
    pub timestamp_ms: i64,
    /// Where [`Envelope::timestamp_ms`] came from.
    pub timestamp_source: TimestampSource,
    /// Every other top-level field, verbatim and in wire order: `timestamp`, `datetime`,
    /// `context`, `memory`, `git_sha`, `deployment_*`, unknown keys, and any column field whose
    /// value was not a string (so nothing is lost).
    pub extra: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// Problems that did not reject the event (an unreadable timestamp).
    pub warnings: Vec<Problem>,
}

/// The top-level fields that have a column of their own when they hold a string.
const COLUMN_FIELDS: [&str; 8] = [
    "id",
    "trace_id",
    "session_id",
    "environment",
    "env",
    "release",
    "host",
    "deployment_hash",
];

/// Every top-level key the real agent or the brief sends besides `type`, `name`, `payload` and
/// `data` (AGENT-WIRE §2): any other one is `unknown_envelope_field` schema drift.
pub const KNOWN_FIELDS: [&str; 27] = [
    "id",
    "trace_id",
    "session_id",
    "release",
    "git_sha",
    "env",
    "environment",
    "context",
    "timestamp",
    "datetime",
    "host",
    "memory",
    "git_commit",
    "git_commit_short",
    "deployment_tag",
    "deployed_at",
    "deployed_by",
    "deployment_hash",
    "deployment_hash_short",
    "deployment_source",
    "deployment_timestamp",
    "deployment_at",
    "deployment_phase",
    "deployment_released_by",
    "deployment_notes",
    "payload",
    "data",
];

impl<'a> Envelope<'a> {
    /// Pushes an `unknown_envelope_field` divergence for each top-level key that is not in
    /// [`KNOWN_FIELDS`] (only [`Envelope::extra`] can hold one).
    pub fn drift(&self, out: &mut Vec<crate::drift::Divergence>) {
        for (key, value) in &self.extra {
            if KNOWN_FIELDS.contains(&key.as_ref()) {
                continue;
            }
            let mut path = PointerBuf::new("");
            path.push_key(key);
            let sample = match Node::parse(value.get()) {
                Ok(node) => crate::drift::sample_of(&node),
                Err(_) => crate::drift::cut(value.get(), crate::drift::SAMPLE_MAX_BYTES),
            };
            out.push(crate::drift::Divergence {
                path: path.as_str().to_owned(),
                kind: crate::drift::DriftKind::UnknownEnvelopeField,
                sample,
            });
        }
    }

    /// Parses one event's envelope. `received_ms` is the fallback time.
    pub fn parse(raw: &'a str, received_ms: i64) -> Result<Envelope<'a>, Problem> {
        let fields = split_fields(raw)?;
        Self::from_fields(raw, fields, received_ms)
    }

    fn from_fields(
        raw: &'a str,
        fields: Vec<(Cow<'a, str>, &'a RawValue)>,
        received_ms: i64,
    ) -> Result<Envelope<'a>, Problem> {
        let mut event_type = None;
        let mut name = None;
        let mut data = None;
        let mut payload = None;
        let mut timestamp = None;
        let mut datetime = None;
        let mut extra = Vec::with_capacity(fields.len());
        let mut strings: [Option<Cow<'a, str>>; 8] = Default::default();
        let mut env_raw = None;

        for (key, value) in fields {
            match key.as_ref() {
                "type" => event_type = Some(value),
                "name" => name = Some(value),
                "data" => data = Some(value),
                "payload" => payload = Some(value),
                k => {
                    if k == "timestamp" {
                        timestamp = Some(value);
                    } else if k == "datetime" {
                        datetime = Some(value);
                    }
                    if let Some(slot) = COLUMN_FIELDS.iter().position(|c| *c == k) {
                        match raw_string(value) {
                            RawString::Str(s) => {
                                if k == "env" {
                                    env_raw = Some((key.clone(), value));
                                }
                                strings[slot] = Some(s);
                                continue;
                            }
                            RawString::Null => continue,
                            RawString::Other => {}
                        }
                    }
                    extra.push((key, value));
                }
            }
        }

        let event_type = match event_type {
            None => {
                return Err(Problem::new(
                    ReasonCode::MissingField,
                    "/type",
                    "a non-empty string",
                    "absent",
                ))
            }
            Some(value) => match raw_string(value) {
                RawString::Str(s) if !s.trim().is_empty() => s,
                RawString::Str(_) => {
                    return Err(Problem::new(
                        ReasonCode::NotAllowed,
                        "/type",
                        "a non-empty string",
                        "empty string",
                    ))
                }
                _ => {
                    return Err(Problem::new(
                        ReasonCode::WrongType,
                        "/type",
                        "a non-empty string",
                        found_of(value),
                    ))
                }
            },
        };

        let name = match name {
            None => Cow::Borrowed(""),
            Some(value) => match raw_string(value) {
                RawString::Null => Cow::Borrowed(""),
                RawString::Str(s) => s,
                RawString::Other => {
                    return Err(Problem::new(
                        ReasonCode::WrongType,
                        "/name",
                        "string",
                        found_of(value),
                    ))
                }
            },
        };

        // `data` wins when both are present; the other one is kept with the extra fields.
        let (payload_key, payload) = match (data, payload) {
            (Some(d), other) => {
                if let Some(p) = other {
                    extra.push((Cow::Borrowed("payload"), p));
                }
                (PayloadKey::Data, d)
            }
            (None, Some(p)) => (PayloadKey::Payload, p),
            (None, None) => {
                return Err(Problem::new(
                    ReasonCode::MissingField,
                    "/payload",
                    "an object (`payload` or `data`)",
                    "absent",
                ))
            }
        };
        let payload_text = payload.get().trim_start();
        let payload_ok = payload_text.starts_with('{')
            || (payload_text.starts_with('[') && payload_text[1..].trim_start().starts_with(']'));
        if !payload_ok {
            return Err(Problem::new(
                ReasonCode::WrongType,
                format!("/{}", payload_key.as_str()),
                "object (or [] for an empty PHP array)",
                found_of(payload),
            ));
        }

        // The fields kept verbatim meet the payload's limits (the column fields that were
        // strings, `type` and `name` cannot nest or hold a number).
        for (key, value) in &extra {
            if let Err(err) = check_value(value.get()) {
                let mut pointer = PointerBuf::new("");
                pointer.push_key(key);
                return Err(Problem::new(
                    parse_error_code(&err),
                    pointer.as_str(),
                    "JSON within the payload's limits (nesting under 128 levels, finite numbers)",
                    err.to_string(),
                ));
            }
        }

        let mut warnings = Vec::new();
        let (timestamp_ms, timestamp_source) =
            resolve_time(timestamp, datetime, received_ms, &mut warnings);

        let [id, trace_id, session_id, environment, env, release, host, deployment_hash] = strings;
        // Both `environment` and `env`: the first has the column, the other is kept verbatim.
        if environment.is_some() && env.is_some() {
            if let Some(field) = env_raw {
                extra.push(field);
            }
        }
        Ok(Envelope {
            raw,
            event_type,
            name,
            payload_key,
            payload,
            id,
            trace_id,
            session_id,
            environment: environment.or(env),
            release,
            host,
            deployment_hash,
            timestamp_ms,
            timestamp_source,
            extra,
            warnings,
        })
    }

    /// The payload text exactly as sent.
    pub fn payload_text(&self) -> &'a str {
        self.payload.get()
    }

    /// The pointer prefix of payload fields (`/payload` or `/data`).
    pub fn payload_pointer(&self) -> &'static str {
        match self.payload_key {
            PayloadKey::Data => "/data",
            PayloadKey::Payload => "/payload",
        }
    }

    /// The extra top-level fields as one JSON object, values byte-for-byte as sent.
    pub fn extra_json(&self) -> String {
        let mut out = String::with_capacity(
            2 + self
                .extra
                .iter()
                .map(|(k, v)| k.len() + v.get().len() + 4)
                .sum::<usize>(),
        );
        out.push('{');
        for (i, (key, value)) in self.extra.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Keys are re-encoded (they were unescaped on parse); values are the sent bytes.
            out.push_str(&serde_json::to_string(key.as_ref()).unwrap_or_else(|_| "\"\"".into()));
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        out
    }
}

fn resolve_time(
    timestamp: Option<&RawValue>,
    datetime: Option<&RawValue>,
    received_ms: i64,
    warnings: &mut Vec<Problem>,
) -> (i64, TimestampSource) {
    let mut try_field = |raw: Option<&RawValue>, pointer: &str| -> Option<i64> {
        let raw = raw?;
        let node = Node::parse(raw.get()).ok()?;
        if node.is_null() {
            return None;
        }
        let parsed = read_timestamp(&node);
        if parsed.is_none() {
            warnings.push(Problem::new(
                ReasonCode::BadTimestamp,
                pointer,
                "epoch seconds, epoch milliseconds or an ISO-8601 date-time",
                found_of(raw),
            ));
        }
        parsed
    };
    let found = try_field(timestamp, "/timestamp")
        .map(|ms| (ms, TimestampSource::Timestamp, "/timestamp"))
        .or_else(|| {
            try_field(datetime, "/datetime").map(|ms| (ms, TimestampSource::Datetime, "/datetime"))
        });
    let Some((ms, source, pointer)) = found else {
        return (received_ms, TimestampSource::Received);
    };
    let skew = max_future_ms();
    if ms > received_ms.saturating_add(skew) {
        // A clock years ahead would sit on top of every newest-first view forever.
        warnings.push(Problem::new(
            ReasonCode::FutureTimestamp,
            pointer,
            format!(
                "at most {} s after the receipt ({})",
                skew / 1000,
                format_millis(received_ms)
            ),
            format_millis(ms),
        ));
        return (received_ms, TimestampSource::Received);
    }
    (ms, source)
}

enum RawString<'a> {
    Str(Cow<'a, str>),
    Null,
    Other,
}

fn raw_string(raw: &RawValue) -> RawString<'_> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<CowStr<'_>>(text) {
            Ok(CowStr(s)) => RawString::Str(s),
            Err(_) => RawString::Other,
        },
        Some(b'n') => RawString::Null,
        _ => RawString::Other,
    }
}

/// Describes a raw value for a message (`integer 12`, `object`).
fn found_of(raw: &RawValue) -> String {
    match Node::parse(raw.get()) {
        Ok(Node::Str(s)) => describe_found("string", Some(&s)),
        Ok(node @ (Node::Int(_) | Node::UInt(_) | Node::Float(_) | Node::Bool(_))) => {
            describe_found(kind_name(&node), Some(raw.get()))
        }
        Ok(node) => kind_name(&node).to_owned(),
        Err(_) => "unreadable JSON".to_owned(),
    }
}

/// Splits an event object into its top-level fields without parsing their values.
fn split_fields(raw: &str) -> Result<Vec<(Cow<'_, str>, &RawValue)>, Problem> {
    struct FieldsVisitor;
    impl<'de> Visitor<'de> for FieldsVisitor {
        type Value = Option<Vec<(Cow<'de, str>, &'de RawValue)>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut fields = Vec::with_capacity(16);
            while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
                let value = map.next_value::<&'de RawValue>()?;
                fields.push((key, value));
            }
            Ok(Some(fields))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    let mut de = serde_json::Deserializer::from_str(raw);
    let parsed = de
        .deserialize_any(FieldsVisitor)
        .and_then(|fields| de.end().map(|()| fields));
    match parsed {
        Ok(Some(fields)) => Ok(fields),
        Ok(None) => Err(Problem::new(
            ReasonCode::NotObject,
            "",
            "a JSON object",
            Node::parse(raw)
                .map(|n| kind_name(&n).to_owned())
                .unwrap_or_else(|_| "JSON".into()),
        )),
        Err(err) => {
            let code = parse_error_code(&err);
            Err(Problem::new(code, "", "a JSON object", err.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: &str = r#"{"id":"9f1c0a4e-1111-4c2b-9a77-3b0e1c2d4e5f","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","session_id":null,"release":null,"git_sha":null,"env":"production","type":"cache","name":"users:42","payload":{"action":"hit","store":"redis","path":"app\/Models\/User.php","city":"Montr\u00e9al"},"context":[],"timestamp":1749567234.202922,"datetime":"2025-06-10T17:53:54+02:00","host":"web-1","memory":4194304}"#;

    /// A receipt time a second after the sample events' timestamps.
    const RECEIVED: i64 = 1_749_567_235_000;

    #[test]
    fn agent_envelope() {
        let env = Envelope::parse(AGENT, RECEIVED).unwrap();
        assert_eq!(env.event_type, "cache");
        assert_eq!(env.name, "users:42");
        assert_eq!(env.payload_key, PayloadKey::Payload);
        assert_eq!(env.environment.as_deref(), Some("production"));
        assert_eq!(env.timestamp_ms, 1_749_567_234_202);
        assert_eq!(env.timestamp_source, TimestampSource::Timestamp);
        assert_eq!(
            env.payload_text(),
            r#"{"action":"hit","store":"redis","path":"app\/Models\/User.php","city":"Montr\u00e9al"}"#
        );
        let extra: serde_json::Value = serde_json::from_str(&env.extra_json()).unwrap();
        assert_eq!(extra["git_sha"], serde_json::Value::Null);
        assert_eq!(extra["memory"], 4194304);
        assert_eq!(extra["timestamp"].as_f64(), Some(1749567234.202922));
        assert!(
            extra.get("session_id").is_none(),
            "null column fields need no extra copy"
        );
        assert!(env
            .extra_json()
            .contains(r#""datetime":"2025-06-10T17:53:54+02:00""#));
    }

    #[test]
    fn brief_envelope() {
        let raw = r#"{"type":"log","name":"error","data":{"level":"error"},"timestamp":"2025-06-10T14:53:54Z","trace_id":"t","environment":"staging"}"#;
        let env = Envelope::parse(raw, 0).unwrap();
        assert_eq!(env.payload_key, PayloadKey::Data);
        assert_eq!(env.payload_pointer(), "/data");
        assert_eq!(env.environment.as_deref(), Some("staging"));
    }

    #[test]
    fn timestamp_fallbacks() {
        let raw = r#"{"type":"x","payload":[],"timestamp":"soon","datetime":"2025-06-10T14:53:54+00:00"}"#;
        let env = Envelope::parse(raw, RECEIVED).unwrap();
        assert_eq!(env.timestamp_source, TimestampSource::Datetime);
        assert_eq!(env.warnings.len(), 1);
        assert_eq!(env.warnings[0].code, ReasonCode::BadTimestamp);
        assert_eq!(env.warnings[0].path, "/timestamp");
        let raw = r#"{"type":"x","payload":{}}"#;
        let env = Envelope::parse(raw, 7).unwrap();
        assert_eq!(
            (env.timestamp_ms, env.timestamp_source),
            (7, TimestampSource::Received)
        );
        assert!(env.warnings.is_empty());
    }

    #[test]
    fn future_timestamps_are_not_trusted_for_ordering() {
        // Year 5138 in epoch seconds, and an ISO date a week ahead.
        for (raw, pointer) in [
            (
                r#"{"type":"x","payload":{},"timestamp":99999999999}"#,
                "/timestamp",
            ),
            (
                r#"{"type":"x","payload":{},"datetime":"2025-06-17T14:53:55Z"}"#,
                "/datetime",
            ),
        ] {
            let env = Envelope::parse(raw, RECEIVED).unwrap();
            assert_eq!(
                (env.timestamp_ms, env.timestamp_source),
                (RECEIVED, TimestampSource::Received),
                "{raw}"
            );
            assert_eq!(env.warnings.len(), 1, "{raw}");
            assert_eq!(env.warnings[0].code, ReasonCode::FutureTimestamp);
            assert_eq!(env.warnings[0].path, pointer);
            // The original is kept verbatim.
            assert!(env.extra_json().contains(&pointer[1..]), "{raw}");
        }
        // Within the skew: trusted.
        let raw = r#"{"type":"x","payload":{},"timestamp":1749653634}"#;
        let env = Envelope::parse(raw, RECEIVED).unwrap();
        assert_eq!(env.timestamp_source, TimestampSource::Timestamp);
        assert!(env.warnings.is_empty());
    }

    #[test]
    fn envelope_fields_get_the_payload_limits() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let cases = [
            (
                r#"{"type":"log","memory":1e400,"payload":{}}"#.to_owned(),
                ReasonCode::InvalidJson,
                "/memory",
            ),
            (
                format!(r#"{{"type":"log","payload":{{}},"context":{{"a":{deep}}}}}"#),
                ReasonCode::TooDeep,
                "/context",
            ),
            (
                r#"{"type":"log","payload":{},"a/b":[-1e999]}"#.to_owned(),
                ReasonCode::InvalidJson,
                "/a~1b",
            ),
            (
                r#"{"type":"log","payload":{},"timestamp":1e400}"#.to_owned(),
                ReasonCode::InvalidJson,
                "/timestamp",
            ),
            (
                format!(r#"{{"type":"log","payload":{{}},"id":{deep}}}"#),
                ReasonCode::TooDeep,
                "/id",
            ),
            (
                format!(r#"{{"type":"log","data":{{}},"payload":{deep}}}"#),
                ReasonCode::TooDeep,
                "/payload",
            ),
        ];
        for (raw, code, path) in cases {
            let problem = Envelope::parse(&raw, RECEIVED).unwrap_err();
            assert_eq!((problem.code, problem.path.as_str()), (code, path), "{raw}");
        }
        let ok = format!(
            r#"{{"type":"log","payload":{{}},"context":{}{}, "memory":1.5e300}}"#,
            "[".repeat(127),
            "]".repeat(127)
        );
        assert!(Envelope::parse(&ok, RECEIVED).is_ok());
    }

    #[test]
    fn rejections() {
        let cases = [
            ("[1]", ReasonCode::NotObject, ""),
            ("12", ReasonCode::NotObject, ""),
            ("{\"type\":", ReasonCode::InvalidJson, ""),
            (r#"{"payload":{}}"#, ReasonCode::MissingField, "/type"),
            (r#"{"type":5,"payload":{}}"#, ReasonCode::WrongType, "/type"),
            (
                r#"{"type":"","payload":{}}"#,
                ReasonCode::NotAllowed,
                "/type",
            ),
            (
                r#"{"type":"x","name":[],"payload":{}}"#,
                ReasonCode::WrongType,
                "/name",
            ),
            (r#"{"type":"x"}"#, ReasonCode::MissingField, "/payload"),
            (
                r#"{"type":"x","payload":"s"}"#,
                ReasonCode::WrongType,
                "/payload",
            ),
            (r#"{"type":"x","data":[1]}"#, ReasonCode::WrongType, "/data"),
        ];
        for (raw, code, path) in cases {
            let problem = Envelope::parse(raw, 0).unwrap_err();
            assert_eq!((problem.code, problem.path.as_str()), (code, path), "{raw}");
        }
    }

    #[test]
    fn env_and_environment_both_kept() {
        let raw = r#"{"type":"x","payload":{},"environment":"staging","env":"production"}"#;
        let env = Envelope::parse(raw, 0).unwrap();
        assert_eq!(env.environment.as_deref(), Some("staging"));
        assert_eq!(env.extra_json(), r#"{"env":"production"}"#);
    }

    #[test]
    fn non_string_column_fields_are_kept_in_extra() {
        let raw = r#"{"type":"x","payload":{},"id":42,"host":"h"}"#;
        let env = Envelope::parse(raw, 0).unwrap();
        assert_eq!(env.id, None);
        assert_eq!(env.host.as_deref(), Some("h"));
        assert_eq!(env.extra_json(), r#"{"id":42}"#);
    }
}
