//! The queries a client can ask the store, typed, and the one parser of their parameters.
//!
//! Both transports carry the same parameters under the same names: the REST API as a query
//! string (`GET /v1/events?type=cache&limit=10`), the feed's `query` message as a JSON object
//! (`"params": {"type": "cache", "limit": 10}`, whose values may be strings, numbers or
//! booleans). Both end as a [`Params`] map of text values read by the `from_params` functions
//! here, so a parameter means the same and fails the same way whichever way it came.
//! The store answers a [`Query`]; docs/PROTOCOL.md lists the kinds and their parameters.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::timestamp::{format_millis, parse_timestamp_str};

/// Query parameters by name, their values as text (a query string, or the feed's `params`
/// through [`params_from_json`]).
pub type Params = HashMap<String, String>;

/// A parameter that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter's name.
    pub param: &'static str,
    /// What is wrong with it, as the end of a sentence ("must be true or false").
    pub problem: &'static str,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query parameter `{}` {}", self.param, self.problem)
    }
}

impl std::error::Error for ParamError {}

fn text(params: &Params, name: &str) -> Option<String> {
    params.get(name).filter(|v| !v.is_empty()).cloned()
}

fn time(params: &Params, name: &'static str) -> Result<Option<i64>, ParamError> {
    text(params, name)
        .map(|v| {
            parse_timestamp_str(&v).ok_or(ParamError {
                param: name,
                problem: "is not a date-time (RFC 3339, epoch seconds or milliseconds)",
            })
        })
        .transpose()
}

fn flag(params: &Params, name: &'static str) -> Result<Option<bool>, ParamError> {
    text(params, name)
        .map(|v| match v.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(ParamError {
                param: name,
                problem: "must be true or false",
            }),
        })
        .transpose()
}

/// A non-negative integer of any size: each route clamps it to its range, so a limit past
/// `u32::MAX` (or past `u64::MAX`, as a client asking for "everything" may send) is the
/// route's maximum, not an error.
fn limit(params: &Params) -> Result<Option<u32>, ParamError> {
    text(params, "limit")
        .map(|v| {
            let digits = v.strip_prefix('+').unwrap_or(&v);
            match digits.parse::<u32>() {
                Ok(n) => Ok(n),
                Err(_) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    Ok(u32::MAX)
                }
                Err(_) => Err(ParamError {
                    param: "limit",
                    problem: "must be a non-negative integer",
                }),
            }
        })
        .transpose()
}

/// Filters of `GET /v1/events`, of exception groups and of the feed's `events` query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// `organization`, exact: the tenant's organization.
    pub organization: Option<String>,
    /// `application`, exact: the tenant's application.
    pub application: Option<String>,
    /// `type`.
    pub event_type: Option<String>,
    /// `name`, exact.
    pub name: Option<String>,
    /// `trace_id`, exact.
    pub trace_id: Option<String>,
    /// `user_id`, exact.
    pub user_id: Option<String>,
    /// `environment`, exact.
    pub environment: Option<String>,
    /// `since`: event time ≥ this (epoch ms).
    pub since_ms: Option<i64>,
    /// `until`: event time < this (epoch ms).
    pub until_ms: Option<i64>,
    /// `is_error`.
    pub is_error: Option<bool>,
    /// `limit`: page size (default 100, at most 1000).
    pub limit: Option<u32>,
    /// `cursor`: opaque, from the previous page.
    pub cursor: Option<String>,
}

impl EventFilter {
    /// The effective page size.
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }

    /// Reads the parameters (`organization`, `application`, `type`, `name`, `trace_id`,
    /// `user_id`, `environment`, `since`, `until`, `is_error`, `limit`, `cursor`; an empty value
    /// is no filter).
    pub fn from_params(params: &Params) -> Result<EventFilter, ParamError> {
        Ok(EventFilter {
            organization: text(params, "organization"),
            application: text(params, "application"),
            event_type: text(params, "type"),
            name: text(params, "name"),
            trace_id: text(params, "trace_id"),
            user_id: text(params, "user_id"),
            environment: text(params, "environment"),
            since_ms: time(params, "since")?,
            until_ms: time(params, "until")?,
            is_error: flag(params, "is_error")?,
            limit: limit(params)?,
            cursor: text(params, "cursor"),
        })
    }

    fn to_params(&self) -> Map<String, Value> {
        let mut out = Map::new();
        put_text(&mut out, "organization", &self.organization);
        put_text(&mut out, "application", &self.application);
        put_text(&mut out, "type", &self.event_type);
        put_text(&mut out, "name", &self.name);
        put_text(&mut out, "trace_id", &self.trace_id);
        put_text(&mut out, "user_id", &self.user_id);
        put_text(&mut out, "environment", &self.environment);
        put_time(&mut out, "since", self.since_ms);
        put_time(&mut out, "until", self.until_ms);
        if let Some(e) = self.is_error {
            out.insert("is_error".into(), Value::Bool(e));
        }
        put_limit(&mut out, self.limit);
        put_text(&mut out, "cursor", &self.cursor);
        out
    }
}

