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
//! Concurrency. An update starts from a guess of the stored record (what this replica committed
//! last, else that the conversation is new), runs the engine in Rust, and commits with a
//! compare-and-set on the version and write token. A wrong guess costs no extra round trip: the
//! commit answers with the stored record, and the engine runs again on it. A conflict with
//! another writer reads again and retries. Due timers and deliveries are claimed by
//! pushing their score to the end of a lease: a replica that dies mid-way loses its claim when the
//! lease runs out, and another replica takes the work over.
//!
//! Failures (`docs/contract.md` §9). Every operation runs within a time budget: a command that
//! fails because the node is gone or no longer the primary is sent again on a new connection
//! (asking the Sentinels anew), one that fails because Redis is moving slots or is out of memory
//! is sent again after a pause; only when the budget is spent does the caller see the error (an
//! event then gets 503 and EventBridge sends it again). With `HANDOVER_REDIS_MIN_REPLICAS`, a
//! commit counts only once that many replicas hold it (`WAIT`).
//!
//! - `hr:{hr<n>}:epoch`: hash `id`, `probed`: the epoch marker the readiness probe writes; a
//!   marker that vanished or changed means the store lost its data.

mod breaker;
mod connection;
mod health;
mod recent;
mod scripts;
mod target;

pub use target::{
    CA_FILE_ENV, CLIENT_CERT_FILE_ENV, CLIENT_KEY_FILE_ENV, RedisTarget, TargetError, TlsPaths,
};

use super::format::{self, BUCKETS, bucket_of};
use super::{
    Claimed, Delivery, DeliveryStatus, Settlement, Store, StoreCounts, StoreError, StoreHealth,
    Transition, TransitionFn,
};
use crate::backoff::Backoff;
use crate::engine::ConversationState;
use crate::genesys::ConversationKey;
use crate::hash::fnv1a;
use async_trait::async_trait;
use connection::{Connection, Connector, Recovery, recovery, slot_of};
use recent::{Recent, Record, Stamp};
use redis::{RedisResult, Script, Value};
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::time::Instant;

/// A claimed grace window is this replica's for this long.
const TIMER_LEASE_MS: u64 = 15_000;
/// Attempts at a compare-and-set before answering 503 (EventBridge then retries).
const MAX_CONFLICTS: u32 = 16;
/// Local locks: updates of one conversation within this replica wait for each other, so that
/// compare-and-set conflicts only come from other replicas. Each keeps the records its updates
/// committed last (`recent`).
const LOCAL_STRIPES: usize = 256;
/// Dead letters are kept this long after the last one.
const DEAD_LETTER_TTL_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// Pauses between two tries of a failed command, within the budget.
const RETRY_PAUSES: Backoff =
    Backoff::between(Duration::from_millis(25), Duration::from_millis(400));

#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Longest time one Redis command may take before it counts as failed.
    pub operation_timeout: Duration,
    /// Longest time one store operation may take, tries again included (`docs/contract.md` §9.2).
    pub budget: Duration,
    pub state_ttl_ms: u64,
    /// Replicas that must hold a commit before it counts (`HANDOVER_REDIS_MIN_REPLICAS`).
    pub min_replicas: u32,
    /// How long a commit waits for them (`HANDOVER_REDIS_REPLICA_TIMEOUT_MS`).
    pub replica_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            operation_timeout: Duration::from_millis(1_500),
            budget: Duration::from_millis(3_000),
            state_ttl_ms: 7 * 24 * 60 * 60 * 1000,
            min_replicas: 0,
            replica_timeout: Duration::from_millis(500),
        }
    }
}

struct Scripts {
    commit: Script,
    claim_timers: Script,
    claim_deliveries: Script,
    settle: Script,
    replay: Script,
    probe: Script,
}

