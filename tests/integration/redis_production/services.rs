//! Two service replicas on one store, forwarding to a wiremock Cognigy.

use crate::common::running::Running;
use wiremock::MockServer;

/// The grace window of these runs: longer than any fault lasts, so that an event held back by
/// a failover never arrives after its conversation's window closed (which would rightly be a
/// second episode).
pub const GRACE_MS: &str = "5000";

pub struct Replicas {
    pub cognigy: MockServer,
    pub replicas: Vec<Running>,
}

impl Replicas {
    /// Two replicas with `store` arguments and `extra` settings.
    pub async fn start(store: &[&str], extra: &[&str]) -> Self {
        let cognigy = crate::common::cognigy::answering(200).await;
        let url = format!("{}/ended", cognigy.uri());
        let mut args = store.to_vec();
        args.extend([
            "--forward",
            "true",
            "--cognigy-url",
            &url,
            "--end-grace-ms",
            GRACE_MS,
            "--retry-base-ms",
            "100",
            "--redis-timeout-ms",
            "500",
        ]);
        args.extend_from_slice(extra);
        let replicas = vec![Running::start(&args).await, Running::start(&args).await];
        Self { cognigy, replicas }
    }

    pub fn urls(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.base_url.clone()).collect()
    }
}
