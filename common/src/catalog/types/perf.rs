//! Types: TODO (being written).

use crate::catalog::TypeSpec;

use super::placeholder;

pub(super) const TIMELINE: TypeSpec = placeholder("timeline");
pub(super) const TRACE_SPAN: TypeSpec = placeholder("trace_span");
pub(super) const PROFILING_SEGMENT: TypeSpec = placeholder("profiling_segment");
pub(super) const LLM_REQUEST: TypeSpec = placeholder("llm_request");
pub(super) const REGRESSION: TypeSpec = placeholder("regression");
pub(super) const MEMORY: TypeSpec = placeholder("memory");
pub(super) const LIFECYCLE: TypeSpec = placeholder("lifecycle");
pub(super) const CONTEXT: TypeSpec = placeholder("context");
pub(super) const SESSION_REPLAY: TypeSpec = placeholder("session_replay");
pub(super) const DEPLOYMENT: TypeSpec = placeholder("deployment");
