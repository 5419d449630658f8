//! Types about background work: queue jobs, artisan commands, scheduled tasks, mail,
//! notifications, framework events, health, tests and queue metrics.

use crate::catalog::columns::{ColumnRules, ErrorRule, Src};
use crate::catalog::ty::{opt, req, Ty};
use crate::catalog::{agent_sub, sub, NameKind, Origin, OtherKeys, SubtypeRule, TypeSpec};

/// The statuses of a job, in `payload.status`.
const JOB_STATUSES: &[&str] = &["processing", "processed", "failed"];

/// `job`: a queue job processing, processed or failed (JobCollector). The key set differs per
/// status (AGENT-WIRE §6): `processing` has queue, connection, attempts, wait_time_ms and the
/// job's payload but no `job_id`; `processed` and `failed` have `job_id` and `duration_ms`.
pub(super) const JOB: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "job",
    summary: "A queue job starting, finishing or failing",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the job class"),
    names: &[sub("processing"), sub("processed"), sub("failed")],
    subtype: SubtypeRule::Payload {
        keys: &["status"],
        values: JOB_STATUSES,
    },
    fields: &[
        req("status", Ty::Enum(JOB_STATUSES)),
        req("job_class", Ty::Str),
        opt("job_id", Ty::Scalar)
            .when(&["processed", "failed"])
            .nullable()
            .doc("a string (redis/sqs/uuid), an integer (database driver) or \"\" (sync)"),
        opt("queue", Ty::Str).when(&["processing"]),
        opt("connection", Ty::Str).when(&["processing"]),
        opt("attempts", Ty::Int).when(&["processing"]),
        opt("max_tries", Ty::Int).doc("brief"),
        opt("wait_time_ms", Ty::Num).doc("ms in the queue; null unless the payload has pushedAt"),
        opt("duration_ms", Ty::Num).doc("processed/failed; 0 when the start was not seen"),
        opt("payload", Ty::Any).doc("processing: Laravel's job data {commandName, command}"),
        opt("exception", Ty::Str).doc("failed: the message (agent) / the class (brief)"),
        opt("exception_class", Ty::Str),
        opt("exception_message", Ty::Str),
        opt("trace", Ty::Str).doc("failed: getTraceAsString()"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        job_id: &[Src::Path("/job_id")],
        is_error: &[ErrorRule::SubtypeIn(&["failed"])],
        ..ColumnRules::NONE
    },
};

/// `command`: an artisan command starting or finishing (CommandCollector). The agent's
/// sub-type is `payload.status` = starting or `payload.event` = finished (the key changes);
/// the brief puts it in the name.
pub(super) const COMMAND: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "command",
    summary: "An artisan command starting or finishing",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the artisan command line (the brief: starting or finished)"),
    names: &[sub("starting"), sub("finished")],
    subtype: SubtypeRule::Payload {
        keys: &["status", "event"],
        values: &["starting", "finished"],
    },
    fields: &[
        opt("status", Ty::Str).doc("agent, starting: \"starting\""),
        opt("event", Ty::Str).doc("agent, finished: \"finished\""),
        opt("exit_code", Ty::Int).doc("finished"),
        opt("command", Ty::Str).doc("brief"),
        opt("arguments", Ty::Any).doc("brief"),
        opt("options", Ty::Any).doc("brief"),
        opt("duration_ms", Ty::Num).doc("brief"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        is_error: &[ErrorRule::AtLeast("/exit_code", 1.0)],
        ..ColumnRules::NONE
    },
};

