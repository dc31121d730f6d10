//! The in-memory store: one process, state lost on restart (the shutdown drain limits that).

use super::{
    Claimed, Delivery, DeliveryStatus, Settlement, Store, StoreCounts, StoreError, StoreHealth,
    Transition, TransitionFn,
};
use crate::engine::{CompactId, ConversationState};
use crate::genesys::ConversationKey;
use async_trait::async_trait;
use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Independent locks, so that events of different conversations rarely wait for each other.
const SHARDS: usize = 64;

/// One conversation as this store holds it.
struct Entry {
    key: MemKey,
    state: ConversationState,
    expires_at_ms: u64,
}

/// A conversation's key as this store holds it: the organisation interned (one allocation per
/// organisation, not per conversation) and the conversation id compact (a UUID in 16 bytes).
struct MemKey {
    organisation: Arc<str>,
    conversation: CompactId,
}

impl MemKey {
    fn conversation_key(&self) -> ConversationKey {
        ConversationKey::new(&*self.organisation, self.conversation.to_string())
    }
}

/// A conversation being looked up: its parts as the store compares them, and its hash, computed
/// once per event. The hash chooses the shard and the slot in the shard's table.
struct Lookup<'a> {
    organisation: &'a str,
    conversation: CompactId,
    hash: u64,
}

impl Lookup<'_> {
    fn finds(&self, entry: &Entry) -> bool {
        *entry.key.organisation == *self.organisation && entry.key.conversation == self.conversation
    }
}

/// The one hash of a conversation's key, whether looked up or stored. SipHash with a random key:
/// the ids come from the network.
fn hash_of(hasher: &RandomState, organisation: &str, conversation: &CompactId) -> u64 {
    hasher.hash_one((organisation, conversation))
}

/// One lock's worth of conversations, with the organisations they share. Each shard interns its
/// own organisations (a handful of small strings each), so that no lock shared by every event
/// is taken on the way to a conversation.
#[derive(Default)]
struct Shard {
    /// Entries are boxed so that the table's slots, most of them empty at any load factor, are
    /// one pointer each.
    entries: HashTable<Box<Entry>>,
    organisations: HashSet<Arc<str>>,
}

impl Shard {
    fn find_mut(&mut self, lookup: &Lookup<'_>) -> Option<&mut Entry> {
        self.entries
            .find_mut(lookup.hash, |entry| lookup.finds(entry))
            .map(|entry| &mut **entry)
    }

    /// Stores a new conversation's entry, its organisation interned. The organisation is
    /// copied only here (`docs/contract.md` §5: nothing an event allocates outlives its
    /// refusal).
    fn insert_new(
        &mut self,
        lookup: Lookup<'_>,
        state: ConversationState,
        expires_at_ms: u64,
        hasher: &RandomState,
    ) {
        let organisation = match self.organisations.get(lookup.organisation) {
            Some(known) => Arc::clone(known),
            None => {
                let new: Arc<str> = lookup.organisation.into();
                self.organisations.insert(Arc::clone(&new));
                new
            }
        };
        let entry = Box::new(Entry {
            key: MemKey {
                organisation,
                conversation: lookup.conversation,
            },
            state,
            expires_at_ms,
        });
        self.entries.insert_unique(lookup.hash, entry, |entry| {
            hash_of(hasher, &entry.key.organisation, &entry.key.conversation)
        });
    }
}

#[derive(Default)]
struct Outbox {
    /// Waiting deliveries by (due time, id).
    waiting: BTreeMap<(u64, String), Delivery>,
    /// Claimed by the delivery worker, by id.
    in_flight: HashMap<String, Delivery>,
    dead: Vec<Delivery>,
}

pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// (due time, conversation) of every open grace window.
    timers: Mutex<BTreeSet<(u64, ConversationKey)>>,
    outbox: Mutex<Outbox>,
    conversations: AtomicUsize,
    ttl_ms: u64,
    max_conversations: usize,
}

