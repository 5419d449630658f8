//! `GET /v1/drift` (token required): the schema drift keys, newest first, read from the store
//! (every node's flushed rows) and merged with this process's unflushed counts.
//!
//! Filters: `type`, `kind`, `application`, `agent_version`, `since` (a date-time or a duration
//! back from now, `24h`). A filter that cannot be read answers 400 `bad_parameter` naming it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use baddybugs_common::query::DriftFilter;

use crate::http::error::ApiError;
use crate::http::query::{bad_param, require_token, sink_error};
use crate::query::QueryService;
use crate::state::AppState;

/// `GET /v1/drift`
pub async fn list_drift(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_token(&state, &headers, &query)?;
    let now = chrono::Utc::now().timestamp_millis();
    let filter = DriftFilter::from_params(&query, now).map_err(bad_param)?;
    let report = QueryService::new(state.store.clone(), state.drift.clone())
        .drift(filter)
        .await
        .map_err(sink_error)?;
    Ok(Json(report).into_response())
}
