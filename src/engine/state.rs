//! What the engine remembers about one conversation, and the queries the rules ask of it.

use super::compact::{CompactId, IdText};
use super::fingerprint::{self, SeenSet};
use crate::genesys::DisconnectType;

/// One conversation's state. Holds only the open episode's events, the last end, and the
/// fingerprints needed to spot duplicates, so it stays small however long the conversation runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationState {
    pub genesys_organization_id: CompactId,
    /// The bot platform's Open Messaging user (`addressTo`/`addressFrom`).
    pub bot_user_id: Option<CompactId>,
    /// Number of the open episode, from 1.
    pub episode: u32,
    /// The last decided end, if any.
    pub last_end: Option<LastEnd>,
    /// Agent legs of the open episode, one per `sessionId`.
    pub legs: Vec<Leg>,
    /// `customer.end` events of the open episode, ordered by time.
    pub customer_ends: Vec<CustomerEnd>,
    /// The pending end candidate and when its grace window closes.
    pub candidate: Option<Candidate>,
    pub seen: SeenSet,
    /// The conversation reached `HANDOVER_MAX_LEGS` (warned about once).
    pub too_large: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEnd {
    /// eventTime of the deciding event.
    pub at: i64,
    pub episode: u32,
    /// Fingerprints of the legs that were part of the ended episode.
    pub closed_legs: Vec<u64>,
}

