//! Types about data access: SQL, the query builder, transactions and connections, Eloquent,
//! cache, Redis, filesystem, encryption.
//!
//! Sources: the brief's shapes and the agent's collectors (AGENT-WIRE §4, §6; agent commit
//! b8af826). The four agent-only types (query_builder, encryption, observer,
//! advanced_eloquent) are read from the collectors' code.

use crate::catalog::columns::{ColumnRules, ErrorRule, Src};
use crate::catalog::ty::{opt, req, Forms, Ty};
use crate::catalog::{agent_sub, sub, NameKind, Origin, OtherKeys, SubName, SubtypeRule, TypeSpec};

/// A name only the agent's code has, that it never emits (AGENT-WIRE §4.1).
const fn agent_unsent(name: &'static str) -> SubName {
    SubName {
        name,
        origin: Origin::Agent,
        emitted: false,
    }
}

/// `request_id` for types recorded while a request (or job) is handled.
const IN_REQUEST: &[Src] = &[Src::TraceId];

/// A count keyed by a name (`{"select": 12, "insert": 1}`), `[]` when empty.
const COUNTS: Ty = Ty::Map(&Ty::Int);

/// `query`: one executed SQL statement (`QueryExecuted`).
pub(super) const QUERY: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "query",
    summary: "One executed SQL statement",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("sql")],
    subtype: SubtypeRule::None,
    fields: &[
        req("sql", Ty::Str),
        req(
            "bindings",
            Ty::AnyOf(&[Ty::List(&Ty::Any), Ty::Map(&Ty::Any)]),
        )
        .doc("positional values (a map for named bindings); dates as ISO strings or objects"),
        req("time", Ty::Num).doc("ms, rounded to 2 decimals (may print as an integer)"),
        req("connection", Ty::Str).doc("the connection name"),
        req("slow", Ty::Bool).alias(&["is_slow"]),
        opt("slow_threshold_ms", Ty::Num).doc("brief"),
        opt("file", Ty::Str)
            .doc("agent: \"path:line\" of the caller, usually null; brief: the path"),
        opt("line", Ty::Int).doc("brief"),
        opt(
            "explain",
            Ty::Obj(&[
                opt("rows", Ty::Int),
                opt("type", Ty::Str),
                opt("key", Ty::Str),
            ]),
        )
        .doc("brief: EXPLAIN of a slow query (the agent never sends it)"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/time")],
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `cache`: one cache operation. The agent puts the key in `name` and the operation in
/// `payload.action`; the brief puts the operation in `name`.
pub(super) const CACHE: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "cache",
    summary: "A cache hit, miss, write or forget",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the cache key (the brief: the operation)"),
    names: &[sub("hit"), sub("miss"), sub("write"), sub("forget")],
    subtype: SubtypeRule::Payload {
        keys: &["action"],
        values: &["hit", "miss", "write", "forget"],
    },
    fields: &[
        opt("action", Ty::Enum(&["hit", "miss", "write", "forget"]))
            .doc("the operation (agent); the brief carries it in name"),
        opt("key", Ty::Str).doc("brief: the key; the agent puts it in name"),
        req("store", Ty::Str).doc("the store name (agent: \"default\" when unnamed)"),
        opt("tags", Ty::List(&Ty::Str)),
        opt("ttl", Ty::Num).doc("seconds or null"),
        opt("expiration", Ty::Num).doc("agent: seconds or null (same as ttl)"),
        opt("size", Ty::Int).doc("agent: serialized bytes of the value, or null"),
        opt("value_preview", Ty::Str).doc("agent: first 100 bytes, or null"),
        opt("value_type", Ty::Str).doc("agent: PHP gettype() of the value, or null"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `model`: one Eloquent write. The agent puts the model class in `name` and the action in
/// `payload.action`; the brief puts the action in `name`.
pub(super) const MODEL: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "model",
    summary: "An Eloquent model created, updated, deleted or restored",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the model class (the brief: the action)"),
    names: &[
        sub("created"),
        sub("updated"),
        sub("deleted"),
        sub("restored"),
    ],
    subtype: SubtypeRule::Payload {
        keys: &["action"],
        values: &["created", "updated", "deleted", "restored"],
    },
    fields: &[
        opt(
            "action",
            Ty::Enum(&["created", "updated", "deleted", "restored"]),
        )
        .doc("agent; the brief carries it in name"),
        req("model", Ty::Str).doc("the model class"),
        req("key", Ty::Scalar)
            .nullable()
            .doc("the primary key: an int or a string (uuid), null without one"),
        opt("table", Ty::Str).doc("agent"),
        opt(
            "changes",
            Ty::AnyOf(&[
                Ty::List(&Ty::Str),
                Ty::Map(&Ty::Obj(&[opt("old", Ty::Any), opt("new", Ty::Any)])),
            ]),
        )
        .doc("updated: agent, the changed attribute names; brief, {attr: {old, new}}"),
        opt("original", Ty::Map(&Ty::Any)).doc("brief"),
    ],
    columns: ColumnRules {
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `redis`: one Redis command (only after `Redis::enableEvents()`).
pub(super) const REDIS: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "redis",
    summary: "One Redis command",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the full redis command line (\"GET user:42\")"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        req("command", Ty::Str).doc("as issued (agent: lowercase)"),
        req("parameters", Ty::List(&Ty::Any))
            .doc("strings over 100 bytes are cut to 100 bytes + \"...\""),
        req("duration_ms", Ty::Num).alias(&["time"]).doc("ms"),
        req("connection", Ty::Str),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms"), Src::Path("/time")],
        request_id: IN_REQUEST,
        ..ColumnRules::NONE
    },
};

/// `eloquent`: Eloquent use over one process (sent at its end).
pub(super) const ELOQUENT: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "eloquent",
    summary: "Eloquent use over one request or command: eager loads, models, events",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("usage_summary")],
    subtype: SubtypeRule::Name,
    fields: &[
        opt(
            "models",
            Ty::Map(&Ty::Obj(&[
                opt("created", Ty::Int),
                opt("updated", Ty::Int),
                opt("deleted", Ty::Int),
                opt("retrieved", Ty::Int),
            ])),
        )
        .doc("brief: counts per model class"),
        opt("eager_loads", Ty::List(&Ty::Str)).doc("brief"),
        opt("lazy_loads", Ty::List(&Ty::Str)).doc("brief"),
        opt("slow_queries", Ty::Int).doc("brief"),
        opt("eager_loads_count", Ty::Int).doc("agent"),
        opt("lazy_loads_count", Ty::Int).doc("agent; always 0"),
        opt("unique_models_used", Ty::Int).doc("agent"),
        opt(
            "models_list",
            Ty::AnyOf(&[Ty::List(&Ty::Str), Ty::Map(&Ty::Str)]),
        )
        .doc("agent: model basenames, a list or a sparse {\"0\":…,\"4\":…} object"),
        opt("model_events_fired", Ty::Int).doc("agent"),
        opt("events_by_type", COUNTS)
            .native(Forms::EMPTY_ARRAY)
            .doc("agent: event → count, [] when none"),
        opt(
            "relationships_loaded",
            Ty::List(&Ty::Obj(&[
                req("model", Ty::Str),
                req("relation", Ty::Str),
                opt("relation_type", Ty::Str),
                opt("relation_count", Ty::Int),
            ])),
        )
        .doc("agent: eager-loaded relations seen"),
        opt("pivot_accesses_count", Ty::Int).doc("agent"),
        opt("eager_to_lazy_ratio", Ty::Num).doc("agent; always null"),
    ],
    columns: ColumnRules::NONE,
};

/// One disk's usage (agent: nested per disk; brief: flat at the top level).
const DISK_USAGE: Ty = Ty::Obj(&[
    opt("free_bytes", Ty::Num),
    opt("total_bytes", Ty::Num),
    opt("used_bytes", Ty::Num),
    opt("usage_percentage", Ty::Num),
]);

/// The filesystem operations the agent and the brief know.
const FS_OPERATION: Ty = Ty::Enum(&["read", "write", "delete", "copy", "move"]);

/// `filesystem`: disk usage at process end, and batches of tracked operations (opt-in).
pub(super) const FILESYSTEM: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "filesystem",
    summary: "Disk usage, and tracked file reads, writes and deletes",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("disk_usage"), sub("operations")],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("disks", Ty::Map(&DISK_USAGE)).doc("agent, disk_usage: disk name → usage"),
        opt("disk", Ty::Str).doc("brief"),
        opt("operation", FS_OPERATION).doc("brief, one operation"),
        opt("path", Ty::Str).doc("brief"),
        opt("size", Ty::Int).doc("brief, bytes"),
        opt("duration_ms", Ty::Num).doc("brief"),
        opt("total_bytes", Ty::Num).doc("brief, disk_usage"),
        opt("used_bytes", Ty::Num).doc("brief, disk_usage"),
        opt("free_bytes", Ty::Num).doc("brief, disk_usage"),
        opt("operation_count", Ty::Int).doc("agent, operations"),
        opt("reads", Ty::Int).doc("agent, operations"),
        opt("writes", Ty::Int).doc("agent, operations"),
        opt("deletes", Ty::Int).doc("agent, operations"),
        opt("total_bytes_read", Ty::Int).doc("agent, operations"),
        opt("total_bytes_written", Ty::Int).doc("agent, operations"),
        opt("slow_operations", Ty::Int).doc("agent, operations"),
        opt(
            "operations",
            Ty::List(&Ty::Obj(&[
                req("type", FS_OPERATION),
                opt("path", Ty::Str).doc("relative to the app's base path"),
                opt("disk", Ty::Str),
                opt("size_bytes", Ty::Int).doc("read / write"),
                opt("duration_ms", Ty::Num).doc("read / write"),
                opt("is_slow", Ty::Bool).doc("read / write"),
            ])),
        )
        .doc("agent, operations: the first 20 operations"),
        opt("timestamp", Ty::Str).doc("agent: ISO-8601"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        ..ColumnRules::NONE
    },
};

