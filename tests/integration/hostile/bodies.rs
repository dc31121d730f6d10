//! `docs/contract.md` §5: compressed bodies and batches.

use crate::common::app::{EVENTS, KEY, post_event, sample, send, service};
use crate::common::events::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use serde_json::{Value, json};
use std::io::Write;

const CONVERSATION: &str = "1c2d3e4f-5061-4728-93a4-b5c6d7e8f90a";

fn compressed(encoder: &str, bytes: &[u8]) -> Vec<u8> {
    match encoder {
        "gzip" => {
            let mut e = GzEncoder::new(Vec::new(), Compression::default());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
        "zlib" => {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
    }
}

fn encoded(body: Vec<u8>, encoding: &str) -> Request<Body> {
    Request::post(EVENTS)
        .header("authorization", KEY)
        .header("content-type", "application/json")
        .header("content-encoding", encoding)
        .body(Body::from(body))
        .unwrap()
}

/// Defect: a gzip body got 400 and was lost.
#[tokio::test]
async fn gzip_and_deflate_bodies_are_decoded_other_encodings_are_415() {
    let svc = service(&[]);
    let event = sample("user-end-client.json");
    let answer = send(&svc, encoded(compressed("gzip", &event), "gzip")).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
    let answer = send(&svc, encoded(compressed("zlib", &event), "deflate")).await;
    assert_eq!(
        answer.body,
        json!({"status": "duplicate"}),
        "zlib-wrapped deflate"
    );
    let answer = send(&svc, encoded(compressed("raw", &event), "Deflate")).await;
    assert_eq!(answer.body, json!({"status": "duplicate"}), "raw deflate");
    for encoding in ["br", "compress", "gzip, br"] {
        let answer = send(&svc, encoded(event.clone(), encoding)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{encoding}"
        );
        assert_eq!(answer.body["error"], "unsupported_encoding");
    }
    let answer = send(&svc, encoded(b"not gzip at all".to_vec(), "gzip")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{:?}", answer.body);
}

/// A compression bomb: the body limit applies to the decoded size.
#[tokio::test]
async fn a_compression_bomb_is_413() {
    let svc = service(&["--max-body-bytes", "65536"]);
    let mut bomb = br#"{"id":"x","detail-type":"d","source":"s","detail":{"pad":""#.to_vec();
    bomb.extend(std::iter::repeat_n(b'a', 8 * 1024 * 1024));
    bomb.extend(br#""}}"#);
    let body = compressed("gzip", &bomb);
    assert!(body.len() < 65_536, "the bomb is small on the wire");
    let answer = send(&svc, encoded(body, "gzip")).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        answer.body
    );
}

fn batch(items: &[Value]) -> Request<Body> {
    post_event(Value::Array(items.to_vec()).to_string(), Some(KEY))
}

/// Defect: a JSON array (a batch) got a misleading 400 and was dropped.
#[tokio::test]
async fn a_batch_is_processed_item_by_item_in_order() {
    let svc = service(&[]);
    let first = start("A", 1_000).envelope(CONVERSATION);
    let items = vec![
        first.clone(),
        first.clone(),
        json!({"not": "an event"}),
        serde_json::from_slice(&sample("voice-user-end.json")).unwrap(),
        end("A", 2_000, "CLIENT").envelope(CONVERSATION),
        edited_time(
            customer_end(3_000).envelope(CONVERSATION),
            253_402_300_800_000,
        ),
    ];
    let answer = send(&svc, batch(&items)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
    assert_eq!(answer.body["status"], "batch");
    let results = answer.body["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 200, 400, 200, 202, 400]);
    assert_eq!(results[0]["body"]["decision"], "leg_started");
    assert_eq!(results[1]["body"], json!({"status": "duplicate"}));
    assert_eq!(results[2]["body"]["error"], "not_an_eventbridge_event");
    assert_eq!(results[3]["body"]["reason"], "other_media");
    assert_eq!(results[4]["body"]["decision"], "end_candidate");
    assert_eq!(results[5]["body"]["error"], "event_time_out_of_range");

    // Nothing accepted: 200.
    let answer = send(&svc, batch(std::slice::from_ref(&first))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["results"][0]["body"]["status"], "duplicate");

    let answer = send(&svc, batch(&[])).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "empty_batch");

    let answer = send(&svc, batch(&vec![first.clone(); 101])).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let answer = send(&svc, batch(&vec![first; 100])).await;
    assert_eq!(answer.status, StatusCode::OK, "100 items are allowed");
}

fn edited_time(mut event: Value, time: i64) -> Value {
    event["detail"]["eventBody"]["eventTime"] = json!(time);
    event
}

/// A 503 in the middle: the whole batch is 503 with Retry-After, the items before it keep their
/// effect (duplicates on the retry), the items after it are not processed.
#[tokio::test]
async fn a_batch_with_an_item_that_would_be_503_is_503() {
    let svc = service(&["--max-conversations", "1"]);
    let items = vec![
        start("A", 1_000).envelope(CONVERSATION),
        start("A", 1_000).envelope("another-conversation"),
        end("A", 2_000, "CLIENT").envelope(CONVERSATION),
    ];
    let answer = send(&svc, batch(&items)).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        answer.body
    );
    assert!(answer.headers.contains_key("retry-after"));
    assert_eq!(answer.body["error"], "overloaded");

    let retry = send(&svc, batch(&items)).await;
    assert_eq!(retry.status, StatusCode::SERVICE_UNAVAILABLE);
    let metrics = svc.state.metrics.render();
    let count = |outcome: &str| {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("handover_events_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!(
        count("accepted"),
        1.0,
        "the item after the 503 ran:\n{metrics}"
    );
    assert_eq!(
        count("duplicate"),
        1.0,
        "the retry did not find the first item:\n{metrics}"
    );
    let state = svc.state.store.counts().await.unwrap();
    assert_eq!(state.conversations, Some(1));
}
