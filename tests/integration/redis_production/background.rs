//! Background loops (grace windows, deliveries, the store's health check) against a store that
//! fails at once on every try (a read-only replica): they back off and log the failure once, not
//! per attempt. Counted, not timed: log lines and the commands Redis processed in a window.

use crate::common::app::KEY;
use crate::common::process::Process;
use crate::common::redis_topology::{Node, wait_until};
use std::time::Duration;

const WINDOW: Duration = Duration::from_secs(6);

#[test]
fn a_failing_store_gets_few_commands_and_few_log_lines() {
    let primary = Node::start(&[]);
    let replica = Node::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    wait_until(Duration::from_secs(10), "the replica is in sync", || {
        replica.info("replication", "master_link_status") == "up"
    });
    let mut process = Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_STORE", &replica.url()),
        ("HANDOVER_REDIS_TIMEOUT_MS", "300"),
    ]);
    // Let the back-off reach its stride, then count.
    std::thread::sleep(Duration::from_secs(3));
    let lines_before = process.all_lines().lines().count();
    let commands_before = replica.commands_processed();
    std::thread::sleep(WINDOW);
    let commands = replica.commands_processed() - commands_before;
    let log = process.all_lines();
    let lines: Vec<&str> = log.lines().skip(lines_before).collect();
    let per_second = commands as f64 / WINDOW.as_secs_f64();
    println!(
        "failing store: {per_second:.1} commands/s, {} log lines in {WINDOW:?}",
        lines.len()
    );
    assert!(
        per_second < 60.0,
        "{per_second:.0} commands/s against a failing store"
    );
    assert!(
        lines.len() <= 3,
        "{} log lines in {WINDOW:?}: {lines:#?}",
        lines.len()
    );
    let all = process.all_lines();
    for what in ["grace windows", "the outbox", "its health check"] {
        assert!(
            all.contains(&format!("cannot reach the store for {what}")),
            "the failure of {what} was never logged"
        );
    }
}
