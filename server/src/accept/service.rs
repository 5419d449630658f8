//! The service one connection is served with: the router behind three guards.
//!
//! - every request is tracked in its connection's phase (active while the response body is
//!   being written, idle after), and a `101 Switching Protocols` marks the connection upgraded;
//! - a connection from the reserve pool only gets the operator endpoints (`/healthz`,
//!   `/readyz`, `/metrics`, `/v1/feed`); anything else is answered 503 with `Retry-After`;
//! - a handler that panics is answered 500; the panic is logged with the request (method,
//!   path without the query, which may hold a token, and the client address) and counted.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use futures_util::FutureExt as _;
use hyper::body::{Frame, Incoming, SizeHint};
use tower::ServiceExt as _;

use super::budget::{Conn, Pool};
use crate::metrics::Metrics;

/// Paths a reserve connection may use: what an operator needs while the server is full.
pub const OPERATOR_PATHS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/v1/feed"];

/// Seconds a refused client is asked to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The body of a 503 for a server at its connection limit.
pub const BUSY_JSON: &str = r#"{"error":"unavailable","message":"the server is at its connection limit; retry shortly","retry_after_secs":1}"#;

/// The hyper service of one connection.
#[derive(Clone)]
pub struct ConnService {
    /// The application.
    pub router: Router,
    /// The connection served.
    pub conn: Arc<Conn>,
    /// The client's address (for `ConnectInfo`).
    pub remote: SocketAddr,
    /// Where panics are counted.
    pub metrics: Arc<Metrics>,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let guard = RequestGuard::start(self.conn.clone());
        let router = self.router.clone();
        let remote = self.remote;
        let metrics = self.metrics.clone();
        let reserve = self.conn.pool() == Pool::Reserve;
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            if reserve && !OPERATOR_PATHS.contains(&path.as_str()) {
                return Ok(guard.attach(busy_response()));
            }
            let method = request.method().clone();
            request.extensions_mut().insert(ConnectInfo(remote));
            let served = AssertUnwindSafe(router.oneshot(request))
                .catch_unwind()
                .await;
            let response = match served {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(panic) => {
                    metrics
                        .connections
                        .handler_panics
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        %method,
                        path,
                        %remote,
                        panic = panic_message(panic.as_ref()),
                        "a request handler panicked; answered 500"
                    );
                    internal_error_response()
                }
            };
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                guard.conn.upgraded();
            }
            Ok(guard.attach(response))
        })
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)")
}

fn internal_error_response() -> Response<Body> {
    let mut response = Response::new(Body::from(
        r#"{"error":"internal","message":"the server failed on this request; the failure is in its log"}"#,
    ));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 503 + `Retry-After` + `Connection: close`, for a request the reserve does not serve.
pub fn busy_response() -> Response<Body> {
    let mut response = Response::new(Body::from(BUSY_JSON));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// One request in flight on its connection, until its response body is written or dropped.
struct RequestGuard {
    conn: Arc<Conn>,
}

impl RequestGuard {
    fn start(conn: Arc<Conn>) -> RequestGuard {
        conn.request_started();
        RequestGuard { conn }
    }

    /// Ties the guard to the response body: the request ends when hyper drops the body.
    fn attach(self, response: Response<Body>) -> Response<Body> {
        response.map(|inner| {
            Body::new(TrackedBody {
                inner,
                _guard: self,
            })
        })
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.conn.request_finished();
    }
}

struct TrackedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
