//! Connection hygiene at the edge: the accept loop every listener runs. A connection must
//! send a complete request head within the header timeout (counted from its first byte, or
//! from the accept for a new connection), may sit idle between requests only so long, may not
//! stall a request body or leave a response unread past their timeouts, and counts against a
//! global and a per-address cap; beyond a cap it is answered 503 and closed at once.
//!
//! hyper's own header timer also runs while a kept-alive connection waits for its next
//! request, so it cannot tell "slow head" from "idle"; the watchdog here does, from what
//! the connection's I/O and its requests report.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::Limits;

/// The edge's limits, resolved from `[limits]`.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    pub header_read: Duration,
    pub body_idle: Duration,
    pub keep_alive_idle: Duration,
    pub send_stall: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

impl EdgeLimits {
    pub fn from_config(l: &Limits) -> Self {
        EdgeLimits {
            header_read: Duration::from_millis(l.header_read_timeout_ms),
            body_idle: Duration::from_millis(l.body_idle_timeout_ms),
            keep_alive_idle: Duration::from_millis(l.keep_alive_idle_ms),
            send_stall: Duration::from_millis(l.send_timeout_ms),
            max_connections: l.max_connections,
            max_connections_per_ip: l.max_connections_per_ip,
        }
    }
}

/// Raise this process's open-file soft limit to its hard limit (a connection is a file), and
/// answer the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Census {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// A counted connection; uncounted when dropped.
struct Admitted {
    census: Arc<Census>,
    ip: IpAddr,
}

impl Census {
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &EdgeLimits) -> Option<Admitted> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let mine = per_ip.entry(ip).or_insert(0);
        if *mine >= limits.max_connections_per_ip
            || self.total.load(Ordering::Relaxed) >= limits.max_connections
        {
            if *mine == 0 {
                per_ip.remove(&ip);
            }
            return None;
        }
        *mine += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Admitted {
            census: self.clone(),
            ip,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.census.total.fetch_sub(1, Ordering::Relaxed);
        let mut per_ip = self.census.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// The answer to a connection over a cap: written without waiting, then the socket closes.
static OVER_CAPACITY: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let body = r#"{"error":{"code":"unavailable","message":"too many open connections; retry in a moment"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// At most one log line per this long for a repeated edge event (refusals under a flood).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts occurrences and lets one log line through per [`LOG_EVERY`].
struct Throttled {
    since: Mutex<Option<Instant>>,
    count: AtomicU64,
}

impl Throttled {
    fn new() -> Self {
        Throttled {
            since: Mutex::new(None),
            count: AtomicU64::new(0),
        }
    }

    /// Count one; answers the number counted since the last line when a line is due.
    fn hit(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if since.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            return None;
        }
        *since = Some(now);
        Some(self.count.swap(0, Ordering::Relaxed))
    }
}

/// Serve `app` on `listener` until `shutdown`, then let open connections finish their
/// requests (callers bound how long).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: EdgeLimits,
    shutdown: CancellationToken,
) {
    let census = Arc::new(Census::default());
    let tracker = TaskTracker::new();
    let refused = Throttled::new();
    let accept_failed = Throttled::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    if let Some(n) = accept_failed.hit() {
                        tracing::error!(error = %e, failures = n, "accept failed");
                    }
                    // Out of file descriptors or memory: give the connections being served a
                    // moment to finish rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = census.admit(peer.ip(), &limits) else {
            let _ = stream.try_write(&OVER_CAPACITY);
            if let Some(n) = refused.hit() {
                tracing::warn!(
                    refused = n,
                    open = census.total.load(Ordering::Relaxed),
                    "connections refused: over max-connections or max-connections-per-ip"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        tracker.spawn(connection(
            stream,
            peer,
            app.clone(),
            limits.clone(),
            shutdown.clone(),
            admitted,
        ));
    }
    tracker.close();
    tracker.wait().await;
}

/// What a connection's I/O and requests report to its watchdog, in milliseconds since the
/// connection was accepted (0 = not set).
struct Activity {
    born: Instant,
    /// When the current request head began (its first byte; the accept for the first one).
    head_started: AtomicU64,
    /// Requests dispatched whose responses are not fully sent yet.
    in_flight: AtomicUsize,
    /// When the connection last read or wrote a byte, or finished a response.
    last_io: AtomicU64,
    /// Since when a write has been waiting for the client to read.
    write_blocked: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            born: Instant::now(),
            head_started: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            last_io: AtomicU64::new(1),
            write_blocked: AtomicU64::new(0),
        }
    }

    /// Now, as the fields count it (never 0).
    fn now(&self) -> u64 {
        self.born.elapsed().as_millis() as u64 + 1
    }
}

