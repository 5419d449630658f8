//! Types about timing: request lifecycles and their spans, timelines, profiling, regressions,
//! memory, and the agent's context, session replay and deployment markers.

use crate::catalog::columns::{ColumnRules, ErrorRule, Src};
use crate::catalog::ty::{opt, req, Ty};
use crate::catalog::{agent_sub, brief_sub, sub, NameKind, Origin, SubtypeRule, TypeSpec};

/// Span types of a lifecycle. Not an enum: apps and agent versions add their own (a
/// `CACHE_FORGET` span is seen in the wild), and a false rejection is worse than a new label.
const SPAN_TYPES_DOC: &str =
    "QUERY, CACHE_HIT, CACHE_MISS, CACHE_WRITE, OUTGOING_REQUEST, JOB_DISPATCHED, … (any label)";

/// `lifecycle`: one HTTP request as a waterfall (LifecycleCollector, at termination).
pub(super) const LIFECYCLE_SPEC: TypeSpec = TypeSpec {
    name: "lifecycle",
    summary: "One HTTP request as a waterfall: phases, spans (queries, cache, HTTP, jobs), counts",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("http_request")],
    subtype: SubtypeRule::None,
    fields: &[
        opt("trace_id", Ty::Str),
        req("total_duration_ms", Ty::Num),
        req(
            "request",
            Ty::Obj(&[
                opt("method", Ty::Str),
                opt("url", Ty::Str).doc("agent: the path"),
                opt("full_url", Ty::Str),
                opt("status_code", Ty::Int),
            ]),
        ),
        opt(
            "phases",
            Ty::List(&Ty::Obj(&[
                req("name", Ty::Str).doc("BOOTSTRAP, MIDDLEWARE, CONTROLLER"),
                opt("label", Ty::Str).doc("agent: CONTROLLER only"),
                opt("duration_ms", Ty::Num),
                opt("start_offset_ms", Ty::Num),
                opt("percentage", Ty::Num),
            ])),
        )
        .doc("404s without a route hold only BOOTSTRAP"),
        opt(
            "spans",
            Ty::List(&Ty::Obj(&[
                opt("span_id", Ty::Int),
                opt("trace_id", Ty::Str),
                req("type", Ty::Str).doc(SPAN_TYPES_DOC),
                opt("label", Ty::Str),
                opt("duration_ms", Ty::Num),
                opt("start_offset_ms", Ty::Num),
                opt("depth", Ty::Int),
                opt("sql", Ty::Str),
                opt("bindings", Ty::Any),
                opt("connection", Ty::Str),
                opt("key", Ty::Str),
                opt("method", Ty::Str),
                opt("url", Ty::Str),
                opt("status_code", Ty::Int),
                opt("job_class", Ty::Str),
            ])),
        ),
        opt("counts", Ty::Map(&Ty::Int)),
        opt(
            "route",
            Ty::Obj(&[
                opt("name", Ty::Str),
                opt("uri", Ty::Str),
                opt("methods", Ty::List(&Ty::Str)),
                opt("parameters", Ty::Any),
            ]),
        )
        .doc("name and uri null for unmatched routes"),
        opt(
            "controller",
            Ty::Obj(&[
                opt("class", Ty::Str),
                opt("action", Ty::Str),
                opt("full", Ty::Str),
            ]),
        ),
        opt(
            "middleware",
            Ty::Obj(&[
                opt("global", Ty::List(&Ty::Any)),
                opt("route", Ty::List(&Ty::Any)),
                opt("total_count", Ty::Int),
            ]),
        ),
        opt(
            "breakdown",
            Ty::Map(&Ty::Obj(&[
                opt("duration_ms", Ty::Num),
                opt("percentage", Ty::Num),
            ])),
        ),
        opt("memory", Ty::Map(&Ty::Num)).doc("peak_bytes, peak_mb, current_bytes, current_mb"),
        opt("environment", Ty::Map(&Ty::Any)).doc("php_version, laravel_version, sapi"),
        opt("timestamp", Ty::Str).doc("agent: ISO-8601"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/total_duration_ms")],
        status_code: &[Src::Path("/request/status_code")],
        request_id: &[Src::TraceId],
        is_error: &[ErrorRule::AtLeast("/request/status_code", 500.0)],
        ..ColumnRules::NONE
    },
};

/// `trace_span`: one phase of a request for the waterfall (TimelineCollector).
pub(super) const TRACE_SPAN_SPEC: TypeSpec = TypeSpec {
    name: "trace_span",
    summary: "One phase of a request (bootstrap, middleware, controller, sending) for waterfalls",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[
        sub("bootstrap"),
        sub("middleware"),
        sub("controller"),
        sub("sending"),
    ],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("type", Ty::Str).doc("agent"),
        opt("name", Ty::Str)
            .alias(&["span_name"])
            .doc("agent: \"Application Bootstrap\" …"),
        opt("start_time", Ty::Num).doc("agent: unix seconds with fraction"),
        opt("end_time", Ty::Num).doc("agent: unix seconds with fraction"),
        req("duration_ms", Ty::Num).doc("bootstrap is always 0 from the agent"),
        opt("trace_id", Ty::Str).doc("brief"),
        opt("start_offset_ms", Ty::Num).doc("brief"),
        opt("percentage", Ty::Num).doc("brief"),
        opt("additional_data", Ty::Any).doc("brief"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        request_id: &[Src::TraceId],
        ..ColumnRules::NONE
    },
};

