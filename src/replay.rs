//! `replay`: POSTs EventBridge events from files to a receiver, as EventBridge would, e.g. to
//! recover events from the rule's dead-letter queue after an outage. Replaying the same events
//! twice changes nothing: the receiver answers the second time `duplicate`.

use crate::config::API_KEY_ENV;
use crate::http::EVENTS_PATH;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Files to read: one EventBridge event per file, a JSON array of events, JSON lines, or an
    /// SQS dump (`aws sqs receive-message` output, or messages one per line) whose bodies are
    /// events.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// The receiver's events URL.
    #[arg(long, default_value_t = format!("http://127.0.0.1:8080{EVENTS_PATH}"))]
    pub url: String,

    /// The API key to send (as EventBridge does, in Authorization).
    #[arg(long, env = API_KEY_ENV, hide_env_values = true)]
    pub api_key: Option<String>,

    /// Events per second at most.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,

    /// Attempts per event on 429, 5xx and connection errors.
    #[arg(long, default_value_t = 5)]
    pub attempts: u32,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub accepted: usize,
    pub duplicates: usize,
    pub ignored: usize,
    pub failed: usize,
}

impl Summary {
    pub fn total(&self) -> usize {
        self.accepted + self.duplicates + self.ignored + self.failed
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events: {} accepted, {} duplicates, {} ignored, {} failed",
            self.total(),
            self.accepted,
            self.duplicates,
            self.ignored,
            self.failed
        )
    }
}

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("{API_KEY_ENV} (or --api-key) is required")]
    MissingApiKey,
    #[error("--rate must be greater than 0")]
    BadRate,
    #[error("{path}: {error}")]
    Unreadable { path: String, error: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// One event to post, with where it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub origin: String,
    pub body: String,
}

/// Reads every event of every file, in order.
pub fn read_all(files: &[PathBuf]) -> Result<Vec<Item>, ReplayError> {
    let mut items = Vec::new();
    for path in files {
        items.extend(read_file(path)?);
    }
    Ok(items)
}

fn read_file(path: &Path) -> Result<Vec<Item>, ReplayError> {
    let name = path.display().to_string();
    let unreadable = |error: String| ReplayError::Unreadable {
        path: name.clone(),
        error,
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    // A whole-file JSON document: one event, an array, or an SQS dump.
    if let Ok(document) = serde_json::from_str::<Value>(&text) {
        return match document {
            Value::Object(ref object) if object.contains_key("Messages") => {
                let messages = object["Messages"].as_array().cloned().unwrap_or_default();
                messages
                    .iter()
                    .enumerate()
                    .map(|(n, message)| from_value(message, &format!("{name}#{n}")))
                    .collect::<Result<_, _>>()
                    .map_err(unreadable)
            }
            Value::Array(elements) => elements
                .iter()
                .enumerate()
                .map(|(n, element)| from_value(element, &format!("{name}#{n}")))
                .collect::<Result<_, _>>()
                .map_err(unreadable),
            // A single event: posted byte for byte.
            _ => Ok(vec![Item {
                origin: name.clone(),
                body: text.trim().to_owned(),
            }]),
        };
    }
    // JSON lines: events, or SQS messages with a Body.
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let origin = format!("{name}:{}", n + 1);
        let value: Value = serde_json::from_str(line)
            .map_err(|e| unreadable(format!("line {}: not JSON: {e}", n + 1)))?;
        if value.get("Body").is_some() {
            items.push(from_value(&value, &origin).map_err(unreadable)?);
        } else {
            items.push(Item {
                origin,
                body: line.to_owned(),
            });
        }
    }
    Ok(items)
}

/// An SQS message (its `Body` is the event) or an event itself.
fn from_value(value: &Value, origin: &str) -> Result<Item, String> {
    let body = match value.get("Body") {
        Some(Value::String(body)) => body.clone(),
        Some(other) => other.to_string(),
        None => value.to_string(),
    };
    if serde_json::from_str::<Value>(&body).is_err() {
        return Err(format!("{origin}: message body is not JSON"));
    }
    Ok(Item {
        origin: origin.to_owned(),
        body,
    })
}

/// Posts every item; reports progress on a terminal and returns the counts.
pub async fn run(args: &ReplayArgs) -> Result<Summary, ReplayError> {
    let key = args
        .api_key
        .clone()
        .filter(|k| !k.is_empty())
        .ok_or(ReplayError::MissingApiKey)?;
    if !args.rate.is_finite() || args.rate <= 0.0 {
        return Err(ReplayError::BadRate);
    }
    let items = read_all(&args.files)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ReplayError::Client(e.to_string()))?;
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    let progress = std::io::stderr().is_terminal();
    let mut summary = Summary::default();
    for item in &items {
        pace.tick().await;
        match post(&client, args, &key, item).await {
            Outcome::Accepted => summary.accepted += 1,
            Outcome::Duplicate => summary.duplicates += 1,
            Outcome::Ignored => summary.ignored += 1,
            Outcome::Failed(reason) => {
                summary.failed += 1;
                eprintln!("{}: {reason}", item.origin);
            }
        }
        if progress {
            eprint!("\r{}/{} {summary}", summary.total(), items.len());
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprintln!();
    }
    Ok(summary)
}

enum Outcome {
    Accepted,
    Duplicate,
    Ignored,
    Failed(String),
}

async fn post(client: &reqwest::Client, args: &ReplayArgs, key: &str, item: &Item) -> Outcome {
    let mut last = String::new();
    for attempt in 1..=args.attempts.max(1) {
        let sent = client
            .post(&args.url)
            .header("authorization", key)
            .header("content-type", "application/json")
            .body(item.body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                last = error.without_url().to_string();
                backoff(attempt, None).await;
                continue;
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap_or_default())
            .unwrap_or(Value::Null);
        match (status, body["status"].as_str()) {
            (202, _) => return Outcome::Accepted,
            (200, Some("duplicate")) => return Outcome::Duplicate,
            (200, _) => return Outcome::Ignored,
            (429 | 500..=599, _) => {
                last = format!("{status} {body}");
                backoff(attempt, retry_after).await;
            }
            _ => return Outcome::Failed(format!("{status} {body}")),
        }
    }
    Outcome::Failed(format!("gave up after {} attempts: {last}", args.attempts))
}

async fn backoff(attempt: u32, retry_after_secs: Option<u64>) {
    let exponential = Duration::from_millis(200 * (1 << attempt.min(6)));
    let asked = Duration::from_secs(retry_after_secs.unwrap_or(0).min(60));
    tokio::time::sleep(exponential.max(asked)).await;
}
