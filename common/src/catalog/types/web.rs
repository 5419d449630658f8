//! Types recorded around web requests: the request itself, outgoing HTTP, routing, forms,
//! uploads, sessions, security, auth, broadcasting, Livewire.
//!
//! Sources: the brief's shapes and the agent's collectors (AGENT-WIRE §4, §6; agent commit
//! b8af826). Most of these are only recorded inside a web request, so `request_id` is the trace
//! id.

use crate::catalog::columns::{ColumnRules, ErrorRule, Src};
use crate::catalog::ty::{opt, req, Forms, Ty};
use crate::catalog::{
    agent_sub, brief_sub, sub, NameKind, Origin, OtherKeys, SubtypeRule, TypeSpec,
};

/// The four-step scale the agent's collectors use when they compute a severity themselves.
const SEVERITY_SCALE: Ty = Ty::Enum(&["low", "medium", "high", "critical"]);

/// `request_id` for types recorded while a request is handled.
const IN_REQUEST: &[Src] = &[Src::TraceId];

/// The user id as most collectors send it (`auth()->id()`, an int or a uuid string, or null).
const USER_ID: &[Src] = &[Src::Path("/user_id")];

/// `request`: one handled HTTP request (RequestCollector, at `RequestHandled`).
pub(super) const REQUEST: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "request",
    summary: "An incoming HTTP request, recorded when Laravel has handled it",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic(
        "\"METHOD path\" (the agent drops the leading slash: \"GET api/users\")",
    ),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        req("method", Ty::Str).doc("HTTP method; not an enum, servers pass any token"),
        req("uri", Ty::Str).doc("the path"),
        req("url", Ty::Str)
            .alias(&["full_url"])
            .doc("full URL; the agent's has no query string (it is in inputs)"),
        req("status", Ty::Int)
            .alias(&["status_code", "response_status"])
            .doc("response status"),
        req("duration_ms", Ty::Num),
        opt("response_status", Ty::Int).doc("agent: a copy of status"),
        req("controller", Ty::Str)
            .nullable()
            .doc("\"Class@method\", \"Closure\" or null"),
        opt("action", Ty::Str).doc("brief only; the agent folds it into controller"),
        req("route", Ty::Str)
            .alias(&["route_name"])
            .nullable()
            .doc("the route name"),
        req("ip", Ty::Str).doc("client IP (the agent sends \"\" when unknown)"),
        req("user_agent", Ty::Str).doc("the agent sends \"\" when absent"),
        opt("referer", Ty::Str).doc("brief only; the agent has it in headers.referer[0]"),
        opt(
            "user",
            Ty::Obj(&[opt("id", Ty::Scalar), opt("email", Ty::Str)]),
        )
        .doc("agent: null or {id, email} (an app's user resolver may add keys)"),
        opt("user_id", Ty::Scalar).doc("brief: the user id (int or uuid)"),
        opt("user_email", Ty::Str).doc("brief"),
        req(
            "headers",
            Ty::Map(&Ty::AnyOf(&[Ty::Str, Ty::List(&Ty::Str)])),
        )
        .doc("agent: {name: [values]} with lowercase names; brief: {name: value}; redacted"),
        req(
            "inputs",
            Ty::AnyOf(&[Ty::Map(&Ty::Any), Ty::List(&Ty::Any)]),
        )
        .doc("redacted input; [] when empty, a list for a JSON array body"),
        opt("memory_usage", Ty::Num).doc("brief, bytes"),
        opt("memory_peak", Ty::Num).doc("bytes; the agent's is the peak at boot time"),
        opt("memory_used", Ty::Num).doc("agent, bytes; usually 0"),
        opt("is_memory_heavy", Ty::Bool).doc("agent; always false in practice"),
        opt("memory_suggestions", Ty::List(&Ty::Any)).doc("agent; always []"),
        opt("response_size", Ty::Int).doc("agent, bytes of the response body"),
        opt("content_length", Ty::Int)
            .native(Forms::NUMERIC_STRING)
            .doc("agent: an integer, or a numeric string from the Content-Length header"),
        opt("server", Ty::Str).doc("agent: SERVER_SOFTWARE, \"\" when unknown"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        user_id: &[Src::Path("/user/id"), Src::Path("/user_id")],
        status_code: &[
            Src::Path("/status"),
            Src::Path("/status_code"),
            Src::Path("/response_status"),
        ],
        severity: &[],
        request_id: IN_REQUEST,
        job_id: &[],
        is_error: &[
            ErrorRule::AtLeast("/status", 500.0),
            ErrorRule::AtLeast("/status_code", 500.0),
        ],
    },
};