pub struct RedisStore {
    connector: Connector,
    scripts: Scripts,
    options: RedisOptions,
    local: Box<[tokio::sync::Mutex<Recent>]>,
    /// The epoch id last seen in each bucket's marker.
    epochs: std::sync::Mutex<Vec<Option<String>>>,
    /// Buckets background work leaves alone for a while after a failure.
    breaker: breaker::Breaker,
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// An operation's time ran out: Redis did not answer, or answered others first.
fn late_error() -> StoreError {
    StoreError::Unavailable("Redis did not answer in time".into())
}

/// The keys of one bucket.
#[derive(Clone, Copy)]
struct Bucket(u32);

/// One bucket's fixed keys and slot, made once: every update names several of them, and putting
/// them together per update cost more than the rest of the key handling.
struct BucketKeys {
    /// `hr:{hr<n>}:`, which every key of the bucket starts with.
    prefix: String,
    timers: String,
    outbox: String,
    deliveries: String,
    dead: String,
    epoch: String,
    /// The Cluster slot all of the bucket's keys live in.
    slot: u16,
}

static BUCKET_KEYS: LazyLock<Vec<BucketKeys>> = LazyLock::new(|| {
    Bucket::all()
        .map(|bucket| {
            let prefix = format!("hr:{{hr{}}}:", bucket.0);
            let key = |name: &str| format!("{prefix}{name}");
            BucketKeys {
                timers: key("timers"),
                outbox: key("outbox"),
                deliveries: key("deliveries"),
                dead: key("dead"),
                epoch: key("epoch"),
                slot: slot_of(&prefix),
                prefix,
            }
        })
        .collect()
});

impl Bucket {
    fn of(key: &ConversationKey) -> Self {
        Bucket(bucket_of(key))
    }

    fn all() -> impl Iterator<Item = Bucket> {
        (0..BUCKETS).map(Bucket)
    }

    fn keys(&self) -> &'static BucketKeys {
        &BUCKET_KEYS[self.0 as usize]
    }

    /// The Cluster slot all of this bucket's keys live in.
    fn slot(&self) -> u16 {
        self.keys().slot
    }

    /// `hr:{hr<n>}:c:<org>:<conversation>`, put together in one allocation.
    fn state(&self, key: &ConversationKey) -> String {
        let prefix = &self.keys().prefix;
        let parts = [
            "c:",
            key.organisation_id.as_str(),
            ":",
            key.conversation_id.as_str(),
        ];
        let length = prefix.len() + parts.iter().map(|part| part.len()).sum::<usize>();
        let mut state = String::with_capacity(length);
        state.push_str(prefix);
        for part in parts {
            state.push_str(part);
        }
        state
    }

    fn timers(&self) -> &'static str {
        &self.keys().timers
    }

    fn outbox(&self) -> &'static str {
        &self.keys().outbox
    }

    fn deliveries(&self) -> &'static str {
        &self.keys().deliveries
    }

    fn dead(&self) -> &'static str {
        &self.keys().dead
    }

    fn epoch(&self) -> &'static str {
        &self.keys().epoch
    }
}

fn member(key: &ConversationKey) -> String {
    format::write_timer_member(key)
}

/// A stored record from its fields (an empty or missing state: absent).
fn record(
    state_key: &str,
    version: String,
    token: String,
    json: &str,
) -> Result<Record, StoreError> {
    let state = if json.is_empty() {
        None
    } else {
        Some(format::read_conversation(json).map_err(|e| {
            StoreError::Unavailable(format!("unreadable state at {state_key}: {e}"))
        })?)
    };
    Ok(Record {
        stamp: Stamp { version, token },
        state,
    })
}

/// The commit script's answer: the new version, or the stored record it found instead.
fn commit_reply(state_key: &str, reply: Value) -> Result<Committed, StoreError> {
    let text = |value: &Value| redis::from_redis_value_ref::<String>(value).map_err(unavailable);
    match reply {
        Value::Array(found) if found.len() == 3 => Ok(Committed::Conflict(Box::new(record(
            state_key,
            text(&found[0])?,
            text(&found[1])?,
            &text(&found[2])?,
        )?))),
        other => Ok(Committed::Yes(text(&other)?)),
    }
}