/// `database`: transactions (rolled back, or committed slowly), connection metrics at every
/// process end, deadlocks reported by the app.
pub(super) const DATABASE: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "database",
    summary: "Database transactions, connection metrics and deadlocks",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[
        sub("transaction"),
        sub("connection_metrics"),
        sub("deadlock"),
    ],
    subtype: SubtypeRule::Name,
    fields: &[
        req("connection", Ty::Str)
            .when(&["transaction"])
            .doc("the connection name (agent: transaction only)"),
        req("status", Ty::Enum(&["committed", "rolled_back"])).when(&["transaction"]),
        req("duration_ms", Ty::Num).when(&["transaction"]),
        opt("is_slow", Ty::Bool).doc("transaction"),
        req("active_connections", Ty::Int).when(&["connection_metrics"]),
        req("open_transactions", Ty::Int).when(&["connection_metrics"]),
        opt(
            "pool",
            Ty::Obj(&[
                opt("total", Ty::Int).doc("pgsql"),
                opt("active", Ty::Int).doc("pgsql"),
                opt("idle", Ty::Int).doc("pgsql"),
                opt("connected", Ty::Int)
                    .native(Forms::NUMERIC_STRING)
                    .doc("agent, MySQL: a numeric string"),
                opt("max_connections", Ty::Int)
                    .native(Forms::NUMERIC_STRING)
                    .doc("agent, MySQL: a numeric string"),
            ]),
        )
        .native(Forms::EMPTY_ARRAY)
        .doc("connection_metrics: pgsql {total, active, idle} (ints), MySQL {connected, max_connections} (strings), [] when the pool cannot be read, absent otherwise"),
        opt(
            "long_running_transactions",
            Ty::List(&Ty::Obj(&[
                req("connection", Ty::Str),
                req("duration_ms", Ty::Num),
            ])),
        )
        .doc("agent, connection_metrics: transactions open over 30 s"),
        req("message", Ty::Str).when(&["deadlock"]),
        req("exception", Ty::Str)
            .when(&["deadlock"])
            .doc("the exception class"),
        opt("severity", Ty::Enum(&["info", "warning", "critical"]))
            .doc("transaction: warning (rolled back) or info (slow); deadlock: critical"),
        opt("timestamp", Ty::Str).doc("agent: ISO-8601"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        user_id: &[],
        status_code: &[],
        severity: &[Src::Path("/severity")],
        request_id: &[],
        job_id: &[],
        is_error: &[
            ErrorRule::SubtypeIn(&["deadlock"]),
            ErrorRule::ValueIn("/status", &["rolled_back"]),
        ],
    },
};