/// `http_client`: one outgoing HTTP call. The agent has four emitters (Laravel's HTTP client
/// events, a Guzzle middleware, a manual helper, a PSR-18 wrapper) that differ in `size`,
/// `error` and the bodies; `status` is 0 when the connection failed.
pub(super) const HTTP_CLIENT: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "http_client",
    summary: "An outgoing HTTP call made by the application",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("\"METHOD host\" (the brief: \"METHOD full-url\")"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        req("method", Ty::Str),
        req("url", Ty::Str).doc("the full URL"),
        req("status", Ty::Int)
            .alias(&["status_code"])
            .doc("response status; 0 when the connection failed"),
        req("duration_ms", Ty::Num),
        req("success", Ty::Bool).doc("2xx (laravel_http) or < 400 (the other sources)"),
        opt("size", Ty::Int).doc("agent: response bytes, null when unknown, absent on failure"),
        opt("source", Ty::Str).doc(
            "agent: laravel_http, guzzle_direct, manual or psr18 (a PSR-18 wrapper may be given \
             any name)",
        ),
        opt("error", Ty::Str).doc("agent: the failure message, or null"),
        opt("request_body", Ty::Any).doc("scrubbed body (agent: string, laravel_http only)"),
        opt("response_body", Ty::Any).doc("scrubbed body (agent: string, laravel_http only)"),
        opt("host", Ty::Str).doc("brief only"),
        opt("path", Ty::Str).doc("brief only"),
        opt("is_slow", Ty::Bool).doc("brief only"),
        opt("parent_trace_id", Ty::Str).doc("brief only"),
        opt("outbound_trace_id", Ty::Str).doc("brief only"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        user_id: &[],
        status_code: &[Src::Path("/status"), Src::Path("/status_code")],
        severity: &[],
        request_id: IN_REQUEST,
        job_id: &[],
        is_error: &[
            ErrorRule::AtLeast("/status", 500.0),
            ErrorRule::AtLeast("/status_code", 500.0),
            ErrorRule::Present("/error"),
        ],
    },
};

