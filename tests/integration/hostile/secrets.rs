//! `docs/contract.md` §5: secrets that could never match are refused at start-up and by `check-config`, and
//! `check-config` prints no secret, no user information and no query.

use crate::common::app::KEY;
use crate::hostile::cognigy::run_to_exit;
use std::time::Duration;

/// Defect: a key with a trailing newline (what `gen-key | head -1 > f; kubectl ... --from-file`
/// produces) passed `check-config` and start-up, then every request got 401.
#[test]
fn keys_that_could_never_match_are_refused_at_start_and_by_check_config() {
    let good = "a-good-key-0123456789";
    for (variable, value, problem) in [
        (
            "GENESYS_EVENTBRIDGE_HANDOVER_API_KEY",
            format!("{good}\n"),
            "ends with a newline",
        ),
        (
            "GENESYS_EVENTBRIDGE_HANDOVER_API_KEY",
            "tooshort".to_owned(),
            "at least 12",
        ),
        (
            "GENESYS_EVENTBRIDGE_HANDOVER_API_KEY",
            "with a space inside".to_owned(),
            "whitespace",
        ),
        (
            "GENESYS_EVENTBRIDGE_HANDOVER_API_KEY_PREVIOUS",
            format!("{good}-old\r\n"),
            "ends with a newline",
        ),
        (
            "HANDOVER_ADMIN_TOKEN",
            format!("{good}-admin\n"),
            "ends with a newline",
        ),
        ("HANDOVER_ADMIN_TOKEN", "k".repeat(513), "at most 512"),
    ] {
        let mut env = vec![("HANDOVER_LISTEN_ADDR", "127.0.0.1:0")];
        if variable != "GENESYS_EVENTBRIDGE_HANDOVER_API_KEY" {
            env.push(("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", good));
        }
        env.push((variable, &value));
        for args in [&["check-config"][..], &[][..]] {
            let output = run_to_exit(&env, args, Duration::from_secs(5));
            assert_eq!(output.status.code(), Some(2), "{variable} {args:?}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains(variable), "{stderr}");
            assert!(stderr.contains(problem), "{stderr}");
            assert!(
                !stderr.contains(value.trim()),
                "the value is printed: {stderr}"
            );
            assert!(output.stdout.is_empty());
        }
    }
}

/// Defect: `check-config` printed the Cognigy URL's `user:password@` (now refused outright) and
/// its query.
#[test]
fn check_config_prints_no_user_information_and_no_query() {
    let output = run_to_exit(
        &[
            ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
            ("FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST", "true"),
            (
                "HANDOVER_COGNIGY_URL",
                "https://cognigy.example/{organisationId}/end?token=sekrit",
            ),
        ],
        &["check-config"],
        Duration::from_secs(5),
    );
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("HANDOVER_COGNIGY_URL=https://cognigy.example/{organisationId}/end?<hidden>"),
        "{text}"
    );
    assert!(!text.contains("sekrit"), "{text}");
    for name in [
        "HANDOVER_MAX_FUTURE_MS=300000",
        "HANDOVER_MAX_LEGS=200",
        "HANDOVER_HEADER_READ_TIMEOUT_MS=10000",
        "HANDOVER_IDLE_TIMEOUT_SECS=60",
        "HANDOVER_MAX_CONNECTIONS=10000",
        "HANDOVER_DELIVERY_CONCURRENCY=32",
        "HANDOVER_DELIVERY_PER_DESTINATION=8",
        "HANDOVER_COGNIGY_TIMEOUT_MS=3000",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let with_user = run_to_exit(
        &[
            ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
            ("FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST", "true"),
            (
                "HANDOVER_COGNIGY_URL",
                "https://admin:hunter2@cognigy.example/end",
            ),
        ],
        &["check-config"],
        Duration::from_secs(5),
    );
    assert_eq!(with_user.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&with_user.stdout),
        String::from_utf8_lossy(&with_user.stderr)
    );
    assert!(!all.contains("hunter2") && !all.contains("admin:"), "{all}");
}