/// `query_builder`: SQL statistics of one process, and chunked iterations (agent only).
pub(super) const QUERY_BUILDER: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "query_builder",
    summary: "SQL statistics of one request or command (kinds, tables, joins), chunk runs",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[agent_sub("summary"), agent_sub("chunk_operation")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("total_queries", Ty::Int).when(&["summary"]),
        req("query_types", COUNTS)
            .when(&["summary"])
            .doc("select, insert, update, delete, other → count"),
        opt("query_type_percentages", Ty::Map(&Ty::Num)).doc("summary"),
        opt("tables_accessed", COUNTS)
            .native(Forms::EMPTY_ARRAY)
            .doc("summary: table → count"),
        opt("top_tables", COUNTS)
            .native(Forms::EMPTY_ARRAY)
            .doc("summary: the ten most used tables"),
        opt("unique_tables", Ty::Int).doc("summary"),
        opt("join_stats", COUNTS)
            .native(Forms::EMPTY_ARRAY)
            .doc("summary: inner, left, right, cross, simple → count; [] when none"),
        opt("total_joins", Ty::Int).doc("summary"),
        opt("subquery_count", Ty::Int).doc("summary"),
        opt("raw_query_count", Ty::Int).doc("summary"),
        opt("chunk_operations", Ty::Int).doc("summary"),
        opt("read_write_ratio", Ty::Num).doc("summary: selects per write, null without both"),
        req("chunk_size", Ty::Int).when(&["chunk_operation"]),
        req("total_processed", Ty::Int).when(&["chunk_operation"]),
        opt("chunk_number", Ty::Int).doc("chunk_operation"),
        opt("timestamp", Ty::Str).doc("ISO-8601"),
    ],
    columns: ColumnRules::NONE,
};

