//! Types about timing: request lifecycles and their spans, timelines, profiling, regressions,
//! memory, and the agent's context, session replay and deployment markers.

use crate::catalog::columns::{ColumnRules, ErrorRule, Src};
use crate::catalog::ty::{opt, req, Ty};
use crate::catalog::{
    agent_sub, brief_sub, sub, NameKind, Origin, OtherKeys, SubtypeRule, TypeSpec,
};

/// The phases of a lifecycle (LifecycleCollector::buildPhases).
const PHASE_NAMES: &[&str] = &["BOOTSTRAP", "MIDDLEWARE", "CONTROLLER"];

/// The span types of a lifecycle: the six LifecycleCollector produces, plus `CACHE_FORGET`,
/// which the load generator's traffic model sends for `Cache::forget` (agent b8af826 has no
/// listener for it; accepted so a later agent that adds one is not rejected).
const SPAN_TYPES: &[&str] = &[
    "QUERY",
    "CACHE_HIT",
    "CACHE_MISS",
    "CACHE_WRITE",
    "CACHE_FORGET",
    "OUTGOING_REQUEST",
    "JOB_DISPATCHED",
];

/// `{duration_ms, percentage}` of one phase in a lifecycle's `breakdown`.
const SHARE: Ty = Ty::Obj(&[req("duration_ms", Ty::Num), req("percentage", Ty::Num)]);

/// `lifecycle`: one HTTP request as a waterfall (LifecycleCollector, at termination). On a 404
/// without a matched route, `route.name`/`uri` and `controller.class`/`action` are null,
/// `controller.full` is `"@"`, and `phases`/`breakdown` hold only the bootstrap entry.
pub(super) const LIFECYCLE: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "lifecycle",
    summary: "One HTTP request as a waterfall: phases, spans (queries, cache, HTTP, jobs), counts",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("http_request")],
    subtype: SubtypeRule::None,
    fields: &[
        req("trace_id", Ty::Str),
        req("total_duration_ms", Ty::Num),
        req(
            "request",
            Ty::Obj(&[
                req("method", Ty::Str),
                req("url", Ty::Str).doc("agent: the path, without a leading slash"),
                req("full_url", Ty::Str),
                req("status_code", Ty::Int),
            ]),
        ),
        req(
            "phases",
            Ty::List(&Ty::Obj(&[
                req("name", Ty::Enum(PHASE_NAMES)),
                opt("label", Ty::Str).doc("CONTROLLER only: \"Class@action\""),
                req("duration_ms", Ty::Num),
                req("start_offset_ms", Ty::Num),
                req("percentage", Ty::Num),
            ])),
        )
        .doc("only BOOTSTRAP when no route matched; MIDDLEWARE is about 0 ms"),
        req(
            "spans",
            Ty::List(&Ty::Obj(&[
                req("span_id", Ty::Int),
                req("trace_id", Ty::Str),
                req("type", Ty::EnumCi(SPAN_TYPES)),
                req("label", Ty::Str).doc("SQL (80 chars), cache key, \"METHOD host/path\", job"),
                req("duration_ms", Ty::Num).doc("cache spans are estimates; jobs 0"),
                req("start_offset_ms", Ty::Num),
                req("depth", Ty::Int),
                opt("sql", Ty::Str).doc("QUERY"),
                opt("bindings", Ty::Any).doc("QUERY"),
                opt("connection", Ty::Str).doc("QUERY, JOB_DISPATCHED"),
                opt("key", Ty::Str).doc("CACHE_*"),
                opt("method", Ty::Str).doc("OUTGOING_REQUEST"),
                opt("url", Ty::Str).doc("OUTGOING_REQUEST"),
                opt("status_code", Ty::Int).doc("OUTGOING_REQUEST"),
                opt("job_class", Ty::Str).doc("JOB_DISPATCHED"),
            ])),
        )
        .doc("in start order; every SQL statement of the request"),
        req(
            "counts",
            Ty::Obj(&[
                req("queries", Ty::Int),
                req("cache_hits", Ty::Int),
                req("cache_misses", Ty::Int),
                req("cache_writes", Ty::Int),
                req("outgoing_requests", Ty::Int),
                req("jobs_dispatched", Ty::Int),
            ]),
        ),
        req(
            "route",
            Ty::Obj(&[
                req("name", Ty::Str).nullable(),
                req("uri", Ty::Str).nullable(),
                req("methods", Ty::List(&Ty::Str)),
                req("parameters", Ty::List(&Ty::Str)).doc("parameter names"),
            ]),
        )
        .doc("name and uri null when no route matched"),
        req(
            "controller",
            Ty::Obj(&[
                req("class", Ty::Str).nullable(),
                req("action", Ty::Str).nullable(),
                req("full", Ty::Str).doc("\"Class@action\"; \"@\" when no route matched"),
            ]),
        ),
        req(
            "middleware",
            Ty::Obj(&[
                req("global", Ty::List(&Ty::Str)),
                req("route", Ty::List(&Ty::Str)),
                req("total_count", Ty::Int),
            ]),
        ),
        req(
            "breakdown",
            Ty::Obj(&[
                opt("bootstrap", SHARE),
                opt("middleware", SHARE),
                opt("controller", SHARE),
            ]),
        )
        .doc("only bootstrap when no route matched"),
        req(
            "memory",
            Ty::Obj(&[
                req("peak_bytes", Ty::Int),
                req("peak_mb", Ty::Num),
                req("current_bytes", Ty::Int),
                req("current_mb", Ty::Num),
            ]),
        ),
        req(
            "environment",
            Ty::Obj(&[
                req("php_version", Ty::Str),
                req("laravel_version", Ty::Str),
                req("sapi", Ty::Str),
            ]),
        ),
        opt("timestamp", Ty::Str).doc("agent: ISO-8601 with offset"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/total_duration_ms")],
        status_code: &[Src::Path("/request/status_code")],
        request_id: &[Src::TraceId],
        is_error: &[ErrorRule::AtLeast("/request/status_code", 500.0)],
        ..ColumnRules::NONE
    },
};

