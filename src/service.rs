//! Putting it together: store, workers, HTTP server, and the drain on shutdown.

use crate::config::{Forwarding, Settings, StoreKind};
use crate::conversation::{Conversations, Wakers};
use crate::engine::Engine;
use crate::forward::{CognigyClient, CognigyTarget, DeliveryWorker, Sender, Shadow};
use crate::http::{self, ApiKeys, AppState, Passthrough, Shared};
use crate::metrics::Metrics;
use crate::server::{self, Shutdown};
use crate::store::{MemoryStore, RedisStore, Store, StoreError};
use crate::store_health::{Readiness, StoreMonitor, readiness_channel};
use crate::timers::TimerWorker;
use secrecy::ExposeSecret;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the drain looks whether work is left.
const DRAIN_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot build the HTTP client for Cognigy: {0}")]
    Client(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("HTTP server failed: {0}")]
    Server(#[from] std::io::Error),
}

/// The service's shared parts, ready to serve.
pub struct Service {
    pub state: AppState,
    sender: Arc<dyn Sender>,
    settings: Settings,
    /// Cancelled last, when the drain is over: stops the workers. Its child, `state.traffic`, is
    /// cancelled first, on the shutdown signal: stops taking traffic.
    stop: CancellationToken,
    /// Where the store monitor publishes readiness.
    readiness: watch::Sender<Readiness>,
}

impl Service {
    pub fn build(settings: Settings) -> Result<Self, ServiceError> {
        let store: Arc<dyn Store> = match &settings.store {
            StoreKind::Memory => Arc::new(MemoryStore::new(
                settings.state_ttl.as_millis() as u64,
                settings.max_conversations,
            )),
            StoreKind::Redis { target, options } => {
                Arc::new(RedisStore::connect(target, options.clone())?)
            }
        };
        let sender: Arc<dyn Sender> = match &settings.forwarding {
            Forwarding::Shadow => Arc::new(Shadow),
            Forwarding::Cognigy {
                url,
                authorization,
                format,
                timeout,
            } => {
                let target = CognigyTarget {
                    url: url.clone(),
                    authorization: authorization.clone(),
                    format: *format,
                    timeout: *timeout,
                };
                Arc::new(
                    CognigyClient::new(target).map_err(|e| ServiceError::Client(e.to_string()))?,
                )
            }
        };
        let metrics = Arc::new(Metrics::new());
        let conversations = Arc::new(Conversations::new(
            Arc::clone(&store),
            Engine::new(settings.end_grace_ms).with_max_legs(settings.max_legs),
            Arc::clone(&metrics),
            Wakers::default(),
        ));
        let stop = CancellationToken::new();
        let (readiness_tx, readiness) = readiness_channel(store.as_ref());
        let state = AppState::new(Shared {
            conversations,
            readiness,
            store,
            filter: Arc::new(settings.filter.clone()),
            api_keys: Arc::new(ApiKeys::new(settings.api_keys.clone())),
            traffic: stop.child_token(),
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            max_body_bytes: settings.max_body_bytes,
            request_timeout: settings.request_timeout,
            metrics,
            metrics_on_main_listener: settings.metrics_addr.is_none(),
            passthrough: match &settings.passthrough_url {
                Some(url) => Some(Arc::new(
                    Passthrough::new(
                        url.expose_secret().to_owned(),
                        settings.om_webhook_secret.clone(),
                    )
                    .map_err(|e| ServiceError::Client(e.to_string()))?,
                )),
                None => None,
            },
            admin_token: settings
                .admin_token
                .clone()
                .map(|token| Arc::new(ApiKeys::new(vec![token]))),
        });
        Ok(Self {
            state,
            sender,
            settings,
            stop,
            readiness: readiness_tx,
        })
    }

    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then stops taking traffic, lets requests in flight finish
    /// (bounded by `HANDOVER_REQUEST_TIMEOUT_MS`), and waits (bounded by
    /// `HANDOVER_SHUTDOWN_GRACE_SECS`) for open grace windows and undelivered ends.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let state = self.state.clone();
        let monitor = tokio::spawn(
            StoreMonitor {
                store: Arc::clone(&state.store),
                metrics: Arc::clone(&state.metrics),
                readiness: self.readiness.clone(),
            }
            .run(self.stop.clone()),
        );
        let timers = tokio::spawn(
            TimerWorker {
                store: Arc::clone(&state.store),
                conversations: Arc::clone(&state.conversations),
                metrics: Arc::clone(&state.metrics),
            }
            .run(self.stop.clone()),
        );
        let deliveries = tokio::spawn(
            DeliveryWorker {
                store: Arc::clone(&state.store),
                sender: Arc::clone(&self.sender),
                policy: self.settings.retry,
                lease_ms: delivery_lease_ms(&self.settings.forwarding),
                limits: self.settings.delivery,
                wake: Arc::clone(&state.conversations.wakers().deliveries),
                metrics: Arc::clone(&state.metrics),
            }
            .run(self.stop.clone()),
        );