/// `encryption`: encryption and decryption failures (opt-in, manual helpers). The summary
/// exists in the code but is never sent (AGENT-WIRE §4.1).
pub(super) const ENCRYPTION: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "encryption",
    summary: "Encryption and decryption failures (and a never-sent usage summary)",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[
        agent_sub("encrypt_failed"),
        agent_sub("decrypt_failed"),
        agent_unsent("summary"),
    ],
    subtype: SubtypeRule::Name,
    fields: &[
        req("exception", Ty::Str)
            .when(&["encrypt_failed", "decrypt_failed"])
            .doc("the exception class"),
        req("message", Ty::Str).when(&["encrypt_failed", "decrypt_failed"]),
        opt("potential_tampering", Ty::Bool).doc("decrypt_failed: the MAC was invalid"),
        opt("severity", Ty::Enum(&["warning", "error"]))
            .doc("encrypt_failed: error; decrypt_failed: warning"),
        opt("encrypt_count", Ty::Int).doc("summary"),
        opt("decrypt_count", Ty::Int).doc("summary"),
        opt("failed_decrypts", Ty::Int).doc("summary"),
        opt("total_operations", Ty::Int).doc("summary"),
        opt("avg_encrypt_time_ms", Ty::Num).doc("summary"),
        opt("avg_decrypt_time_ms", Ty::Num).doc("summary"),
        opt(
            "operations",
            Ty::List(&Ty::Obj(&[
                req("type", Ty::Enum(&["encrypt", "decrypt"])),
                opt("identifier", Ty::Str),
                opt("data_size", Ty::Int),
                opt("duration_ms", Ty::Num),
                opt("timestamp", Ty::Num).doc("epoch seconds"),
            ])),
        )
        .doc("summary, detailed mode"),
        opt("timestamp", Ty::Str).doc("ISO-8601"),
    ],
    columns: ColumnRules {
        duration_ms: &[],
        user_id: &[],
        status_code: &[],
        severity: &[Src::Path("/severity")],
        request_id: &[],
        job_id: &[],
        is_error: &[ErrorRule::SubtypeIn(&["encrypt_failed", "decrypt_failed"])],
    },
};

