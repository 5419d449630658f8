//! Types about failures: exceptions (unhandled and handled), logs, detected issues.

use crate::catalog::columns::{ColumnRules, ErrorRule, Src, ERROR_LEVELS, ERROR_SEVERITIES};
use crate::catalog::ty::{opt, req, Field, Forms, Ty};
use crate::catalog::{agent_sub, sub, NameKind, Origin, OtherKeys, SubtypeRule, TypeSpec};

/// A stack frame: the agent's `{file ('' for internal frames), line (0 when unknown), function,
/// class ('' when none), code_snippet ({line: code} | null)}` (exception), its
/// `{file ('unknown'), line, function, class (null when none)}` (handled_exception) and the
/// brief's `{file, line, function, class?, type?}`.
const FRAME: Ty = Ty::Obj(&[
    req("file", Ty::Str).doc("'' (exception) or 'unknown' (handled) for internal frames"),
    req("line", Ty::Int).doc("0 when unknown"),
    req("function", Ty::Str),
    opt("class", Ty::Str).doc("'' (exception) or null (handled) when none"),
    opt("type", Ty::Str).doc("brief: -> or ::"),
    opt(
        "code_snippet",
        Ty::AnyOf(&[Ty::Map(&Ty::Str), Ty::List(&Ty::Str)]),
    )
    .doc("agent: {line: code}, keyed by line number, or null"),
]);

/// A breadcrumb: the agent's `{timestamp, category, message, data ({} | []), level}`, the
/// brief's `{type, message, timestamp, data?}`.
const BREADCRUMB: Ty = Ty::Obj(&[
    req("timestamp", Ty::Num).doc("unix seconds with fraction"),
    req("category", Ty::Str).alias(&["type"]),
    req("message", Ty::Str),
    opt("data", Ty::AnyOf(&[Ty::Map(&Ty::Any), Ty::List(&Ty::Any)])).doc("[] when empty"),
    opt("level", Ty::Str).doc("agent: debug, info, warning, error"),
]);

/// Lines of source around a line, keyed by line number (`{"77": "…", "78": "…"}`).
const SNIPPET: Ty = Ty::AnyOf(&[Ty::Map(&Ty::Str), Ty::List(&Ty::Str)]);

/// The brief's `previous` exception.
const PREVIOUS: Ty = Ty::Obj(&[opt("class", Ty::Str), opt("message", Ty::Str)]);

const EXCEPTION_FIELDS: &[Field] = &[
    req("message", Ty::Str).doc("PII-scrubbed by the agent (emails, IPs, long numbers)"),
    opt("exception_class", Ty::Str).doc("brief; the agent sends the class as the event name"),
    req("file", Ty::Str),
    req("line", Ty::Int),
    req("code", Ty::Scalar).doc("an integer, or a SQLSTATE string (\"23000\") for QueryException"),
    req("trace", Ty::List(&FRAME)).doc("agent: up to 30 frames, each with a 21-line snippet"),
    opt("source", SNIPPET)
        .alias(&["source_code"])
        .doc("lines around the throw keyed by line number; null when the file is unreadable"),
    opt("fingerprint", Ty::Str).doc(
        "agent: md5 of class, normalised message and file name; computed by the server when absent",
    ),
    req("breadcrumbs", Ty::List(&BREADCRUMB)).doc("[] when none"),
    opt("url", Ty::Str).doc("brief"),
    opt("method", Ty::Str).doc("brief"),
    opt("user_id", Ty::Scalar).doc("brief"),
    opt("severity", Ty::Str).doc("brief: error | warning | info | critical"),
    opt("handled", Ty::Bool).doc("brief"),
    opt("previous", PREVIOUS).doc("brief"),
];

/// `exception`: an unhandled or `report()`ed exception (ExceptionCollector, on
/// `MessageLogged` with an exception in its context).
pub(super) const EXCEPTION: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "exception",
    summary:
        "An unhandled (or report()ed) exception, with its trace, source snippet and breadcrumbs",
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

