//! The Redis store's stored forms and keys, pinned by data that the previous release (a2c0a0f)
//! really wrote (`tests/fixtures/redis-a2c0a0f.json`, dumped from a redis-server it ran on): every
//! record still reads, writes back to the same JSON (plus its `format` tag), and lives on the same
//! keys; and a new build serves that state to the end.

use crate::common::redis_server::RedisServer;
use handover_receiver::conversation::{Conversations, Wakers};
use handover_receiver::engine::Engine;
use handover_receiver::genesys::ConversationKey;
use handover_receiver::metrics::Metrics;
use handover_receiver::store::format::{self, FormatError};
use handover_receiver::store::{RedisOptions, RedisStore, RedisTarget, Store};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One Redis key of the dump: a hash (field -> value) or a sorted set (member, score).
#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Dumped {
    Hash(BTreeMap<String, String>),
    Zset(Vec<(String, String)>),
}

fn dump() -> BTreeMap<String, Dumped> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/redis-a2c0a0f.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `hr:{hr<n>}:c:<org>:<conversation>` -> (n, key).
fn state_key(name: &str) -> Option<(u32, ConversationKey)> {
    let rest = name.strip_prefix("hr:{hr")?;
    let (bucket, rest) = rest.split_once("}:c:")?;
    let (organisation, conversation) = rest.split_once(':')?;
    Some((
        bucket.parse().ok()?,
        ConversationKey::new(organisation, conversation),
    ))
}

fn without_format(json: &str) -> Value {
    let mut value: Value = serde_json::from_str(json).unwrap();
    assert_eq!(value["format"], 1, "the writer tags its format: {json}");
    value.as_object_mut().unwrap().remove("format");
    value
}

#[test]
fn conversation_state_of_the_previous_release_reads_and_writes_back_the_same() {
    let mut states = 0;
    for (name, dumped) in dump() {
        let (Some(_), Dumped::Hash(fields)) = (state_key(&name), &dumped) else {
            continue;
        };
        let written = &fields["s"];
        let state = format::read_conversation(written).expect("the old state reads");
        let rewritten = format::write_conversation(&state);
        assert_eq!(
            without_format(&rewritten),
            serde_json::from_str::<Value>(written).unwrap(),
            "{name}"
        );
        states += 1;
    }
    assert_eq!(
        states, 2,
        "the dump holds an open and an ended conversation"
    );
}

/// The parts of a format-1 state the fixture's two conversations leave empty: customer ends (with a
/// UUID and a non-UUID leg, a known and an unlisted disconnect type), an id that JSON must escape,
/// and the `too_large` flag. Written as the first releases wrote them; they must read and write
/// back the same, ids and disconnect types as the very text they were.
#[test]
fn customer_ends_unlisted_disconnect_types_and_escaped_ids_write_back_the_same() {
    let written = r#"{"genesys_organization_id":"3f2c9d1e-7a44-4c1b-8e0f-5b6a7c8d9e01","bot_user_id":"bot \"quoted\" \u0001","episode":3,"last_end":null,"legs":[{"key":"session-A","participant_id":null,"user_id":null,"queue_id":null,"started_at":null,"end":{"at":1762000060000,"disconnect_type":"QUANTUM_TUNNEL","interacting_duration_ms":null,"correlation_id":null},"acw":null}],"customer_ends":[{"at":1762000070000,"leg":"5d6e7f80-9a0b-4c1d-8e2f-3a4b5c6d7e8f","disconnect_type":"CLIENT","correlation_id":"c4d5e6f7-0819-4a2b-b3c4-d5e6f708192a"},{"at":1762000080000,"leg":"session-A","disconnect_type":"QUANTUM_TUNNEL","correlation_id":null}],"candidate":{"leg":"session-A","end_at":1762000080000,"due_at_ms":1762000110000},"seen":{"current":[1,18446744073709551615],"previous":[7],"current_since_ms":1762000000000},"too_large":true}"#;
    let state = format::read_conversation(written).expect("the state reads");
    assert_eq!(state.customer_ends.len(), 2);
    assert!(state.too_large);
    assert_eq!(
        without_format(&format::write_conversation(&state)),
        serde_json::from_str::<Value>(written).unwrap()
    );
}

