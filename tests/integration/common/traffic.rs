//! Conversations posted as EventBridge posts them while a test breaks the store: a POST answered
//! with anything but 2xx is sent again (EventBridge retries for a day; here for a minute), so a
//! 503 costs nothing and a 2xx is a promise. At the end, every conversation must have been
//! called exactly once (a resend with the same Idempotency-Key is allowed).

use super::app::{EVENTS, KEY};
use super::events::*;
use super::shuffle::deliveries;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use wiremock::MockServer;

/// How long one event may keep failing before the test gives up on it.
const RETRY_FOR: Duration = Duration::from_secs(60);
const LANES: usize = 8;

/// The events of conversation `n`: transfers, rejects, after-call work, a customer end on some.
pub fn conversation(n: usize) -> Vec<Spec> {
    let mut events = vec![
        start("A", 1_000),
        end("A", 60_000, "TRANSFER"),
        acw("A", 63_500),
    ];
    if n % 3 == 0 {
        events.push(start("X", 61_000));
        events.push(reject("X", 65_000, "NO_ANSWER_TRANSFER"));
    }
    events.extend([
        start("B", 66_000),
        end("B", 120_000, "CLIENT"),
        acw("B", 121_000),
    ]);
    if n % 2 == 0 {
        events.push(customer_end(120_015));
    }
    events
}

/// What came of one run: the counts the closing note and the README give per fault.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Conversations that ended.
    pub expected: usize,
    /// Conversations Cognigy was told about.
    pub delivered: usize,
    pub missing: usize,
    /// Calls beyond the first with the same Idempotency-Key (allowed: Cognigy dedupes them).
    pub resends: usize,
    /// Conversations told about twice under different keys (an end too many: never allowed).
    pub second_ends: usize,
    /// Answers other than 2xx, each followed by a retry.
    pub refused: usize,
}

impl Report {
    /// Nothing lost, nothing ended twice.
    pub fn assert_exactly_once(&self, what: &str) {
        println!("{what}: {self:?}");
        assert_eq!(self.missing, 0, "{what}: ends lost: {self:?}");
        assert_eq!(self.second_ends, 0, "{what}: second ends: {self:?}");
        assert_eq!(self.delivered, self.expected, "{what}: {self:?}");
    }
}

/// Conversations being posted to the given service base URLs, in the background.
pub struct Traffic {
    conversations: usize,
    posted: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    total: usize,
    lanes: JoinSet<()>,
}

impl Traffic {
    /// Starts posting `conversations` conversations, their events shuffled with duplicates,
    /// each conversation on one lane, lanes split over `replicas` (base URLs) in turn.
    pub fn start(replicas: &[String], conversations: usize) -> Self {
        let mut lanes: Vec<Vec<(String, Value)>> = (0..LANES).map(|_| Vec::new()).collect();
        for n in 0..conversations {
            let id = format!("conversation-{n:04}");
            let lane = n % LANES;
            for (k, delivery) in deliveries(&conversation(n), &id, n as u64 + 1)
                .into_iter()
                .enumerate()
            {
                let replica = &replicas[(n + k) % replicas.len()];
                lanes[lane].push((
                    replica.clone(),
                    delivery.spec.envelope_with_id(&id, &delivery.envelope_id),
                ));
            }
        }
        let total = lanes.iter().map(Vec::len).sum();
        let posted = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut tasks = JoinSet::new();
        for lane in lanes {
            let (posted, refused, client) = (posted.clone(), refused.clone(), client.clone());
            tasks.spawn(async move {
                for (base_url, event) in lane {
                    post_until_accepted(&client, &base_url, &event, &refused).await;
                    posted.fetch_add(1, Ordering::Relaxed);
                    // Spread the stream out so that faults land in the middle of it.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            });
        }
        Self {
            conversations,
            posted,
            refused,
            total,
            lanes: tasks,
        }
    }

    /// Waits until `fraction` of the events have been accepted.
    pub async fn reached(&self, fraction: f64) {
        let target = (self.total as f64 * fraction) as usize;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while self.posted.load(Ordering::Relaxed) < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "traffic stalled at {} of {}",
                self.posted.load(Ordering::Relaxed),
                self.total
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for every event to be accepted, then for the ends to reach `cognigy`, and counts.
    pub async fn finish(mut self, cognigy: &MockServer, settle: Duration) -> Report {
        while let Some(lane) = self.lanes.join_next().await {
            lane.expect("a lane of posts panicked");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let seen = calls_per_conversation(cognigy).await.len();
            if seen >= self.conversations || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Late resends and second ends, if any, show up here.
        tokio::time::sleep(settle).await;
        let calls = calls_per_conversation(cognigy).await;
        let mut report = Report {
            expected: self.conversations,
            delivered: calls.len(),
            missing: self.conversations.saturating_sub(calls.len()),
            refused: self.refused.load(Ordering::Relaxed),
            ..Report::default()
        };
        for keys in calls.values() {
            if keys.len() > 1 {
                report.second_ends += 1;
            }
            report.resends += keys.values().map(|n| n - 1).sum::<usize>();
        }
        report
    }
}

/// Conversation id -> Idempotency-Key -> calls.
async fn calls_per_conversation(cognigy: &MockServer) -> HashMap<String, HashMap<String, usize>> {
    let mut calls: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for request in cognigy.received_requests().await.unwrap_or_default() {
        let Some(key) = request.headers.get("idempotency-key") else {
            continue;
        };
        let key = key.to_str().unwrap().to_owned();
        let conversation = key.split(':').nth(1).unwrap_or_default().to_owned();
        *calls
            .entry(conversation)
            .or_default()
            .entry(key)
            .or_default() += 1;
    }
    calls
}

/// POSTs one event as EventBridge does, again and again until a 2xx.
async fn post_until_accepted(
    client: &reqwest::Client,
    base_url: &str,
    event: &Value,
    refused: &AtomicUsize,
) {
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    let mut pause = Duration::from_millis(50);
    loop {
        let answer = client
            .post(format!("{base_url}{EVENTS}"))
            .header("authorization", KEY)
            .header("content-type", "application/json")
            .body(event.to_string())
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                assert!(
                    status == 503 || status == 500 || status == 504,
                    "{status} {body}"
                );
                assert!(
                    !body.contains("hr:") && !body.contains("{hr"),
                    "a 503 body echoes a Redis key: {body}"
                );
            }
            Err(_) => {}
        }
        refused.fetch_add(1, Ordering::Relaxed);
        assert!(
            tokio::time::Instant::now() < deadline,
            "an event was refused for {RETRY_FOR:?}: {event}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(800));
    }
}