/// Which stored events an id names: `GET /v1/events/{id}` and the feed's `get`.
///
/// An event is identified by (organization, application, id): two tenants may store the same
/// id. The caller scopes the id with `organization` and/or `application`; an id that names
/// several events within that scope is ambiguous, and the answer lists every match
/// (docs/PROTOCOL.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventLookup {
    /// The event's id.
    pub event_id: String,
    /// `organization`, exact (any when absent).
    pub organization: Option<String>,
    /// `application`, exact (any when absent).
    pub application: Option<String>,
}

impl EventLookup {
    /// Most events one lookup returns (an id shared by more tenants is answered with these).
    pub const MAX_MATCHES: u32 = 100;

    /// `event_id` in every tenant.
    pub fn id(event_id: impl Into<String>) -> EventLookup {
        EventLookup {
            event_id: event_id.into(),
            ..EventLookup::default()
        }
    }

    /// `event_id` scoped by the parameters `organization` and `application` (an empty value is
    /// no scope; other parameters are ignored).
    pub fn from_params(event_id: String, params: &Params) -> EventLookup {
        EventLookup {
            event_id,
            organization: text(params, "organization"),
            application: text(params, "application"),
        }
    }
}

/// Filters of `GET /v1/malformed` and of the feed's `malformed` query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MalformedFilter {
    /// `type`: the event's type.
    pub event_type: Option<String>,
    /// `reason`: a reason code the row must have.
    pub reason: Option<String>,
    /// `application`.
    pub application: Option<String>,
    /// `since`: received ≥ (epoch ms).
    pub since_ms: Option<i64>,
    /// `until`: received < (epoch ms).
    pub until_ms: Option<i64>,
    /// `limit`: page size (default 100, at most 1000).
    pub limit: Option<u32>,
}

impl MalformedFilter {
    /// Reads the parameters (`type`, `reason`, `application`, `since`, `until`, `limit`).
    pub fn from_params(params: &Params) -> Result<MalformedFilter, ParamError> {
        Ok(MalformedFilter {
            event_type: text(params, "type"),
            reason: text(params, "reason"),
            application: text(params, "application"),
            since_ms: time(params, "since")?,
            until_ms: time(params, "until")?,
            limit: limit(params)?,
        })
    }

    fn to_params(&self) -> Map<String, Value> {
        let mut out = Map::new();
        put_text(&mut out, "type", &self.event_type);
        put_text(&mut out, "reason", &self.reason);
        put_text(&mut out, "application", &self.application);
        put_time(&mut out, "since", self.since_ms);
        put_time(&mut out, "until", self.until_ms);
        put_limit(&mut out, self.limit);
        out
    }
}

/// Filters of `GET /v1/drift` (all optional, all must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftFilter {
    /// `type`, exact.
    pub event_type: Option<String>,
    /// `kind`: `unknown_field`, `coerced`, `unknown_type` or `unknown_envelope_field`.
    pub kind: Option<crate::drift::DriftKind>,
    /// `application`: the key was seen from this application.
    pub application: Option<String>,
    /// `agent_version`: the key was seen with this `X-Agent-Version`.
    pub agent_version: Option<String>,
    /// `since`: last seen ≥ this (epoch ms); given as a date-time or as a duration back from
    /// now (`24h`, `30m`, `7d`).
    pub since_ms: Option<i64>,
}

