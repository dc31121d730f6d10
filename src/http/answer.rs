//! The answer to an event or a batch (`docs/contract.md` §2.2 gives the shapes), and its JSON.
//!
//! The JSON is written by hand. Every event's answer is one of these, and serde_json spent about
//! 1,240 instructions per event on the tagged enums' six strings (`benches/load/NOTES.md`,
//! seventh round). Here the field names and punctuation are copied in as they are, and the
//! values through `plain_text::write_json_string`: plain text copied, anything else escaped by
//! serde_json.

use super::error::ErrorBody;
use crate::plain_text::write_json_string;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One event's answer: its status and body, alone or as an item of a batch.
pub struct Answer {
    pub status: StatusCode,
    pub body: AnswerBody,
}

pub enum AnswerBody {
    Outcome(Outcome),
    Refused(ErrorBody),
}

/// `{"status": …}` and the fields that status has.
pub enum Outcome {
    Accepted {
        decision: &'static str,
        conversation_id: String,
    },
    Duplicate,
    Ignored {
        reason: &'static str,
    },
    Batch {
        results: Vec<BatchItem>,
    },
}

/// One item of a batch's answer: the status and body it would have had alone.
pub struct BatchItem {
    pub status: u16,
    pub body: AnswerBody,
}

/// Room for a usual answer: an accepted event's is about 100 bytes.
const USUAL_ANSWER_BYTES: usize = 128;

impl Answer {
    pub fn ignored(reason: &'static str) -> Self {
        Self {
            status: StatusCode::OK,
            body: AnswerBody::Outcome(Outcome::Ignored { reason }),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut json = Vec::with_capacity(USUAL_ANSWER_BYTES);
        if let Err(error) = self.body.write_json(&mut json) {
            // Writing text into a `Vec` cannot fail; a 500 rather than a panic if it ever did.
            tracing::error!(%error, "an answer could not be written as JSON");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        let mut response = Response::new(Body::from(json));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl AnswerBody {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            AnswerBody::Outcome(outcome) => outcome.write_json(out),
            AnswerBody::Refused(refusal) => serde_json::to_writer(out, refusal),
        }
    }
}

impl Outcome {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Outcome::Accepted {
                decision,
                conversation_id,
            } => {
                out.extend_from_slice(b"{\"status\":\"accepted\",\"decision\":");
                write_json_string(out, decision);
                out.extend_from_slice(b",\"conversationId\":");
                write_json_string(out, conversation_id);
                out.push(b'}');
            }
            Outcome::Duplicate => out.extend_from_slice(b"{\"status\":\"duplicate\"}"),
            Outcome::Ignored { reason } => {
                out.extend_from_slice(b"{\"status\":\"ignored\",\"reason\":");
                write_json_string(out, reason);
                out.push(b'}');
            }
            Outcome::Batch { results } => {
                out.extend_from_slice(b"{\"status\":\"batch\",\"results\":[");
                for (n, item) in results.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"status\":");
                    out.extend_from_slice(itoa::Buffer::new().format(item.status).as_bytes());
                    out.extend_from_slice(b",\"body\":");
                    item.body.write_json(out)?;
                    out.push(b'}');
                }
                out.extend_from_slice(b"]}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::ApiError;
    use serde_json::{Value, json};

    fn json_of(body: &AnswerBody) -> Value {
        let mut out = Vec::new();
        body.write_json(&mut out).unwrap();
        serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&out)))
    }

    fn accepted(decision: &'static str, conversation_id: &str) -> AnswerBody {
        AnswerBody::Outcome(Outcome::Accepted {
            decision,
            conversation_id: conversation_id.to_owned(),
        })
    }

    #[test]
    fn an_accepted_event_has_the_contracts_bytes() {
        let mut out = Vec::new();
        accepted("start", "3f2c9d1e-7a44-4c1b-8e0f-5b6a7c8d9e01")
            .write_json(&mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"status":"accepted","decision":"start","conversationId":"3f2c9d1e-7a44-4c1b-8e0f-5b6a7c8d9e01"}"#
        );
    }

    #[test]
    fn a_conversation_id_from_the_network_comes_back_as_it_was() {
        for id in [
            "quote\" and backslash\\",
            "line\nbreak, tab\t, nul\u{0}, escape\u{1b}[31m",
            "C1 \u{85} and \u{9b}, DEL \u{7f}, é, 会話, 🙂",
            "</script><script>alert(1)</script>",
            "",
        ] {
            let parsed = json_of(&accepted("start", id));
            assert_eq!(parsed["conversationId"], id, "{id:?}");
            assert_eq!(parsed["status"], "accepted");
            assert_eq!(parsed["decision"], "start");
        }
    }

    #[test]
    fn duplicate_ignored_and_refused_have_their_shapes() {
        assert_eq!(
            json_of(&AnswerBody::Outcome(Outcome::Duplicate)),
            json!({"status": "duplicate"})
        );
        assert_eq!(
            json_of(&Answer::ignored("late").body),
            json!({"status": "ignored", "reason": "late"})
        );
        assert_eq!(
            json_of(&AnswerBody::Refused(ApiError::EmptyBatch.body())),
            serde_json::to_value(ApiError::EmptyBatch.body()).unwrap()
        );
    }

    #[test]
    fn a_batch_lists_each_items_status_and_body_in_order() {
        let batch = AnswerBody::Outcome(Outcome::Batch {
            results: vec![
                BatchItem {
                    status: 202,
                    body: accepted("start", "c\"1"),
                },
                BatchItem {
                    status: 400,
                    body: AnswerBody::Refused(ApiError::EmptyBatch.body()),
                },
                BatchItem {
                    status: 200,
                    body: AnswerBody::Outcome(Outcome::Duplicate),
                },
            ],
        });
        let refused = serde_json::to_value(ApiError::EmptyBatch.body()).unwrap();
        assert_eq!(
            json_of(&batch),
            json!({"status": "batch", "results": [
                {"status": 202, "body": {"status": "accepted", "decision": "start", "conversationId": "c\"1"}},
                {"status": 400, "body": refused},
                {"status": 200, "body": {"status": "duplicate"}},
            ]})
        );
    }

    #[tokio::test]
    async fn the_response_is_json_with_its_status() {
        let response = Answer {
            status: StatusCode::ACCEPTED,
            body: accepted("start", "c-1"),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            HeaderValue::from_static("application/json")
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed["conversationId"], "c-1");
    }
}
