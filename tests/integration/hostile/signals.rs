//! `docs/contract.md` §5: the signals for operators and the log rule: what operators see of hostile traffic.

use crate::common::app::{EVENTS, KEY, post_event, sample, send, service};
use crate::common::events::*;
use crate::common::process::{Process, command};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

/// Defect: internet noise on the public path fired the critical 401 alert. 401s are counted by
/// caller, so that the alert watches EventBridge's alone.
#[tokio::test]
async fn unauthorized_requests_are_counted_by_caller() {
    let svc = service(&[]);
    for user_agent in [
        Some("Amazon/EventBridge/ApiDestinations"),
        Some("curl/8.5.0"),
        None,
    ] {
        let mut request = Request::post(EVENTS)
            .header("authorization", "a-wrong-key-123456")
            .header("content-type", "application/json");
        if let Some(agent) = user_agent {
            request = request.header("user-agent", agent);
        }
        let answer = send(
            &svc,
            request
                .body(Body::from(sample("user-end-client.json")))
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let metrics = svc.state.metrics.render();
    assert!(
        metrics.contains(r#"handover_unauthorized_total{caller="eventbridge"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"handover_unauthorized_total{caller="other"} 2"#),
        "{metrics}"
    );
}

/// Defect: every 503 wrote a context-free ERROR. Now one WARN line with its reason.
#[tokio::test]
async fn a_503_is_one_warn_line_with_its_reason() {
    let mut process = Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_MAX_CONVERSATIONS", "1"),
    ]);
    let mut statuses = Vec::new();
    for conversation in ["first-conversation", "second-conversation"] {
        let (status, _) = process
            .post(start("A", 1_000).envelope(conversation).to_string())
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [202, 503]);
    process.wait_for_line("answered 503");
    let lines: Vec<Value> = process
        .all_lines()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let about_503: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"].as_str().unwrap_or_default().contains("503") || l["status"] == 503)
        .collect();
    assert_eq!(about_503.len(), 1, "{about_503:#?}");
    assert_eq!(about_503[0]["level"], "WARN");
    assert_eq!(about_503[0]["reason"], "overloaded");
    assert!(
        lines.iter().all(|l| l["level"] != "ERROR"),
        "an ERROR line: {lines:#?}"
    );
}

/// Defect: pretty logs wrote CR, LF and ESC from event fields raw (forged log lines, terminal
/// escapes).
#[tokio::test]
async fn pretty_logs_escape_control_characters_from_event_fields() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = KillOnDrop(
        command(&[
            ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
            ("HANDOVER_LISTEN_ADDR", &format!("127.0.0.1:{port}")),
            ("HANDOVER_LOG_FORMAT", "pretty"),
            ("NO_COLOR", "1"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let wait_for = |needle: &str, lines: &mut Vec<String>| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no line with {needle:?}: {lines:#?}"));
        lines.push(line.clone());
        if line.contains(needle) {
            return line;
        }
    };
    wait_for("listening", &mut lines);
    let forged = "corr\r\n2026-01-01T00:00:00Z  INFO FORGED: handover ended\u{1b}[2J";
    let mut event = end("A", 1_000, "CLIENT").envelope("escape-test");
    event["detail"]["metadata"]["CorrelationId"] = json!(forged);
    event["detail"]["eventBody"]["disconnectType"] = json!("CLIENT\nFORGED");
    // A forged line in a key identifier (refused now; logged raw before), then in free text.
    let mut in_identifier = start("A", 500).envelope("escape-test");
    in_identifier["detail"]["eventBody"]["conversationId"] = json!(format!("x{forged}"));
    for (event, expected) in [(in_identifier, 400), (event, 202)] {
        let status = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}{EVENTS}"))
            .header("authorization", KEY)
            .header("content-type", "application/json")
            .body(event.to_string())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), expected);
    }
    let processed = wait_for("event processed", &mut lines);
    drop(child);
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(line);
    }
    assert!(processed.contains(r"corr\r\n2026"), "{processed}");
    assert!(processed.contains(r"\u{1b}[2J"), "{processed}");
    assert!(
        lines.iter().all(|l| !l
            .trim_start()
            .starts_with("2026-01-01T00:00:00Z  INFO FORGED")),
        "a forged line: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains('\u{1b}') && !l.contains('\r')),
        "a raw control character: {lines:#?}"
    );
}

/// The log rule in the default JSON format, through the real process: a free-text field that
/// carries a line break, a whole forged JSON line, a terminal escape and its C1 form stays one
/// string inside the decision line. Every line the process writes is one JSON object.
#[tokio::test]
async fn json_logs_keep_a_forged_line_inside_its_field() {
    let mut process = Process::start(&[("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY)]);
    let forged =
        "corr\r\n{\"level\":\"INFO\",\"message\":\"handover ended\"}\u{1b}[2J \u{9b}2J \"q\" \\";
    let mut event = end("A", 1_000, "CLIENT").envelope("json-escape-test");
    event["detail"]["metadata"]["CorrelationId"] = json!(forged);
    let (status, _) = process.post(event.to_string()).await;
    assert_eq!(status, 202);
    process.wait_for_line("event processed");
    let text = process.all_lines();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    let processed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "event processed")
        .collect();
    assert_eq!(processed.len(), 1, "{lines:#?}");
    assert_eq!(processed[0]["correlationId"], forged);
    assert!(
        lines.iter().all(|l| l["message"] != "handover ended"),
        "a forged line: {lines:#?}"
    );
    assert!(
        !text.contains(['\u{1b}', '\r', '\u{9b}']),
        "a raw control character: {text:?}"
    );
}

/// A child process that a failing assertion must not leave running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Never 401 for anything but the key: a downstream or pass-through 401 included (see
/// `passthrough`), and a request with the right key whatever its body.
#[tokio::test]
async fn the_right_key_never_gets_401() {
    let svc = service(&[]);
    for body in [&b"\x00\xff"[..], b"[]", b"{}", b"null", br#"{"id":1}"#] {
        let answer = send(&svc, post_event(body.to_vec(), Some(KEY))).await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED);
    }
}
