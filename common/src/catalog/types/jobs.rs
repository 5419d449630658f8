//! Types about background work: queue jobs, artisan commands, scheduled tasks, mail,
//! notifications, framework events, health, tests and queue metrics.

use crate::catalog::columns::{ColumnRules, ErrorRule, Src};
use crate::catalog::ty::{opt, req, Ty};
use crate::catalog::{agent_sub, sub, NameKind, Origin, SubtypeRule, TypeSpec};

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

/// `command`: an artisan command starting or finishing (CommandCollector). The agent's
/// sub-type is `payload.status` = starting or `payload.event` = finished (the key changes).
pub(super) const COMMAND: TypeSpec = TypeSpec {
    name: "command",
    summary: "An artisan command starting or finishing",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the artisan command (the brief: starting or finished)"),
    names: &[sub("starting"), sub("finished")],
    subtype: SubtypeRule::Payload {
        keys: &["status", "event"],
        values: &["starting", "finished"],
    },
    fields: &[
        opt("status", Ty::Str).doc("agent: \"starting\""),
        opt("event", Ty::Str).doc("agent: \"finished\""),
        opt("exit_code", Ty::Int),
        opt("command", Ty::Str).doc("brief"),
        opt("arguments", Ty::Any).doc("brief"),
        opt("options", Ty::Any).doc("brief"),
        opt("duration_ms", Ty::Num),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        is_error: &[ErrorRule::AtLeast("/exit_code", 1.0)],
        ..ColumnRules::NONE
    },
};

/// `scheduled_task`: a scheduler task starting, finishing, failing or skipped
/// (ScheduledTaskCollector; the sub-type is `payload.event`).
pub(super) const SCHEDULED_TASK: TypeSpec = TypeSpec {
    name: "scheduled_task",
    summary: "A scheduled task starting, finishing, failing or being skipped",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the task's command string, or `unknown`"),
    names: &[
        sub("starting"),
        sub("finished"),
        sub("failed"),
        sub("skipped"),
    ],
    subtype: SubtypeRule::Payload {
        keys: &["event"],
        values: &["starting", "finished", "failed", "skipped"],
    },
    fields: &[
        opt("event", Ty::Str),
        opt("expression", Ty::Str).doc("cron expression"),
        opt("timezone", Ty::Any).doc("a string, or an object for a DateTimeZone"),
        opt("user", Ty::Any),
        opt("description", Ty::Str),
        opt("frequency_seconds", Ty::Int),
        opt("runtime", Ty::Num).doc("SECONDS (agent); null when failed"),
        opt("exit_code", Ty::Int),
        opt("exception", Ty::Str).doc("failed: the message"),
        opt("trace", Ty::Any),
        opt("task", Ty::Str).doc("brief"),
        opt("without_overlapping", Ty::Bool).doc("brief"),
        opt("run_in_background", Ty::Bool).doc("brief"),
        opt("duration_ms", Ty::Num).doc("brief"),
        opt("output", Ty::Str).doc("brief"),
        opt("skip_reason", Ty::Str).doc("brief"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms"), Src::Scaled("/runtime", 1000.0)],
        is_error: &[
            ErrorRule::SubtypeIn(&["failed"]),
            ErrorRule::AtLeast("/exit_code", 1.0),
        ],
        ..ColumnRules::NONE
    },
};

/// `mail`: a message sent (MailCollector, `MessageSent`).
pub(super) const MAIL: TypeSpec = TypeSpec {
    name: "mail",
    summary: "An email sent",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the subject, or `No Subject`"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        opt("subject", Ty::Str),
        opt("to", Ty::List(&Ty::Any)).doc("plain address lists (not scrubbed)"),
        opt("cc", Ty::List(&Ty::Any)),
        opt("bcc", Ty::List(&Ty::Any)),
        opt("from", Ty::List(&Ty::Any)),
        opt("has_attachments", Ty::Bool),
        opt("notification", Ty::Str),
        opt("mailable", Ty::Str).doc("brief"),
        opt("queued", Ty::Bool).doc("brief"),
    ],
    columns: ColumnRules::NONE,
};

/// `notification`: a notification sent or failed (NotificationCollector; the sub-type is
/// `payload.status`).
pub(super) const NOTIFICATION: TypeSpec = TypeSpec {
    name: "notification",
    summary: "A notification sent (or failed) on a channel",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the notification class (the brief: sent or failed)"),
    names: &[sub("sent"), sub("failed")],
    subtype: SubtypeRule::Payload {
        keys: &["status"],
        values: &["sent", "failed"],
    },
    fields: &[
        opt("status", Ty::Str),
        opt("notification", Ty::Str).doc("brief; the agent sends it as the name"),
        opt("channel", Ty::Str),
        opt(
            "notifiable",
            Ty::Obj(&[opt("type", Ty::Str), opt("id", Ty::Scalar)]),
        )
        .doc("agent; id absent for anonymous notifiables"),
        opt("notifiable_type", Ty::Str).doc("brief"),
        opt("notifiable_id", Ty::Scalar).doc("brief"),
        opt("response", Ty::Any),
        opt("error", Ty::Str).alias(&["exception"]),
        opt("duration_ms", Ty::Num),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        is_error: &[ErrorRule::SubtypeIn(&["failed"])],
        ..ColumnRules::NONE
    },
};