/// `handled_exception`: an exception the app caught and reported with the agent's
/// `reportHandledException()` helper (HandledExceptionCollector).
pub(super) const HANDLED_EXCEPTION: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "handled_exception",
    summary: "An exception caught by the app and reported with reportHandledException()",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the exception class"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        req("message", Ty::Str).doc("not scrubbed by the agent"),
        req("exception", Ty::Str).alias(&["exception_class"]),
        req("file", Ty::Str),
        req("line", Ty::Int),
        req("code", Ty::Scalar)
            .nullable()
            .doc("an integer or a SQLSTATE string; the brief allows null"),
        req("trace", Ty::List(&FRAME)).doc("agent: up to 10 frames, without snippets"),
        opt("source", SNIPPET).alias(&["source_code"]).doc("brief"),
        opt("fingerprint", Ty::Str).doc("brief; computed by the server when absent"),
        req("severity", Ty::Str).doc(
            "free text: agent critical (PDO/Redis/OOM), high (ErrorException), medium, or the \
             caller's context.severity; brief error | warning | info | critical",
        ),
        req("handled", Ty::Bool).doc("always true"),
        opt(
            "context",
            Ty::AnyOf(&[Ty::Map(&Ty::Any), Ty::List(&Ty::Any)]),
        )
        .doc("the caller's array; [] when empty"),
        opt("url", Ty::Str).doc("brief"),
        opt("method", Ty::Str).doc("brief"),
        opt("user_id", Ty::Scalar).doc("brief"),
        opt("previous", PREVIOUS).doc("brief"),
        opt("breadcrumbs", Ty::List(&BREADCRUMB)).doc("brief"),
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
    other_keys: OtherKeys::Never,
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
        req("level", Ty::EnumCi(LEVELS))
            .native(Forms::OTHER_CASE)
            .doc("lowercase (LogCollector) or UPPERCASE (handler)"),
        req("message", Ty::Str).when(LEVELS),
        opt(
            "context",
            Ty::AnyOf(&[Ty::Map(&Ty::Any), Ty::List(&Ty::Any)]),
        )
        .doc("[] when empty; exception objects arrive as []"),
        opt("channel", Ty::Str),
        opt("level_value", Ty::Int).doc("handler shape: Monolog's numeric level"),
        opt("datetime", Ty::Str).doc("handler shape: \"Y-m-d H:i:s.u\", no offset"),
        opt("timestamp", Ty::Num).doc("handler shape: unix seconds (an integer)"),
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
            .doc("pattern_detected: md5 of the level and normalised message"),
        req("occurrences", Ty::Int).when(&["pattern_detected"]),
        req("window_seconds", Ty::Int)
            .when(&["pattern_detected"])
            .doc("seconds"),
        req("sample_message", Ty::Str).when(&["pattern_detected"]),
        req("severity", Ty::Str)
            .when(&["pattern_detected"])
            .doc("pattern_detected: high"),
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
    other_keys: OtherKeys::Never,
    name: "issue",
    summary: "A detected problem: the same SQL run 5/10/20/50 times in one request (N+1)",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("n_plus_one")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("sql", Ty::Str).alias(&["query"]),
        req("count", Ty::Int).doc("how many times the SQL ran so far (5, 10, 20 or 50)"),
        opt("threshold", Ty::Int).doc("brief"),
        req("location", Ty::Str)
            .nullable()
            .doc("\"file:line\" of the caller; usually null (the agent looks 10 frames deep)"),
        opt("snippet", SNIPPET).doc("agent: lines around the caller keyed by line number, or null"),
        opt("suggestion", Ty::Str).doc("agent"),
        opt("severity", Ty::Str).doc("brief: low | medium | high"),
    ],
    columns: ColumnRules {
        severity: &[Src::Path("/severity")],
        ..ColumnRules::NONE
    },
};

/// `potential_handled_error`: the last PHP error (E_ERROR, E_WARNING or E_NOTICE), seen by the
/// shutdown handler the app installs with `enableAutoDetection()`.
pub(super) const POTENTIAL_HANDLED_ERROR: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "potential_handled_error",
    summary: "The last PHP error seen at shutdown (auto-detection enabled by the app)",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[agent_sub("PHP Error")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("message", Ty::Str),
        req("file", Ty::Str),
        req("line", Ty::Int),
        req("type", Ty::Int).doc("the PHP error constant: 1 E_ERROR, 2 E_WARNING, 8 E_NOTICE"),
        req("possibly_handled", Ty::Bool).doc("always true"),
    ],
    columns: ColumnRules {
        is_error: &[ErrorRule::Always],
        ..ColumnRules::NONE
    },
};
