//! `docs/contract.md` §5 and §6: the call to Cognigy cannot be moved by an event, one tenant's hung endpoint
//! does not hold back another's ends, failures say their cause, and no time panics a delivery.

use crate::common::app::KEY;
use crate::common::events::*;
use crate::common::process::{Process, command};
use crate::common::running::{Running, eventually};
use serde_json::{Value, json};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(10);

fn customer_end_for(organisation: &str, conversation: &str, t: i64) -> Value {
    let mut event = customer_end(t).envelope(conversation);
    event["source"] = json!(format!(
        "aws.partner/genesys.com/cloud/{GENESYS_ORG}/{organisation}"
    ));
    event
}

/// Runs the binary to its exit, or kills it after `limit` (a build that starts when it should
/// refuse would otherwise run for ever).
pub fn run_to_exit(env: &[(&str, &str)], args: &[&str], limit: Duration) -> Output {
    let mut child = command(env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Defect: suffix `..` turned `.../handover/{organisationId}/end` into `POST /end`, `x?inject=1&a=`
/// injected a query, CR LF made an end that was retried for 24 h and never sent.
#[tokio::test]
async fn no_organisation_id_can_move_the_call_to_another_path_or_query() {
    let cognigy = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&cognigy)
        .await;
    let url = format!(
        "{}/handover/{{organisationId}}/end?tenant={{organisationId}}",
        cognigy.uri()
    );
    let running = Running::start(&["--forward", "true", "--cognigy-url", &url]).await;
    for (n, suffix) in [
        "..",
        ".",
        "x?inject=1&a=",
        "x#fragment",
        "x\r\nInjected: 1",
        "127.0.0.1:9999#",
        "a%2F..%2Fb",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = running
            .post(&customer_end_for(suffix, &format!("c-{n}"), 1_000))
            .await;
        assert_eq!(status, 400, "{suffix:?}: {body}");
        assert_eq!(body["error"], "invalid_identifier", "{suffix:?}");
    }
    let (status, _) = running
        .post(&customer_end_for("tenant-1.prod_2", "c-ok", 1_000))
        .await;
    assert_eq!(status, 202);
    eventually(WAIT, "the valid end is delivered", || async {
        !cognigy.received_requests().await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = cognigy.received_requests().await.unwrap();
    let targets: Vec<String> = received
        .iter()
        .map(|r| format!("{}?{}", r.url.path(), r.url.query().unwrap_or_default()))
        .collect();
    assert_eq!(
        targets,
        ["/handover/tenant-1.prod_2/end?tenant=tenant-1.prod_2"]
    );
    assert_eq!(
        received[0].headers["idempotency-key"],
        "tenant-1.prod_2:c-ok:1"
    );
    let counts = running.state.store.counts().await.unwrap();
    assert_eq!(counts.outbox, 0, "an end stuck in the outbox");
    running.shutdown().await;
}

/// Defect: with the placeholder in the host, a suffix could send the call (with its
/// Authorization) to another host. Such templates, and URLs with user information, are refused.
#[test]
fn templates_that_could_move_the_call_are_refused_at_start() {
    for (template, said) in [
        ("https://{organisationId}.cognigy.example/end", "host"),
        ("http://127.0.0.1:{organisationId}/end", "host"),
        ("https://cognigy.example/end#{organisationId}", "fragment"),
        (
            "https://cognigy.example/end?{organisationId}=1",
            "query name",
        ),
        (
            "https://user:hunter2@cognigy.example/end",
            "user information",
        ),
    ] {
        for args in [&["check-config"][..], &[][..]] {
            let output = run_to_exit(
                &[
                    ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
                    ("FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST", "true"),
                    ("HANDOVER_COGNIGY_URL", template),
                    ("HANDOVER_LISTEN_ADDR", "127.0.0.1:0"),
                ],
                args,
                Duration::from_secs(5),
            );
            assert_eq!(output.status.code(), Some(2), "{template} {args:?}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains("HANDOVER_COGNIGY_URL"), "{stderr}");
            assert!(stderr.contains(said), "{template}: {stderr}");
            assert!(!stderr.contains("hunter2"), "{stderr}");
        }
    }
}

async fn post(process: &Process, event: &Value) -> u16 {
    process.post(event.to_string()).await.0
}

/// Defect: one hung tenant endpoint delayed every other tenant's ends by 12 to 15 s (the delivery
/// worker waited for a whole batch).
#[tokio::test]
async fn a_hung_tenant_endpoint_does_not_delay_another_tenant() {
    let cognigy = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hung/end"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&cognigy)
        .await;
    Mock::given(method("POST"))
        .and(path("/healthy/end"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&cognigy)
        .await;
    let url = format!("{}/{{organisationId}}/end", cognigy.uri());
    let process = Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST", "true"),
        ("HANDOVER_COGNIGY_URL", &url),
        ("HANDOVER_COGNIGY_TIMEOUT_MS", "30000"),
    ]);
    for n in 0..12 {
        assert_eq!(
            post(
                &process,
                &customer_end_for("hung", &format!("h-{n}"), 1_000)
            )
            .await,
            202
        );
    }
    let hung = || async {
        cognigy
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/hung/end")
            .count()
    };
    eventually(WAIT, "calls to the hung tenant are in flight", || async {
        hung().await >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        hung().await <= 8,
        "more than 8 calls in flight to one destination"
    );

    assert_eq!(
        post(&process, &customer_end_for("healthy", "ok-1", 1_000)).await,
        202
    );
    eventually(
        Duration::from_secs(3),
        "the healthy tenant's end is delivered while the other tenant hangs",
        || async {
            cognigy
                .received_requests()
                .await
                .unwrap()
                .iter()
                .any(|r| r.url.path() == "/healthy/end")
        },
    )
    .await;
}

/// Defect: delivery errors said only "error sending request".
#[tokio::test]
async fn delivery_failures_are_logged_with_their_cause() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&slow)
        .await;
    for (url, cause) in [
        (
            format!("http://127.0.0.1:{closed_port}/end"),
            "connection refused",
        ),
        (format!("{}/end", slow.uri()), "timeout"),
    ] {
        let mut process = Process::start(&[
            ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
            ("FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST", "true"),
            ("HANDOVER_COGNIGY_URL", &url),
            ("HANDOVER_COGNIGY_TIMEOUT_MS", "300"),
        ]);
        assert_eq!(
            post(&process, &customer_end_for(ORG, "cause-1", 1_000)).await,
            202
        );
        let line = process.wait_for_line("not delivered");
        let line: Value = serde_json::from_str(&line).unwrap();
        let error = line["error"].as_str().unwrap();
        assert!(error.starts_with(cause), "{cause}: {error}");
        assert!(!error.contains(&url), "the URL is logged: {error}");
    }
}

/// Defect: eventTime 253402300800000 (year 10000) panicked the delivery task: the end sat in the
/// outbox for ever, shutdowns waited their full grace, and the admin view dropped the connection.
#[tokio::test]
async fn an_end_in_the_year_10000_is_delivered_shown_and_drained_without_a_panic() {
    let cognigy = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&cognigy)
        .await;
    let url = format!("{}/end", cognigy.uri());
    let admin = "admin-token-for-tests-0123";
    let mut process = Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST", "true"),
        ("HANDOVER_COGNIGY_URL", &url),
        ("HANDOVER_ADMIN_TOKEN", admin),
        // Far enough ahead for the year 10000 to be accepted.
        ("HANDOVER_MAX_FUTURE_MS", "9000000000000000"),
        ("HANDOVER_SHUTDOWN_GRACE_SECS", "10"),
    ]);
    let mut event = customer_end_for(ORG, "far-future", 0);
    event["detail"]["eventBody"]["eventTime"] = json!(253_402_300_800_000_i64);
    assert_eq!(post(&process, &event).await, 202);
    eventually(WAIT, "the end is delivered", || async {
        !cognigy.received_requests().await.unwrap().is_empty()
    })
    .await;
    let body: Value =
        serde_json::from_slice(&cognigy.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(body["endedAt"], "+10000-01-01T00:00:00.000Z");

    let view = reqwest::Client::new()
        .get(format!(
            "http://{}/admin/conversations/{ORG}/far-future",
            process.addr
        ))
        .bearer_auth(admin)
        .send()
        .await
        .expect("the admin view answers");
    assert_eq!(view.status().as_u16(), 200);
    let view: Value = serde_json::from_slice(&view.bytes().await.unwrap()).unwrap();
    assert_eq!(view["deliveries"][0]["status"], "done", "{view}");

    let asked = Instant::now();
    process.signal("-TERM");
    let status = process
        .wait_for_exit(Duration::from_secs(20))
        .expect("the process exits");
    assert!(status.success());
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "the drain waited its whole grace: {:?}",
        asked.elapsed()
    );
}
