//! The decision vectors (`tests/fixtures/decision-vectors.json`): worked cases of
//! `docs/contract.md` §4, from the product specification.

use super::events::Spec;
use handover_receiver::genesys::Topic;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Vectors {
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
pub struct Case {
    pub name: String,
    pub phases: Vec<Phase>,
}

#[derive(Debug, Deserialize)]
pub struct Phase {
    pub events: Vec<VectorEvent>,
    pub ends: Vec<ExpectedEnd>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VectorEvent {
    pub topic: Topic,
    pub leg: Option<String>,
    pub t: i64,
    pub disconnect_type: Option<String>,
    pub interacting_duration_ms: Option<i64>,
    pub wrapup_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedEnd {
    pub reason: Option<String>,
    pub episode: Option<u32>,
    pub leg: Option<String>,
    pub disconnect_type: Option<String>,
    pub transfers: Option<u32>,
}

impl VectorEvent {
    pub fn spec(&self) -> Spec {
        Spec {
            topic: self.topic,
            leg: self.leg.clone(),
            t: self.t,
            disconnect_type: self.disconnect_type.clone(),
            interacting_ms: self.interacting_duration_ms,
            wrapup_code: self.wrapup_code.clone(),
        }
    }
}

pub fn load() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/decision-vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("decision vectors are readable");
    let vectors: Vectors = serde_json::from_str(&text).expect("decision vectors parse");
    assert!(!vectors.cases.is_empty(), "no decision vectors in {path}");
    vectors
}
