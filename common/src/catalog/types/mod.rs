//! The catalog's entries, one `const` per type, grouped by area. The order of [`ALL`] is the
//! brief's (1–47), then the types only the agent sends.

use super::TypeSpec;

mod data;
mod errors;
mod jobs;
mod perf;
mod web;

/// Every type the catalog knows.
pub(super) static ALL: &[TypeSpec] = &[
    web::REQUEST,
    data::QUERY,
    errors::EXCEPTION,
    errors::HANDLED_EXCEPTION,
    jobs::JOB,
    jobs::COMMAND,
    jobs::SCHEDULED_TASK,
    data::CACHE,
    jobs::MAIL,
    jobs::NOTIFICATION,
    jobs::EVENT,
    errors::LOG,
    web::HTTP_CLIENT,
    data::MODEL,
    web::GATE,
    data::REDIS,
    web::LIVEWIRE_COMPONENT,
    web::LIVEWIRE_PERFORMANCE,
    web::LIVEWIRE_ERROR,
    web::SECURITY,
    web::SECURITY_THREAT,
    web::VIEW,
    web::MIDDLEWARE,
    perf::TIMELINE,
    perf::TRACE_SPAN,
    web::FEATURE,
    jobs::HEALTH,
    perf::PROFILING_SEGMENT,
    jobs::TEST,
    perf::LLM_REQUEST,
    data::ELOQUENT,
    web::FORM,
    web::FILE_UPLOAD,
    jobs::QUEUE_METRICS,
    errors::ISSUE,
    perf::REGRESSION,
    web::AUTH,
    web::BROADCAST,
    web::RATE_LIMIT,
    web::SESSION,
    web::TRANSLATION,
    web::ROUTE,
    web::VALIDATION,
    data::FILESYSTEM,
    data::DATABASE,
    perf::MEMORY,
    perf::LIFECYCLE,
    // Sent by the agent, missing from the brief (AGENT-WIRE §5).
    perf::CONTEXT,
    perf::SESSION_REPLAY,
    perf::DEPLOYMENT,
    errors::POTENTIAL_HANDLED_ERROR,
    data::QUERY_BUILDER,
    data::ENCRYPTION,
    data::OBSERVER,
    data::ADVANCED_ELOQUENT,
];