/// Why the watchdog ends a connection.
#[derive(Debug)]
enum Verdict {
    SlowHead,
    Idle,
    SendStalled,
}

async fn watchdog(a: &Activity, limits: &EdgeLimits) -> Verdict {
    let ms = |d: Duration| d.as_millis() as u64;
    loop {
        let now = a.now();
        let mut next = ms(limits.keep_alive_idle).min(ms(limits.header_read));
        if a.in_flight.load(Ordering::Acquire) == 0 {
            let head = a.head_started.load(Ordering::Acquire);
            if head != 0 {
                let elapsed = now.saturating_sub(head);
                if elapsed >= ms(limits.header_read) {
                    return Verdict::SlowHead;
                }
                next = next.min(ms(limits.header_read) - elapsed);
            } else {
                let elapsed = now.saturating_sub(a.last_io.load(Ordering::Acquire));
                if elapsed >= ms(limits.keep_alive_idle) {
                    return Verdict::Idle;
                }
                next = next.min(ms(limits.keep_alive_idle) - elapsed);
            }
        } else {
            let blocked = a.write_blocked.load(Ordering::Acquire);
            if blocked != 0 {
                let elapsed = now.saturating_sub(blocked);
                if elapsed >= ms(limits.send_stall) {
                    return Verdict::SendStalled;
                }
                next = next.min(ms(limits.send_stall) - elapsed);
            }
        }
        // Re-check at least every second: the state may change while we sleep.
        tokio::time::sleep(Duration::from_millis(next.clamp(10, 1000))).await;
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: EdgeLimits,
    shutdown: CancellationToken,
    _admitted: Admitted,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        let body_idle = limits.body_idle;
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            activity.in_flight.fetch_add(1, Ordering::AcqRel);
            activity.head_started.store(0, Ordering::Release);
            let guard = InFlight(activity.clone());
            let mut req =
                req.map(|b| Body::new(tower_http::timeout::TimeoutBody::new(body_idle, b)));
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = app
                    .oneshot(req)
                    .await
                    .unwrap_or_else(|e: Infallible| match e {});
                Ok::<_, Infallible>(response.map(|b| {
                    Body::new(Tracked {
                        inner: b,
                        _guard: guard,
                    })
                }))
            }
        })
    };
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            verdict = watchdog(&activity, &limits) => {
                tracing::debug!(%peer, ?verdict, "closing connection");
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Marks a request finished (response sent or abandoned) when dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_io.store(a.now(), Ordering::Release);
        a.write_blocked.store(0, Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until hyper has sent (or dropped) it.
struct Tracked {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, reporting reads, writes and blocked writes to the watchdog.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let a = &self.activity;
            let now = a.now();
            a.last_io.store(now, Ordering::Release);
            // The first byte after a finished request starts the next head's clock.
            if a.in_flight.load(Ordering::Acquire) == 0 {
                let _ =
                    a.head_started
                        .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
            }
        }
        polled
    }
}

impl Watched {
    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        let a = &self.activity;
        match polled {
            Poll::Ready(Ok(n)) if *n > 0 => {
                a.last_io.store(a.now(), Ordering::Release);
                a.write_blocked.store(0, Ordering::Release);
            }
            Poll::Pending => {
                let _ = a.write_blocked.compare_exchange(
                    0,
                    a.now(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            _ => {}
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: usize) -> EdgeLimits {
        EdgeLimits {
            header_read: Duration::from_secs(1),
            body_idle: Duration::from_secs(1),
            keep_alive_idle: Duration::from_secs(1),
            send_stall: Duration::from_secs(1),
            max_connections: max,
            max_connections_per_ip: per_ip,
        }
    }

    #[test]
    fn caps_count_per_address_and_in_all() {
        let census = Arc::new(Census::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let l = limits(3, 2);
        let a1 = census.admit(a, &l).unwrap();
        let _a2 = census.admit(a, &l).unwrap();
        assert!(census.admit(a, &l).is_none(), "per-address cap");
        let _b1 = census.admit(b, &l).unwrap();
        assert!(census.admit(b, &l).is_none(), "global cap");
        drop(a1);
        assert!(
            census.admit(b, &l).is_some(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn refusals_log_once_per_window() {
        let t = Throttled::new();
        assert_eq!(t.hit(), Some(1));
        assert_eq!(t.hit(), None);
        assert_eq!(t.hit(), None);
        assert_eq!(t.count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_canned_answer_is_well_formed() {
        let text = std::str::from_utf8(&OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}