/// `scheduled_task`: a scheduler task starting, finishing, failing or skipped
/// (ScheduledTaskCollector; the sub-type is `payload.event`, the brief's is the name).
pub(super) const SCHEDULED_TASK: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "scheduled_task",
    summary: "A scheduled task starting, finishing, failing or being skipped",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the task's shell command string, or `unknown`"),
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
        opt("event", Ty::Str).doc("agent: starting, finished, failed or skipped"),
        opt("expression", Ty::Str).doc("cron expression (starting, skipped)"),
        opt("timezone", Ty::Any).doc("a string, or an object ([] on the wire) for a DateTimeZone"),
        opt("user", Ty::Str),
        opt("description", Ty::Str),
        opt("frequency_seconds", Ty::Int).doc("parsed from the expression; null when unknown"),
        opt("runtime", Ty::Num).doc("SECONDS (agent, finished); null when failed"),
        opt("exit_code", Ty::Int),
        opt("exception", Ty::Str).doc("failed: the message"),
        opt("trace", Ty::Str).doc("failed: getTraceAsString()"),
        opt("task", Ty::Str).doc("brief"),
        opt("without_overlapping", Ty::Bool).doc("brief"),
        opt("run_in_background", Ty::Bool).doc("brief"),
        opt("duration_ms", Ty::Num).doc("brief"),
        opt("output", Ty::Str).doc("brief"),
        opt("skip_reason", Ty::Str).doc("brief"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Scaled("/runtime", 1000.0), Src::Path("/duration_ms")],
        is_error: &[
            ErrorRule::SubtypeIn(&["failed"]),
            ErrorRule::AtLeast("/exit_code", 1.0),
        ],
        ..ColumnRules::NONE
    },
};

/// `mail`: a message sent (MailCollector, `MessageSent`).
pub(super) const MAIL: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "mail",
    summary: "An email sent",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the subject, or `No Subject`"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        req("subject", Ty::Str).nullable(),
        req("to", Ty::List(&Ty::Str)).doc("plain addresses (not scrubbed)"),
        opt("cc", Ty::List(&Ty::Str)),
        opt("bcc", Ty::List(&Ty::Str)),
        opt("from", Ty::List(&Ty::Str)).doc("agent"),
        opt("has_attachments", Ty::Bool).doc("agent"),
        opt("notification", Ty::Str).doc("agent: the notification class, when sent by one"),
        opt("mailable", Ty::Str).doc("brief"),
        opt("queued", Ty::Bool).doc("brief"),
    ],
    columns: ColumnRules::NONE,
};

/// `notification`: a notification sent or failed (NotificationCollector; the sub-type is
/// `payload.status`).
pub(super) const NOTIFICATION: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
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
        opt("status", Ty::Str).doc("agent: sent or failed"),
        opt("notification", Ty::Str).doc("brief; the agent sends the class as the name"),
        req("channel", Ty::Str),
        opt(
            "notifiable",
            Ty::Obj(&[req("type", Ty::Str), opt("id", Ty::Scalar)]),
        )
        .doc("agent; id absent for anonymous notifiables"),
        opt("notifiable_type", Ty::Str).doc("brief"),
        opt("notifiable_id", Ty::Scalar).doc("brief"),
        opt("response", Ty::Any).doc("brief"),
        opt("error", Ty::Any)
            .alias(&["exception"])
            .doc("failed: the event's exception, an object that arrives as []; brief: a string"),
        opt("duration_ms", Ty::Num).doc("agent"),
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
    other_keys: OtherKeys::Always,
    name: "event",
    summary: "A Laravel event dispatched (framework events included)",
    origin: Origin::Both,
    name_kind: NameKind::Dynamic("the event name or class"),
    names: &[],
    subtype: SubtypeRule::None,
    fields: &[
        opt("event_class", Ty::Str).doc("brief"),
        opt("listeners", Ty::List(&Ty::Str)).doc("brief"),
        opt("broadcast", Ty::Bool).doc("brief"),
        opt("payload_keys", Ty::List(&Ty::Str)).doc("brief"),
    ],
    columns: ColumnRules::NONE,
};