/// `event`: a Laravel event dispatched (EventCollector, wildcard listener). The agent sends
/// `{"arg_0": …}` (object arguments as their class, scalars as strings, arrays skipped).
pub(super) const EVENT: TypeSpec = TypeSpec {
    name: "event",
    summary: "A Laravel event dispatched (framework events included)",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the event name or class"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        opt("event_class", Ty::Str).doc("brief"),
        opt("listeners", Ty::List(&Ty::Any)).doc("brief"),
        opt("broadcast", Ty::Bool).doc("brief"),
        opt("payload_keys", Ty::List(&Ty::Any)).doc("brief"),
    ],
    columns: ColumnRules::NONE,
};

/// `health`: scheduler and queue health, stuck jobs, heartbeats (HealthCollector and
/// `BaddyBugs::heartbeat()` / `reportHealth()`; two heartbeat shapes).
pub(super) const HEALTH: TypeSpec = TypeSpec {
    name: "health",
    summary: "System health: scheduler runs, stuck jobs, per-queue metrics, heartbeats",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[
        sub("scheduled_task_started"),
        sub("scheduled_task_finished"),
        sub("scheduled_task_failed"),
        sub("stuck_job_detected"),
        sub("queue_metrics"),
        sub("heartbeat"),
        agent_sub("component_health"),
    ],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("task_name", Ty::Str),
        opt("command", Ty::Str),
        opt("expression", Ty::Str),
        opt("duration_ms", Ty::Num),
        opt("exit_code", Ty::Int),
        opt("success", Ty::Bool),
        opt("exception", Ty::Str),
        opt("severity", Ty::Str),
        opt("job_id", Ty::Scalar),
        opt("job_name", Ty::Str),
        opt("queue", Ty::Str),
        opt("duration_seconds", Ty::Num),
        opt("threshold_seconds", Ty::Num),
        opt("total_jobs", Ty::Int),
        opt("succeeded", Ty::Int),
        opt("failed", Ty::Int),
        opt("success_rate", Ty::Num),
        opt("failure_rate", Ty::Num),
        opt("queues", Ty::Map(&Ty::Any)).doc("brief: {queue: {pending, processing, failed}}"),
        opt("component", Ty::Str),
        opt("timestamp", Ty::Scalar),
        opt("uptime", Ty::Num),
        opt("memory_usage", Ty::Num),
        opt("memory_usage_mb", Ty::Num),
        opt("peak_memory", Ty::Num),
        opt("peak_memory_mb", Ty::Num),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        severity: &[Src::Path("/severity")],
        job_id: &[Src::Path("/job_id")],
        is_error: &[ErrorRule::SubtypeIn(&[
            "scheduled_task_failed",
            "stuck_job_detected",
        ])],
        ..ColumnRules::NONE
    },
};

/// `test`: a PHPUnit / Pest test starting or finishing (TestCollector, app-driven).
pub(super) const TEST: TypeSpec = TypeSpec {
    name: "test",
    summary: "A PHPUnit or Pest test starting or finishing",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("started"), sub("finished")],
    subtype: SubtypeRule::Name,
    fields: &[
        opt("test_name", Ty::Str).doc("agent: \"Class::method\""),
        opt("test_class", Ty::Str).doc("brief"),
        opt("status", Ty::Str).doc("whatever string the caller passed (brief: passed|failed|…)"),
        opt("duration_ms", Ty::Num),
        opt("exception", Ty::Any).doc("agent: null or {message, trace}; brief: a string"),
        opt("assertions", Ty::Int),
        opt("group", Ty::Any),
        opt("git_sha", Ty::Str),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        is_error: &[ErrorRule::ValueIn("/status", &["failed", "error"])],
        ..ColumnRules::NONE
    },
};

/// `queue_metrics`: a snapshot of the queues (QueueMetricsCollector, every 10th process).
pub(super) const QUEUE_METRICS: TypeSpec = TypeSpec {
    name: "queue_metrics",
    summary: "A snapshot of queue sizes",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("snapshot")],
    subtype: SubtypeRule::None,
    fields: &[
        opt("queues", Ty::Map(&Ty::Any))
            .doc("agent: {name, pending_count, processing_count, oldest_job_age_seconds}"),
        opt("total_pending", Ty::Int),
        opt("total_failed", Ty::Int),
        opt("timestamp", Ty::Scalar),
        opt("redis_memory_usage", Ty::Any),
        opt("total_workers", Ty::Int).doc("brief"),
        opt("jobs_per_minute", Ty::Num).doc("brief"),
        opt("avg_wait_time_ms", Ty::Num).doc("brief"),
    ],
    columns: ColumnRules::NONE,
};
