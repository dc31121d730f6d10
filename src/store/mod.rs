//! Where conversation state, grace-window timers and the outbox of ends to deliver live.
//!
//! The trait is small on purpose: the rules stay in the engine, and a store only has to commit a
//! conversation's new state, its timer and its ends together.

pub mod format;
mod memory;
pub mod redis;

pub use memory::MemoryStore;
pub use redis::{RedisOptions, RedisStore, RedisTarget};

use crate::engine::{ConversationState, EndNotice};
use crate::genesys::ConversationKey;
use async_trait::async_trait;
use serde::Serialize;
use thiserror::Error;
use tokio::time::Instant;

/// What a transition asks the store to commit.
#[derive(Debug)]
pub struct Transition {
    pub state: ConversationState,
    /// Ends to put in the outbox, in the same commit as the state.
    pub ends: Vec<EndNotice>,
}

/// Computes the next state from the current one (`None`: unknown conversation). It must be pure:
/// a store may run it again after a conflicting write. Returning `None` writes nothing.
pub type TransitionFn<'a> = dyn FnMut(Option<ConversationState>) -> Option<Transition> + Send + 'a;

/// Runs `step` on a conversation's state through [`Store::update`] and returns what the
/// committed run of it returned. A store may run the step more than once (after a conflicting
/// write from another replica); only the last run is committed, and only its output is returned.
pub async fn transact<T: Send>(
    store: &dyn Store,
    key: &ConversationKey,
    now_ms: u64,
    deadline: Option<Instant>,
    mut step: impl FnMut(Option<ConversationState>) -> (Option<Transition>, T) + Send,
) -> Result<T, StoreError> {
    let mut committed = None;
    store
        .update(key, now_ms, deadline, &mut |current| {
            let (transition, output) = step(current);
            committed = Some(output);
            transition
        })
        .await?;
    Ok(committed.expect("Store::update runs the transition before it returns Ok"))
}

/// An end waiting in the outbox, or kept as a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The idempotency key: one delivery per conversation episode.
    pub id: String,
    pub notice: EndNotice,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_at_ms: u64,
    pub next_attempt_at_ms: u64,
    pub last_error: Option<String>,
}

impl Delivery {
    pub fn new(notice: EndNotice, now_ms: u64) -> Self {
        Self {
            id: notice.idempotency_key(),
            notice,
            attempts: 0,
            created_at_ms: now_ms,
            next_attempt_at_ms: now_ms,
            last_error: None,
        }
    }
}

impl Delivery {
    /// This delivery as it stands after one more attempt that ended in `settlement`.
    pub fn after(&self, settlement: &Settlement) -> Delivery {
        let mut next = self.clone();
        if let Settlement::Deferred { next_attempt_at_ms } = settlement {
            next.next_attempt_at_ms = *next_attempt_at_ms;
            return next;
        }
        next.attempts += 1;
        match settlement {
            Settlement::Done | Settlement::Deferred { .. } => {}
            Settlement::Retry {
                next_attempt_at_ms,
                error,
            } => {
                next.next_attempt_at_ms = *next_attempt_at_ms;
                next.last_error = Some(error.clone());
            }
            Settlement::DeadLetter { error } => next.last_error = Some(error.clone()),
        }
        next
    }
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Cognigy accepted it, or has no such handover (404): done either way.
    Done,
    Retry {
        next_attempt_at_ms: u64,
        error: String,
    },
    DeadLetter {
        error: String,
    },
    /// Not attempted: its destination had enough calls in flight. Back to the outbox, due at
    /// `next_attempt_at_ms`, with its attempts unchanged.
    Deferred {
        next_attempt_at_ms: u64,
    },
}

impl Settlement {
    /// When a delivery that stays in the outbox is due next; `None` when it leaves it.
    pub fn next_attempt_at_ms(&self) -> Option<u64> {
        match self {
            Settlement::Retry {
                next_attempt_at_ms, ..
            }
            | Settlement::Deferred { next_attempt_at_ms } => Some(*next_attempt_at_ms),
            Settlement::Done | Settlement::DeadLetter { .. } => None,
        }
    }
}

/// Where the end of one episode stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// In the outbox: waiting for its next attempt, or being sent.
    Pending(Delivery),
    DeadLetter(Delivery),
    /// Delivered, not found at Cognigy, or sent in shadow mode: nothing left to do.
    Done,
}