/// `observer`: Eloquent observer activity (opt-in summary; manual timing and failures).
pub(super) const OBSERVER: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "observer",
    summary: "Eloquent observer calls, slow observers and observer failures",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[
        agent_sub("summary"),
        agent_sub("slow_observer"),
        agent_sub("observer_failed"),
    ],
    subtype: SubtypeRule::Name,
    fields: &[
        req("total_calls", Ty::Int).when(&["summary"]),
        opt("unique_model_events", Ty::Int).doc("summary"),
        opt("registered_observers", Ty::List(&Ty::Str))
            .doc("summary: observer classes, [] when none"),
        opt("calls_by_model", Ty::Map(&COUNTS)).doc("summary: model → event → count"),
        opt("calls_by_event", COUNTS).doc("summary: event → count"),
        opt(
            "timing_samples",
            Ty::List(&Ty::Obj(&[
                opt("observer", Ty::Str),
                opt("method", Ty::Str),
                opt("duration_ms", Ty::Num),
            ])),
        )
        .doc("summary: up to 20 timed observer calls"),
        req("observer", Ty::Str)
            .when(&["slow_observer", "observer_failed"])
            .doc("the observer class"),
        req("method", Ty::Str)
            .when(&["slow_observer", "observer_failed"])
            .doc("created, updated …"),
        req("duration_ms", Ty::Num).when(&["slow_observer"]),
        req("exception", Ty::Str)
            .when(&["observer_failed"])
            .doc("the exception class"),
        req("message", Ty::Str).when(&["observer_failed"]),
        opt("severity", Ty::Str).doc("observer_failed: error"),
        opt("timestamp", Ty::Str).doc("ISO-8601"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        user_id: &[],
        status_code: &[],
        severity: &[Src::Path("/severity")],
        request_id: &[],
        job_id: &[],
        is_error: &[ErrorRule::SubtypeIn(&["observer_failed"])],
    },
};

/// `advanced_eloquent`: scopes, soft deletes and mass assignment over one process (opt-in).
pub(super) const ADVANCED_ELOQUENT: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "advanced_eloquent",
    summary: "Eloquent scopes, soft deletes, mass assignment and casts over one process",
    origin: Origin::Agent,
    name_kind: NameKind::Fixed,
    names: &[agent_sub("summary")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("scope_usage", COUNTS)
            .native(Forms::EMPTY_ARRAY)
            .doc("scope guessed from the SQL → count, [] when none"),
        req("soft_delete_operations", COUNTS)
            .native(Forms::EMPTY_ARRAY)
            .doc("model, or \"Model:restored\" / \"Model:forceDeleted\" → count"),
        req(
            "mass_assignments",
            Ty::Map(&Ty::Obj(&[
                req("model", Ty::Str),
                opt("fillable_count", Ty::Int),
                opt("guarded_count", Ty::Int),
                opt("is_guarded_all", Ty::Bool),
                opt("is_unguarded", Ty::Bool),
                opt(
                    "operations",
                    Ty::Obj(&[opt("create", Ty::Int), opt("update", Ty::Int)]),
                ),
            ])),
        )
        .native(Forms::EMPTY_ARRAY)
        .doc("model basename → fillable/guarded facts and create/update counts"),
        opt("accessor_calls", Ty::Int),
        opt("mutator_calls", Ty::Int),
        opt("cast_types_used", Ty::List(&Ty::Str)),
        opt("factory_creations", Ty::Int),
        opt("timestamp", Ty::Str).doc("ISO-8601"),
    ],
    columns: ColumnRules::NONE,
};
