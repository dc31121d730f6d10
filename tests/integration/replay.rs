//! `replay`: files of events POSTed to a real receiver, counted, and idempotent.

use crate::common::app::{KEY, sample};
use crate::common::backend::Backend;
use crate::common::events::{end, start};
use handover_receiver::replay::{ReplayArgs, Summary, read_all, run};
use serde_json::json;
use std::path::PathBuf;

const CONVERSATION: &str = "6f1e2d3c-4b5a-4968-8776-655443322110";

/// A directory of input files of every supported shape, removed on drop.
struct Inputs {
    dir: PathBuf,
}

impl Inputs {
    fn write() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "handover-replay-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // One event per file, as EventBridge posts it (kept byte for byte).
        std::fs::write(dir.join("single.json"), sample("user-end-transfer.json")).unwrap();
        // JSON lines: two handled events and one the service ignores.
        let lines = [
            start("A", 1_000).envelope(CONVERSATION).to_string(),
            end("A", 9_000, "TRANSFER")
                .envelope(CONVERSATION)
                .to_string(),
            String::from_utf8(sample("voice-user-end.json"))
                .unwrap()
                .replace('\n', ""),
        ];
        std::fs::write(dir.join("events.jsonl"), lines.join("\n") + "\n").unwrap();
        // An SQS dump of the rule's dead-letter queue: bodies are events, as strings.
        let dump = json!({ "Messages": [
            { "MessageId": "m-1", "Body": start("B", 10_000).envelope(CONVERSATION).to_string() },
            { "MessageId": "m-2", "Body": end("B", 20_000, "TRANSFER").envelope(CONVERSATION).to_string() },
        ]});
        std::fs::write(dir.join("dlq.json"), dump.to_string()).unwrap();
        Self { dir }
    }

    fn files(&self) -> Vec<PathBuf> {
        ["single.json", "events.jsonl", "dlq.json"]
            .iter()
            .map(|f| self.dir.join(f))
            .collect()
    }
}

impl Drop for Inputs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn every_input_shape_is_read() {
    let inputs = Inputs::write();
    let items = read_all(&inputs.files()).unwrap();
    assert_eq!(items.len(), 6);
    assert_eq!(
        items[0].body,
        String::from_utf8(sample("user-end-transfer.json"))
            .unwrap()
            .trim()
    );
    assert!(items[1].origin.ends_with("events.jsonl:1"));
    assert!(items[4].origin.ends_with("dlq.json#0"));
}

crate::on_both_stores!(replay_counts_and_replaying_twice_changes_nothing);

async fn replay_counts_and_replaying_twice_changes_nothing(backend: Backend) {
    let running = backend.start(&[]).await;
    let inputs = Inputs::write();
    let args = ReplayArgs {
        files: inputs.files(),
        url: format!("{}/handover/genesysCloudOM", running.base_url),
        api_key: Some(KEY.to_owned()),
        rate: 500.0,
        attempts: 3,
    };
    let first = run(&args).await.unwrap();
    assert_eq!(
        first,
        Summary {
            accepted: 5,
            duplicates: 0,
            ignored: 1,
            failed: 0
        }
    );
    let second = run(&args).await.unwrap();
    assert_eq!(
        second,
        Summary {
            accepted: 0,
            duplicates: 5,
            ignored: 1,
            failed: 0
        }
    );

    let wrong_key = ReplayArgs {
        api_key: Some("wrong".into()),
        ..args
    };
    let refused = run(&wrong_key).await.unwrap();
    assert_eq!(refused.failed, 6, "401s are failures, not retried");
    running.shutdown().await;
}
