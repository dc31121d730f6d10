//! The real executable: start-up checks, `--help`, logs, and SIGTERM.

use crate::common::app::{EVENTS, KEY, sample};
use crate::common::process::{Process, command};

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

#[tokio::test]
async fn serves_in_shadow_mode_logs_json_and_drains_on_sigterm() {
    let mut process = Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_END_GRACE_MS", "300"),
    ]);
    let shadow = process
        .seen
        .iter()
        .find(|l| l.contains("SHADOW MODE"))
        .expect("announced before listening");
    let shadow: serde_json::Value = serde_json::from_str(shadow).expect("logs are JSON lines");
    assert_eq!(shadow["level"], "WARN");

    let response = reqwest::Client::new()
        .post(format!("http://{}{EVENTS}", process.addr))
        .header("authorization", KEY)
        .header("content-type", "application/json")
        .body(sample("user-end-client.json"))
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.status().as_u16(), 202);
    let decision: serde_json::Value =
        serde_json::from_str(&process.wait_for_line("event processed")).unwrap();
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
    process.signal("-TERM");
    process.wait_for_line("handover ended");
    process.wait_for_line("drained");
    let exit = process.child.wait().expect("the process exits");
    assert!(exit.success(), "exit status {exit}");
    assert!(
        !process.all_lines().contains(KEY),
        "the API key appeared in the logs"
    );
}

#[test]
fn gen_key_prints_a_base64_key_of_23_alphanumeric_characters() {
    use base64::Engine;
    let output = command(&[]).arg("gen-key").output().expect("binary runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let key = text.lines().next().unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key)
        .expect("base64");
    assert_eq!(raw.len(), 23);
    assert!(raw.iter().all(u8::is_ascii_alphanumeric));
    assert!(text.contains("kubectl create secret generic genesys-handover-secret"));
    assert!(text.contains(&format!("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY='{key}'")));
}

#[test]
fn check_config_prints_effective_settings_with_secrets_masked() {
    let output = command(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST", "true"),
        (
            "HANDOVER_COGNIGY_URL",
            "https://cognigy.example/{organisationId}/end?token=sekrit",
        ),
        ("HANDOVER_COGNIGY_AUTHORIZATION", "Basic c2VjcmV0"),
        ("HANDOVER_STORE", "redis://:hunter2@redis.example:6379/0"),
    ])
    .arg("check-config")
    .output()
    .expect("binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY=<set>"),
        "{text}"
    );
    assert!(
        text.contains("HANDOVER_COGNIGY_URL=https://cognigy.example/{organisationId}/end"),
        "{text}"
    );
    assert!(text.contains("HANDOVER_END_GRACE_MS=10000"), "{text}");
    for secret in [KEY, "c2VjcmV0", "hunter2", "sekrit"] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }

    let invalid = command(&[])
        .arg("check-config")
        .output()
        .expect("binary runs");
    assert_eq!(invalid.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&invalid.stderr).contains("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY")
    );
}

#[test]
fn healthcheck_exits_0_against_a_live_service_and_1_otherwise() {
    let process = Process::start(&[("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY)]);
    let live = command(&[])
        .args([
            "healthcheck",
            "--url",
            &format!("http://{}/livez", process.addr),
        ])
        .status()
        .unwrap();
    assert!(live.success());
    let port = process.addr.rsplit(':').next().unwrap().to_owned();
    let by_listen_addr = command(&[("HANDOVER_LISTEN_ADDR", &format!("0.0.0.0:{port}"))])
        .arg("healthcheck")
        .status()
        .unwrap();
    assert!(by_listen_addr.success(), "0.0.0.0 is read as 127.0.0.1");
    drop(process);
    let dead = command(&[])
        .args(["healthcheck", "--url", "http://127.0.0.1:9/livez"])
        .status()
        .unwrap();
    assert!(!dead.success());
}

#[test]
fn pretty_log_format_writes_human_lines_not_json() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = command(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_LISTEN_ADDR", &format!("127.0.0.1:{port}")),
        ("HANDOVER_LOG_FORMAT", "pretty"),
        ("NO_COLOR", "1"),
    ])
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let shadow = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a shadow-mode line in pretty format");
        if line.contains("SHADOW MODE") {
            break line;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !shadow.trim_start().starts_with('{'),
        "pretty format wrote JSON: {shadow}"
    );
    assert!(shadow.contains("WARN"), "{shadow}");
    assert!(serde_json::from_str::<serde_json::Value>(&shadow).is_err());
}
