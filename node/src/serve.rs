//! The API's listener: what one client can hold of the node is bounded (docs/node.md, "API
//! limits").
//!
//! warp answers the requests; this module owns the sockets:
//! - every accepted connection takes one of `max_connections` permits; with none left the
//!   socket is closed at once, so a flood of connections cannot exhaust the node's file
//!   descriptors or memory (`api_connections_refused`);
//! - a TLS handshake and every request head must arrive within `header_timeout` (hyper's
//!   header read timeout, which also closes a keep-alive connection that stays silent that
//!   long), so idle and slow-header connections give their permit back;
//! - a request body must arrive within `body_timeout` (408) and within the largest body any
//!   route accepts (413; the routes check their own, smaller limits after);
//! - each client address has a token bucket of `rate_per_sec` requests a second and bursts of
//!   `rate_burst`; over it, 429 `rate_limited` with `Retry-After` (`api_rate_limited`).
//!
//! On shutdown the listener stops accepting, tells every connection to finish its request in
//! hand and close, and waits for them.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::body::HttpBody;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Body, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::metrics::NodeMetrics;

/// The most connections a listener holds, whatever its configuration.
pub const MAX_CONNECTIONS: usize = 1_000_000;

/// What the listener allows one client and all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections, all clients together.
    pub max_connections: usize,
    /// Time for a TLS handshake and for each request head.
    pub header_timeout: Duration,
    /// Time for a request body.
    pub body_timeout: Duration,
    /// Largest body read at all, bytes.
    pub max_body_bytes: usize,
    /// Requests a second per client address; 0: no limit.
    pub rate_per_sec: u32,
    /// Requests a client may make at once before its rate applies.
    pub rate_burst: u32,
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// A TLS acceptor for the PEM certificate chain and private key at these paths.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<TlsAcceptor, ServeError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| ServeError::Tls(format!("{}: {e}", p.display())))
    };
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "{}: no certificate in the file",
            cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| ServeError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| ServeError::Tls(format!("{}: no private key in the file", key.display())))?;
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Raises the process' open-file limit as far as the system allows and returns how many
/// connections fit in it next to the node's own files (RocksDB, the consensus network): at
/// most `wanted`.
pub fn connections_that_fit(wanted: usize) -> usize {
    /// Descriptors kept for everything but API connections.
    const RESERVED: u64 = 1024;
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(RESERVED * 2);
    let fit = limit.saturating_sub(RESERVED).max(64);
    if (wanted as u64) > fit {
        tracing::warn!(
            wanted,
            open_file_limit = limit,
            "api.max_connections lowered to what the open-file limit leaves"
        );
    }
    wanted.min(usize::try_from(fit).unwrap_or(usize::MAX))
}

/// The per-client token buckets.
struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl RateLimit {
    fn new(limits: &Limits) -> Option<Self> {
        let rate = NonZeroU32::new(limits.rate_per_sec)?;
        let burst = NonZeroU32::new(limits.rate_burst.max(limits.rate_per_sec)).unwrap_or(rate);
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        })
    }

    /// `Err(seconds to wait)` when `ip` is over its rate.
    fn check(&self, ip: IpAddr) -> Result<(), u64> {
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Whole seconds, rounded up: a client that waits that long is let through.
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets the buckets that are full again (their clients are back to a clean slate).
    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// What every connection shares.
struct Shared {
    limits: Limits,
    rate: Option<RateLimit>,
    metrics: NodeMetrics,
}

/// An error answer in the API's format.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"code": code, "message": message}).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Reads the body of `req` within the time and size limits, or answers why not.
async fn read_body(req: Request<Body>, limits: &Limits) -> Result<Request<Body>, Response<Body>> {
    if req.body().is_end_stream() {
        return Ok(req);
    }
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "request body exceeds the limit",
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(too_large());
    }
    let (parts, mut body) = req.into_parts();
    let read = async {
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk
                .map_err(|e| refuse(StatusCode::BAD_REQUEST, "malformed", &format!("body: {e}")))?;
            if buf.len() + chunk.len() > limits.max_body_bytes {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Ok(Err(answer)) => Err(answer),
        Err(_) => {
            let mut r = refuse(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "the request body did not arrive in time",
            );
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
    }
}

/// One request: the client's rate, its body, then the routes.
async fn handle<S>(req: Request<Body>, mut routes: S, ip: IpAddr, shared: &Shared) -> Response<Body>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    if let Some(rate) = &shared.rate {
        if let Err(wait) = rate.check(ip) {
            shared.metrics.api_rate_limited.inc();
            let mut r = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                &format!("too many requests from {ip}; retry in {wait} s"),
            );
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(wait.max(1)));
            return r;
        }
    }
    let req = match read_body(req, &shared.limits).await {
        Ok(req) => req,
        Err(answer) => return answer,
    };
    match routes.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// Serves one connection until it closes, or until `stop` asks it to finish.
async fn serve_connection<I, S>(
    io: I,
    routes: S,
    ip: IpAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let header_timeout = shared.limits.header_timeout;
    let service = hyper::service::service_fn(move |req| {
        let (routes, shared) = (routes.clone(), Arc::clone(&shared));
        async move { Ok::<_, Infallible>(handle(req, routes, ip, &shared).await) }
    });
    let conn = hyper::server::conn::Http::new()
        .http1_only(true)
        .http1_header_read_timeout(header_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held across the caller's awaits.
    let _ = stop.wait_for(|s| *s).await;
}

/// Counts a connection as open while it lives.
struct Open(NodeMetrics);

impl Open {
    fn new(metrics: &NodeMetrics) -> Self {
        metrics.api_connections.inc();
        Self(metrics.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.api_connections.dec();
    }
}

/// Binds `listen` and returns the bound address and the server, which runs until `stop` turns
/// true and its connections have finished.
pub async fn bind<S>(
    listen: SocketAddr,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    routes: S,
    metrics: NodeMetrics,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, impl std::future::Future<Output = ()> + Send), ServeError>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    let bind_error = |source| ServeError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let max = limits.max_connections.clamp(1, MAX_CONNECTIONS);
    let shared = Arc::new(Shared {
        rate: RateLimit::new(&limits),
        limits,
        metrics,
    });
    let server = async move {
        let permits = Arc::new(Semaphore::new(max));
        let mut closing = stop.clone();
        let mut sweep = tokio::time::interval(Duration::from_secs(60));
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors or a connection reset before accept: not fatal.
                        tracing::warn!(error = %e, "API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = sweep.tick() => {
                    if let Some(rate) = &shared.rate {
                        rate.forget_idle();
                    }
                    continue;
                }
                _ = stopped(&mut closing) => break,
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                shared.metrics.api_connections_refused.inc();
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (shared, routes, stop, tls) = (
                Arc::clone(&shared),
                routes.clone(),
                stop.clone(),
                tls.clone(),
            );
            tokio::spawn(async move {
                let _permit = permit;
                let _open = Open::new(&shared.metrics);
                let ip = peer.ip();
                match tls {
                    None => serve_connection(stream, routes, ip, shared, stop).await,
                    Some(tls) => {
                        let handshake = tls.accept(stream);
                        match tokio::time::timeout(shared.limits.header_timeout, handshake).await {
                            Ok(Ok(stream)) => {
                                serve_connection(stream, routes, ip, shared, stop).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            });
        }
        drop(listener);
        // Every connection was told to finish; each gives its permit back when it has.
        let _ = permits.acquire_many(max as u32).await;
    };
    Ok((addr, server))
}