        // The shutdown signal cancels the traffic token; the instant it fired bounds the rest.
        let traffic = state.traffic.clone();
        let (signalled_tx, signalled_rx) = watch::channel(None::<Instant>);
        tokio::spawn({
            let traffic = traffic.clone();
            async move {
                tokio::select! {
                    _ = shutdown => {}
                    _ = traffic.cancelled() => {}
                }
                tracing::info!(
                    "shutting down: no new connections; finishing requests, then draining open grace windows and deliveries"
                );
                let _ = signalled_tx.send(Some(Instant::now()));
                traffic.cancel();
            }
        });
        let request_timeout = self.settings.request_timeout;
        let connections_deadline = |mut signalled: watch::Receiver<Option<Instant>>| {
            Box::pin(async move {
                let at = signalled
                    .wait_for(Option::is_some)
                    .await
                    .map_or_else(|_| Instant::now(), |at| at.expect("checked"));
                at + request_timeout
            }) as Pin<Box<dyn Future<Output = Instant> + Send>>
        };
        let metrics_server = match self.settings.metrics_addr {
            Some(addr) => {
                let metrics_listener = TcpListener::bind(addr).await?;
                tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening");
                Some(tokio::spawn(server::serve(
                    metrics_listener,
                    http::metrics_router(state.clone()),
                    self.settings.connections,
                    Arc::clone(&state.metrics),
                    Shutdown {
                        stop: traffic.clone(),
                        deadline: connections_deadline(signalled_rx.clone()),
                    },
                )))
            }
            None => None,
        };
        tracing::info!(addr = %listener.local_addr()?, "listening");
        server::serve(
            listener,
            self.router(),
            self.settings.connections,
            Arc::clone(&state.metrics),
            Shutdown {
                stop: traffic.clone(),
                deadline: connections_deadline(signalled_rx.clone()),
            },
        )
        .await;

        let signalled_at = signalled_rx.borrow().unwrap_or_else(Instant::now);
        drain(
            &state,
            signalled_at + request_timeout + self.settings.shutdown_grace,
        )
        .await;
        self.stop.cancel();
        let _ = timers.await;
        let _ = deliveries.await;
        let _ = monitor.await;
        if let Some(server) = metrics_server {
            let _ = server.await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// A claimed delivery outlasts the longest call to Cognigy three times over.
fn delivery_lease_ms(forwarding: &Forwarding) -> u64 {
    match forwarding {
        Forwarding::Shadow => 1_000,
        Forwarding::Cognigy { timeout, .. } => (timeout.as_millis() as u64 * 3).max(1_000),
    }
}

/// Waits until no grace window is open and the outbox is empty, or the deadline passes. A
/// durable store keeps both for the other replicas (or the next start), so nothing is awaited.
async fn drain(state: &AppState, deadline: Instant) {
    if state.store.durable() {
        tracing::info!("state, grace windows and undelivered ends stay in the shared store");
        return;
    }
    loop {
        // Wake the workers in case their sleep would carry them past the deadline.
        let wakers = state.conversations.wakers();
        wakers.timers.notify_one();
        wakers.deliveries.notify_one();
        match state.store.counts().await {
            Ok(counts) if counts.open_windows == 0 && counts.outbox == 0 => {
                tracing::info!("drained: no open grace windows, no undelivered ends");
                return;
            }
            Ok(counts) if Instant::now() >= deadline => {
                tracing::error!(
                    openWindows = counts.open_windows,
                    undelivered = counts.outbox,
                    "shutdown grace exhausted: these ends are lost with the in-memory store; use the Redis store to keep them across restarts"
                );
                return;
            }
            Err(error) if Instant::now() >= deadline => {
                tracing::error!(%error, "shutdown grace exhausted while the store was unavailable");
                return;
            }
            _ => tokio::time::sleep(DRAIN_POLL).await,
        }
    }
}
