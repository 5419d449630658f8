//! Types about background work: queue jobs, artisan commands, scheduled tasks, mail,
//! notifications, framework events, health, tests and queue metrics.

use crate::catalog::columns::{ColumnRules, ErrorRule, Src};
use crate::catalog::ty::{opt, req, Ty};
use crate::catalog::{sub, NameKind, Origin, SubtypeRule, TypeSpec};

use super::placeholder;

/// `job`: a queue job processing, processed or failed (JobCollector). The key set differs per
/// status (AGENT-WIRE §6): `job_id` is absent while processing.
pub(super) const JOB_SPEC: TypeSpec = TypeSpec {
    name: "job",
    summary: "A queue job starting, finishing or failing",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the job class"),
    names: &[sub("processing"), sub("processed"), sub("failed")],
    subtype: SubtypeRule::Payload {
        keys: &["status"],
        values: &["processing", "processed", "failed"],
    },
    fields: &[
        req("status", Ty::Enum(&["processing", "processed", "failed"])),
        req("job_class", Ty::Str),
        opt("job_id", Ty::Scalar)
            .when(&["processed", "failed"])
            .doc("a string (redis/sqs/uuid), an integer (database driver) or \"\" (sync)"),
        opt("queue", Ty::Str),
        opt("connection", Ty::Str),
        opt("attempts", Ty::Int),
        opt("max_tries", Ty::Int).doc("brief"),
        opt("wait_time_ms", Ty::Num).doc("only under Horizon"),
        opt("duration_ms", Ty::Num),
        opt("payload", Ty::Any).doc("Laravel's job payload (commandName, serialized command)"),
        opt("exception", Ty::Str).doc("failed: the message (agent) / the class (brief)"),
        opt("exception_class", Ty::Str),
        opt("exception_message", Ty::Str),
        opt("trace", Ty::Any).doc("failed: the trace as a string"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        job_id: &[Src::Path("/job_id")],
        is_error: &[ErrorRule::SubtypeIn(&["failed"])],
        ..ColumnRules::NONE
    },
};

pub(super) const JOB: TypeSpec = JOB_SPEC;
pub(super) const COMMAND: TypeSpec = placeholder("command");
pub(super) const SCHEDULED_TASK: TypeSpec = placeholder("scheduled_task");
pub(super) const MAIL: TypeSpec = placeholder("mail");
pub(super) const NOTIFICATION: TypeSpec = placeholder("notification");
pub(super) const EVENT: TypeSpec = placeholder("event");
pub(super) const HEALTH: TypeSpec = placeholder("health");
pub(super) const TEST: TypeSpec = placeholder("test");
pub(super) const QUEUE_METRICS: TypeSpec = placeholder("queue_metrics");