/// One agent's part in the conversation: from being offered it to wrap-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// `sessionId`, or `participantId` when the event has no session.
    pub key: CompactId,
    pub participant_id: Option<CompactId>,
    pub user_id: Option<CompactId>,
    pub queue_id: Option<CompactId>,
    pub started_at: Option<i64>,
    pub end: Option<LegEnd>,
    pub acw: Option<LegAcw>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegEnd {
    pub at: i64,
    pub disconnect_type: Option<DisconnectType>,
    pub interacting_duration_ms: Option<i64>,
    pub correlation_id: Option<CompactId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegAcw {
    pub at: i64,
    pub wrapup_code: Option<CompactId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerEnd {
    pub at: i64,
    pub leg: CompactId,
    pub disconnect_type: Option<DisconnectType>,
    pub correlation_id: Option<CompactId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub leg: CompactId,
    /// eventTime of the candidate's final `user.end`.
    pub end_at: i64,
    /// Wall-clock time (epoch ms) at which the grace window closes.
    pub due_at_ms: u64,
}

/// How an agent's leg ended, by `docs/contract.md` §4, rules 2 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEndKind {
    /// Transfer of any kind (rule 2).
    Transfer,
    /// A supervisor took over (rule 2).
    Takeover,
    /// Offered but never taken: `interactingDurationMs == 0` (rule 3).
    Reject,
    /// Any other end (rule 4). A missing `disconnectType` or duration counts as final, so that
    /// an end is never lost; the grace window still guards against an early one.
    Final,
}

impl LegEnd {
    pub fn kind(&self) -> LegEndKind {
        match &self.disconnect_type {
            Some(kind) if kind.is_takeover() => LegEndKind::Takeover,
            Some(kind) if kind.is_transfer() => LegEndKind::Transfer,
            _ if self.interacting_duration_ms == Some(0) => LegEndKind::Reject,
            _ => LegEndKind::Final,
        }
    }

    /// Counted in `transfers`: the conversation went on with someone else.
    pub fn hands_on(&self) -> bool {
        matches!(self.kind(), LegEndKind::Transfer | LegEndKind::Takeover)
    }
}

impl Leg {
    pub fn new(key: CompactId) -> Self {
        Self {
            key,
            participant_id: None,
            user_id: None,
            queue_id: None,
            started_at: None,
            end: None,
            acw: None,
        }
    }

    /// eventTime of this leg's final `user.end`, if it has one.
    pub fn final_end_at(&self) -> Option<i64> {
        self.end
            .as_ref()
            .filter(|end| end.kind() == LegEndKind::Final)
            .map(|end| end.at)
    }

    /// Started and not ended yet.
    pub fn is_open(&self) -> bool {
        self.started_at.is_some() && self.end.is_none()
    }

    /// Latest `user.start` or `user.end` time (after-call work is not activity).
    pub fn last_activity_at(&self) -> Option<i64> {
        self.started_at.max(self.end.as_ref().map(|end| end.at))
    }

    /// Has a `user.start` or `user.end` later than `at`.
    pub fn active_after(&self, at: i64) -> bool {
        self.started_at.is_some_and(|start| start > at)
            || self.end.as_ref().is_some_and(|end| end.at > at)
    }

    /// Has any record at or before `at`: part of an episode that ends at `at`.
    fn belongs_to_episode_ending_at(&self, at: i64) -> bool {
        self.started_at.is_some_and(|start| start <= at)
            || self.end.as_ref().is_some_and(|end| end.at <= at)
            || self.acw.as_ref().is_some_and(|acw| acw.at <= at)
    }
}

impl ConversationState {
    pub fn new(genesys_organization_id: &str) -> Self {
        Self {
            genesys_organization_id: CompactId::new(genesys_organization_id),
            bot_user_id: None,
            episode: 1,
            last_end: None,
            legs: Vec::new(),
            customer_ends: Vec::new(),
            candidate: None,
            seen: SeenSet::default(),
            too_large: false,
        }
    }

    /// When a timer must look at this conversation again.
    pub fn wake_at_ms(&self) -> Option<u64> {
        self.candidate.as_ref().map(|c| c.due_at_ms)
    }

    pub fn leg_mut(&mut self, key: &IdText) -> &mut Leg {
        let index = match self.legs.iter().position(|leg| key.is(&leg.key)) {
            Some(index) => index,
            None => {
                // Exact growth: most conversations have one or two legs.
                self.legs.reserve_exact(1);
                self.legs.push(Leg::new(key.to_id()));
                self.legs.len() - 1
            }
        };
        &mut self.legs[index]
    }

    pub fn leg(&self, key: &CompactId) -> Option<&Leg> {
        self.legs.iter().find(|leg| &leg.key == key)
    }

    /// Any agent `user.start` or `user.end` in the open episode.
    pub fn has_agent_activity(&self) -> bool {
        self.legs.iter().any(|leg| leg.last_activity_at().is_some())
    }

    /// Rule 4: the leg with the latest final `user.end`, if no other leg shows activity after it
    /// and no other leg is still open. Ties go to the greater leg key, so that the verdict does not
    /// depend on arrival order.
    pub fn end_candidate(&self) -> Option<(&Leg, i64)> {
        let (candidate, at) = self
            .legs
            .iter()
            .filter_map(|leg| leg.final_end_at().map(|at| (leg, at)))
            .max_by(|(a, a_at), (b, b_at)| a_at.cmp(b_at).then_with(|| a.key.cmp(&b.key)))?;
        let held = self
            .legs
            .iter()
            .filter(|leg| leg.key != candidate.key)
            .any(|leg| leg.is_open() || leg.active_after(at));
        (!held).then_some((candidate, at))
    }

    /// Rule 7: a `customer.end` at most this long after a decided end, with no agent activity
    /// in between, belongs to that end.
    pub fn deciding_customer_end(&self, absorb_window_ms: i64) -> Option<&CustomerEnd> {
        self.customer_ends
            .iter()
            .find(|customer| !self.belongs_to_last_end(customer, absorb_window_ms))
    }

    pub fn belongs_to_last_end(&self, customer: &CustomerEnd, absorb_window_ms: i64) -> bool {
        let Some(last) = &self.last_end else {
            return false;
        };
        let activity_between = self.legs.iter().any(|leg| {
            leg.started_at.is_some_and(|start| start < customer.at)
                || leg.end.as_ref().is_some_and(|end| end.at < customer.at)
        });
        customer.at.saturating_sub(last.at) <= absorb_window_ms && !activity_between
    }

    /// `transfers` of `docs/contract.md` §6: transfer and takeover `user.end`s of the episode up to `at`.
    pub fn transfers_until(&self, at: i64) -> u32 {
        let count = self
            .legs
            .iter()
            .filter_map(|leg| leg.end.as_ref())
            .filter(|end| end.at <= at && end.hands_on())
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// The agent most recently active at or before `at`: who was with the customer at the end.
    pub fn last_agent_until(&self, at: i64) -> Option<&Leg> {
        self.legs
            .iter()
            .filter_map(|leg| {
                let latest = leg.started_at.filter(|s| *s <= at).max(
                    leg.end
                        .as_ref()
                        .map(|end| end.at)
                        .filter(|end_at| *end_at <= at),
                )?;
                Some((leg, latest))
            })
            .max_by(|(a, a_at), (b, b_at)| a_at.cmp(b_at).then_with(|| a.key.cmp(&b.key)))
            .map(|(leg, _)| leg)
    }

    /// Closes the open episode at `at`: what happened up to then is done; later events of other
    /// legs open the next episode.
    pub fn close_episode(&mut self, at: i64) {
        let (closed, open): (Vec<Leg>, Vec<Leg>) = std::mem::take(&mut self.legs)
            .into_iter()
            .partition(|leg| leg.belongs_to_episode_ending_at(at));
        self.legs = open;
        self.customer_ends.retain(|customer| customer.at > at);
        self.last_end = Some(LastEnd {
            at,
            episode: self.episode,
            closed_legs: closed
                .iter()
                .map(|leg| leg.key.with_str(fingerprint::leg))
                .collect(),
        });
        self.episode += 1;
        self.candidate = None;
    }

    /// A leg of the ended episode: its stragglers are late, not a new episode.
    pub fn leg_was_closed(&self, key: &str) -> bool {
        self.last_end
            .as_ref()
            .is_some_and(|last| last.closed_legs.contains(&fingerprint::leg(key)))
    }
}
