//! The Redis store: state shared by several replicas, nothing lost when one is killed.
//!
//! Layout. Keys are spread over [`BUCKETS`] hash tags, `{hr<n>}`. A conversation's state, and
//! the timer and outbox entries that must commit with it, live in the bucket of that
//! conversation, so that each commit is one atomic script on one slot: the same code works on
//! Redis Cluster.
//!
//! - `hr:{hr<n>}:c:<org>:<conversation>`: hash `v` (version), `s` (state JSON); expires after the
//!   state TTL.
//! - `hr:{hr<n>}:timers`: sorted set of conversations with an open grace window, by due time.
//! - `hr:{hr<n>}:outbox`: sorted set of delivery ids, by next attempt time.
//! - `hr:{hr<n>}:deliveries`: hash delivery id -> delivery JSON.
//! - `hr:{hr<n>}:dead`: hash delivery id -> dead letter JSON; expires 30 days after the last one.
//!
//! Concurrency. An update reads the version, runs the engine in Rust, and commits with a
//! compare-and-set on the version, retrying on conflict. Due timers and deliveries are claimed by
//! pushing their score to the end of a lease: a replica that dies mid-way loses its claim when the
//! lease runs out, and another replica takes the work over.

use super::format::{self, BUCKETS, bucket_of};
use super::redis_connection::{Connection, Connector, RedisTarget};
use super::redis_scripts;
use super::{
    Delivery, DeliveryStatus, Settlement, Store, StoreCounts, StoreError, Transition, TransitionFn,
};
use crate::engine::ConversationState;
use crate::genesys::ConversationKey;
use crate::hash::fnv1a;
use async_trait::async_trait;
use redis::Script;
use std::future::Future;
use std::time::Duration;

/// A claimed grace window is this replica's for this long.
const TIMER_LEASE_MS: u64 = 15_000;
/// Attempts at a compare-and-set before answering 503 (EventBridge then retries).
const MAX_CONFLICTS: u32 = 16;
/// Local locks: updates of one conversation within this replica wait for each other, so that
/// compare-and-set conflicts only come from other replicas.
const LOCAL_STRIPES: usize = 256;
/// Dead letters are kept this long after the last one.
const DEAD_LETTER_TTL_MS: u64 = 30 * 24 * 60 * 60 * 1000;

#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Longest time one Redis operation may take before the store counts as unavailable.
    pub operation_timeout: Duration,
    pub state_ttl_ms: u64,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            operation_timeout: Duration::from_millis(1_500),
            state_ttl_ms: 7 * 24 * 60 * 60 * 1000,
        }
    }
}

struct Scripts {
    commit: Script,
    claim_timers: Script,
    claim_deliveries: Script,
    settle: Script,
    replay: Script,
}

pub struct RedisStore {
    connector: Connector,
    scripts: Scripts,
    options: RedisOptions,
    local: Box<[tokio::sync::Mutex<()>]>,
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// The keys of one bucket.
struct Bucket(u32);

impl Bucket {
    fn of(key: &ConversationKey) -> Self {
        Bucket(bucket_of(key))
    }

    fn all() -> impl Iterator<Item = Bucket> {
        (0..BUCKETS).map(Bucket)
    }

    fn key(&self, name: &str) -> String {
        format!("hr:{{hr{}}}:{name}", self.0)
    }

    fn state(&self, key: &ConversationKey) -> String {
        self.key(&format!(
            "c:{}:{}",
            key.organisation_id, key.conversation_id
        ))
    }

    fn timers(&self) -> String {
        self.key("timers")
    }

    fn outbox(&self) -> String {
        self.key("outbox")
    }

    fn deliveries(&self) -> String {
        self.key("deliveries")
    }

    fn dead(&self) -> String {
        self.key("dead")
    }
}

fn member(key: &ConversationKey) -> String {
    format::write_timer_member(key)
}

impl RedisStore {
    /// Connects lazily: the service starts while Redis is down, reports not ready, answers 503,
    /// and recovers by itself when Redis returns.
    pub fn connect(target: &RedisTarget, options: RedisOptions) -> Result<Self, StoreError> {
        // The error names the kind of problem only: the URL may carry a password.
        let connector = Connector::new(target, options.operation_timeout).map_err(|e| {
            StoreError::Unavailable(format!(
                "HANDOVER_STORE is not a valid Redis URL ({:?})",
                e.kind()
            ))
        })?;
        Ok(Self {
            connector,
            scripts: Scripts {
                commit: Script::new(redis_scripts::COMMIT),
                claim_timers: Script::new(redis_scripts::CLAIM_TIMERS),
                claim_deliveries: Script::new(redis_scripts::CLAIM_DELIVERIES),
                settle: Script::new(redis_scripts::SETTLE),
                replay: Script::new(redis_scripts::REPLAY),
            },
            options,
            local: (0..LOCAL_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        })
    }

    /// Runs one Redis operation, connection included, within the operation timeout.
    async fn run<T, F, Fut>(&self, operation: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let work = async { operation(self.connector.get().await?).await };
        match tokio::time::timeout(self.options.operation_timeout, work).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(StoreError::Unavailable(
                "Redis did not answer in time".into(),
            )),
        }
    }