/// `gate`: one authorization check (`GateEvaluated`).
pub(super) const GATE: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "gate",
    summary: "An authorization check (Gate / policy) and its result",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the gate ability"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        req("ability", Ty::Str),
        req(
            "result",
            Ty::AnyOf(&[Ty::Bool, Ty::Enum(&["allowed", "denied"])]),
        )
        .doc("agent: \"allowed\" or \"denied\"; brief: a boolean"),
        req("arguments", Ty::List(&Ty::Any))
            .doc("agent: models as \"Class:key\", other values as passed"),
        opt("user_id", Ty::Scalar).doc("null for a guest"),
        opt("target", Ty::Str).doc("agent: the first argument as \"Class:key\", or null"),
    ],
    columns: ColumnRules {
        user_id: USER_ID,
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `livewire_component`: a component initialised (never fires with stock Livewire).
pub(super) const LIVEWIRE_COMPONENT: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "livewire_component",
    summary: "A Livewire component initialised",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("initialized")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("component", Ty::Str).doc("the component name"),
        req("component_id", Ty::Str),
        req("url", Ty::Str),
        opt("user_id", Ty::Scalar),
    ],
    columns: ColumnRules {
        user_id: USER_ID,
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// Livewire's `updates` of a message: a list of `{type, payload}` (v2), a map in v3.
const LIVEWIRE_UPDATES: Ty = Ty::AnyOf(&[
    Ty::List(&Ty::Obj(&[opt("type", Ty::Str), opt("payload", Ty::Any)])),
    Ty::Map(&Ty::Any),
]);

/// `livewire_performance`: a slow Livewire round trip.
pub(super) const LIVEWIRE_PERFORMANCE: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "livewire_performance",
    summary: "A Livewire request slower than the threshold",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("slow_request")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("component", Ty::Str),
        opt("component_id", Ty::Str).doc("agent"),
        req("duration_ms", Ty::Num),
        req("threshold_ms", Ty::Num),
        req("updates", LIVEWIRE_UPDATES).doc("the message's updates"),
        opt("url", Ty::Str).doc("agent"),
        opt("user_id", Ty::Scalar).doc("agent"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        user_id: USER_ID,
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `livewire_error`: a failed Livewire message or a dehydration exception.
pub(super) const LIVEWIRE_ERROR: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "livewire_error",
    summary: "A failed Livewire message, or an exception while dehydrating a component",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("message_failed"), sub("dehydration_exception")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("component", Ty::Str),
        opt("component_id", Ty::Str).doc("agent"),
        opt("duration_ms", Ty::Num).doc("agent, message_failed; null when unknown"),
        opt("updates", LIVEWIRE_UPDATES).doc("agent, message_failed"),
        opt(
            "calls",
            Ty::AnyOf(&[
                Ty::List(&Ty::Obj(&[
                    opt("method", Ty::Str),
                    opt("params", Ty::List(&Ty::Any)),
                ])),
                Ty::Map(&Ty::Any),
            ]),
        )
        .doc("message_failed: the method calls of the message"),
        opt("response_status", Ty::Int).doc("message_failed"),
        opt("exception", Ty::Str).doc("dehydration_exception: the exception class"),
        opt("message", Ty::Str).doc("agent, dehydration_exception"),
        opt("file", Ty::Str).doc("agent, dehydration_exception"),
        opt("line", Ty::Int).doc("agent, dehydration_exception"),
        opt("url", Ty::Str).doc("agent"),
        opt("user_id", Ty::Scalar).doc("agent"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        user_id: USER_ID,
        status_code: &[Src::Path("/response_status")],
        severity: &[],
        request_id: IN_REQUEST,
        job_id: &[],
        is_error: &[ErrorRule::Always],
    },
};

/// `security`: input scanning results, dangerous production setup, the composer inventory,
/// and issues the application reports itself.
pub(super) const SECURITY: TypeSpec = TypeSpec {
    other_keys: OtherKeys::When(&["manual_report"]),
    name: "security",
    summary: "Security scan results: suspicious input, dangerous setup, package inventory",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[
        sub("security_issue"),
        sub("dangerous_usage"),
        sub("composer_packages"),
        agent_sub("manual_report"),
    ],
    subtype: SubtypeRule::Name,
    fields: &[
        opt(
            "injection_attempts",
            Ty::List(&Ty::Obj(&[
                req("type", Ty::Str).doc("sql_injection or xss"),
                opt("field", Ty::Scalar).doc("the input key (an int for a JSON list body)"),
                opt("pattern_matched", Ty::Str).doc("the regex that matched"),
                opt("value_excerpt", Ty::Str).doc("first 100 bytes of the value"),
            ])),
        )
        .doc("agent, security_issue"),
        req(
            "sensitive_data_findings",
            Ty::List(&Ty::Obj(&[
                req("type", Ty::Str).doc("the pattern name: credit_card, api_key, jwt …"),
                opt("field", Ty::Scalar).doc("the input key (an int for a JSON list body)"),
                req("severity", SEVERITY_SCALE),
            ])),
        )
        .when(&["security_issue"]),
        req("issues", Ty::List(&Ty::Str))
            .when(&["dangerous_usage"])
            .doc("what is dangerous (\"Laravel Debugbar enabled in production\")"),
        opt("environment", Ty::Str).doc("dangerous_usage: APP_ENV"),
        opt(
            "vulnerabilities",
            Ty::List(&Ty::Obj(&[
                opt("package", Ty::Str),
                opt("version", Ty::Str),
                opt("advisory", Ty::Str),
                opt("severity", Ty::Str),
            ])),
        )
        .doc("brief, composer_packages (the agent sends none)"),
        opt("total_packages", Ty::Int).doc("agent, composer_packages"),
        opt(
            "packages",
            Ty::List(&Ty::Obj(&[req("name", Ty::Str), opt("version", Ty::Str)])),
        )
        .doc("agent, composer_packages"),
        opt("scan_timestamp", Ty::Str).doc("agent, composer_packages, ISO-8601"),
        opt("issue_type", Ty::Str).doc("agent, manual_report (the caller's keys follow)"),
        opt("reported_at", Ty::Str).doc("agent, manual_report, ISO-8601"),
        opt("url", Ty::Str).doc("agent, security_issue: the full URL"),
        opt("method", Ty::Str),
        opt("ip", Ty::Str),
        opt("user_agent", Ty::Str),
        opt("user_id", Ty::Scalar),
        opt("severity", Ty::Str).doc(
            "security_issue: high, or critical when injection or card/SSN/key data was seen; \
             manual_report: whatever the caller passed",
        ),
    ],
    columns: ColumnRules {
        duration_ms: &[],
        user_id: USER_ID,
        status_code: &[],
        severity: &[Src::Path("/severity")],
        request_id: IN_REQUEST,
        job_id: &[],
        // Not `high`: the CSRF `_token` of almost every form POST matches the agent's api_key
        // pattern and yields a `high` security_issue.
        is_error: &[ErrorRule::ValueIn("/severity", &["critical"])],
    },
};

/// The severities of a threat that count as errors.
const THREAT_ERRORS: &[&str] = &["high", "critical"];

/// `security_threat`: scored attack patterns in one request (ThreatCollector). The agent sends
/// a list of threats (at most one per kind, so at most five); the brief one flat threat.
pub(super) const SECURITY_THREAT: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "security_threat",
    summary: "Attack patterns detected in a request (injection, XSS, traversal, bots)",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("detection")],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("threats_detected", Ty::Int).doc("agent: the number of threats"),
        opt(
            "threats",
            Ty::List(&Ty::Obj(&[
                req(
                    "type",
                    Ty::Enum(&[
                        "sql_injection",
                        "xss",
                        "path_traversal",
                        "bot",
                        "suspicious_pattern",
                        "command_injection",
                        "ssrf",
                    ]),
                ),
                req("severity", SEVERITY_SCALE),
                opt("score", Ty::Num).doc("0..1 (1.0 prints as 1); absent for suspicious_pattern"),
                opt("patterns", Ty::List(&Ty::Str)).doc("suspicious_pattern only"),
                opt("details", Ty::Str),
            ])),
        )
        .doc("agent: one entry per kind of threat found"),
        opt(
            "threat_type",
            Ty::Enum(&[
                "sql_injection",
                "xss",
                "path_traversal",
                "command_injection",
                "ssrf",
                "bot",
                "suspicious_pattern",
            ]),
        )
        .doc("brief"),
        opt("severity", SEVERITY_SCALE).doc("brief"),
        opt("field", Ty::Scalar).doc("brief: the input key"),
        opt("value", Ty::Str).doc("brief: the value, truncated"),
        req("url", Ty::Str).doc("agent: the path only"),
        opt("method", Ty::Str).doc("agent"),
        req("ip", Ty::Str).nullable(),
        req("user_agent", Ty::Str).nullable(),
        opt("user_id", Ty::Scalar),
    ],
    columns: ColumnRules {
        duration_ms: &[],
        user_id: USER_ID,
        status_code: &[],
        // The brief's flat severity, else the agent's first threat (no max over a list yet).
        severity: &[Src::Path("/severity"), Src::Path("/threats/0/severity")],
        request_id: IN_REQUEST,
        job_id: &[],
        is_error: &[
            ErrorRule::ValueIn("/severity", THREAT_ERRORS),
            ErrorRule::ValueIn("/threats/0/severity", THREAT_ERRORS),
            ErrorRule::ValueIn("/threats/1/severity", THREAT_ERRORS),
            ErrorRule::ValueIn("/threats/2/severity", THREAT_ERRORS),
            ErrorRule::ValueIn("/threats/3/severity", THREAT_ERRORS),
            ErrorRule::ValueIn("/threats/4/severity", THREAT_ERRORS),
        ],
    },
};

