//! Deliveries as EventBridge makes them: any order, some events more than once.

use super::events::Spec;

/// One POST: the event and the envelope id it carries.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub spec: Spec,
    pub envelope_id: String,
}

/// `specs` in a seeded random order, with some events delivered again under the same id
/// (EventBridge retry) and some under a new id (republished by Genesys). Seed 0 is the events as
/// given, once each.
pub fn deliveries(specs: &[Spec], conversation_id: &str, seed: u64) -> Vec<Delivery> {
    let mut out: Vec<Delivery> = specs
        .iter()
        .map(|spec| Delivery {
            envelope_id: spec.envelope_id(conversation_id),
            spec: spec.clone(),
        })
        .collect();
    if seed == 0 {
        return out;
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    for (n, spec) in specs.iter().enumerate() {
        match rng.u8(0..4) {
            0 => out.push(Delivery {
                envelope_id: spec.envelope_id(conversation_id),
                spec: spec.clone(),
            }),
            1 => out.push(Delivery {
                envelope_id: format!("republished-{seed}-{n}"),
                spec: spec.clone(),
            }),
            _ => {}
        }
    }
    rng.shuffle(&mut out);
    out
}