impl DriftFilter {
    /// Reads the parameters (`type`, `kind`, `application`, `agent_version`, `since`);
    /// `now_ms` anchors a relative `since`.
    pub fn from_params(params: &Params, now_ms: i64) -> Result<DriftFilter, ParamError> {
        let kind = text(params, "kind")
            .map(|k| {
                crate::drift::DriftKind::parse(&k).ok_or(ParamError {
                    param: "kind",
                    problem:
                        "must be unknown_field, coerced, unknown_type or unknown_envelope_field",
                })
            })
            .transpose()?;
        let since_ms = text(params, "since")
            .map(|v| {
                parse_duration_ms(&v)
                    .map(|d| now_ms.saturating_sub(d))
                    .or_else(|| parse_timestamp_str(&v))
                    .ok_or(ParamError {
                        param: "since",
                        problem: "is neither a duration (24h, 30m, 7d) nor a date-time (RFC 3339, \
                                  epoch seconds or milliseconds)",
                    })
            })
            .transpose()?;
        Ok(DriftFilter {
            event_type: text(params, "type"),
            kind,
            application: text(params, "application"),
            agent_version: text(params, "agent_version"),
            since_ms,
        })
    }
}

impl DriftFilter {
    fn to_params(&self) -> Map<String, Value> {
        let mut out = Map::new();
        put_text(&mut out, "type", &self.event_type);
        if let Some(kind) = self.kind {
            out.insert("kind".into(), Value::from(kind.as_str()));
        }
        put_text(&mut out, "application", &self.application);
        put_text(&mut out, "agent_version", &self.agent_version);
        put_time(&mut out, "since", self.since_ms);
        out
    }
}

/// A duration as `<digits><unit>` with unit `ms`, `s`, `m`, `h` or `d`, in milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

/// The order of pipeline traces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TraceOrder {
    /// Newest first.
    #[default]
    Recent,
    /// Longest total time first.
    Slowest,
}

impl TraceOrder {
    /// The parameter value (`recent`, `slowest`).
    pub fn as_str(self) -> &'static str {
        match self {
            TraceOrder::Recent => "recent",
            TraceOrder::Slowest => "slowest",
        }
    }
}

/// Filters of `GET /v1/pipeline` and of the feed's `traces` query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFilter {
    /// `order`: `recent` (default) or `slowest`.
    pub order: TraceOrder,
    /// `failed`: only batches with a rejection or a quarantined body.
    pub failed_only: bool,
    /// `limit`: page size (default 50, at most 500).
    pub limit: Option<u32>,
}

impl TraceFilter {
    /// The effective page size.
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(50).clamp(1, 500)
    }

    /// Reads the parameters (`order`, `failed`, `limit`).
    pub fn from_params(params: &Params) -> Result<TraceFilter, ParamError> {
        let order = match text(params, "order").as_deref() {
            None | Some("recent") => TraceOrder::Recent,
            Some("slowest") => TraceOrder::Slowest,
            Some(_) => {
                return Err(ParamError {
                    param: "order",
                    problem: "must be recent or slowest",
                })
            }
        };
        Ok(TraceFilter {
            order,
            failed_only: flag(params, "failed")?.unwrap_or(false),
            limit: limit(params)?,
        })
    }

    fn to_params(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("order".into(), Value::from(self.order.as_str()));
        if self.failed_only {
            out.insert("failed".into(), Value::Bool(true));
        }
        put_limit(&mut out, self.limit);
        out
    }
}

/// What a client asks the store (the feed's `query` message, by `kind`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `events`: a page of stored events.
    Events(EventFilter),
    /// `malformed`: quarantined events.
    Malformed(MalformedFilter),
    /// `exception_groups`: exception groups (the event filter's time range and limit).
    ExceptionGroups(EventFilter),
    /// `trace`: the spans and events of one trace.
    Trace {
        /// `trace_id` (required).
        trace_id: String,
    },
    /// `traces`: the server's own pipeline traces.
    Traces(TraceFilter),
    /// `drift`: the schema drift keys (as `GET /v1/drift`).
    Drift(DriftFilter),
}

