//! The real service on a real port (127.0.0.1, port 0), with a handle to stop it.

use super::app::{EVENTS, KEY, settings};
use super::events::Spec;
use handover_receiver::{AppState, Service};
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Running {
    pub base_url: String,
    pub state: AppState,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    pub async fn start(extra: &[&str]) -> Self {
        let service = Service::build(settings(extra)).expect("service builds");
        let state = service.state.clone();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port 0 binds");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            service.run(listener, shutdown).await.expect("service runs");
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        Self {
            base_url,
            state,
            client,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// POSTs an EventBridge event as EventBridge does; returns status and body.
    pub async fn post(&self, event: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{EVENTS}", self.base_url))
            .header("authorization", KEY)
            .header("content-type", "application/json; charset=utf-8")
            .body(event.to_string())
            .send()
            .await
            .expect("the service answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The status `/readyz` answers (0 if it does not answer).
    pub async fn ready_status(&self) -> u16 {
        self.client
            .get(format!("{}/readyz", self.base_url))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    pub async fn post_spec(&self, spec: &Spec, conversation_id: &str) -> (u16, Value) {
        self.post(&spec.envelope(conversation_id)).await
    }

    /// Signals shutdown and waits for the service to finish draining.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the service stops in time")
                .expect("the service task ends cleanly");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Waits until `check` holds, polling, or panics after `limit` with `what`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