    async fn read_state(
        &self,
        state_key: &str,
    ) -> Result<(String, Option<ConversationState>), StoreError> {
        let (version, json): (Option<String>, Option<String>) = self
            .run(|mut c| async move {
                redis::cmd("HMGET")
                    .arg(state_key)
                    .arg("v")
                    .arg("s")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let state = match json {
            Some(json) => Some(format::read_conversation(&json).map_err(|e| {
                StoreError::Unavailable(format!("unreadable state at {state_key}: {e}"))
            })?),
            None => None,
        };
        Ok((version.unwrap_or_else(|| "0".into()), state))
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn update(
        &self,
        key: &ConversationKey,
        now_ms: u64,
        transition: &mut TransitionFn<'_>,
    ) -> Result<(), StoreError> {
        let bucket = Bucket::of(key);
        let state_key = bucket.state(key);
        let stripe = fnv1a(&[state_key.as_bytes()]) as usize % LOCAL_STRIPES;
        let _serialised = self.local[stripe].lock().await;
        for conflicts in 0..MAX_CONFLICTS {
            if conflicts > 0 {
                // Another replica wrote first: back off a little, at random, and read again.
                let ceiling = 1u64 << conflicts.min(6);
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=ceiling))).await;
            }
            let (version, current) = self.read_state(&state_key).await?;
            let was_absent = current.is_none();
            let Some(Transition { state, ends }) = transition(current) else {
                if was_absent {
                    // A timer can outlive its conversation's state (TTL): drop it.
                    let (timers, member) = (bucket.timers(), member(key));
                    let _: i64 = self
                        .run(|mut c| async move {
                            redis::cmd("ZREM")
                                .arg(timers)
                                .arg(member)
                                .query_async(&mut c)
                                .await
                        })
                        .await?;
                }
                return Ok(());
            };
            let mut invocation = self.scripts.commit.prepare_invoke();
            invocation
                .key(&state_key)
                .key(bucket.timers())
                .key(bucket.outbox())
                .key(bucket.deliveries())
                .arg(&version)
                .arg(format::write_conversation(&state))
                .arg(self.options.state_ttl_ms)
                .arg(member(key))
                .arg(
                    state
                        .wake_at_ms()
                        .map(|at| at.to_string())
                        .unwrap_or_default(),
                );
            for end in ends {
                let delivery = Delivery::new(end, now_ms);
                invocation
                    .arg(&delivery.id)
                    .arg(format::write_delivery(&delivery))
                    .arg(delivery.next_attempt_at_ms);
            }
            let committed: i64 = self
                .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await?;
            if committed == 1 {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(
            "too many concurrent updates of one conversation".into(),
        ))
    }

    async fn load(&self, key: &ConversationKey) -> Result<Option<ConversationState>, StoreError> {
        Ok(self.read_state(&Bucket::of(key).state(key)).await?.1)
    }

    async fn due_timers(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<ConversationKey>, StoreError> {
        let mut due = Vec::new();
        for bucket in Bucket::all() {
            if due.len() >= limit {
                break;
            }
            let mut claim = self.scripts.claim_timers.prepare_invoke();
            claim
                .key(bucket.timers())
                .arg(now_ms)
                .arg(now_ms + TIMER_LEASE_MS)
                .arg(limit - due.len());
            let members: Vec<String> = self
                .run(|mut c| async move { claim.invoke_async(&mut c).await })
                .await?;
            due.extend(
                members
                    .iter()
                    .filter_map(|m| format::read_timer_member(m).ok()),
            );
        }
        Ok(due)
    }

    async fn next_timer_at(&self) -> Result<Option<u64>, StoreError> {
        earliest(self, Bucket::timers).await
    }

    async fn claim_deliveries(
        &self,
        now_ms: u64,
        limit: usize,
        lease_ms: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut claimed = Vec::new();
        for bucket in Bucket::all() {
            if claimed.len() >= limit {
                break;
            }
            let mut claim = self.scripts.claim_deliveries.prepare_invoke();
            claim
                .key(bucket.outbox())
                .key(bucket.deliveries())
                .arg(now_ms)
                .arg(now_ms + lease_ms)
                .arg(limit - claimed.len());
            let items: Vec<String> = self
                .run(|mut c| async move { claim.invoke_async(&mut c).await })
                .await?;
            for item in items {
                match format::read_delivery(&item) {
                    Ok(delivery) => claimed.push(delivery),
                    Err(error) => tracing::error!(%error, "unreadable delivery in the outbox"),
                }
            }
        }
        Ok(claimed)
    }

    async fn next_delivery_at(&self) -> Result<Option<u64>, StoreError> {
        earliest(self, Bucket::outbox).await
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<(), StoreError> {
        let bucket = Bucket::of(&delivery.notice.key);
        let next = delivery.after(&settlement);
        let (outcome, next_attempt_at_ms) = match (&settlement, settlement.next_attempt_at_ms()) {
            (_, Some(due)) => ("retry", due),
            (Settlement::DeadLetter { .. }, None) => ("dead", 0),
            _ => ("done", 0),
        };
        let mut settle = self.scripts.settle.prepare_invoke();
        settle
            .key(bucket.outbox())
            .key(bucket.deliveries())
            .key(bucket.dead())
            .arg(&delivery.id)
            .arg(outcome)
            .arg(format::write_delivery(&next))
            .arg(next_attempt_at_ms)
            .arg(DEAD_LETTER_TTL_MS);
        let _: i64 = self
            .run(|mut c| async move { settle.invoke_async(&mut c).await })
            .await?;
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let mut letters = Vec::new();
        for bucket in Bucket::all() {
            let dead = bucket.dead();
            let items: Vec<String> = self
                .run(|mut c| async move { redis::cmd("HVALS").arg(dead).query_async(&mut c).await })
                .await?;
            letters.extend(items.iter().filter_map(|i| format::read_delivery(i).ok()));
        }
        letters.sort_by_key(|d: &Delivery| d.created_at_ms);
        letters.truncate(limit);
        Ok(letters)
    }

    async fn replay_dead_letters(
        &self,
        now_ms: u64,
        id: Option<&str>,
    ) -> Result<usize, StoreError> {
        let mut replayed = 0;
        for letter in self.dead_letters(usize::MAX).await? {
            if id.is_some_and(|id| id != letter.id) {
                continue;
            }
            let bucket = Bucket::of(&letter.notice.key);
            let delivery = letter.replayed(now_ms);
            let mut replay = self.scripts.replay.prepare_invoke();
            replay
                .key(bucket.outbox())
                .key(bucket.deliveries())
                .key(bucket.dead())
                .arg(&delivery.id)
                .arg(format::write_delivery(&delivery))
                .arg(delivery.next_attempt_at_ms);
            let moved: i64 = self
                .run(|mut c| async move { replay.invoke_async(&mut c).await })
                .await?;
            replayed += moved as usize;
        }
        Ok(replayed)
    }

    async fn delivery_status(
        &self,
        key: &ConversationKey,
        id: &str,
    ) -> Result<DeliveryStatus, StoreError> {
        let bucket = Bucket::of(key);
        let mut pipe = redis::pipe();
        pipe.hget(bucket.deliveries(), id).hget(bucket.dead(), id);
        let (pending, dead): (Option<String>, Option<String>) = self
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        let parse = |json: String| format::read_delivery(&json).map_err(unavailable);
        Ok(match (pending, dead) {
            (Some(json), _) => DeliveryStatus::Pending(parse(json)?),
            (None, Some(json)) => DeliveryStatus::DeadLetter(parse(json)?),
            (None, None) => DeliveryStatus::Done,
        })
    }

    async fn counts(&self) -> Result<StoreCounts, StoreError> {
        let mut counts = StoreCounts::default();
        // One bucket (one slot) per round trip: a pipeline may not span Cluster slots.
        for bucket in Bucket::all() {
            let mut pipe = redis::pipe();
            pipe.zcard(bucket.timers())
                .zcard(bucket.outbox())
                .hlen(bucket.dead());
            let (timers, outbox, dead): (usize, usize, usize) = self
                .run(|mut c| async move { pipe.query_async(&mut c).await })
                .await?;
            counts.open_windows += timers;
            counts.outbox += outbox;
            counts.dead_letters += dead;
        }
        Ok(counts)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self
            .run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
            .await?;
        Ok(())
    }

    async fn evict_expired(&self, _now_ms: u64) -> Result<usize, StoreError> {
        // Redis expires conversation keys by itself.
        Ok(0)
    }

    fn durable(&self) -> bool {
        true
    }
}

/// The lowest score of a per-bucket sorted set, over all buckets.
async fn earliest(
    store: &RedisStore,
    set: fn(&Bucket) -> String,
) -> Result<Option<u64>, StoreError> {
    let mut earliest: Option<u64> = None;
    for bucket in Bucket::all() {
        let key = set(&bucket);
        let first: Vec<(String, f64)> = store
            .run(|mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if let Some((_, score)) = first.first() {
            let at = *score as u64;
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        }
    }
    Ok(earliest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_conversation_share_one_hash_tag() {
        let key = ConversationKey::new("handover-prod", "8a1b2c3d");
        let bucket = Bucket::of(&key);
        let tag = format!("{{hr{}}}", bucket.0);
        for name in [
            bucket.state(&key),
            bucket.timers(),
            bucket.outbox(),
            bucket.deliveries(),
            bucket.dead(),
        ] {
            assert!(name.contains(&tag), "{name} lacks {tag}");
            assert_eq!(name.matches('{').count(), 1, "{name} has more than one tag");
        }
    }

    #[test]
    fn conversations_spread_over_every_bucket() {
        let mut used = std::collections::HashSet::new();
        for n in 0..1_000 {
            used.insert(bucket_of(&ConversationKey::new(
                "org",
                format!("conversation-{n}"),
            )));
        }
        assert_eq!(used.len(), BUCKETS as usize);
    }
}
