//! Types about timing: request lifecycles and their spans, timelines, profiling, regressions,
//! memory, and the agent's context, session replay and deployment markers.

use crate::catalog::columns::{ColumnRules, ErrorRule, Src};
use crate::catalog::ty::{opt, req, Ty};
use crate::catalog::{sub, NameKind, Origin, SubtypeRule, TypeSpec};

use super::placeholder;

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

pub(super) const TIMELINE: TypeSpec = placeholder("timeline");
pub(super) const TRACE_SPAN: TypeSpec = TRACE_SPAN_SPEC;
pub(super) const PROFILING_SEGMENT: TypeSpec = placeholder("profiling_segment");
pub(super) const LLM_REQUEST: TypeSpec = placeholder("llm_request");
pub(super) const REGRESSION: TypeSpec = placeholder("regression");
pub(super) const MEMORY: TypeSpec = placeholder("memory");
pub(super) const LIFECYCLE: TypeSpec = LIFECYCLE_SPEC;
pub(super) const CONTEXT: TypeSpec = placeholder("context");
pub(super) const SESSION_REPLAY: TypeSpec = placeholder("session_replay");
pub(super) const DEPLOYMENT: TypeSpec = placeholder("deployment");
