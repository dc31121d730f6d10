//! Serving a router on a listener with the connection limits of `docs/contract.md` §5: a request's head must
//! arrive within the header-read timeout, an idle keep-alive connection is closed after the idle
//! timeout, at most `max_connections` are open (more wait in the kernel's backlog), and a
//! shutdown ends by a deadline whatever clients do.
//!
//! hyper's own header-read timer also runs between keep-alive requests, which would close idle
//! connections after the (short) header timeout instead of the idle timeout, so both are kept
//! here: each connection's phase is watched (waiting for a head, or serving a request) and the
//! connection is dropped when its phase outlives its limit.

use crate::config::ConnectionLimits;
use crate::metrics::Metrics;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Largest request head hyper buffers; EventBridge's are far smaller.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// When a server stops: `stop` ends accepting and asks connections to finish their request;
/// connections still open at `deadline` are closed.
pub struct Shutdown {
    pub stop: CancellationToken,
    /// Resolves to the instant by which every connection must be gone.
    pub deadline: Pin<Box<dyn Future<Output = Instant> + Send>>,
}

/// Serves `app` until `shutdown.stop`, then lets open requests finish until the deadline.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut accept_failing = false;
    loop {
        // A slot first: beyond the limit, new connections wait in the kernel's backlog.
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                metrics.connections_limited();
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
                    _ = shutdown.stop.cancelled() => break,
                }
            }
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    if accept_failing {
                        accept_failing = false;
                        tracing::info!("accepting connections again");
                    }
                    accepted
                }
                Err(error) => {
                    metrics.accept_error();
                    if !accept_failing {
                        accept_failing = true;
                        tracing::warn!(%error, "cannot accept connections (file descriptors exhausted?); retrying");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        while connections.try_join_next().is_some() {}
        let connection = serve_connection(
            stream,
            app.clone(),
            limits,
            Arc::clone(&metrics),
            shutdown.stop.clone(),
        );
        connections.spawn(async move {
            connection.await;
            drop(slot);
        });
    }
    drop(listener);
    let deadline = shutdown.deadline.await;
    let finished = tokio::time::timeout_at(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            open = connections.len(),
            "closing connections still open at the shutdown deadline"
        );
        connections.shutdown().await;
    }
}

/// What a connection is doing, for its timeouts.
#[derive(Clone, Copy)]
enum Phase {
    /// Waiting for a request head. `first` is the connection's first request (its head is timed
    /// from the accept); later ones are idle until their first byte, then timed from it.
    AwaitingHead {
        since: Instant,
        first_byte: Option<Instant>,
        first: bool,
    },
    Serving,
}

struct Watch {
    phase: Mutex<Phase>,
}

impl Watch {
    fn set(&self, phase: Phase) {
        *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = phase;
    }

    fn get(&self) -> Phase {
        *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bytes_read(&self) {
        let mut phase = self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Phase::AwaitingHead {
            first_byte: first_byte @ None,
            ..
        } = &mut *phase
        {
            *first_byte = Some(Instant::now());
        }
    }

    /// When the current phase runs out, or `None` while a request is being served (the request
    /// timeout bounds that).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, &'static str)> {
        match self.get() {
            Phase::Serving => None,
            Phase::AwaitingHead {
                since, first: true, ..
            } => Some((since + limits.header_read_timeout, "header_read_timeout")),
            Phase::AwaitingHead {
                first_byte: Some(at),
                ..
            } => Some((at + limits.header_read_timeout, "header_read_timeout")),
            Phase::AwaitingHead { since, .. } => {
                Some((since + limits.idle_timeout, "idle_timeout"))
            }
        }
    }

    /// Resolves when the connection has outlived its phase's limit; returns which limit.
    async fn expired(&self, limits: &ConnectionLimits) -> &'static str {
        loop {
            match self.deadline(limits) {
                Some((at, limit)) if at <= Instant::now() => return limit,
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => tokio::time::sleep(limits.header_read_timeout).await,
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let _open = metrics.connection_opened();
    let watch = Arc::new(Watch {
        phase: Mutex::new(Phase::AwaitingHead {
            since: Instant::now(),
            first_byte: None,
            first: true,
        }),
    });
    let io = TokioIo::new(Watched {
        inner: stream,
        watch: Arc::clone(&watch),
    });
    let service = {
        let watch = Arc::clone(&watch);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            watch.set(Phase::Serving);
            let answer = app.clone().oneshot(request.map(axum::body::Body::new));
            let watch = Arc::clone(&watch);
            async move {
                let response = answer.await;
                watch.set(Phase::AwaitingHead {
                    since: Instant::now(),
                    first_byte: None,
                    first: false,
                });
                response
            }
        })
    };
    // No hyper timer: with one, hyper's own 30 s header timer would also close kept-alive
    // connections between requests, before the idle timeout. The watch above owns both.
    let connection = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            limit = watch.expired(&limits) => {
                metrics.connection_timed_out(limit);
                return;
            }
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A stream that tells its [`Watch`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
