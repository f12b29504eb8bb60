//! The connection layer: accepting, per-connection deadlines and the connection cap (S41).
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout never applies and a client
//! may hold a connection forever by sending nothing, or a header a byte at a time. Here each
//! connection is served by hyper's HTTP/1 server with a [`TokioTimer`], and:
//!
//! * a request head must arrive within `--header-read-timeout` of the server starting to wait for
//!   it (hyper's `header_read_timeout`; the wait starts on accept and again after each response, so
//!   it also bounds the idle time of a kept-alive connection);
//! * a connection with no request in flight and no byte read or written for
//!   `--keep-alive-timeout` is closed (hyper has no idle timeout of its own for HTTP/1; the
//!   activity is tracked on the socket and around the service call);
//! * at most `--max-connections` connections are open at once, and at most
//!   `--max-connections-per-ip` from one peer address (trusted proxies exempt), so one client
//!   cannot take every slot: a connection accepted beyond either is closed at once, counted and
//!   logged (at most one log line a second per limit), so the listener keeps draining its backlog
//!   and the process never runs out of file descriptors.
//!
//! Each deadline that closes a connection is counted in `/metrics`.
//!
//! On [`crate::Running::shutdown`] the server drains: see [`serve`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::metrics::Metrics;
use crate::SharedState;

/// How long the accept loop pauses after an accept error other than a connection-level one
/// (e.g. `EMFILE`), so it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serve `router` on `listener` until `shutdown` turns true, then drain: stop accepting (the
/// listener is closed, so new connections are refused), let every connection finish the request
/// it has in flight (hyper's graceful shutdown: a connection between requests or that has sent
/// nothing closes at once, others after their response), and cut what is still open after
/// `--shutdown-grace`. Both the start and the end of the drain are logged.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    state: SharedState,
    mut shutdown: watch::Receiver<bool>,
) {
    let cap = Arc::new(Semaphore::new(state.config.max_connections as usize));
    let refusal_log = RateLimitedLog::new();
    let per_ip = PerIp::default();
    let per_ip_log = RateLimitedLog::new();
    let mut conns = JoinSet::new();
    loop {
        // Reap finished connection tasks so the set stays as small as the open connections.
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Some(per_ip) = per_ip.admit(peer.ip(), &state) else {
            Metrics::inc(&state.metrics.connections_refused_per_ip);
            let total = Metrics::get(&state.metrics.connections_refused_per_ip);
            per_ip_log.warn(|| {
                tracing::warn!(
                    peer = %peer.ip(),
                    max_connections_per_ip = state.config.max_connections_per_ip,
                    refused_total = total,
                    "connection refused: --max-connections-per-ip are open from this address"
                )
            });
            drop(stream);
            continue;
        };
        let Ok(permit) = cap.clone().try_acquire_owned() else {
            Metrics::inc(&state.metrics.connections_refused);
            let total = Metrics::get(&state.metrics.connections_refused);
            refusal_log.warn(|| {
                tracing::warn!(
                    max_connections = state.config.max_connections,
                    refused_total = total,
                    "connection refused: --max-connections are open"
                )
            });
            drop(stream);
            continue;
        };
        let router = router.clone();
        let state = state.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            Metrics::inc(&state.metrics.connections_open);
            serve_connection(stream, peer, router, &state, shutdown).await;
            Metrics::dec(&state.metrics.connections_open);
            drop((permit, per_ip));
        });
    }
    drop(listener);
    while conns.try_join_next().is_some() {}
    let grace = Duration::from_secs(state.config.shutdown_grace);
    tracing::info!(
        open_connections = conns.len(),
        grace_secs = grace.as_secs(),
        "shutdown: draining (no longer accepting; requests in flight may finish)"
    );
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    match drained {
        Ok(()) => tracing::info!("shutdown: drained, every connection finished"),
        Err(_) => {
            tracing::warn!(
                cut_connections = conns.len(),
                "shutdown: --shutdown-grace is over, cutting the connections still open"
            );
            conns.shutdown().await;
        }
    }
}