/// What one commit writes over: the conversation, where its keys are, the record the new state
/// was computed from, and this commit's write token.
#[derive(Clone, Copy)]
struct Commit<'a> {
    key: &'a ConversationKey,
    bucket: Bucket,
    state_key: &'a str,
    basis: &'a Stamp,
    token: &'a str,
}

/// What a commit came to.
enum Committed {
    /// Written; the record's new version.
    Yes(String),
    /// Not written: the stored record was not the one the transition started from. This is it.
    Conflict(Box<Record>),
    /// Written on the primary, held by fewer replicas than required.
    NotReplicated(i64),
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
                commit: Script::new(scripts::COMMIT),
                claim_timers: Script::new(scripts::CLAIM_TIMERS),
                claim_deliveries: Script::new(scripts::CLAIM_DELIVERIES),
                settle: Script::new(scripts::SETTLE),
                replay: Script::new(scripts::REPLAY),
                probe: Script::new(scripts::PROBE),
            },
            options,
            local: (0..LOCAL_STRIPES)
                .map(|_| tokio::sync::Mutex::default())
                .collect(),
            epochs: std::sync::Mutex::new(vec![None; BUCKETS as usize]),
            breaker: breaker::Breaker::default(),
        })
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.options.budget
    }

    /// Runs one Redis operation, connection included, trying again as the failure asks until it
    /// succeeds or `deadline` passes (`docs/contract.md` §9.2).
    async fn run<T, F, Fut>(&self, deadline: Instant, mut operation: F) -> Result<T, StoreError>
    where
        F: FnMut(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let mut pauses = RETRY_PAUSES;
        loop {
            let error = match self.attempt(deadline, &mut operation).await {
                Ok(value) => return Ok(value),
                Err((error, Recovery::GiveUp)) => return Err(error),
                Err((error, _)) => error,
            };
            let pause = pauses.failed();
            if Instant::now() + pause >= deadline {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// One try, for background work that tries again on its own.
    async fn run_once<T, F, Fut>(&self, mut operation: F) -> Result<T, StoreError>
    where
        F: FnMut(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let deadline = Instant::now() + self.options.operation_timeout;
        self.attempt(deadline, &mut operation)
            .await
            .map_err(|(error, _)| error)
    }

    /// One try: a connection, then the operation, each bounded by the operation timeout.
    async fn attempt<T, F, Fut>(
        &self,
        deadline: Instant,
        operation: &mut F,
    ) -> Result<T, (StoreError, Recovery)>
    where
        F: FnMut(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let until = |now: Instant| deadline.min(now + self.options.operation_timeout);
        let late = || (late_error(), Recovery::Reconnect);
        let failed = |error: redis::RedisError| {
            let recovery = recovery(&error);
            (unavailable(error), recovery)
        };
        let now = Instant::now();
        // No time left (a batch's later events, a long wait for the stripe): nothing is sent, so
        // a healthy connection is not discarded for a timeout that is not its own.
        if deadline <= now {
            return Err((late_error(), Recovery::GiveUp));
        }
        let (connection, now) = match self.connector.ready() {
            Some(connection) => (connection, now),
            None => {
                let connection = tokio::time::timeout_at(until(now), self.connector.get())
                    .await
                    .map_err(|_| late())?
                    .map_err(failed)?;
                (connection, Instant::now())
            }
        };
        match tokio::time::timeout_at(until(now), operation(connection.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                let (error, recovery) = failed(error);
                if recovery == Recovery::Reconnect {
                    self.connector.discard(&connection);
                }
                Err((error, recovery))
            }
            Err(_) => {
                self.connector.discard(&connection);
                Err(late())
            }
        }
    }

    async fn read_state(&self, deadline: Instant, state_key: &str) -> Result<Record, StoreError> {
        let (version, token, json): (Option<String>, Option<String>, Option<String>) = self
            .run(deadline, |mut c| async move {
                redis::cmd("HMGET")
                    .arg(state_key)
                    .arg("v")
                    .arg("t")
                    .arg("s")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        record(
            state_key,
            version.unwrap_or_else(|| "0".into()),
            token.unwrap_or_default(),
            json.as_deref().unwrap_or_default(),
        )
    }

    /// `WAIT` for the replicas on `connection`, which made the writes to wait for.
    async fn replicated(&self, connection: &mut Connection, slot: u16) -> RedisResult<i64> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.options.min_replicas)
            .arg(self.options.replica_timeout.as_millis() as u64);
        let acked = connection.on_slot(slot, wait).await?;
        redis::from_redis_value(acked).map_err(redis::RedisError::from)
    }

    /// One run of the commit script: `state` and its timer and `ends`, if the stored record is
    /// still `commit.basis`; then, with required replicas, `WAIT` for them.
    async fn commit(
        &self,
        deadline: Instant,
        commit: Commit<'_>,
        state: &ConversationState,
        ends: Vec<crate::engine::EndNotice>,
        now_ms: u64,
    ) -> Result<Committed, StoreError> {
        let keys = [
            commit.state_key,
            commit.bucket.timers(),
            commit.bucket.outbox(),
            commit.bucket.deliveries(),
        ];
        let script = &self.scripts.commit;
        // The JSON is written into the thread's reused buffer, then copied into the command.
        let mut call = format::with_conversation_json(state, |json| {
            let mut call = scripts::call(script, &keys, 256 + json.len());
            call.arg(&commit.basis.version)
                .arg(&commit.basis.token)
                .arg(json);
            call
        });
        call.arg(self.options.state_ttl_ms)
            .arg(commit.token)
            .arg(member(commit.key));
        // A number goes in through the redis crate's own integer writer (itoa), not `to_string`.
        match state.wake_at_ms() {
            Some(at) => call.arg(at),
            None => call.arg(""),
        };
        for end in ends {
            let delivery = Delivery::new(end, now_ms);
            call.arg(&delivery.id)
                .arg(format::write_delivery(&delivery))
                .arg(delivery.next_attempt_at_ms);
        }
        let call = &call;
        self.run(deadline, |mut c| async move {
            let reply: Value = scripts::invoke(script, call, &mut c).await?;
            let committed = match commit_reply(commit.state_key, reply) {
                Ok(committed) => committed,
                Err(error) => return Ok(Err(error)),
            };
            let Committed::Yes(version) = committed else {
                return Ok(Ok(committed));
            };
            if self.options.min_replicas == 0 {
                return Ok(Ok(Committed::Yes(version)));
            }
            // On the connection that made the commit: WAIT counts its writes.
            let acked = self.replicated(&mut c, commit.bucket.slot()).await?;
            Ok(Ok(if acked < i64::from(self.options.min_replicas) {
                Committed::NotReplicated(acked)
            } else {
                Committed::Yes(version)
            }))
        })
        .await?
    }

    fn not_replicated(&self, acked: i64) -> StoreError {
        StoreError::Unavailable(format!(
            "the commit reached {acked} of the {} replicas required within {} ms",
            self.options.min_replicas,
            self.options.replica_timeout.as_millis()
        ))
    }

    /// With required replicas, a state read but not written (a duplicate, say) must still be held
    /// by them before the event is acknowledged: an earlier commit of it may have reached none.
    /// A write to its slot, then `WAIT`: replication is in order, so once the replicas hold this
    /// write they hold everything before it.
    async fn confirm_replicated(
        &self,
        deadline: Instant,
        bucket: &Bucket,
        state_key: &str,
    ) -> Result<(), StoreError> {
        let acked = self
            .run(deadline, |mut c| async move {
                let _: i64 = redis::cmd("PEXPIRE")
                    .arg(state_key)
                    .arg(self.options.state_ttl_ms)
                    .query_async(&mut c)
                    .await?;
                self.replicated(&mut c, bucket.slot()).await
            })
            .await?;
        if acked < i64::from(self.options.min_replicas) {
            return Err(self.not_replicated(acked));
        }
        Ok(())
    }

    /// Runs `claim` on every bucket; the work claimed on healthy buckets is returned even when
    /// others fail (`docs/contract.md` §9.3). Each bucket gets one try, bounded by the operation
    /// timeout: the background loop comes back soon anyway, and a failing bucket must not spend
    /// the healthy ones' time.
    async fn claim_each<T, F, Fut>(&self, limit: usize, mut claim: F) -> Claimed<T>
    where
        F: FnMut(Bucket, usize) -> Fut,
        Fut: Future<Output = Result<Vec<T>, StoreError>>,
    {
        let mut claimed = Claimed::default();
        for bucket in Bucket::all() {
            let room = limit.saturating_sub(claimed.items.len());
            if room == 0 {
                break;
            }
            if let Some(cause) = self.breaker.resting(bucket.0) {
                claimed.failure.get_or_insert(cause);
                continue;
            }
            match claim(bucket, room).await {
                Ok(items) => {
                    self.breaker.succeeded(bucket.0);
                    claimed.answered = true;
                    claimed.items.extend(items);
                }
                Err(error) => {
                    self.breaker.failed(bucket.0, &error);
                    claimed.failure = Some(error);
                }
            }
        }
        claimed
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn update(
        &self,
        key: &ConversationKey,
        now_ms: u64,
        deadline: Option<Instant>,
        transition: &mut TransitionFn<'_>,
    ) -> Result<(), StoreError> {
        let own = self.deadline();
        let deadline = deadline.map_or(own, |caller| caller.min(own));
        let bucket = Bucket::of(key);
        let state_key = bucket.state(key);
        let stripe = &self.local[fnv1a(&[state_key.as_bytes()]) as usize % LOCAL_STRIPES];
        // Behind a hung Redis the stripe's earlier updates each take up to their budget: the
        // wait for them is bounded too. A timer only when there is a wait.
        let mut recent = match stripe.try_lock() {
            Ok(recent) => recent,
            Err(_) => tokio::time::timeout_at(deadline, stripe.lock())
                .await
                .map_err(|_| late_error())?,
        };
        // A guess the commit checks: what this replica committed last, if it still has it, else
        // that the conversation is new. Most conversations a replica has no record of are new,
        // and one that is not costs no more than a read: the commit answers with what is stored.
        let mut guess = Some(recent.take(&state_key).unwrap_or_else(Record::absent));
        let mut found = None;
        let mut conflicts = 0;
        loop {
            let (record, guessed) = match (guess.take(), found.take()) {
                (Some(record), _) => (record, true),
                (None, Some(record)) => (record, false),
                (None, None) => (self.read_state(deadline, &state_key).await?, false),
            };
            let was_absent = record.state.is_none();
            let Some(Transition { state, ends }) = transition(record.state) else {
                if guessed {
                    // Nothing to write is an answer (a refusal, say) that must come from the
                    // stored state, not from a guess: the guess may be older than Redis.
                    continue;
                }
                if was_absent {
                    // A timer can outlive its conversation's state (TTL): drop it.
                    let (timers, member) = (bucket.timers(), member(key));
                    let _: i64 = self
                        .run(deadline, |mut c| {
                            let mut zrem = redis::cmd("ZREM");
                            zrem.arg(timers).arg(&member);
                            async move { zrem.query_async(&mut c).await }
                        })
                        .await?;
                } else if self.options.min_replicas > 0 {
                    self.confirm_replicated(deadline, &bucket, &state_key)
                        .await?;
                }
                return Ok(());
            };
            let token = recent::new_token();
            let commit = Commit {
                key,
                bucket,
                state_key: &state_key,
                basis: &record.stamp,
                token: &token,
            };
            let committed = self.commit(deadline, commit, &state, ends, now_ms).await?;
            match committed {
                Committed::Yes(version) => {
                    recent.keep(state_key, Stamp { version, token }, state);
                    return Ok(());
                }
                Committed::NotReplicated(acked) => return Err(self.not_replicated(acked)),
                Committed::Conflict(stored) if guessed => found = Some(*stored),
                Committed::Conflict(_) => {
                    // Another replica wrote first: back off a little, at random, and read again.
                    conflicts += 1;
                    if conflicts >= MAX_CONFLICTS {
                        return Err(StoreError::Unavailable(
                            "too many concurrent updates of one conversation".into(),
                        ));
                    }
                    let ceiling = 1u64 << conflicts.min(6);
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=ceiling))).await;
                }
            }
        }
    }

    async fn load(&self, key: &ConversationKey) -> Result<Option<ConversationState>, StoreError> {
        let state_key = Bucket::of(key).state(key);
        Ok(self.read_state(self.deadline(), &state_key).await?.state)
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Claimed<ConversationKey> {
        self.claim_each(limit, |bucket, room| async move {
            let script = &self.scripts.claim_timers;
            let mut claim = scripts::call(script, &[bucket.timers()], 64);
            claim.arg(now_ms).arg(now_ms + TIMER_LEASE_MS).arg(room);
            let claim = &claim;
            let members: Vec<String> = self
                .run_once(|mut c| async move { scripts::invoke(script, claim, &mut c).await })
                .await?;
            Ok(members
                .iter()
                .filter_map(|m| format::read_timer_member(m).ok())
                .collect())
        })
        .await
    }

    async fn next_timer_at(&self) -> Result<Option<u64>, StoreError> {
        earliest(self, Bucket::timers).await
    }

    async fn claim_deliveries(
        &self,
        now_ms: u64,
        limit: usize,
        lease_ms: u64,
    ) -> Claimed<Delivery> {
        self.claim_each(limit, |bucket, room| async move {
            let script = &self.scripts.claim_deliveries;
            let keys = [bucket.outbox(), bucket.deliveries()];
            let mut claim = scripts::call(script, &keys, 96);
            claim.arg(now_ms).arg(now_ms + lease_ms).arg(room);
            let claim = &claim;
            let items: Vec<String> = self
                .run_once(|mut c| async move { scripts::invoke(script, claim, &mut c).await })
                .await?;
            let mut claimed = Vec::with_capacity(items.len());
            for item in items {
                match format::read_delivery(&item) {
                    Ok(delivery) => claimed.push(delivery),
                    Err(error) => tracing::error!(%error, "unreadable delivery in the outbox"),
                }
            }
            Ok(claimed)
        })
        .await
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
        let script = &self.scripts.settle;
        let keys = [bucket.outbox(), bucket.deliveries(), bucket.dead()];
        let json = format::write_delivery(&next);
        let mut settle = scripts::call(script, &keys, 128 + json.len());
        settle
            .arg(&delivery.id)
            .arg(outcome)
            .arg(json)
            .arg(next_attempt_at_ms)
            .arg(DEAD_LETTER_TTL_MS);
        let settle = &settle;
        let _: i64 = self
            .run(self.deadline(), |mut c| async move {
                scripts::invoke(script, settle, &mut c).await
            })
            .await?;
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let mut letters = Vec::new();
        for bucket in Bucket::all() {
            let dead = bucket.dead();
            let items: Vec<String> = self
                .run(self.deadline(), |mut c| {
                    let mut hvals = redis::cmd("HVALS");
                    hvals.arg(dead);
                    async move { hvals.query_async(&mut c).await }
                })
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
            let script = &self.scripts.replay;
            let keys = [bucket.outbox(), bucket.deliveries(), bucket.dead()];
            let json = format::write_delivery(&delivery);
            let mut replay = scripts::call(script, &keys, 128 + json.len());
            replay
                .arg(&delivery.id)
                .arg(json)
                .arg(delivery.next_attempt_at_ms);
            let replay = &replay;
            let moved: i64 = self
                .run(self.deadline(), |mut c| async move {
                    scripts::invoke(script, replay, &mut c).await
                })
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
        let pipe = &pipe;
        let (pending, dead): (Option<String>, Option<String>) = self
            .run(self.deadline(), |mut c| async move {
                pipe.query_async(&mut c).await
            })
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
            let pipe = &pipe;
            let (timers, outbox, dead): (usize, usize, usize) = self
                .run(self.deadline(), |mut c| async move {
                    pipe.query_async(&mut c).await
                })
                .await?;
            counts.open_windows += timers;
            counts.outbox += outbox;
            counts.dead_letters += dead;
        }
        Ok(counts)
    }

    async fn health(&self) -> Result<StoreHealth, StoreError> {
        health::check(self).await
    }

    async fn evict_expired(&self, _now_ms: u64) -> Result<usize, StoreError> {
        // Redis expires conversation keys by itself.
        Ok(0)
    }

    fn durable(&self) -> bool {
        true
    }
}

/// The lowest score of a per-bucket sorted set, over the buckets that answer (one try each):
/// a failing bucket must not hold up the others' timing. An error only when none answers.
async fn earliest(
    store: &RedisStore,
    set: fn(&Bucket) -> &'static str,
) -> Result<Option<u64>, StoreError> {
    let mut earliest: Option<u64> = None;
    let mut answered = false;
    let mut failure = None;
    for bucket in Bucket::all() {
        if let Some(cause) = store.breaker.resting(bucket.0) {
            failure.get_or_insert(cause);
            continue;
        }
        let key = set(&bucket);
        let first: Result<Vec<(String, f64)>, StoreError> = store
            .run_once(|mut c| {
                let mut range = redis::cmd("ZRANGE");
                range.arg(key).arg(0).arg(0).arg("WITHSCORES");
                async move { range.query_async(&mut c).await }
            })
            .await;
        match first {
            Ok(first) => {
                answered = true;
                if let Some((_, score)) = first.first() {
                    let at = *score as u64;
                    earliest = Some(earliest.map_or(at, |e| e.min(at)));
                }
            }
            Err(error) => {
                store.breaker.failed(bucket.0, &error);
                failure = Some(error);
            }
        }
    }
    match failure {
        Some(error) if !answered => Err(error),
        _ => Ok(earliest),
    }
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
            bucket.state(&key).as_str(),
            bucket.timers(),
            bucket.outbox(),
            bucket.deliveries(),
            bucket.dead(),
        ] {
            assert!(name.contains(&tag), "{name} lacks {tag}");
            assert_eq!(name.matches('{').count(), 1, "{name} has more than one tag");
            assert_eq!(
                slot_of(name),
                bucket.slot(),
                "{name} is not in the bucket's slot"
            );
        }
    }

    #[test]
    fn keys_are_the_bucket_prefix_and_their_parts() {
        let key = ConversationKey::new("handover-prod", "8a1b2c3d");
        assert_eq!(Bucket(7).state(&key), "hr:{hr7}:c:handover-prod:8a1b2c3d");
        assert_eq!(Bucket(15).timers(), "hr:{hr15}:timers");
        assert_eq!(Bucket(0).epoch(), "hr:{hr0}:epoch");
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

    /// Every command's future holds the connecting future for the case that no connection is
    /// ready, and a commit's also the Cluster routing of its `WAIT`; each command copies its
    /// future whole when it starts. Both are boxed (connecting is over 3 KB with Sentinel and
    /// TLS, routing over 1 KB), so that a read or a commit stays small.
    #[tokio::test]
    async fn a_commands_future_carries_neither_connecting_nor_cluster_routing() {
        let store = RedisStore::connect(
            &RedisTarget::single("redis://127.0.0.1:1"),
            RedisOptions::default(),
        )
        .unwrap();
        let key = ConversationKey::new("org", "conversation");
        let bucket = Bucket::of(&key);
        let state_key = bucket.state(&key);
        let read = store.read_state(store.deadline(), &state_key);
        let size = std::mem::size_of_val(&read);
        assert!(size < 1_500, "a read's future takes {size} bytes");

        let basis = Record::absent().stamp;
        let commit = Commit {
            key: &key,
            bucket,
            state_key: &state_key,
            basis: &basis,
            token: "token",
        };
        let state = ConversationState::new("org");
        let commit = store.commit(store.deadline(), commit, &state, Vec::new(), 0);
        let size = std::mem::size_of_val(&commit);
        assert!(size < 1_500, "a commit's future takes {size} bytes");
    }
}
