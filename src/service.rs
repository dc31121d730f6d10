//! Putting it together: store, workers, HTTP server, and the drain on shutdown.

use crate::config::{Forwarding, Settings, StoreKind};
use crate::engine::Engine;
use crate::forward::{CognigyClient, CognigyTarget, DeliveryWorker, Sender};
use crate::http::{self, ApiKeys, AppState, Passthrough, Shared};
use crate::metrics::Metrics;
use crate::store::{MemoryStore, RedisOptions, RedisStore, RedisTarget, Store, StoreError};
use crate::timers::TimerWorker;
use secrecy::ExposeSecret;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;

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
    sender: Arc<Sender>,
    settings: Settings,
}

impl Service {
    pub fn build(settings: Settings) -> Result<Self, ServiceError> {
        let store: Arc<dyn Store> = match &settings.store {
            StoreKind::Memory => Arc::new(MemoryStore::new(
                settings.state_ttl.as_millis() as u64,
                settings.max_conversations,
            )),
            StoreKind::Redis {
                url,
                cluster,
                timeout,
            } => {
                let url = url.expose_secret();
                let target = if *cluster {
                    RedisTarget::Cluster(url.split(',').map(|u| u.trim().to_owned()).collect())
                } else {
                    RedisTarget::Single(url.to_owned())
                };
                let options = RedisOptions {
                    operation_timeout: *timeout,
                    state_ttl_ms: settings.state_ttl.as_millis() as u64,
                };
                Arc::new(RedisStore::connect(&target, options)?)
            }
        };
        let sender = match &settings.forwarding {
            Forwarding::Shadow => Sender::Shadow,
            Forwarding::Cognigy {
                url_template,
                authorization,
                format,
                timeout,
            } => {
                let target = CognigyTarget {
                    url_template: url_template.clone(),
                    authorization: authorization.clone(),
                    format: *format,
                    timeout: *timeout,
                };
                Sender::Cognigy(
                    CognigyClient::new(target).map_err(|e| ServiceError::Client(e.to_string()))?,
                )
            }
        };
        let state = AppState::new(Shared {
            store,
            engine: Engine::new(settings.end_grace_ms),
            filter: Arc::new(settings.filter.clone()),
            api_keys: Arc::new(ApiKeys::new(settings.api_keys.clone())),
            timer_wake: Arc::new(Notify::new()),
            delivery_wake: Arc::new(Notify::new()),
            draining: Arc::new(AtomicBool::new(false)),
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            max_body_bytes: settings.max_body_bytes,
            request_timeout: settings.request_timeout,
            metrics: Arc::new(Metrics::new()),
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
            sender: Arc::new(sender),
            settings,
        })
    }

    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then stops taking traffic and waits (bounded by
    /// `HANDOVER_SHUTDOWN_GRACE_SECS`) for open grace windows and undelivered ends.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let state = self.state.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let timers = tokio::spawn(
            TimerWorker {
                store: Arc::clone(&state.store),
                engine: state.engine,
                wake: Arc::clone(&state.timer_wake),
                delivery_wake: Arc::clone(&state.delivery_wake),
                metrics: Arc::clone(&state.metrics),
            }
            .run(stop_rx.clone()),
        );
        let deliveries = tokio::spawn(
            DeliveryWorker {
                store: Arc::clone(&state.store),
                sender: Arc::clone(&self.sender),
                policy: self.settings.retry,
                lease_ms: delivery_lease_ms(&self.settings.forwarding),
                wake: Arc::clone(&state.delivery_wake),
                metrics: Arc::clone(&state.metrics),
            }
            .run(stop_rx.clone()),
        );

        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel();
        let draining = Arc::clone(&state.draining);
        let on_shutdown = async move {
            shutdown.await;
            draining.store(true, Ordering::Relaxed);
            tracing::info!(
                "shutting down: no new connections; draining open grace windows and deliveries"
            );
            let _ = signalled_tx.send(Instant::now());
        };
        let metrics_server = match self.settings.metrics_addr {
            Some(addr) => {
                let metrics_listener = TcpListener::bind(addr).await?;
                tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening");
                let mut stop = stop_rx.clone();
                let server = axum::serve(metrics_listener, http::metrics_router(state.clone()))
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    });
                Some(tokio::spawn(async move { server.await }))
            }
            None => None,
        };
        tracing::info!(addr = %listener.local_addr()?, "listening");
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(on_shutdown)
            .await;

        let signalled_at = signalled_rx.await.unwrap_or_else(|_| Instant::now());
        drain(&state, signalled_at + self.settings.shutdown_grace).await;
        let _ = stop_tx.send(true);
        let _ = timers.await;
        let _ = deliveries.await;
        if let Some(server) = metrics_server {
            let _ = server.await;
        }
        tracing::info!("stopped");
        served.map_err(ServiceError::from)
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
        state.timer_wake.notify_one();
        state.delivery_wake.notify_one();
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
