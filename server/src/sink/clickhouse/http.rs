//! The HTTP client under the `clickhouse` crate: the crate's own default (hyper, keep-alive,
//! rustls with the bundled Mozilla roots for `https://`, a pool idle timeout below ClickHouse's
//! keep-alive timeout), plus `TCP_NODELAY`.
//!
//! Why: an insert is streamed as chunks and ends with a small write (the last chunk and the
//! chunked-encoding terminator). Without `TCP_NODELAY`, Nagle's algorithm holds that small write
//! until the server acknowledges the previous segment, and servers delay ACKs by up to 40 ms
//! on Linux: every insert (one per table per batch) paid about 40 ms of idle waiting
//! (`cargo bench -p baddybugs-ingest --bench clickhouse_insert` shows it: docs/BENCHMARKS.md).

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Keep-alive probes on idle connections (the crate's value).
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Idle pooled connections are dropped before ClickHouse's 3 s keep-alive timeout closes them.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// A `clickhouse::Client` on the tuned HTTP client.
pub fn client() -> clickhouse::Client {
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.set_nodelay(true);
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        // Only fails when the provider supports no TLS version, which ring's default does.
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let hyper = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector);
    clickhouse::Client::with_http_client(hyper)
}
