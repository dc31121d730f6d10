//! `docs/contract.md` §5 at intake: identifiers, other strings, times, the Genesys organisation, and the
//! size of one conversation.

use crate::common::app::{KEY, post_event, sample, send, service};
use crate::common::events::*;
use crate::hostile::edited;
use axum::http::StatusCode;
use handover_receiver::clock::now_ms;
use handover_receiver::engine::{Decision, Engine};
use handover_receiver::genesys::{ConversationEvent, ConversationKey, Topic};
use serde_json::{Value, json};

const CONVERSATION: &str = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";

fn with_source_suffix(suffix: &str) -> Value {
    edited(&start("A", 1_000), CONVERSATION, |event| {
        event["source"] = json!(format!(
            "aws.partner/genesys.com/cloud/{GENESYS_ORG}/{suffix}"
        ));
    })
}

async fn answer(event: &Value, extra: &[&str]) -> (StatusCode, Value) {
    let svc = service(extra);
    let answer = send(&svc, post_event(event.to_string(), Some(KEY))).await;
    (answer.status, answer.body)
}

/// Defect: the organisationId (and the other key identifiers) went unchecked into URLs, Redis keys,
/// the Idempotency-Key and log lines.
#[tokio::test]
async fn key_identifiers_outside_the_safe_alphabet_are_refused() {
    let long = "a".repeat(129);
    let bad = [
        "..",
        ".",
        "a:b",
        "x?inject=1&a=",
        "a b",
        "a\r\nb",
        "x#y",
        "ü",
        "%2e%2e",
        &long,
    ];
    type Edit = fn(&mut Value, &str);
    let fields: [(&str, Edit); 5] = [
        ("organisationId", |e, v| {
            e["source"] = json!(format!("aws.partner/genesys.com/cloud/{GENESYS_ORG}/{v}"))
        }),
        ("genesysOrganizationId", |e, v| {
            e["source"] = json!(format!("aws.partner/genesys.com/cloud/{v}/{ORG}"))
        }),
        ("conversationId", |e, v| {
            e["detail"]["eventBody"]["conversationId"] = json!(v)
        }),
        ("sessionId", |e, v| {
            e["detail"]["eventBody"]["sessionId"] = json!(v)
        }),
        ("participantId", |e, v| {
            e["detail"]["eventBody"]["participantId"] = json!(v)
        }),
    ];
    let svc = service(&[]);
    for (field, edit) in fields {
        for value in bad {
            let event = edited(&start("A", 1_000), CONVERSATION, |e| edit(e, value));
            let answer = send(&svc, post_event(event.to_string(), Some(KEY))).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{field} = {value:?}"
            );
            assert_eq!(
                answer.body["error"], "invalid_identifier",
                "{field} = {value:?}"
            );
            let detail = answer.body["detail"].as_str().unwrap();
            assert!(detail.starts_with(field), "{detail}");
            assert!(
                !detail.contains(value) || value.len() < 3,
                "echoed: {detail}"
            );
        }
    }
    // The edges of what is allowed.
    let longest_org = "o".repeat(64);
    let (status, body) = answer(&with_source_suffix(&longest_org), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, _) = answer(&with_source_suffix(&"o".repeat(65)), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let longest_conversation = "c-_9".repeat(32);
    let (status, body) = answer(&start("A", 1_000).envelope(&longest_conversation), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// Defect: strings of any size (200 KB ids) were kept per conversation.
#[tokio::test]
async fn other_strings_longer_than_256_bytes_are_refused() {
    let svc = service(&[]);
    type Edit = fn(&mut Value, Value);
    let fields: [(&str, Edit); 8] = [
        ("id", |e, v| e["id"] = v),
        ("addressTo", |e, v| {
            e["detail"]["eventBody"]["addressTo"] = v
        }),
        ("addressFrom", |e, v| {
            e["detail"]["eventBody"]["addressFrom"] = v
        }),
        ("userId", |e, v| e["detail"]["eventBody"]["userId"] = v),
        ("queueId", |e, v| e["detail"]["eventBody"]["queueId"] = v),
        ("wrapupCode", |e, v| {
            e["detail"]["eventBody"]["wrapupCode"] = v
        }),
        ("detail.metadata.CorrelationId", |e, v| {
            e["detail"]["metadata"]["CorrelationId"] = v
        }),
        ("disconnectType", |e, v| {
            e["detail"]["eventBody"]["disconnectType"] = v
        }),
    ];
    for (n, (field, edit)) in fields.into_iter().enumerate() {
        let fits = edited(&end("A", 2_000 + n as i64, "CLIENT"), CONVERSATION, |e| {
            edit(e, json!("é".repeat(128)))
        });
        let answer = send(&svc, post_event(fits.to_string(), Some(KEY))).await;
        assert!(answer.status.is_success(), "{field}: {:?}", answer.body);
        let too_long = edited(&end("A", 3_000 + n as i64, "CLIENT"), CONVERSATION, |e| {
            edit(e, json!(format!("{}x", "é".repeat(128))))
        });
        let answer = send(&svc, post_event(too_long.to_string(), Some(KEY))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(answer.body["error"], "invalid_field", "{field}");
        assert!(
            answer.body["detail"].as_str().unwrap().starts_with(field),
            "{:?}",
            answer.body
        );
    }
}

/// Defect: an event dated in the year 10000 panicked the delivery; one dated a year ahead made
/// every real event of its conversation late for a week.
#[tokio::test]
async fn event_times_before_2000_or_too_far_ahead_are_refused() {
    let svc = service(&[]);
    let now = now_ms() as i64;
    for (time, refused) in [
        (json!(253_402_300_800_000_i64), true),
        (json!(now + 365 * 86_400_000), true),
        (json!(now + 301_000), true),
        (json!(946_684_799_999_i64), true),
        (json!(-5), true),
        (json!(i64::MAX), true),
        (json!(u64::MAX), true),
        (json!(1e300), true),
        (json!("9999-12-31T23:59:59.999Z"), true),
        (json!(now + 200_000), false),
        (json!(946_684_800_000_i64), false),
        (json!(now), false),
    ] {
        let event = edited(&end("A", 0, "CLIENT"), CONVERSATION, |e| {
            e["detail"]["eventBody"]["eventTime"] = time.clone();
            e["id"] = json!(format!("time-{time}"));
        });
        let answer = send(&svc, post_event(event.to_string(), Some(KEY))).await;
        if refused {
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{time}");
            assert_eq!(answer.body["error"], "event_time_out_of_range", "{time}");
        } else {
            assert!(answer.status.is_success(), "{time}: {:?}", answer.body);
        }
    }
    // HANDOVER_MAX_FUTURE_MS moves the bound.
    let lenient = service(&["--max-future-ms", "3600000"]);
    let event = edited(&end("A", 0, "CLIENT"), CONVERSATION, |e| {
        e["detail"]["eventBody"]["eventTime"] = json!(now + 1_800_000);
    });
    let answer = send(&lenient, post_event(event.to_string(), Some(KEY))).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
}

/// Section 3's filters decide first: another topic, media or tenant is ignored whatever it holds.
#[tokio::test]
async fn filters_decide_before_the_limits() {
    let svc = service(&["--allowed-organisations", "handover-prod"]);
    let audit = send(
        &svc,
        post_event(sample("other-topic-audit.json"), Some(KEY)),
    )
    .await;
    assert_eq!(audit.status, StatusCode::OK);
    let voice = edited(&start("A", 0), "not a valid id: at all", |e| {
        e["detail"]["eventBody"]["mediaType"] = json!("VOICE");
        e["detail"]["eventBody"]["eventTime"] = json!(253_402_300_800_000_i64);
    });
    let answer = send(&svc, post_event(voice.to_string(), Some(KEY))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["reason"], "other_media");
    let other_tenant = edited(&start("A", 0), CONVERSATION, |e| {
        e["source"] = json!("aws.partner/genesys.com/cloud/x:y/other org");
    });
    let answer = send(&svc, post_event(other_tenant.to_string(), Some(KEY))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["reason"], "other_organisation");
}

/// Defect: a customer.end from another Genesys organisation with the same source suffix ended
/// the conversation.
#[tokio::test]
async fn a_conversation_belongs_to_the_genesys_organisation_of_its_first_event() {
    let svc = service(&[]);
    let first = send(
        &svc,
        post_event(
            start("A", 1_000).envelope(CONVERSATION).to_string(),
            Some(KEY),
        ),
    )
    .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let intruder = edited(&customer_end(2_000), CONVERSATION, |e| {
        e["source"] = json!(format!(
            "aws.partner/genesys.com/cloud/another-genesys-org/{ORG}"
        ));
    });
    let answer = send(&svc, post_event(intruder.to_string(), Some(KEY))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(
        answer.body,
        json!({"status": "ignored", "reason": "other_genesys_organisation"})
    );
    let state = svc
        .state
        .store
        .load(&ConversationKey::new(ORG, CONVERSATION))
        .await
        .unwrap()
        .expect("the conversation is kept");
    assert!(state.last_end.is_none(), "the intruder ended it");
    assert_eq!(state.episode, 1);
    // The real organisation's customer.end still ends it.
    let real = send(
        &svc,
        post_event(
            customer_end(2_000).envelope(CONVERSATION).to_string(),
            Some(KEY),
        ),
    )
    .await;
    assert_eq!(real.body["decision"], "ended", "{:?}", real.body);
}

/// Defect: 20,000 legs in one conversation cost 3.8 ms per event. Beyond HANDOVER_MAX_LEGS a new
/// leg is ignored (counted), while the legs it has can still end it.
#[tokio::test]
async fn a_conversation_stops_growing_at_max_legs_and_can_still_end() {
    let svc = service(&["--max-legs", "3"]);
    let post = |spec: Spec| {
        let svc = &svc;
        async move {
            send(
                svc,
                post_event(spec.envelope(CONVERSATION).to_string(), Some(KEY)),
            )
            .await
        }
    };
    for (n, leg) in ["A", "B", "C"].into_iter().enumerate() {
        let answer = post(start(leg, 1_000 + n as i64)).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{leg}");
    }
    for spec in [
        start("D", 2_000),
        end("D", 3_000, "CLIENT"),
        acw("E", 3_500),
    ] {
        let answer = post(spec).await;
        assert_eq!(
            answer.body,
            json!({"status": "ignored", "reason": "conversation_too_large"})
        );
    }
    for leg in ["A", "B"] {
        assert_eq!(
            post(end(leg, 4_000, "TRANSFER")).await.status,
            StatusCode::ACCEPTED
        );
    }
    let ended = post(customer_end(5_000)).await;
    assert_eq!(ended.body["decision"], "ended", "{:?}", ended.body);
    let metrics = svc.state.metrics.render();
    assert!(
        metrics.contains("handover_conversations_too_large_total 3"),
        "{metrics}"
    );
}

fn agent_event(topic: Topic, leg: usize, t: i64) -> ConversationEvent {
    let mut event = Spec::new(topic, Some("x"), t)
        .disconnect("TRANSFER")
        .interacting(1_000)
        .event(CONVERSATION);
    event.envelope_id = format!("e-{leg}-{t}-{topic}");
    event.session_id = Some(format!("session-{leg}"));
    event
}

/// The bound makes the cost of one event flat: past it, neither the legs nor the fingerprints
/// of a conversation grow, however many events it receives.
#[test]
fn past_the_bound_a_conversation_state_stays_the_same_size() {
    let engine = Engine::new(10_000).with_max_legs(200);
    let first = agent_event(Topic::UserStart, 0, 1);
    let mut state = Engine::initial_state(&first);
    let now = 1_800_000_000_000;
    let mut sizes = Vec::new();
    for n in 0..20_000_usize {
        let t = 1_000 + n as i64;
        for topic in [Topic::UserStart, Topic::UserEnd, Topic::Acw] {
            engine.apply(&mut state, &agent_event(topic, n, t), now);
        }
        if n % 2_000 == 1_999 {
            sizes.push(handover_receiver::store::format::write_conversation(&state).len());
        }
    }
    assert_eq!(state.legs.len(), 200);
    assert!(
        state.seen.len() <= 2 * 200 * 8,
        "{} fingerprints",
        state.seen.len()
    );
    let (smallest, largest) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert_eq!(
        smallest, largest,
        "the state still grows past the bound: {sizes:?}"
    );
    assert!(state.too_large);
    let refused = engine.apply(
        &mut state,
        &agent_event(Topic::UserStart, 99_999, 9_999_999),
        now,
    );
    assert_eq!(refused.decision, Decision::ConversationTooLarge);
    assert!(!refused.first_too_large, "warned once only");
}

crate::on_both_stores!(identifiers_with_separators_can_never_share_a_key);

/// Defect: `:` in ids made two conversations share an Idempotency-Key, and on Redis one state key.
async fn identifiers_with_separators_can_never_share_a_key(
    backend: crate::common::backend::Backend,
) {
    let running = backend.start(&[]).await;
    let with_source = |organisation: &str, conversation: &str| {
        edited(&customer_end(1_000), conversation, |e| {
            e["source"] = json!(format!(
                "aws.partner/genesys.com/cloud/{GENESYS_ORG}/{organisation}"
            ));
        })
    };
    for (organisation, conversation) in [("x", "y:z"), ("x:y", "z")] {
        let (status, body) = running.post(&with_source(organisation, conversation)).await;
        assert_eq!(status, 400, "{organisation} {conversation}: {body}");
        assert_eq!(body["error"], "invalid_identifier");
        let key = ConversationKey::new(organisation, conversation);
        assert!(running.state.store.load(&key).await.unwrap().is_none());
    }
    // Two valid conversations whose parts would run together without a separator.
    for (organisation, conversation) in [("ab", "c"), ("a", "bc")] {
        let (status, _) = running.post(&with_source(organisation, conversation)).await;
        assert_eq!(status, 202);
    }
    let ab_c = running
        .state
        .store
        .load(&ConversationKey::new("ab", "c"))
        .await
        .unwrap()
        .expect("ab/c stored");
    let a_bc = running
        .state
        .store
        .load(&ConversationKey::new("a", "bc"))
        .await
        .unwrap()
        .expect("a/bc stored");
    assert_eq!(
        (ab_c.episode, a_bc.episode),
        (2, 2),
        "each ended once, apart"
    );
    if let Some(redis) = &backend.redis {
        let mut connection = redis.connection();
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg("hr:*:c:*")
            .query(&mut connection)
            .unwrap();
        let mut keys: Vec<String> = keys
            .into_iter()
            .map(|k| k.split_once(":c:").unwrap().1.to_owned())
            .collect();
        keys.sort();
        assert_eq!(keys, ["a:bc", "ab:c"]);
    }
    running.shutdown().await;
}