/// `view`: a rendered Blade view (manual tracking only; `rendered` is sampled at 10%).
pub(super) const VIEW: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "view",
    summary: "A rendered view and its render time",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("slow_view"), sub("rendered")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("view_name", Ty::Str)
            .alias(&["view"])
            .doc("the view name (\"orders.show\")"),
        req("duration_ms", Ty::Num),
        req("is_slow", Ty::Bool),
        opt("data_keys", Ty::List(&Ty::Str)).doc("brief: the variables passed"),
        opt("url", Ty::Str).doc("agent"),
        opt("route", Ty::Str).doc("agent: the route name"),
        opt("threshold_ms", Ty::Num).doc("agent, slow_view"),
        opt("severity", SEVERITY_SCALE)
            .doc("agent, slow_view: medium, or high past twice the threshold"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        severity: &[Src::Path("/severity")],
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `middleware`: the middleware stack of a request, or one timed middleware.
pub(super) const MIDDLEWARE: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "middleware",
    summary: "Middleware timing: the whole stack of a request, or one middleware",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("stack_executed"), sub("individual")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("middleware_stack", Ty::List(&Ty::Any))
            .alias(&["middlewares"])
            .when(&["stack_executed"])
            .doc("global then route middleware names (a closure middleware arrives as [])"),
        req("total_duration_ms", Ty::Num).when(&["stack_executed"]),
        opt("total_middleware_count", Ty::Int).doc("agent, stack_executed"),
        opt("average_per_middleware", Ty::Num).doc("agent, stack_executed, ms"),
        req("middleware_name", Ty::Str)
            .alias(&["middleware"])
            .when(&["individual"]),
        req("duration_ms", Ty::Num).when(&["individual"]),
        opt("url", Ty::Str).doc("agent: the full URL"),
        opt("method", Ty::Str).doc("agent, stack_executed"),
        opt("route", Ty::Str).doc("agent, stack_executed: the route name"),
        opt("is_slow", Ty::Bool).doc("agent, stack_executed over 100 ms"),
        opt("severity", SEVERITY_SCALE).doc("agent, stack_executed over 100 ms: medium or high"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/total_duration_ms"), Src::Path("/duration_ms")],
        severity: &[Src::Path("/severity")],
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `feature`: product analytics. The agent's payload depends on the name (AGENT-WIRE §6); the
/// brief's is generic. `feature.used` and `custom.event` carry the app's own keys at top level,
/// and every name gets `user_*` keys for a logged-in user.
pub(super) const FEATURE: TypeSpec = TypeSpec {
    other_keys: OtherKeys::When(&["feature.used", "custom.event"]),
    name: "feature",
    summary: "Product analytics: routes and jobs used, features and custom events tracked",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[
        sub("route.accessed"),
        sub("job.executed"),
        agent_sub("event.triggered"),
        sub("feature.used"),
        sub("custom.event"),
    ],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("identifier", Ty::Str).doc("brief"),
        opt("metadata", Ty::Map(&Ty::Any)).doc("brief"),
        opt("count", Ty::Int).doc("brief"),
        opt("route_name", Ty::Str).doc("route.accessed: the name, else the URI"),
        opt("route_uri", Ty::Str).doc("route.accessed"),
        opt("controller", Ty::Str).doc("route.accessed: \"Class@method\" or \"Closure\""),
        opt("method", Ty::Str).doc("route.accessed"),
        opt("status_code", Ty::Int).doc("route.accessed"),
        opt("job_name", Ty::Str).doc("job.executed"),
        opt("queue", Ty::Str).doc("job.executed"),
        opt("connection", Ty::Str).doc("job.executed"),
        opt("event_name", Ty::Scalar).doc("event.triggered, custom.event"),
        opt("feature_name", Ty::Scalar).doc("feature.used"),
        opt("user_id", Ty::Scalar),
        opt("url", Ty::Str),
        opt("timestamp", Ty::Any)
            .doc("feature.used, custom.event: ISO-8601 (the app may override)"),
        opt("user_email", Ty::Any).doc("agent, logged-in user"),
        opt("user_name", Ty::Any).doc("agent, logged-in user"),
        opt("user_roles", Ty::Any).doc("agent, logged-in user: usually a list of names"),
        opt("user_permissions", Ty::Any).doc("agent, logged-in user: usually a list of names"),
        opt("user_tenant_id", Ty::Any).doc("agent, logged-in user"),
    ],
    columns: ColumnRules {
        user_id: USER_ID,
        status_code: &[Src::Path("/status_code")],
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `form`: a POST/PUT/PATCH with input (field names only, never values).
pub(super) const FORM: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "form",
    summary: "A form submission: which fields were sent, validation outcome",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("submission")],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("form_id", Ty::Str).doc("brief"),
        req("url", Ty::Str).doc("agent: the path"),
        req("method", Ty::Str),
        req("fields_submitted", Ty::List(&Ty::Scalar))
            .alias(&["fields"])
            .doc("input names (an int index for a JSON list body)"),
        opt(
            "validation_errors",
            Ty::AnyOf(&[Ty::List(&Ty::Any), Ty::Map(&Ty::Any)]),
        )
        .doc("brief: a list of messages; agent: {field: [messages]}"),
        opt("duration_ms", Ty::Num).doc("brief"),
        opt("user_id", Ty::Scalar).doc("brief"),
        opt("route", Ty::Str).doc("agent: the route name"),
        opt("field_count", Ty::Int).doc("agent"),
        opt("has_validation_errors", Ty::Bool).doc("agent; always false in practice"),
        opt("validation_attempts_count", Ty::Int).doc("agent; always 0 in practice"),
        opt("error_fields", Ty::List(&Ty::Scalar)).doc("agent, with validation errors"),
        opt("error_field_count", Ty::Int).doc("agent, with validation errors"),
        opt("total_error_count", Ty::Int).doc("agent, with validation errors"),
        opt("likely_form_type", Ty::Str)
            .doc("agent: contact, search, payment, settings, generic (login/registration)"),
        opt("contains_file_upload", Ty::Bool).doc("agent"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        user_id: USER_ID,
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `file_upload`: the files of one request.
pub(super) const FILE_UPLOAD: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "file_upload",
    summary: "The files uploaded with one request",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("upload_batch")],
    subtype: SubtypeRule::Name,
    fields: &[
        req(
            "files",
            Ty::List(&Ty::Obj(&[
                opt("field_name", Ty::Scalar).doc("agent: the input name (\"photos.0\")"),
                req("original_name", Ty::Str)
                    .alias(&["name"])
                    .doc("the client's file name"),
                opt("size_bytes", Ty::Int).alias(&["size"]),
                opt("mime_type", Ty::Str),
                opt("extension", Ty::Str),
                opt("is_image", Ty::Bool).doc("agent"),
                opt("is_valid", Ty::Bool)
                    .doc("agent; an invalid upload has only field_name, original_name, error"),
                opt("error", Ty::Str).doc("agent: null, or the upload error message"),
                opt("image_width", Ty::Int).doc("agent, images"),
                opt("image_height", Ty::Int).doc("agent, images"),
                opt("image_megapixels", Ty::Num).doc("agent, images"),
                opt("disk", Ty::Str).doc("brief"),
                opt("path", Ty::Str).doc("brief"),
            ])),
        ),
        req("upload_count", Ty::Int).alias(&["file_count"]),
        req("total_size_bytes", Ty::Int).alias(&["total_size"]),
        opt("total_size_mb", Ty::Num).doc("agent"),
        opt("processing_time_ms", Ty::Num).doc("agent: time since the request started"),
        opt("route", Ty::Str).doc("agent: the route name"),
        opt("url", Ty::Str).doc("agent: the path"),
        opt("user_id", Ty::Scalar).doc("brief"),
    ],
    columns: ColumnRules {
        user_id: USER_ID,
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// The auth names that carry a guard (agent) and always a user agent.
const AUTH_GUARDED: &[&str] = &[
    "login",
    "logout",
    "logout_other_devices",
    "login_failed",
    "login_attempt",
];

/// `auth`: authentication events (AuthCollector, web only).
pub(super) const AUTH: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "auth",
    summary: "Authentication: logins, logouts, failures, lockouts, resets, 2FA, impersonation",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[
        sub("login"),
        sub("logout"),
        agent_sub("logout_other_devices"),
        sub("login_failed"),
        agent_sub("login_attempt"),
        sub("lockout"),
        sub("password_reset"),
        sub("registered"),
        sub("email_verified"),
        sub("2fa_challenged"),
        agent_sub("2fa_enabled"),
        agent_sub("2fa_disabled"),
        agent_sub("2fa_recovery_generated"),
        agent_sub("impersonation"),
        brief_sub("2fa_verified"),
        brief_sub("impersonation_started"),
        brief_sub("impersonation_stopped"),
    ],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("user_id", Ty::Scalar),
        opt("email", Ty::Str).doc("lockout: the submitted email (agent), or the user's (brief)"),
        req("guard", Ty::Str).when(AUTH_GUARDED),
        opt("remember", Ty::Bool).doc("login, login_attempt"),
        req("ip", Ty::Str).nullable(),
        req("user_agent", Ty::Str)
            .nullable()
            .when(&["login", "login_failed", "lockout", "registered"])
            .doc("null without a User-Agent header"),
        opt("credentials", Ty::Map(&Ty::Any))
            .doc("agent, login_failed: the submitted identifiers, password masked"),
        opt("reason", Ty::Str).doc("brief, login_failed"),
        opt("lockout_seconds", Ty::Int).doc("brief, lockout"),
        opt("event", Ty::Str).doc("agent, impersonation: the dispatched event name"),
        opt("admin_id", Ty::Scalar).doc("agent, impersonation"),
        opt("target_id", Ty::Scalar).doc("agent, impersonation"),
        opt("timestamp", Ty::Str).doc("agent: ISO-8601"),
        opt("severity", Ty::Str)
            .doc("agent: warning (login_failed), high (lockout, impersonation)"),
    ],
    columns: ColumnRules {
        duration_ms: &[],
        user_id: USER_ID,
        status_code: &[],
        severity: &[Src::Path("/severity")],
        request_id: IN_REQUEST,
        job_id: &[],
        // A failed login is a user's typo, not an application error; a lockout is worth a look.
        is_error: &[ErrorRule::SubtypeIn(&["lockout"])],
    },
};

/// `broadcast`: broadcasting and channel subscriptions (disabled by default).
pub(super) const BROADCAST: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "broadcast",
    summary: "Broadcast events sent, channel authorisations, presence changes",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[
        sub("event_broadcasted"),
        sub("channel_authorized"),
        sub("channel_denied"),
        sub("presence_update"),
    ],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("event", Ty::Str).doc("event_broadcasted: the event class"),
        opt("channels", Ty::List(&Ty::Str)).doc("event_broadcasted"),
        opt("event_name", Ty::Str)
            .doc("agent, event_broadcasted: broadcastAs() or the class basename"),
        opt("connection", Ty::Str).doc("agent, event_broadcasted"),
        opt("channel", Ty::Str).doc("channel_*, presence_update (\"unknown\" when not known)"),
        opt("channel_type", Ty::Enum(&["public", "private", "presence"])).doc("brief"),
        opt("members", Ty::Int).doc("brief"),
        opt("event_type", Ty::Str).doc("agent, presence_update: the pusher event name"),
        opt("member_id", Ty::Scalar).doc("agent, presence_update"),
        opt("user_id", Ty::Scalar),
        opt("ip", Ty::Str).doc("agent, channel_*"),
        opt("timestamp", Ty::Str).doc("agent: ISO-8601"),
        opt("severity", Ty::Str).doc("agent, channel_denied: warning"),
    ],
    columns: ColumnRules {
        user_id: USER_ID,
        severity: &[Src::Path("/severity")],
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `rate_limit`: rate limiter use. Only `hit` (a manual call) is ever emitted (AGENT-WIRE §4.1).
pub(super) const RATE_LIMIT: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "rate_limit",
    summary: "Rate limiter hits, exceeded limits and usage",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("hit"), brief_sub("exceeded"), brief_sub("usage")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("key", Ty::Str).when(&["hit"]).doc("the limiter key"),
        req("max_attempts", Ty::Int)
            .alias(&["limit"])
            .native(Forms::ALIAS)
            .doc("usage (never emitted today): the agent's code sends limit")
            .when(&["hit"]),
        req("remaining", Ty::Int).when(&["hit"]),
        opt("reset_at", Ty::Str).doc("brief"),
        opt("attempts", Ty::Int).doc("agent, hit"),
        opt("decay_seconds", Ty::Int).doc("agent, hit"),
        opt("usage_percentage", Ty::Num).doc("agent"),
        opt("ip", Ty::Str),
        opt("user_id", Ty::Scalar),
        opt("route", Ty::Str),
        opt("url", Ty::Str).doc("agent code, exceeded / usage"),
        opt("method", Ty::Str).doc("agent code, exceeded"),
        opt("user_agent", Ty::Str).doc("agent code, exceeded"),
        opt("retry_after", Ty::Scalar).doc("agent code, exceeded: the header value"),
        opt("x_ratelimit_limit", Ty::Scalar).doc("agent code, exceeded: the header value"),
        opt("x_ratelimit_remaining", Ty::Scalar).doc("agent code, exceeded: the header value"),
        opt("timestamp", Ty::Str).doc("agent: ISO-8601"),
        opt("severity", Ty::Str).doc("agent code, exceeded: warning"),
    ],
    columns: ColumnRules {
        user_id: USER_ID,
        severity: &[Src::Path("/severity")],
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `session`: session analytics (the id is only ever sent hashed).
pub(super) const SESSION: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "session",
    summary: "Session analytics, regenerations and invalidations",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("analytics"), sub("regenerated"), sub("invalidated")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("session_id_hash", Ty::Str)
            .alias(&["session_id"])
            .when(&["analytics"])
            .doc("agent: first 16 hex digits of md5(session id); brief: a hash"),
        opt("user_id", Ty::Scalar),
        opt("session_duration_seconds", Ty::Num)
            .alias(&["duration_seconds"])
            .doc("seconds since the session started"),
        opt("pages_in_session", Ty::Int).alias(&["page_views"]),
        opt("driver", Ty::Str).doc("brief"),
        opt("is_new_session", Ty::Bool).doc("agent, analytics"),
        opt("session_started", Ty::Bool).doc("agent, analytics"),
        opt("has_navigation", Ty::Bool).doc("agent, analytics"),
        opt("has_flash_data", Ty::Bool).doc("agent, analytics"),
        opt("flash_keys", Ty::List(&Ty::Scalar))
            .doc("agent, analytics: list indexes (0, 1…), not key names"),
        opt("potential_bounce", Ty::Bool).doc("agent, analytics"),
        opt("ip", Ty::Str).doc("agent, regenerated / invalidated"),
        opt("timestamp", Ty::Str).doc("agent, regenerated / invalidated: ISO-8601"),
    ],
    columns: ColumnRules {
        user_id: USER_ID,
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `translation`: locale changes; missing keys are never emitted (AGENT-WIRE §4.1).
pub(super) const TRANSLATION: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "translation",
    summary: "Locale changes and missing translation keys",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("locale_changed"), brief_sub("missing_keys")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("locale", Ty::Str).when(&["locale_changed"]),
        req("previous_locale", Ty::Str)
            .when(&["locale_changed"])
            .doc("agent: equal to locale (read after the change)"),
        opt("missing_keys", Ty::List(&Ty::Str)).doc("brief, missing_keys"),
        opt("namespace", Ty::Str).doc("brief"),
        opt(
            "keys",
            Ty::List(&Ty::Obj(&[
                req("key", Ty::Str),
                opt("locale", Ty::Str),
                opt("fallback", Ty::Any),
                opt("count", Ty::Int),
                opt("locations", Ty::List(&Ty::Str)),
            ])),
        )
        .doc("agent code, missing_keys"),
        opt("total_missing", Ty::Int).doc("agent code, missing_keys"),
        opt("total_fallbacks", Ty::Int).doc("agent code, missing_keys"),
        opt("url", Ty::Str).doc("agent: the full URL"),
        opt("user_id", Ty::Scalar).doc("agent, locale_changed"),
        opt("timestamp", Ty::Str).doc("agent: ISO-8601"),
    ],
    columns: ColumnRules {
        user_id: USER_ID,
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `route`: 404s and redirects (RouteCollector); model binding is never emitted.
pub(super) const ROUTE: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "route",
    summary: "Routing analytics: 404s, redirects, route model binding",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[
        sub("404_not_found"),
        sub("redirect"),
        brief_sub("model_binding"),
    ],
    subtype: SubtypeRule::Name,
    fields: &[
        req("url", Ty::Str)
            .alias(&["from"])
            .native(Forms::ALIAS)
            .when(&["404_not_found", "redirect"])
            .doc("the full URL requested (agent's redirect: from)"),
        req("method", Ty::Str).when(&["404_not_found"]),
        opt("path", Ty::Str).doc("agent, 404_not_found"),
        opt("referrer", Ty::Str).alias(&["referer"]),
        opt("user_agent", Ty::Str).doc("agent, 404_not_found"),
        opt("ip", Ty::Str).doc("agent, 404_not_found"),
        opt("user_id", Ty::Scalar).doc("agent, 404_not_found"),
        opt("pattern_guess", Ty::Str).doc("agent, 404_not_found: the closest route URI, or null"),
        req("to", Ty::Str)
            .alias(&["redirect_to"])
            .when(&["redirect"])
            .doc("the Location"),
        req("status_code", Ty::Int)
            .alias(&["redirect_status"])
            .when(&["redirect"]),
        opt("is_permanent", Ty::Bool).doc("agent, redirect: 301 or 308"),
        opt("route", Ty::Str).doc("agent: the route name"),
        opt("model", Ty::Str).doc("brief, model_binding"),
        opt("key", Ty::Scalar).doc("brief, model_binding"),
        opt("found", Ty::Bool).doc("brief, model_binding"),
        opt("models_bound", Ty::Int).doc("agent code, model_binding"),
        opt(
            "bindings",
            Ty::List(&Ty::Obj(&[
                opt("parameter", Ty::Scalar),
                req("model", Ty::Str),
                opt("id", Ty::Scalar),
            ])),
        )
        .doc("agent code, model_binding"),
        opt("timestamp", Ty::Str).doc("agent: ISO-8601"),
    ],
    columns: ColumnRules {
        user_id: USER_ID,
        status_code: &[Src::Path("/status_code"), Src::Path("/redirect_status")],
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `validation`: validation statistics. Never emitted (its resolver is replaced, and would
/// recurse, AGENT-WIRE §4.1); the agent's code would send a summary with counts.
pub(super) const VALIDATION: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "validation",
    summary: "Validation statistics of a request",
    origin: Origin::Brief,
    name_kind: NameKind::Fixed,
    names: &[brief_sub("summary")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("url", Ty::Str),
        opt("method", Ty::Str).doc("brief"),
        opt("rules_count", Ty::Int).doc("brief"),
        opt("failed_rules", Ty::List(&Ty::Str)).doc("brief"),
        req("passed", Ty::AnyOf(&[Ty::Bool, Ty::Int]))
            .doc("brief: a boolean; agent code: the number of validations that passed"),
        opt("total_validations", Ty::Int).doc("agent code"),
        opt("failed", Ty::Int).doc("agent code"),
        opt("avg_duration_ms", Ty::Num).doc("agent code"),
        opt("total_fields_validated", Ty::Int).doc("agent code"),
        opt("route", Ty::Str).doc("agent code"),
        opt("most_used_rules", Ty::Map(&Ty::Int)).doc("agent code: rule → uses"),
        opt("most_failed_fields", Ty::Map(&Ty::Int)).doc("agent code: field → failures"),
        opt("timestamp", Ty::Str).doc("agent code: ISO-8601"),
    ],
    columns: ColumnRules {
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};
