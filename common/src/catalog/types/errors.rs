//! Types about failures: exceptions (unhandled and handled), logs, detected issues.

use crate::catalog::columns::{ColumnRules, ErrorRule, Src, ERROR_LEVELS, ERROR_SEVERITIES};
use crate::catalog::ty::{opt, req, Field, Ty};
use crate::catalog::{agent_sub, sub, NameKind, Origin, SubtypeRule, TypeSpec};

/// A stack frame: the agent's `{file ('' for internal frames), line, function, class ('' when
/// none), code_snippet ({line: code} | null)}` and the brief's `{file, line, function, class?,
/// type?}`.
const FRAME: Ty = Ty::Obj(&[
    opt("file", Ty::Str),
    opt("line", Ty::Int),
    opt("function", Ty::Str),
    opt("class", Ty::Str),
    opt("type", Ty::Str),
    opt(
        "code_snippet",
        Ty::AnyOf(&[Ty::Map(&Ty::Str), Ty::List(&Ty::Str)]),
    )
    .doc("{line: code}, keyed by line number"),
]);

/// A breadcrumb: the agent's `{timestamp, category, message, data, level}`, the brief's
/// `{type, message, timestamp, data}`.
const BREADCRUMB: Ty = Ty::Obj(&[
    opt("timestamp", Ty::Num),
    opt("category", Ty::Str).alias(&["type"]),
    opt("message", Ty::Scalar),
    opt("data", Ty::Any),
    opt("level", Ty::Str),
]);

const EXCEPTION_FIELDS: &[Field] = &[
    req("message", Ty::Str).doc("PII-scrubbed by the agent (emails, IPs, long numbers)"),
    opt("exception_class", Ty::Str).doc("brief; the agent sends it as the event name"),
    req("file", Ty::Str),
    req("line", Ty::Int),
    opt("code", Ty::Scalar).doc("an integer or a SQLSTATE string (\"23000\")"),
    opt("trace", Ty::List(&FRAME)).doc("up to 30 frames"),
    opt(
        "source",
        Ty::AnyOf(&[Ty::Map(&Ty::Str), Ty::List(&Ty::Str)]),
    )
    .alias(&["source_code"])
    .doc("lines around the throw, keyed by line number"),
    opt("fingerprint", Ty::Str).doc("brief; computed by the server when absent"),
    opt("url", Ty::Str),
    opt("method", Ty::Str),
    opt("user_id", Ty::Scalar),
    opt("breadcrumbs", Ty::List(&BREADCRUMB)),
    opt("severity", Ty::Str).doc("brief: error | warning | info | critical"),
    opt("handled", Ty::Bool),
    opt(
        "previous",
        Ty::Obj(&[opt("class", Ty::Str), opt("message", Ty::Str)]),
    ),
];

/// `exception`: an unhandled or `report()`ed exception (ExceptionCollector, on
/// `MessageLogged` with an exception in its context).
pub(super) const EXCEPTION: TypeSpec = TypeSpec {
    name: "exception",
    summary: "An unhandled (or report()ed) exception, with its trace and source snippet",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the exception class"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: EXCEPTION_FIELDS,
    columns: ColumnRules {
        user_id: &[Src::Path("/user_id")],
        severity: &[Src::Path("/severity"), Src::Const("error")],
        request_id: &[Src::TraceId],
        is_error: &[ErrorRule::Always],
        ..ColumnRules::NONE
    },
};

/// `handled_exception`: an exception the app caught and reported with the agent's helper.
pub(super) const HANDLED_EXCEPTION: TypeSpec = TypeSpec {
    name: "handled_exception",
    summary: "An exception caught by the app and reported with reportHandledException()",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the exception class"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        req("message", Ty::Str).doc("not scrubbed"),
        opt("exception", Ty::Str).alias(&["exception_class"]),
        opt("file", Ty::Str),
        opt("line", Ty::Int),
        opt("code", Ty::Scalar),
        opt("trace", Ty::List(&FRAME)).doc("agent: up to 10 frames, class null when absent"),
        opt(
            "source",
            Ty::AnyOf(&[Ty::Map(&Ty::Str), Ty::List(&Ty::Str)]),
        )
        .alias(&["source_code"]),
        opt("fingerprint", Ty::Str),
        opt("severity", Ty::Str)
            .doc("agent: critical (PDO/Redis/OOM), high (ErrorException), medium, or the caller's"),
        opt("handled", Ty::Bool),
        opt(
            "context",
            Ty::AnyOf(&[Ty::Map(&Ty::Any), Ty::List(&Ty::Any)]),
        ),
        opt("url", Ty::Str),
        opt("method", Ty::Str),
        opt("user_id", Ty::Scalar),
        opt(
            "previous",
            Ty::Obj(&[opt("class", Ty::Str), opt("message", Ty::Str)]),
        ),
        opt("breadcrumbs", Ty::List(&BREADCRUMB)),
    ],
    columns: ColumnRules {
        user_id: &[Src::Path("/user_id")],
        severity: &[Src::Path("/severity")],
        request_id: &[Src::TraceId],
        is_error: &[ErrorRule::ValueIn("/severity", ERROR_SEVERITIES)],
        ..ColumnRules::NONE
    },
};