/// Why a query cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// A `kind` that is none of `events`, `malformed`, `exception_groups`, `trace`, `traces`,
    /// `drift`.
    UnknownKind(String),
    /// `trace` without its `trace_id`.
    MissingTraceId,
    /// A parameter that cannot be read.
    Param(ParamError),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::UnknownKind(kind) => write!(
                f,
                "unknown query kind {kind:?}: use events, malformed, exception_groups, trace, traces or drift"
            ),
            QueryError::MissingTraceId => f.write_str("`trace` needs params.trace_id"),
            QueryError::Param(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for QueryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueryError::Param(err) => Some(err),
            _ => None,
        }
    }
}

impl From<ParamError> for QueryError {
    fn from(err: ParamError) -> Self {
        QueryError::Param(err)
    }
}

impl Query {
    /// Its `kind` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Query::Events(_) => "events",
            Query::Malformed(_) => "malformed",
            Query::ExceptionGroups(_) => "exception_groups",
            Query::Trace { .. } => "trace",
            Query::Traces(_) => "traces",
            Query::Drift(_) => "drift",
        }
    }

    /// Reads a query from its `kind` and parameters.
    pub fn from_params(kind: &str, params: &Params) -> Result<Query, QueryError> {
        Ok(match kind {
            "events" => Query::Events(EventFilter::from_params(params)?),
            "malformed" => Query::Malformed(MalformedFilter::from_params(params)?),
            "exception_groups" => Query::ExceptionGroups(EventFilter::from_params(params)?),
            "trace" => Query::Trace {
                trace_id: text(params, "trace_id").ok_or(QueryError::MissingTraceId)?,
            },
            "traces" => Query::Traces(TraceFilter::from_params(params)?),
            "drift" => Query::Drift(DriftFilter::from_params(
                params,
                chrono::Utc::now().timestamp_millis(),
            )?),
            other => return Err(QueryError::UnknownKind(other.to_owned())),
        })
    }

    /// Its parameters as the feed's `params` object (the names of the REST API; times as
    /// RFC 3339, which [`EventFilter::from_params`] reads back to the same millisecond).
    pub fn to_params(&self) -> Value {
        Value::Object(match self {
            Query::Events(f) | Query::ExceptionGroups(f) => f.to_params(),
            Query::Malformed(f) => f.to_params(),
            Query::Trace { trace_id } => {
                let mut out = Map::new();
                out.insert("trace_id".into(), Value::from(trace_id.as_str()));
                out
            }
            Query::Traces(f) => f.to_params(),
            Query::Drift(f) => f.to_params(),
        })
    }
}

/// The feed's `params` object as [`Params`]: strings as they are, numbers and booleans as
/// their JSON text, `null` as absent. Anything but an object (or `null`) has no parameters.
pub fn params_from_json(params: &Value) -> Params {
    params
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn put_text(out: &mut Map<String, Value>, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        out.insert(name.into(), Value::from(v.as_str()));
    }
}

fn put_time(out: &mut Map<String, Value>, name: &str, value: Option<i64>) {
    if let Some(ms) = value {
        out.insert(name.into(), Value::from(format_millis(ms)));
    }
}