/// Open connections per peer IP address (`--max-connections-per-ip`).
#[derive(Clone, Default)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, u32>>>);

/// One connection counted for its peer address; uncounted when dropped.
struct PerIpSlot(Option<(PerIp, IpAddr)>);

impl PerIp {
    /// A slot for a connection from `ip`, or `None` when it already has the maximum open.
    /// Trusted proxies are not limited (all their clients share their address).
    fn admit(&self, ip: IpAddr, state: &SharedState) -> Option<PerIpSlot> {
        let max = state.config.max_connections_per_ip;
        let ip = ip.to_canonical();
        if max == 0 || state.config.trusted_proxies.iter().any(|n| n.contains(&ip)) {
            return Some(PerIpSlot(None));
        }
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PerIpSlot(Some((self.clone(), ip))))
    }
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        if let Some((per_ip, ip)) = self.0.take() {
            let mut open = per_ip.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

/// Errors of one incoming connection (it went away before we accepted it), not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serve one connection until the client closes it, it fails, or a deadline closes it; once
/// `shutdown` turns true, finish the request in flight and close.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    state: &SharedState,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        let state = state.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let guard = InFlight::enter(activity.clone(), state.clone());
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.map(Body::new)).await;
                drop(guard);
                resp
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    builder.header_read_timeout(secs(state.config.header_read_timeout));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let idle = idle_deadline(activity, secs(state.config.keep_alive_timeout));
    tokio::pin!(idle);
    let mut draining = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    if e.is_timeout() {
                        Metrics::inc(&state.metrics.header_read_timeouts);
                        tracing::debug!(peer = %peer.ip(), "connection closed: no request head within --header-read-timeout");
                    } else {
                        tracing::debug!(peer = %peer.ip(), error = %e, "connection ended with an error");
                    }
                }
                return;
            }
            () = &mut idle => {
                // Nothing in flight and nothing moved either way: dropping the connection loses nothing.
                Metrics::inc(&state.metrics.keep_alive_timeouts);
                tracing::debug!(peer = %peer.ip(), "connection closed: idle for --keep-alive-timeout");
                return;
            }
            _ = shutdown.wait_for(|stop| *stop), if !draining => {
                draining = true;
                // Closes at once a connection between requests or that has sent nothing yet;
                // otherwise after the answer in flight.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

fn secs(s: u64) -> Option<Duration> {
    (s > 0).then(|| Duration::from_secs(s))
}

/// Resolves once the connection has had no request in flight and no I/O for `limit`
/// (never, when `limit` is `None`).
async fn idle_deadline(activity: Arc<Activity>, limit: Option<Duration>) {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    loop {
        let idle_for = activity.idle_for();
        if activity.in_flight.load(Ordering::Acquire) == 0 && idle_for >= limit {
            return;
        }
        // Activity since the last check only moves the deadline later: sleep and look again.
        tokio::time::sleep(
            limit
                .saturating_sub(idle_for)
                .max(Duration::from_millis(50)),
        )
        .await;
    }
}

/// When a connection last did anything, and how many requests it has in flight.
struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last read, write, request start or request end.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Release);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A request in flight on a connection, from its head being parsed to its response being ready
/// (also counted in the `auth_requests_in_flight` gauge).
struct InFlight(Arc<Activity>, SharedState);

impl InFlight {
    fn enter(a: Arc<Activity>, state: SharedState) -> Self {
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        a.touch();
        Metrics::inc(&state.metrics.requests_in_flight);
        Self(a, state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        Metrics::dec(&self.1.metrics.requests_in_flight);
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, recording every read or write that moved bytes.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// At most one log line per second for an event that an attacker can repeat at will.
struct RateLimitedLog {
    start: Instant,
    /// Whole seconds after `start` of the last line, plus one (0 = never logged).
    last: AtomicU64,
}

impl RateLimitedLog {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn warn(&self, log: impl FnOnce()) {
        let now = self.start.elapsed().as_secs() + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != now
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log();
        }
    }
}