impl Delivery {
    /// This dead letter put back in the outbox: due now, with a fresh retry window.
    pub fn replayed(&self, now_ms: u64) -> Delivery {
        Delivery {
            created_at_ms: now_ms,
            next_attempt_at_ms: now_ms,
            ..self.clone()
        }
    }
}

/// Sizes an operator and the shutdown drain look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    /// Tracked conversations, where the store can count them cheaply (not Redis).
    pub conversations: Option<usize>,
    pub open_windows: usize,
    pub outbox: usize,
    pub dead_letters: usize,
}

/// Work claimed from a store that holds it in parts (Redis buckets): what could be claimed, and
/// the last failure if some part could not be reached. Work claimed on healthy parts is done
/// even when another part fails.
#[derive(Debug)]
pub struct Claimed<T> {
    pub items: Vec<T>,
    /// The last failure, if a part could not be reached.
    pub failure: Option<StoreError>,
    /// Whether any part answered: a loop backs off only when none did, so that a failing part
    /// does not slow down the work of the healthy ones.
    pub answered: bool,
}

impl<T> Claimed<T> {
    /// All of it, or the failure if a part could not be reached.
    pub fn into_result(self) -> Result<Vec<T>, StoreError> {
        match self.failure {
            Some(error) => Err(error),
            None => Ok(self.items),
        }
    }
}

impl<T> Default for Claimed<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            failure: None,
            answered: false,
        }
    }
}

/// What a store's health check found, beyond accepting writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// The store lost its data since the last check: restarted without persistence, flushed, or
    /// failed over to an empty replica.
    pub reset: bool,
    /// The `maxmemory-policy` that may evict the service's keys, if one does.
    pub eviction_policy: Option<String>,
}

#[derive(Debug, Clone, Error)]
pub enum StoreError {
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    #[error("state store is full ({0} conversations)")]
    Full(usize),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Runs `transition` on the conversation's state and commits the result atomically: state,
    /// its wake-up time, and its ends into the outbox. One conversation's updates are serialised.
    ///
    /// `deadline` is the caller's, when it has one (a request's): the update gives up by then,
    /// waits included, or within the store's own budget if that ends first. The events path
    /// relies on it: no timer of its own wraps the update (`http::events_path`).
    async fn update(
        &self,
        key: &ConversationKey,
        now_ms: u64,
        deadline: Option<Instant>,
        transition: &mut TransitionFn<'_>,
    ) -> Result<(), StoreError>;

    async fn load(&self, key: &ConversationKey) -> Result<Option<ConversationState>, StoreError>;

    /// Conversations whose grace window is due, claimed by this caller.
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Claimed<ConversationKey>;

    /// When the earliest grace window closes.
    async fn next_timer_at(&self) -> Result<Option<u64>, StoreError>;

    /// Deliveries due at `now_ms`, leased to this caller for `lease_ms`.
    async fn claim_deliveries(&self, now_ms: u64, limit: usize, lease_ms: u64)
    -> Claimed<Delivery>;

    /// When the earliest waiting delivery is due.
    async fn next_delivery_at(&self) -> Result<Option<u64>, StoreError>;

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<(), StoreError>;

    async fn dead_letters(&self, limit: usize) -> Result<Vec<Delivery>, StoreError>;

    /// Puts dead letters back in the outbox (all of them, or the one with this id); returns how
    /// many.
    async fn replay_dead_letters(&self, now_ms: u64, id: Option<&str>)
    -> Result<usize, StoreError>;

    /// Where the end with this delivery id (idempotency key) of this conversation stands.
    async fn delivery_status(
        &self,
        key: &ConversationKey,
        id: &str,
    ) -> Result<DeliveryStatus, StoreError>;

    async fn counts(&self) -> Result<StoreCounts, StoreError>;

    /// Whether the store accepts writes (readiness: `docs/contract.md` §9.3), and what else a
    /// look at it found.
    async fn health(&self) -> Result<StoreHealth, StoreError>;

    /// Forgets conversations idle past their lifetime; returns how many.
    async fn evict_expired(&self, now_ms: u64) -> Result<usize, StoreError>;

    /// Whether state, timers and the outbox survive the process (then shutdown need not wait).
    fn durable(&self) -> bool;
}
