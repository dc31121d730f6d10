//! `rediss://` with a private CA (made by openssl here), with and without a client certificate;
//! a missing or broken CA file stops start-up and `check-config`, naming the variable.

use crate::common::app::KEY;
use crate::common::events::start;
use crate::common::process::command;
use crate::common::redis_topology::Certificates;
use crate::common::running::{Running, eventually};
use std::time::Duration;

async fn becomes_ready_and_accepts(running: &Running) {
    eventually(Duration::from_secs(10), "ready over TLS", || async {
        running.ready_status().await == 200
    })
    .await;
    assert_eq!(running.post_spec(&start("A", 1_000), "c-1").await.0, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_besides_the_system_roots() {
    let certificates = Certificates::generate();
    let server = certificates.server(false);
    let url = format!("rediss://127.0.0.1:{}", server.port);

    let untrusting = Running::start(&["--store", &url, "--redis-timeout-ms", "500"]).await;
    let trusting = Running::start(&[
        "--store",
        &url,
        "--redis-ca-file",
        &certificates.path("ca.pem"),
    ])
    .await;
    becomes_ready_and_accepts(&trusting).await;
    assert_eq!(
        untrusting.ready_status().await,
        503,
        "a server certificate from an unknown CA was trusted"
    );
    untrusting.shutdown().await;
    trusting.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_when_configured() {
    let certificates = Certificates::generate();
    let server = certificates.server(true);
    let url = format!("rediss://127.0.0.1:{}", server.port);
    let ca = certificates.path("ca.pem");

    let without = Running::start(&[
        "--store",
        &url,
        "--redis-ca-file",
        &ca,
        "--redis-timeout-ms",
        "500",
    ])
    .await;
    let with = Running::start(&[
        "--store",
        &url,
        "--redis-ca-file",
        &ca,
        "--redis-client-cert-file",
        &certificates.path("client.pem"),
        "--redis-client-key-file",
        &certificates.path("client.key"),
    ])
    .await;
    becomes_ready_and_accepts(&with).await;
    assert_eq!(
        without.ready_status().await,
        503,
        "accepted without a client certificate"
    );
    without.shutdown().await;
    with.shutdown().await;
}

#[test]
fn a_missing_or_broken_ca_file_is_refused_naming_the_variable() {
    let certificates = Certificates::generate();
    std::fs::write(
        certificates.dir.join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for file in ["missing.pem", "broken.pem", "client.key"] {
        let path = certificates.path(file);
        let env = [
            ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
            ("HANDOVER_STORE", "rediss://:secret-password@127.0.0.1:6380"),
            ("HANDOVER_REDIS_CA_FILE", path.as_str()),
            ("HANDOVER_LISTEN_ADDR", "127.0.0.1:0"),
        ];
        for subcommand in ["check-config", "serve"] {
            let output = command(&env).arg(subcommand).output().expect("binary runs");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{subcommand} {file}: {stderr}"
            );
            assert!(
                stderr.contains("HANDOVER_REDIS_CA_FILE"),
                "{subcommand} {file}: {stderr}"
            );
            assert!(!stderr.contains("secret-password"), "{stderr}");
        }
    }
}
