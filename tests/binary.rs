//! The real executable: start-up checks, `--help`, logs, and SIGTERM.

mod common;

use common::app::{EVENTS, KEY, sample};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_handover-receiver");

/// The binary with a clean environment: only what the test sets.
fn command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command.env_clear();
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

#[test]
fn refuses_to_start_without_the_api_key() {
    for env in [&[][..], &[("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", "")][..]] {
        let output = command(env).output().expect("binary runs");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY"),
            "{stderr}"
        );
    }
}

#[test]
fn refuses_to_forward_without_a_cognigy_url() {
    let output = command(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST", "true"),
    ])
    .output()
    .expect("binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HANDOVER_COGNIGY_URL"), "{stderr}");
    assert!(!stderr.contains(KEY));
}

#[test]
fn help_documents_every_setting_with_its_environment_variable() {
    let output = command(&[]).arg("--help").output().expect("binary runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for name in [
        "GENESYS_EVENTBRIDGE_HANDOVER_API_KEY",
        "GENESYS_EVENTBRIDGE_HANDOVER_API_KEY_PREVIOUS",
        "FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST",
        "HANDOVER_COGNIGY_URL",
        "HANDOVER_COGNIGY_AUTHORIZATION",
        "HANDOVER_FORWARD_FORMAT",
        "HANDOVER_LISTEN_ADDR",
        "HANDOVER_STORE",
        "HANDOVER_END_GRACE_MS",
        "HANDOVER_ALLOWED_ORGANISATIONS",
        "HANDOVER_MESSAGE_TYPES",
        "HANDOVER_STATE_TTL_SECS",
        "HANDOVER_SHUTDOWN_GRACE_SECS",
        "HANDOVER_LOG_FORMAT",
    ] {
        assert!(help.contains(name), "--help does not mention {name}");
    }
}

/// Reads the child's stdout lines on a thread, so the test can wait for one with a deadline.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no log line with {needle:?}; saw {seen:#?}"));
        seen.push(line.clone());
        if line.contains(needle) {
            return line;
        }
    }
}

#[tokio::test]
async fn serves_in_shadow_mode_logs_json_and_drains_on_sigterm() {
    let mut child = command(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_LISTEN_ADDR", "127.0.0.1:0"),
        ("HANDOVER_END_GRACE_MS", "300"),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("binary starts");
    let lines = lines_of(&mut child);
    let mut seen = Vec::new();

    let shadow = wait_for_line(&lines, &mut seen, "SHADOW MODE");
    let shadow: serde_json::Value = serde_json::from_str(&shadow).expect("logs are JSON lines");
    assert_eq!(shadow["level"], "WARN");
    let listening: serde_json::Value =
        serde_json::from_str(&wait_for_line(&lines, &mut seen, "\"listening\"")).unwrap();
    let addr = listening["addr"]
        .as_str()
        .expect("the listening line names the address");

    let response = reqwest::Client::new()
        .post(format!("http://{addr}{EVENTS}"))
        .header("authorization", KEY)
        .header("content-type", "application/json")
        .body(sample("user-end-client.json"))
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.status().as_u16(), 202);
    let decision: serde_json::Value =
        serde_json::from_str(&wait_for_line(&lines, &mut seen, "event processed")).unwrap();
    assert_eq!(decision["organisationId"], "handover-prod");
    assert_eq!(
        decision["conversationId"],
        "8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d"
    );
    assert_eq!(decision["topic"], "user.end");
    assert_eq!(
        decision["correlationId"],
        "c4d5e6f7-0819-4a2b-b3c4-d5e6f708192a"
    );
    assert_eq!(decision["decision"], "end_candidate");

    // SIGTERM inside the grace window: the end is still decided before the process exits.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    wait_for_line(&lines, &mut seen, "handover ended");
    wait_for_line(&lines, &mut seen, "drained");
    let exit = child.wait().expect("the process exits");
    assert!(exit.success(), "exit status {exit}");
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        seen.push(line);
    }
    let all = seen.join("\n");
    assert!(!all.contains(KEY), "the API key appeared in the logs");
}
