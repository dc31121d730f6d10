//! Fuzz-style properties over hostile bodies: arbitrary bytes, and the samples with any field
//! replaced by any JSON value (long, unicode, control and separator strings, extreme numbers),
//! through the router, classify, the engine, both forward bodies, both log formats and the admin
//! view. Never a panic, every answer one of the statuses of `docs/contract.md` §2.2, never 401 with the right key.
//!
//! `PROPTEST_CASES` sets the number of cases (CI: the default below); `make fuzz` runs a long one.

use crate::common::app::{KEY, post_event, sample};
use axum::body::Body;
use axum::http::Request;
use handover_receiver::Service;
use handover_receiver::clock::now_ms;
use handover_receiver::engine::Engine;
use handover_receiver::forward::{ForwardFormat, render};
use handover_receiver::genesys::{Classified, EventFilter, classify};
use handover_receiver::metrics::Metrics;
use handover_receiver::report;
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use std::sync::OnceLock;
use tower::ServiceExt;

const ADMIN: &str = "fuzz-admin-token-0123456";
const STATUSES: [u16; 6] = [200, 202, 400, 413, 415, 503];
const SAMPLES: [&str; 6] = [
    "user-end-client.json",
    "user-end-transfer.json",
    "customer-end.json",
    "acw-after-transfer.json",
    "voice-user-end.json",
    "other-topic-audit.json",
];

fn cases(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// JSON pointers to every node of a value.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (n, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{n}"), out);
            }
        }
        _ => {}
    }
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[\\x00-\\x1f\\x7f\\u{202e}\\u{2028}]{1,12}",
        "[:/?#.%@ \\r\\n\\\\{}]{1,12}",
        (129usize..3_000).prop_map(|n| "é".repeat(n)),
        Just("..".to_owned()),
        Just("{organisationId}".to_owned()),
        Just("v2.detail.events.conversation.{id}.customer.end".to_owned()),
    ]
}

fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop::sample::select(vec![
            i64::MIN,
            i64::MAX,
            -1,
            0,
            946_684_799_999,
            253_402_300_800_000,
            now_ms() as i64,
        ])
        .prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(serde_json::json!(1e308)),
        hostile_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A sample with up to three of its nodes replaced by hostile values.
fn mutated_sample() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(SAMPLES.to_vec()).prop_flat_map(|name| {
        let original: Value = serde_json::from_slice(&sample(name)).unwrap();
        let mut all = Vec::new();
        pointers(&original, String::new(), &mut all);
        prop::collection::vec((prop::sample::select(all), hostile_value()), 1..4).prop_map(
            move |edits| {
                let mut event = original.clone();
                for (pointer, value) in edits {
                    match event.pointer_mut(&pointer) {
                        Some(node) => *node = value,
                        None if pointer.is_empty() => event = value,
                        None => {}
                    }
                }
                serde_json::to_vec(&event).unwrap()
            },
        )
    })
}

/// The service, a runtime on this thread (so that the thread's log subscribers see every line),
/// and a metrics registry for the end reports.
struct Fixture {
    service: Service,
    runtime: tokio::runtime::Runtime,
    metrics: Metrics,
}

fn fixture() -> &'static std::sync::Mutex<Fixture> {
    static FIXTURE: OnceLock<std::sync::Mutex<Fixture>> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let service = runtime.block_on(async {
            crate::common::app::service(&["--admin-token", ADMIN, "--max-legs", "20"])
        });
        std::sync::Mutex::new(Fixture {
            service,
            runtime,
            metrics: Metrics::new(),
        })
    })
}

/// Every stage a hostile body can reach; panics (fails the property) on any rule broken.
fn exercise(body: &[u8]) {
    let fixture = fixture()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    fixture.runtime.block_on(async {
        let response = fixture
            .service
            .router()
            .oneshot(post_event(body.to_vec(), Some(KEY)))
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(STATUSES.contains(&status), "status {status}");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
        assert!(answer.is_object());

        let now = now_ms();
        if let Ok(Classified::Handled(event)) = classify(body, &EventFilter::default(), now) {
            let engine = Engine::new(1_000).with_max_legs(20);
            let mut state = Engine::initial_state(&event);
            let mut ends = engine.apply(&mut state, &event, now).ends;
            ends.extend(engine.tick(&mut state, &event.key, now + 1_000));
            for end in &ends {
                for format in [ForwardFormat::Event, ForwardFormat::CognigyWebhook] {
                    let rendered: Value = serde_json::from_slice(&render(format, end)).unwrap();
                    assert!(rendered.is_object());
                }
                report::end_decided(&fixture.metrics, end);
            }
            let view = fixture
                .service
                .router()
                .oneshot(
                    Request::get(format!(
                        "/admin/conversations/{}/{}",
                        event.key.organisation_id, event.key.conversation_id
                    ))
                    .header("authorization", format!("Bearer {ADMIN}"))
                    .body(Body::empty())
                    .unwrap(),
                )
                .await
                .unwrap();
            assert!(
                matches!(view.status().as_u16(), 200 | 404),
                "{}",
                view.status()
            );
            let bytes = view.into_body().collect().await.unwrap().to_bytes();
            let _: Value = serde_json::from_slice(&bytes).expect("a JSON admin view");
        }
    });
}

/// Both log formats write every line of a case, into the void.
fn with_logs(run: impl Fn()) {
    let json = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(json, &run);
    let pretty = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(pretty, &run);
}

#[test]
fn arbitrary_bytes_never_panic_and_get_a_spec_status() {
    let mut runner = TestRunner::new(cases(1_000));
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..2_048), |bytes| {
            with_logs(|| exercise(&bytes));
            Ok(())
        })
        .unwrap();
}

#[test]
fn mutated_samples_never_panic_and_get_a_spec_status() {
    let mut runner = TestRunner::new(cases(3_000));
    runner
        .run(&mutated_sample(), |body| {
            with_logs(|| exercise(&body));
            Ok(())
        })
        .unwrap();
}

/// The mutations reach the engine: a fair share of mutated samples are still handled events.
#[test]
fn mutated_samples_reach_the_engine() {
    let mut runner = TestRunner::new(cases(500));
    let handled = std::sync::atomic::AtomicUsize::new(0);
    let total = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&mutated_sample(), |body| {
            total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Ok(Classified::Handled(_)) = classify(&body, &EventFilter::default(), now_ms()) {
                handled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
    let (handled, total) = (handled.into_inner(), total.into_inner());
    assert!(
        handled * 5 >= total,
        "only {handled} of {total} reached the engine"
    );
}