/// `trace_span`: one phase of a request for the waterfall (TimelineCollector). The agent sends
/// `{type, name, start_time, end_time, duration_ms}`, the brief
/// `{trace_id, span_name, duration_ms, start_offset_ms, percentage, additional_data?}`.
pub(super) const TRACE_SPAN: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
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
        opt("type", Ty::Str).doc("agent: the name again (bootstrap, middleware…)"),
        opt("name", Ty::Str)
            .alias(&["span_name"])
            .doc("agent: \"Application Bootstrap\", \"Controller: Class@action\"…"),
        opt("start_time", Ty::Num).doc("agent: unix seconds with fraction"),
        opt("end_time", Ty::Num).doc("agent: unix seconds with fraction"),
        req("duration_ms", Ty::Num).doc("agent: bootstrap about 0, sending a synthetic ~1 ms"),
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

/// `timeline`: every event of one request on a time line (TimelineCollector).
pub(super) const TIMELINE: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "timeline",
    summary: "The events of one request in time order",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("trace_timeline")],
    subtype: SubtypeRule::None,
    fields: &[
        req("trace_id", Ty::Str).doc("agent: captured at boot, may differ from the envelope's"),
        req("event_count", Ty::Int),
        req("total_duration_ms", Ty::Num),
        req(
            "events",
            Ty::List(&Ty::Obj(&[
                req("type", Ty::Str).doc("agent: request, routing, database, queue, cache…"),
                req("name", Ty::Str),
                req("timestamp", Ty::Num).doc("unix seconds with fraction"),
                req("relative_time_ms", Ty::Num),
                req("data", Ty::AnyOf(&[Ty::Map(&Ty::Any), Ty::List(&Ty::Any)])),
            ])),
        ),
        req("detail_level", Ty::Str).doc("the config value: basic, detailed or full"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/total_duration_ms")],
        request_id: &[Src::TraceId],
        ..ColumnRules::NONE
    },
};

/// `profiling_segment`: a timed code segment (never emitted by today's agent, §4.1).
pub(super) const PROFILING_SEGMENT: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "profiling_segment",
    summary: "A timed code segment (startTimer/stopTimer; never emitted by today's agent)",
    origin: Origin::Brief,
    name_kind: NameKind::Dynamic("the timer name"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        opt("segment_name", Ty::Str).doc("brief"),
        req("duration_ms", Ty::Num),
        opt("memory_start", Ty::Num).doc("brief: bytes"),
        opt("memory_end", Ty::Num).doc("brief: bytes"),
        opt("memory_peak", Ty::Num).doc("brief: bytes"),
        opt("additional_data", Ty::Any).doc("brief"),
        opt("memory_delta", Ty::Num).doc("agent's (unreachable) code: bytes"),
        opt("is_slow", Ty::Bool).doc("agent's (unreachable) code"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        ..ColumnRules::NONE
    },
};

