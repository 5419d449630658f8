//! The one HTTP error type: variants map to status codes (429 and 503 carry `Retry-After`),
//! client errors are logged at debug, server errors at error, once, here, with the error's whole
//! chain of causes ([`Chain`]). Handlers return errors and never log them themselves.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::errors::Chain;
use crate::ingest::keys::AuthError;

/// The cause of an [`ApiError::Internal`]: any error, kept for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: authentication or signature failed.
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    /// 401 for the feed and query API: missing or wrong token.
    #[error("missing or invalid token: send `Authorization: Bearer <feed token>` or `?token=`")]
    BadToken,
    /// 400: the request itself is wrong (bad filter, or an undecodable body when configured).
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 413: over a body or batch limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: unsupported `Content-Encoding`.
    #[error("{0}")]
    UnsupportedEncoding(String),
    /// 408: the request body did not arrive in time (stalled, or slower than the minimum rate).
    #[error("{0}")]
    Timeout(String),
    /// 429: rate limited.
    #[error("rate limit exceeded for this key; retry after {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    /// 429: the server is saturated and this key already holds its fair share of it.
    #[error("the server is busy and this key holds its fair share of the ingest capacity ({held} requests in progress); retry after {} s", .retry_after.as_secs().max(1))]
    FairShare {
        /// Requests of this key in progress.
        held: usize,
        /// When to retry.
        retry_after: Duration,
    },
    /// 503: cannot take more now (spool full, shutting down, store down for a query).
    #[error("{message}")]
    Unavailable {
        /// For people.
        message: String,
        /// When to retry.
        retry_after: Duration,
    },
    /// 500: a bug or an I/O failure. The client reads `context`; the cause is logged.
    #[error("internal error: {context}")]
    Internal {
        /// What the server was doing, for the client.
        context: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
}

impl ApiError {
    /// A 500 for `source`, which happened while doing `context`.
    pub fn internal(context: impl Into<String>, source: impl Into<BoxError>) -> ApiError {
        ApiError::Internal {
            context: context.into(),
            source: source.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) | ApiError::BadToken => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited(_) | ApiError::FairShare { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short stable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(e) => e.code(),
            ApiError::BadToken => "bad_token",
            ApiError::BadRequest { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::TooLarge(_) => "too_large",
            ApiError::UnsupportedEncoding(_) => "unsupported_encoding",
            ApiError::Timeout(_) => "body_timeout",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::FairShare { .. } => "fair_share",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal { .. } => "internal",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited(d) => Some(*d),
            ApiError::FairShare { retry_after, .. } => Some(*retry_after),
            ApiError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %Chain(&self), "request failed");
        } else {
            tracing::debug!(code = self.code(), error = %self, "request refused");
        }
        let mut body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        if let Some(retry) = self.retry_after() {
            body["retry_after_secs"] = retry.as_secs().max(1).into();
        }
        let mut response = (status, Json(body)).into_response();
        if let Some(retry) = self.retry_after() {
            if let Ok(value) = HeaderValue::from_str(&retry.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_internal_error_keeps_its_cause_out_of_the_body() {
        let err = ApiError::internal("inflating the body", std::io::Error::other("EIO"));
        assert_eq!(
            crate::errors::chain(&err),
            "internal error: inflating the body: EIO",
            "the log line has the cause"
        );
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "internal");
        assert_eq!(body["message"], "internal error: inflating the body");
    }
}