#[test]
fn deliveries_and_timer_members_of_the_previous_release_read_and_write_back_the_same() {
    let (mut deliveries, mut members) = (0, 0);
    for (name, dumped) in dump() {
        match dumped {
            Dumped::Hash(fields) if name.ends_with(":deliveries") => {
                for (id, json) in fields {
                    let delivery = format::read_delivery(&json).expect("the old delivery reads");
                    assert_eq!(delivery.id, id);
                    assert_eq!(delivery.id, delivery.notice.idempotency_key());
                    assert_eq!(
                        without_format(&format::write_delivery(&delivery)),
                        serde_json::from_str::<Value>(&json).unwrap()
                    );
                    deliveries += 1;
                }
            }
            Dumped::Zset(entries) if name.ends_with(":timers") => {
                for (member, _) in entries {
                    let key = format::read_timer_member(&member).unwrap();
                    assert_eq!(format::write_timer_member(&key), member);
                    members += 1;
                }
            }
            _ => {}
        }
    }
    assert_eq!((deliveries, members), (1, 1));
}

#[test]
fn keys_land_where_the_previous_release_put_them() {
    let mut checked = 0;
    for name in dump().keys() {
        if let Some((bucket, key)) = state_key(name) {
            assert_eq!(format::bucket_of(&key), bucket, "{name}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2);
    assert_eq!(format::BUCKETS, 16);
}

#[test]
fn a_record_of_a_newer_format_is_refused_not_misread() {
    let (_, Dumped::Hash(fields)) = dump()
        .into_iter()
        .find(|(name, _)| state_key(name).is_some())
        .unwrap()
    else {
        panic!("a state record");
    };
    let mut newer: Value = serde_json::from_str(&fields["s"]).unwrap();
    newer["format"] = 2.into();
    assert!(matches!(
        format::read_conversation(&newer.to_string()),
        Err(FormatError::Newer(2))
    ));
}

/// The previous release's Redis, as it left it, served by this build: the state loads, the open
/// grace window is due and closes, the pending delivery is claimed.
#[tokio::test]
async fn a_new_build_serves_the_state_the_previous_release_left_in_redis() {
    let server = RedisServer::start();
    let mut connection = server.connection();
    for (name, dumped) in dump() {
        match dumped {
            Dumped::Hash(fields) => {
                for (field, value) in fields {
                    let _: () = ::redis::cmd("HSET")
                        .arg(&name)
                        .arg(field)
                        .arg(value)
                        .query(&mut connection)
                        .unwrap();
                }
            }
            Dumped::Zset(entries) => {
                for (member, score) in entries {
                    let _: () = ::redis::cmd("ZADD")
                        .arg(&name)
                        .arg(score)
                        .arg(member)
                        .query(&mut connection)
                        .unwrap();
                }
            }
        }
    }
    let store: Arc<dyn Store> = Arc::new(
        RedisStore::connect(&RedisTarget::single(server.url()), RedisOptions::default()).unwrap(),
    );
    let open = ConversationKey::new("handover-prod", "8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d");
    let state = store
        .load(&open)
        .await
        .unwrap()
        .expect("the open conversation");
    assert_eq!(state.legs.len(), 2);
    let due_at = state
        .candidate
        .as_ref()
        .expect("its grace window")
        .due_at_ms;

    let due = store.due_timers(due_at, 10).await.into_result().unwrap();
    assert_eq!(due, std::slice::from_ref(&open));
    let conversations = Conversations::new(
        Arc::clone(&store),
        Engine::new(3_600_000),
        Arc::new(Metrics::new()),
        Wakers::default(),
    );
    let ends = conversations.tick(&open, due_at).await.unwrap();
    assert_eq!(ends.len(), 1, "the window closes with one end");
    assert_eq!(ends[0].episode, 1);
    assert_eq!(ends[0].transfers, 1);

    let claimed = store
        .claim_deliveries(u64::MAX / 2, 10, 1_000)
        .await
        .into_result()
        .unwrap();
    let mut ids: Vec<&str> = claimed.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "handover-prod:5d6e7f80-9a0b-4c1d-8e2f-3a4b5c6d7e8f:1",
            "handover-prod:8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d:1",
        ]
    );
}