/// A poisoned lock only means another thread panicked mid-update; the maps stay usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryStore {
    pub fn new(ttl_ms: u64, max_conversations: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            timers: Mutex::default(),
            outbox: Mutex::default(),
            conversations: AtomicUsize::new(0),
            ttl_ms,
            max_conversations,
        }
    }

    fn lookup<'a>(&self, key: &'a ConversationKey) -> Lookup<'a> {
        let organisation = key.organisation_id.as_str();
        let conversation = CompactId::new(key.conversation_id.as_str());
        let hash = hash_of(&self.hasher, organisation, &conversation);
        Lookup {
            organisation,
            conversation,
            hash,
        }
    }

    /// The table places an entry by its hash's low bits and tags it with the top seven: the
    /// shard is chosen by bits neither uses.
    fn shard(&self, lookup: &Lookup<'_>) -> &Mutex<Shard> {
        &self.shards[(lookup.hash >> 32) as usize % SHARDS]
    }

    /// Organisations interned: one per organisation with a stored conversation.
    pub fn organisations_held(&self) -> usize {
        let mut held = HashSet::new();
        for shard in self.shards.iter() {
            held.extend(lock(shard).organisations.iter().cloned());
        }
        held.len()
    }

    fn move_timer(&self, key: &ConversationKey, old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        let mut timers = lock(&self.timers);
        if let Some(due) = old {
            timers.remove(&(due, key.clone()));
        }
        if let Some(due) = new {
            timers.insert((due, key.clone()));
        }
    }

    fn enqueue(&self, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let mut outbox = lock(&self.outbox);
        for delivery in deliveries {
            outbox
                .waiting
                .insert((delivery.next_attempt_at_ms, delivery.id.clone()), delivery);
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    /// Never waits (its lock is held only while the transition runs), so `_deadline` cannot pass.
    async fn update(
        &self,
        key: &ConversationKey,
        now_ms: u64,
        _deadline: Option<Instant>,
        transition: &mut TransitionFn<'_>,
    ) -> Result<(), StoreError> {
        let lookup = self.lookup(key);
        let mut shard = lock(self.shard(&lookup));
        let shard = &mut *shard;
        // One lookup: the entry found is the one overwritten.
        let stored = shard.find_mut(&lookup);
        let current = stored
            .as_ref()
            .filter(|entry| entry.expires_at_ms > now_ms)
            .map(|entry| entry.state.clone());
        let old_wake = current.as_ref().and_then(ConversationState::wake_at_ms);
        if stored.is_none() && self.conversations.load(Ordering::Relaxed) >= self.max_conversations
        {
            return Err(StoreError::Full(self.max_conversations));
        }
        let Some(Transition { state, ends }) = transition(current) else {
            return Ok(());
        };
        self.move_timer(key, old_wake, state.wake_at_ms());
        self.enqueue(ends.into_iter().map(|n| Delivery::new(n, now_ms)).collect());
        let expires_at_ms = now_ms.saturating_add(self.ttl_ms);
        match stored {
            Some(entry) => {
                entry.state = state;
                entry.expires_at_ms = expires_at_ms;
            }
            None => {
                shard.insert_new(lookup, state, expires_at_ms, &self.hasher);
                self.conversations.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    async fn load(&self, key: &ConversationKey) -> Result<Option<ConversationState>, StoreError> {
        let lookup = self.lookup(key);
        let shard = lock(self.shard(&lookup));
        Ok(shard
            .entries
            .find(lookup.hash, |entry| lookup.finds(entry))
            .map(|entry| entry.state.clone()))
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Claimed<ConversationKey> {
        let mut timers = lock(&self.timers);
        let mut due = Vec::new();
        while due.len() < limit {
            match timers.first() {
                Some((at, _)) if *at <= now_ms => {
                    let (_, key) = timers.pop_first().expect("first exists");
                    due.push(key);
                }
                _ => break,
            }
        }
        Claimed {
            items: due,
            failure: None,
            answered: true,
        }
    }

    async fn next_timer_at(&self) -> Result<Option<u64>, StoreError> {
        Ok(lock(&self.timers).first().map(|(at, _)| *at))
    }

    async fn claim_deliveries(
        &self,
        now_ms: u64,
        limit: usize,
        _lease_ms: u64,
    ) -> Claimed<Delivery> {
        // One process: a claim cannot be orphaned, so no lease is needed here.
        let mut outbox = lock(&self.outbox);
        let mut claimed = Vec::new();
        while claimed.len() < limit {
            match outbox.waiting.first_key_value() {
                Some(((at, _), _)) if *at <= now_ms => {
                    let (_, delivery) = outbox.waiting.pop_first().expect("first exists");
                    outbox
                        .in_flight
                        .insert(delivery.id.clone(), delivery.clone());
                    claimed.push(delivery);
                }
                _ => break,
            }
        }
        Claimed {
            items: claimed,
            failure: None,
            answered: true,
        }
    }

    async fn next_delivery_at(&self) -> Result<Option<u64>, StoreError> {
        Ok(lock(&self.outbox)
            .waiting
            .first_key_value()
            .map(|((at, _), _)| *at))
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<(), StoreError> {
        let mut outbox = lock(&self.outbox);
        outbox.in_flight.remove(&delivery.id);
        let next = delivery.after(&settlement);
        match (&settlement, settlement.next_attempt_at_ms()) {
            (_, Some(due)) => {
                outbox.waiting.insert((due, next.id.clone()), next);
            }
            (Settlement::DeadLetter { .. }, None) => outbox.dead.push(next),
            _ => {}
        }
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        Ok(lock(&self.outbox)
            .dead
            .iter()
            .take(limit)
            .cloned()
            .collect())
    }

    async fn replay_dead_letters(
        &self,
        now_ms: u64,
        id: Option<&str>,
    ) -> Result<usize, StoreError> {
        let mut outbox = lock(&self.outbox);
        let (replay, keep): (Vec<Delivery>, Vec<Delivery>) = std::mem::take(&mut outbox.dead)
            .into_iter()
            .partition(|d| id.is_none_or(|id| d.id == id));
        outbox.dead = keep;
        let count = replay.len();
        for delivery in replay {
            let delivery = delivery.replayed(now_ms);
            outbox
                .waiting
                .insert((delivery.next_attempt_at_ms, delivery.id.clone()), delivery);
        }
        Ok(count)
    }

    async fn delivery_status(
        &self,
        _key: &ConversationKey,
        id: &str,
    ) -> Result<DeliveryStatus, StoreError> {
        let outbox = lock(&self.outbox);
        let pending = outbox
            .waiting
            .values()
            .chain(outbox.in_flight.values())
            .find(|d| d.id == id);
        if let Some(delivery) = pending {
            return Ok(DeliveryStatus::Pending(delivery.clone()));
        }
        Ok(match outbox.dead.iter().find(|d| d.id == id) {
            Some(delivery) => DeliveryStatus::DeadLetter(delivery.clone()),
            None => DeliveryStatus::Done,
        })
    }

    async fn counts(&self) -> Result<StoreCounts, StoreError> {
        let outbox = lock(&self.outbox);
        Ok(StoreCounts {
            conversations: Some(self.conversations.load(Ordering::Relaxed)),
            open_windows: lock(&self.timers).len(),
            outbox: outbox.waiting.len() + outbox.in_flight.len(),
            dead_letters: outbox.dead.len(),
        })
    }

    async fn health(&self) -> Result<StoreHealth, StoreError> {
        Ok(StoreHealth::default())
    }

    async fn evict_expired(&self, now_ms: u64) -> Result<usize, StoreError> {
        let mut evicted = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let shard = &mut *shard;
            let before = shard.entries.len();
            shard.entries.retain(|entry| {
                let keep = entry.expires_at_ms > now_ms;
                if !keep {
                    if let Some(due) = entry.state.wake_at_ms() {
                        lock(&self.timers).remove(&(due, entry.key.conversation_key()));
                    }
                }
                keep
            });
            if shard.entries.len() < before {
                // An organisation no conversation of this shard shares any more is forgotten.
                shard
                    .organisations
                    .retain(|organisation| Arc::strong_count(organisation) > 1);
            }
            evicted += before - shard.entries.len();
        }
        self.conversations.fetch_sub(evicted, Ordering::Relaxed);
        Ok(evicted)
    }

    fn durable(&self) -> bool {
        false
    }
}