fn put_limit(out: &mut Map<String, Value>, value: Option<u32>) {
    if let Some(n) = value {
        out.insert("limit".into(), Value::from(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn drift_filters_read_durations_dates_and_kinds() {
        let f = DriftFilter::from_params(
            &params(&[("since", "24h"), ("kind", "coerced"), ("type", "request")]),
            100_000_000,
        )
        .unwrap();
        assert_eq!(f.since_ms, Some(100_000_000 - 86_400_000));
        assert_eq!(f.kind, Some(crate::drift::DriftKind::Coerced));
        assert_eq!(f.event_type.as_deref(), Some("request"));
        let f = DriftFilter::from_params(&params(&[("since", "1749567234")]), 0).unwrap();
        assert_eq!(f.since_ms, Some(1_749_567_234_000));
        let err = DriftFilter::from_params(&params(&[("kind", "odd")]), 0).unwrap_err();
        assert_eq!(err.param, "kind");
        let err = DriftFilter::from_params(&params(&[("since", "soon")]), 0).unwrap_err();
        assert_eq!(err.param, "since");
        assert_eq!(parse_duration_ms("90s"), Some(90_000));
        assert_eq!(parse_duration_ms("h"), None);
        assert_eq!(parse_duration_ms("5y"), None);
    }

    #[test]
    fn every_query_reads_back_from_its_params() {
        let queries = [
            Query::Events(EventFilter {
                organization: Some("acme".into()),
                application: Some("shop".into()),
                event_type: Some("cache".into()),
                name: Some("users:7".into()),
                trace_id: Some("t".into()),
                user_id: Some("u".into()),
                environment: Some("production".into()),
                since_ms: Some(1_749_567_234_123),
                until_ms: Some(1_749_567_300_000),
                is_error: Some(false),
                limit: Some(10),
                cursor: Some("abc".into()),
            }),
            Query::Events(EventFilter::default()),
            Query::Malformed(MalformedFilter {
                event_type: Some("log".into()),
                reason: Some("missing_field".into()),
                application: Some("shop".into()),
                since_ms: Some(5_000),
                until_ms: None,
                limit: Some(1),
            }),
            Query::ExceptionGroups(EventFilter {
                limit: Some(3),
                ..EventFilter::default()
            }),
            Query::Trace {
                trace_id: "trace-1".into(),
            },
            Query::Traces(TraceFilter {
                order: TraceOrder::Slowest,
                failed_only: true,
                limit: Some(20),
            }),
            Query::Traces(TraceFilter::default()),
            Query::Drift(DriftFilter {
                event_type: Some("log".into()),
                kind: Some(crate::drift::DriftKind::UnknownField),
                application: Some("shop".into()),
                agent_version: Some("1.0.0".into()),
                since_ms: Some(1_749_567_234_123),
            }),
            Query::Drift(DriftFilter::default()),
        ];
        for query in queries {
            let back = Query::from_params(query.kind(), &params_from_json(&query.to_params()));
            assert_eq!(back, Ok(query));
        }
    }

    #[test]
    fn one_parser_reads_a_query_string_and_json_values_alike() {
        let from_http = params(&[("failed", "1"), ("order", "slowest"), ("limit", "5")]);
        let from_feed =
            params_from_json(&serde_json::json!({"failed": true, "order": "slowest", "limit": 5}));
        let want = TraceFilter {
            order: TraceOrder::Slowest,
            failed_only: true,
            limit: Some(5),
        };
        assert_eq!(TraceFilter::from_params(&from_http), Ok(want.clone()));
        assert_eq!(TraceFilter::from_params(&from_feed), Ok(want));
        let empty = params(&[("order", ""), ("type", "")]);
        assert_eq!(TraceFilter::from_params(&empty), Ok(TraceFilter::default()));
        assert_eq!(EventFilter::from_params(&empty), Ok(EventFilter::default()));
    }

    #[test]
    fn a_lookup_is_scoped_by_organization_and_application() {
        let scoped = EventLookup::from_params(
            "evt-1".into(),
            &params(&[
                ("organization", "acme"),
                ("application", ""),
                ("limit", "3"),
            ]),
        );
        assert_eq!(
            scoped,
            EventLookup {
                event_id: "evt-1".into(),
                organization: Some("acme".into()),
                application: None,
            }
        );
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let err = |pairs: &[(&str, &str)]| EventFilter::from_params(&params(pairs)).unwrap_err();
        assert_eq!(err(&[("limit", "-1")]).param, "limit");
        assert_eq!(err(&[("limit", "1.5")]).param, "limit");
        // Past u32 and u64 alike: the route's maximum.
        for huge in [
            "4294967296",
            "18446744073709551615",
            "99999999999999999999999",
        ] {
            let filter = EventFilter::from_params(&params(&[("limit", huge)])).unwrap();
            assert_eq!(filter.page_size(), 1000, "{huge}");
        }
        assert_eq!(err(&[("is_error", "yes")]).param, "is_error");
        assert_eq!(
            err(&[("since", "yesterday")]).to_string(),
            "query parameter `since` is not a date-time (RFC 3339, epoch seconds or milliseconds)"
        );
        let order = TraceFilter::from_params(&params(&[("order", "oldest")])).unwrap_err();
        assert_eq!(
            order.to_string(),
            "query parameter `order` must be recent or slowest"
        );
        assert_eq!(
            Query::from_params("nope", &Params::new())
                .unwrap_err()
                .to_string(),
            "unknown query kind \"nope\": use events, malformed, exception_groups, trace, traces or drift"
        );
        assert_eq!(
            Query::from_params("trace", &Params::new()),
            Err(QueryError::MissingTraceId)
        );
    }
}
