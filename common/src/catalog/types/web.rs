//! Types recorded around web requests: the request itself, outgoing HTTP, routing, forms,
//! uploads, sessions, security, auth, broadcasting, Livewire.

use crate::catalog::columns::{ColumnRules, ErrorRule, Src};
use crate::catalog::ty::{opt, req, Ty};
use crate::catalog::{NameKind, Origin, SubtypeRule, TypeSpec};

use super::placeholder;

/// `request`: one handled HTTP request (RequestCollector, at `RequestHandled`).
pub(super) const REQUEST: TypeSpec = TypeSpec {
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
        opt("url", Ty::Str)
            .alias(&["full_url"])
            .doc("full URL without the query string"),
        req("status", Ty::Int)
            .alias(&["status_code", "response_status"])
            .doc("response status"),
        req("duration_ms", Ty::Num),
        opt("response_status", Ty::Int),
        opt("controller", Ty::Str).doc("\"Class@method\", \"Closure\" or null"),
        opt("action", Ty::Str).doc("brief only"),
        opt("route", Ty::Str).alias(&["route_name"]),
        opt("ip", Ty::Str),
        opt("user_agent", Ty::Str),
        opt("referer", Ty::Str),
        opt(
            "user",
            Ty::Obj(&[req("id", Ty::Scalar), opt("email", Ty::Str)]),
        )
        .doc("null or {id, email}; the brief sends user_id / user_email instead"),
        opt("user_id", Ty::Scalar),
        opt("user_email", Ty::Str),
        opt(
            "headers",
            Ty::Map(&Ty::AnyOf(&[Ty::Str, Ty::List(&Ty::Str)])),
        )
        .doc("agent: {name: [values]}; brief: {name: value}"),
        opt(
            "inputs",
            Ty::AnyOf(&[Ty::Map(&Ty::Any), Ty::List(&Ty::Any)]),
        )
        .doc("redacted input; [] when empty, a list for a JSON array body"),
        opt("memory_usage", Ty::Num),
        opt("memory_peak", Ty::Num),
        opt("memory_used", Ty::Num),
        opt("response_size", Ty::Int),
        opt("content_length", Ty::Int).doc("an integer, or a numeric string from the header"),
        opt("server", Ty::Any),
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
        request_id: &[Src::TraceId],
        job_id: &[],
        is_error: &[
            ErrorRule::AtLeast("/status", 500.0),
            ErrorRule::AtLeast("/status_code", 500.0),
        ],
    },
};

pub(super) const HTTP_CLIENT: TypeSpec = placeholder("http_client");
pub(super) const GATE: TypeSpec = placeholder("gate");
pub(super) const LIVEWIRE_COMPONENT: TypeSpec = placeholder("livewire_component");
pub(super) const LIVEWIRE_PERFORMANCE: TypeSpec = placeholder("livewire_performance");
pub(super) const LIVEWIRE_ERROR: TypeSpec = placeholder("livewire_error");
pub(super) const SECURITY: TypeSpec = placeholder("security");
pub(super) const SECURITY_THREAT: TypeSpec = placeholder("security_threat");
pub(super) const VIEW: TypeSpec = placeholder("view");
pub(super) const MIDDLEWARE: TypeSpec = placeholder("middleware");
pub(super) const FEATURE: TypeSpec = placeholder("feature");
pub(super) const FORM: TypeSpec = placeholder("form");
pub(super) const FILE_UPLOAD: TypeSpec = placeholder("file_upload");
pub(super) const AUTH: TypeSpec = placeholder("auth");
pub(super) const BROADCAST: TypeSpec = placeholder("broadcast");
pub(super) const RATE_LIMIT: TypeSpec = placeholder("rate_limit");
pub(super) const SESSION: TypeSpec = placeholder("session");
pub(super) const TRANSLATION: TypeSpec = placeholder("translation");
pub(super) const ROUTE: TypeSpec = placeholder("route");
pub(super) const VALIDATION: TypeSpec = placeholder("validation");
