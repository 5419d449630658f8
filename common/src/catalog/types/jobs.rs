//! Types: TODO (being written).

use crate::catalog::TypeSpec;

use super::placeholder;

pub(super) const JOB: TypeSpec = placeholder("job");
pub(super) const COMMAND: TypeSpec = placeholder("command");
pub(super) const SCHEDULED_TASK: TypeSpec = placeholder("scheduled_task");
pub(super) const MAIL: TypeSpec = placeholder("mail");
pub(super) const NOTIFICATION: TypeSpec = placeholder("notification");
pub(super) const EVENT: TypeSpec = placeholder("event");
pub(super) const HEALTH: TypeSpec = placeholder("health");
pub(super) const TEST: TypeSpec = placeholder("test");
pub(super) const QUEUE_METRICS: TypeSpec = placeholder("queue_metrics");