/// `health`: scheduler and queue health, stuck jobs, heartbeats (HealthCollector and
/// `BaddyBugs::heartbeat()` / `reportHealth()`; two heartbeat shapes).
pub(super) const HEALTH: TypeSpec = TypeSpec {
    other_keys: OtherKeys::When(&["component_health"]),
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
        opt("task_name", Ty::Str).doc("scheduled_task_*"),
        opt("command", Ty::Str).doc("scheduled_task_*: the shell command, null for closures"),
        opt("expression", Ty::Str),
        opt("duration_ms", Ty::Num).doc("scheduled_task_finished, stuck_job_detected"),
        opt("exit_code", Ty::Int),
        opt("success", Ty::Bool),
        opt("exception", Ty::Str).doc("scheduled_task_failed: the message"),
        opt("severity", Ty::Str).doc("agent: high (task failed), critical (stuck job)"),
        opt("job_id", Ty::Scalar),
        opt("job_name", Ty::Str),
        opt("queue", Ty::Str),
        opt("duration_seconds", Ty::Num),
        opt("threshold_seconds", Ty::Num),
        opt("total_jobs", Ty::Int).doc("queue_metrics: one queue per event (agent)"),
        opt("succeeded", Ty::Int),
        opt("failed", Ty::Int),
        opt("success_rate", Ty::Num).doc("percent"),
        opt("failure_rate", Ty::Num).doc("percent"),
        opt(
            "queues",
            Ty::Map(&Ty::Obj(&[
                opt("pending", Ty::Int),
                opt("processing", Ty::Int),
                opt("failed", Ty::Int),
            ])),
        )
        .doc("brief: {queue: {pending, processing, failed}}"),
        req("component", Ty::Str)
            .when(&["component_health"])
            .doc("heartbeat (manual, may be null) and component_health"),
        opt("timestamp", Ty::Scalar).doc("agent: ISO-8601"),
        opt("uptime", Ty::Num).doc("seconds since LARAVEL_START"),
        opt("memory_usage", Ty::Num).doc("bytes"),
        opt("memory_usage_mb", Ty::Num),
        opt("peak_memory", Ty::Num).doc("bytes"),
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
    other_keys: OtherKeys::Never,
    name: "test",
    summary: "A PHPUnit or Pest test starting or finishing",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("started"), sub("finished")],
    subtype: SubtypeRule::Name,
    fields: &[
        req("test_name", Ty::Str).doc("agent: \"Class::method\""),
        opt("test_class", Ty::Str).doc("brief"),
        opt("status", Ty::Str)
            .doc("finished: whatever string the caller passed (passed, failed, skipped…)"),
        opt("duration_ms", Ty::Num).doc("finished"),
        opt(
            "exception",
            Ty::AnyOf(&[
                Ty::Str,
                Ty::Obj(&[opt("message", Ty::Str), opt("trace", Ty::Str)]),
            ]),
        )
        .doc("agent: null or {message, trace}; brief: a string"),
        opt("assertions", Ty::Int).doc("brief"),
        opt("group", Ty::Str).doc("agent, started (\"default\")"),
        opt("git_sha", Ty::Str).doc("agent, started: from the config, may be null"),
    ],
    columns: ColumnRules {
        duration_ms: &[Src::Path("/duration_ms")],
        is_error: &[ErrorRule::ValueIn("/status", &["failed"])],
        ..ColumnRules::NONE
    },
};

/// `queue_metrics`: a snapshot of the queues (QueueMetricsCollector, every 10th process).
pub(super) const QUEUE_METRICS: TypeSpec = TypeSpec {
    other_keys: OtherKeys::Never,
    name: "queue_metrics",
    summary: "A snapshot of queue sizes",
    origin: Origin::Both,
    name_kind: NameKind::Fixed,
    names: &[sub("snapshot")],
    subtype: SubtypeRule::None,
    fields: &[
        req(
            "queues",
            Ty::Map(&Ty::Obj(&[
                opt("name", Ty::Str),
                opt("pending_count", Ty::Int).doc("agent"),
                opt("processing_count", Ty::Int).doc("agent; always 0"),
                opt("oldest_job_age_seconds", Ty::Num).doc("agent; null when unknown"),
                opt("pending", Ty::Int).doc("brief"),
                opt("processing", Ty::Int).doc("brief"),
                opt("failed", Ty::Int).doc("brief"),
                opt("delayed", Ty::Int).doc("brief"),
            ])),
        )
        .doc("keyed by queue name; [] when no queue is monitored"),
        opt("total_pending", Ty::Int).doc("agent"),
        opt("total_failed", Ty::Int).doc("agent"),
        opt("timestamp", Ty::Str).doc("agent: ISO-8601"),
        opt("redis_memory_usage", Ty::Int).doc("agent, redis queues: bytes or null"),
        opt("total_workers", Ty::Int).doc("brief"),
        opt("jobs_per_minute", Ty::Num).doc("brief"),
        opt("avg_wait_time_ms", Ty::Num).doc("brief"),
    ],
    columns: ColumnRules::NONE,
};