/// `llm_request`: a call to an LLM provider (never emitted by today's agent, §4.1).
pub(super) const LLM_REQUEST: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "llm_request",
    summary: "A call to an LLM provider (never emitted by today's agent)",
    origin: Origin::Brief,
    name_kind: NameKind::Dynamic("\"provider:model\""),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        req("provider", Ty::Str),
        req("model", Ty::Str),
        opt("prompt", Ty::Str).doc("when track_prompts"),
        opt("response", Ty::Str).doc("when track_responses"),
        req(
            "usage",
            Ty::Obj(&[
                req("prompt_tokens", Ty::Int),
                req("completion_tokens", Ty::Int),
                req("total_tokens", Ty::Int),
            ]),
        ),
        opt("cost", Ty::Num).doc("estimated, USD"),
        req("duration_ms", Ty::Num),
        req("status", Ty::Str).doc("brief: success | error; the agent's code: success | failed"),
        opt("error", Ty::Str),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        is_error: &[ErrorRule::ValueIn("/status", &["error", "failed"])],
        ..ColumnRules::NONE
    },
};

/// `regression`: a baseline snapshot every 100th request (TimelineCollector).
pub(super) const REGRESSION: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "regression",
    summary: "A performance baseline of one request (every 100th)",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("baseline_snapshot")],
    subtype: SubtypeRule::None,
    fields: &[
        req("duration_ms", Ty::Num),
        req("query_count", Ty::Int),
        req("memory_peak", Ty::Num).doc("bytes"),
        req("error_flag", Ty::Int).doc("1 when the response status was 500 or more"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        is_error: &[ErrorRule::AtLeast("/error_flag", 1.0)],
        ..ColumnRules::NONE
    },
};

/// `memory`: a memory snapshot (never emitted by today's agent, §4.1).
pub(super) const MEMORY: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "memory",
    summary: "A memory snapshot (never emitted by today's agent)",
    origin: Origin::Brief,
    name_kind: NameKind::Fixed,
    names: &[brief_sub("snapshot")],
    subtype: SubtypeRule::None,
    fields: &[
        req("current_bytes", Ty::Num),
        req("peak_bytes", Ty::Num),
        req("limit_bytes", Ty::Num),
        req("percentage_used", Ty::Num).doc("percent"),
    ],
    columns: ColumnRules::NONE,
};

/// `context`: the shared context was updated (`BaddyBugs::context()`: by the app, by the
/// scheduler at a task's start, by the test collector). The payload is the array merged in.
pub(super) const CONTEXT: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Always,
    name: "context",
    summary: "The agent's shared context was updated (the payload is what was merged in)",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[agent_sub("update")],
    subtype: SubtypeRule::None,
    fields: &[
        opt("scheduled_task", Ty::Any).doc("set by the scheduler: the task's command"),
        opt("test_name", Ty::Any).doc("set by the test collector"),
    ],
    columns: ColumnRules::NONE,
};

/// `session_replay`: frontend session replay switched on or off for the current session
/// (`BaddyBugs::startSessionReplay()` / `stopSessionReplay()`).
pub(super) const SESSION_REPLAY: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "session_replay",
    summary: "Frontend session replay enabled or disabled for the current session",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[agent_sub("enabled"), agent_sub("disabled")],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("user_id", Ty::Scalar).doc("null when no user is logged in"),
        opt("forced", Ty::Bool).doc("enabled: always true"),
    ],
    columns: ColumnRules {
        user_id: &[Src::Path("/user_id")],
        ..ColumnRules::NONE
    },
};

/// `deployment`: a new deployment detected (DetectDeployment middleware, on the first web
/// request after APP_DEPLOYMENT_HASH changed) or declared with `BaddyBugs::deployment()`. The
/// payload is DeploymentTracker's context, its regression settings, then the caller's keys.
pub(super) const DEPLOYMENT: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "deployment",
    summary: "A new deployment detected or declared",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[agent_sub("deployment_started")],
    subtype: SubtypeRule::None,
    fields: &[
        opt("deployment_hash", Ty::Str),
        opt("deployment_hash_short", Ty::Str),
        opt("deployment_source", Ty::Str).doc("env, header or git"),
        opt("deployment_tag", Ty::Str),
        opt("deployment_timestamp", Ty::Num).doc("unix seconds"),
        opt("deployment_at", Ty::Str).doc("\"Y-m-d H:i:s\", no timezone"),
        opt("deployment_phase", Ty::Str).doc("warmup, post_deploy or unknown"),
        opt("deployment_released_by", Ty::Str),
        opt("deployment_notes", Ty::Str),
        opt("baseline_days", Ty::Int).doc("config: regression baseline, days"),
        opt("baseline_metrics", Ty::Any).doc("config"),
        opt("warmup_period_minutes", Ty::Int).doc("config"),
        opt("auto_detected", Ty::Bool),
        opt("detection_method", Ty::Str).doc("auto-detected: env, header or git"),
        opt("first_request_url", Ty::Str).doc("auto-detected"),
        opt("first_request_method", Ty::Str).doc("auto-detected"),
    ],
    columns: ColumnRules::NONE,
};