pub(super) const TRACE_SPAN: TypeSpec = TRACE_SPAN_SPEC;
pub(super) const LIFECYCLE: TypeSpec = LIFECYCLE_SPEC;

/// `timeline`: every event of one request on a time line (TimelineCollector).
pub(super) const TIMELINE: TypeSpec = TypeSpec {
    name: "timeline",
    summary: "The events of one request in time order",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("trace_timeline")],
    subtype: SubtypeRule::None,
    fields: &[
        opt("trace_id", Ty::Str).doc("captured at boot: may differ from the envelope's"),
        opt("event_count", Ty::Int),
        opt("total_duration_ms", Ty::Num),
        opt(
            "events",
            Ty::List(&Ty::Obj(&[
                opt("type", Ty::Str),
                opt("name", Ty::Str),
                opt("timestamp", Ty::Num),
                opt("relative_time_ms", Ty::Num),
                opt("data", Ty::Any),
            ])),
        ),
        opt("detail_level", Ty::Str),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/total_duration_ms")],
        request_id: &[Src::TraceId],
        ..ColumnRules::NONE
    },
};

/// `profiling_segment`: a timed code segment (never emitted by today's agent, §4.1).
pub(super) const PROFILING_SEGMENT: TypeSpec = TypeSpec {
    name: "profiling_segment",
    summary: "A timed code segment (startTimer/stopTimer; never emitted by today's agent)",
    origin: Origin::Brief,
    name_kind: NameKind::Dynamic("the timer name"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        opt("segment_name", Ty::Str),
        opt("duration_ms", Ty::Num),
        opt("memory_start", Ty::Num),
        opt("memory_end", Ty::Num),
        opt("memory_peak", Ty::Num),
        opt("additional_data", Ty::Any),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        ..ColumnRules::NONE
    },
};

/// `llm_request`: a call to an LLM provider (never emitted by today's agent, §4.1).
pub(super) const LLM_REQUEST: TypeSpec = TypeSpec {
    name: "llm_request",
    summary: "A call to an LLM provider (never emitted by today's agent)",
    origin: Origin::Brief,
    name_kind: NameKind::Dynamic("\"provider:model\""),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        opt("provider", Ty::Str),
        opt("model", Ty::Str),
        opt("prompt", Ty::Str),
        opt("response", Ty::Str),
        opt(
            "usage",
            Ty::Obj(&[
                opt("prompt_tokens", Ty::Int),
                opt("completion_tokens", Ty::Int),
                opt("total_tokens", Ty::Int),
            ]),
        ),
        opt("cost", Ty::Num).doc("USD"),
        opt("duration_ms", Ty::Num),
        opt("status", Ty::Str).doc("success | error"),
        opt("error", Ty::Str),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        is_error: &[ErrorRule::ValueIn("/status", &["error"])],
        ..ColumnRules::NONE
    },
};

/// `regression`: a baseline snapshot every 100th request (TimelineCollector).
pub(super) const REGRESSION: TypeSpec = TypeSpec {
    name: "regression",
    summary: "A performance baseline of one request (every 100th)",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("baseline_snapshot")],
    subtype: SubtypeRule::None,
    fields: &[
        opt("duration_ms", Ty::Num),
        opt("query_count", Ty::Int),
        opt("memory_peak", Ty::Num),
        opt("error_flag", Ty::Int).doc("0 or 1"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        is_error: &[ErrorRule::AtLeast("/error_flag", 1.0)],
        ..ColumnRules::NONE
    },
};

/// `memory`: a memory snapshot (never emitted by today's agent, §4.1).
pub(super) const MEMORY: TypeSpec = TypeSpec {
    name: "memory",
    summary: "A memory snapshot (never emitted by today's agent)",
    origin: Origin::Brief,
    name_kind: NameKind::Fixed,
    names: &[brief_sub("snapshot")],
    subtype: SubtypeRule::None,
    fields: &[
        opt("current_bytes", Ty::Num),
        opt("peak_bytes", Ty::Num),
        opt("limit_bytes", Ty::Num),
        opt("percentage_used", Ty::Num),
    ],
    columns: ColumnRules::NONE,
};

/// `context`: the shared context was set (`BaddyBugs::context()`, the scheduler, tests).
pub(super) const CONTEXT: TypeSpec = TypeSpec {
    name: "context",
    summary: "The agent's shared context was updated",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[agent_sub("update")],
    subtype: SubtypeRule::None,
    fields: &[],
    columns: ColumnRules::NONE,
};

/// `session_replay`: frontend session replay switched on or off for a session.
pub(super) const SESSION_REPLAY: TypeSpec = TypeSpec {
    name: "session_replay",
    summary: "Frontend session replay enabled or disabled",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[agent_sub("enabled"), agent_sub("disabled")],
    subtype: SubtypeRule::Name,
    fields: &[],
    columns: ColumnRules::NONE,
};

/// `deployment`: the first web request after a new deployment hash.
pub(super) const DEPLOYMENT: TypeSpec = TypeSpec {
    name: "deployment",
    summary: "A new deployment detected (first request after APP_DEPLOYMENT_HASH changed)",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[agent_sub("deployment_started")],
    subtype: SubtypeRule::None,
    fields: &[
        opt("hash", Ty::Str),
        opt("previous_hash", Ty::Str),
        opt("source", Ty::Str),
        opt("tag", Ty::Str),
        opt("timestamp", Ty::Scalar),
    ],
    columns: ColumnRules::NONE,
};