/// PSR-3 levels; the agent sends them lowercase (LogCollector) and uppercase (its Monolog
/// handler) for the same line.
const LEVELS: &[&str] = &[
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

/// `log`: a log line at warning or above (two emitters per line, two shapes), and
/// `pattern_detected` for a message repeated 10 times in 60 s.
pub(super) const LOG: TypeSpec = TypeSpec {
    name: "log",
    summary: "A log line (warning and above by default), or a repeated-message pattern",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[
        sub("emergency"),
        sub("alert"),
        sub("critical"),
        sub("error"),
        sub("warning"),
        agent_sub("notice"),
        agent_sub("info"),
        agent_sub("debug"),
        agent_sub("pattern_detected"),
    ],
    subtype: SubtypeRule::Name,
    fields: &[
        req("level", Ty::EnumCi(LEVELS)).doc("lowercase (LogCollector) or UPPERCASE (handler)"),
        req("message", Ty::Str).when(LEVELS),
        opt(
            "context",
            Ty::AnyOf(&[Ty::Map(&Ty::Any), Ty::List(&Ty::Any)]),
        )
        .doc("[] when empty; exception objects arrive as []"),
        opt("channel", Ty::Str),
        opt("level_value", Ty::Int).doc("handler shape: Monolog's numeric level"),
        opt("datetime", Ty::Str).doc("handler shape: \"Y-m-d H:i:s.u\", no offset"),
        opt("timestamp", Ty::Num).doc("handler shape: unix seconds"),
        opt("extra", Ty::Any),
        opt("trace_id", Ty::Str),
        opt("url", Ty::Str),
        opt("method", Ty::Str),
        opt("ip", Ty::Str),
        opt("user_agent", Ty::Str),
        opt("user_id", Ty::Scalar),
        opt("user_email", Ty::Str),
        opt("environment", Ty::Str),
        opt("memory_usage", Ty::Num),
        opt("memory_usage_mb", Ty::Num),
        opt("structured", Ty::Bool),
        req("pattern", Ty::Str)
            .when(&["pattern_detected"])
            .doc("md5 of the message"),
        opt("occurrences", Ty::Int),
        opt("window_seconds", Ty::Int),
        opt("sample_message", Ty::Str),
        opt("severity", Ty::Str),
    ],
    columns: ColumnRules {
        user_id: &[Src::Path("/user_id")],
        severity: &[Src::Path("/level"), Src::Name],
        request_id: &[Src::TraceId],
        is_error: &[
            ErrorRule::ValueIn("/level", ERROR_LEVELS),
            ErrorRule::SubtypeIn(ERROR_LEVELS),
        ],
        ..ColumnRules::NONE
    },
};

/// `issue`: a detected problem; today the N+1 query detector (QueryCollector).
pub(super) const ISSUE: TypeSpec = TypeSpec {
    name: "issue",
    summary: "A detected problem: the same SQL run 5/10/20/50 times in one request (N+1)",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("n_plus_one")],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("sql", Ty::Str).alias(&["query"]),
        opt("count", Ty::Int),
        opt("threshold", Ty::Int).doc("brief"),
        opt("location", Ty::Str),
        opt(
            "snippet",
            Ty::AnyOf(&[Ty::Map(&Ty::Any), Ty::List(&Ty::Any)]),
        ),
        opt("suggestion", Ty::Str),
        opt("severity", Ty::Str),
    ],
    columns: ColumnRules {
        severity: &[Src::Path("/severity")],
        request_id: &[Src::TraceId],
        ..ColumnRules::NONE
    },
};

/// `potential_handled_error`: a PHP error found by the agent's shutdown handler once the app
/// enabled auto-detection.
pub(super) const POTENTIAL_HANDLED_ERROR: TypeSpec = TypeSpec {
    name: "potential_handled_error",
    summary: "A PHP error seen at shutdown (auto-detection enabled by the app)",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[agent_sub("PHP Error")],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("message", Ty::Str),
        opt("file", Ty::Str),
        opt("line", Ty::Int),
        opt("type", Ty::Scalar).doc("the PHP error type"),
        opt("severity", Ty::Str),
    ],
    columns: ColumnRules {
        severity: &[Src::Path("/severity")],
        is_error: &[ErrorRule::Always],
        ..ColumnRules::NONE
    },
};
