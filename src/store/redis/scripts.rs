//! The Lua scripts of the Redis store. They only move data atomically (compare-and-set, claims
//! with a lease, settlement); every decision rule stays in the Rust engine.
//!
//! Each starts with `#!lua` (Redis 7 and later): a script so marked counts as a write. A node
//! that is a replica (a primary demoted by `CLUSTER FAILOVER`, say) then answers MOVED and the
//! client follows it to the new primary, instead of running the script and failing with
//! READONLY for good on a connection the Cluster client has put in READONLY mode. Without
//! `allow-oom`, Redis also refuses them when it is out of memory, before they write anything.

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind};

/// `EVALSHA` of `script` on `keys`; the caller adds the script's arguments (`ARGV`), so that
/// the command is built once, in place. The redis crate's `ScriptInvocation` keeps each argument
/// in a buffer of its own and copies them all into a new command at every call: for a commit,
/// about a dozen allocations and a second copy of the state (benches/load/NOTES.md).
/// `data` is the expected size of keys and arguments together, so that it is allocated once.
pub fn call(script: &Script, keys: &[&str], data: usize) -> Cmd {
    let mut command = Cmd::with_capacity(3 + keys.len() + 8, 64 + data);
    command
        .arg("EVALSHA")
        .arg(script.get_hash())
        .arg(keys.len())
        .arg(keys);
    command
}

/// Sends a [`call`] of `script`. A node that does not know the script (restarted, or a replica
/// promoted that never saw it) answers NOSCRIPT: the script is loaded and the call sent once
/// more, as the redis crate's own invocation does.
pub async fn invoke<T: FromRedisValue>(
    script: &Script,
    call: &Cmd,
    connection: &mut impl ConnectionLike,
) -> RedisResult<T> {
    match call.query_async(connection).await {
        Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load_async(connection).await?;
            call.query_async(connection).await
        }
        answer => answer,
    }
}

/// KEYS: state, timers, outbox, deliveries.
/// ARGV: expected version ("0": absent), expected write token ("": none), state JSON, TTL ms,
/// this commit's write token, timer member, wake-up ms ("" for none), then (delivery id,
/// delivery JSON, due ms) triples.
/// Returns the new version when committed. When the stored version or token is not the expected
/// one (another writer got there first, or the caller started from a stale guess), writes nothing
/// and returns what is stored instead: {version, token, state JSON ("": absent)}.
pub const COMMIT: &str = r#"#!lua
local stored = redis.call('HMGET', KEYS[1], 'v', 't')
local version = stored[1] or '0'
local token = stored[2] or ''
if version ~= ARGV[1] or token ~= ARGV[2] then
  return {version, token, redis.call('HGET', KEYS[1], 's') or ''}
end
local next_version = tostring(tonumber(version) + 1)
redis.call('HSET', KEYS[1], 'v', next_version, 's', ARGV[3], 't', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[7] == '' then
  redis.call('ZREM', KEYS[2], ARGV[6])
else
  redis.call('ZADD', KEYS[2], ARGV[7], ARGV[6])
end
for i = 8, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[4], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('ZADD', KEYS[3], ARGV[i + 2], ARGV[i])
  end
end
return next_version
"#;

/// KEYS: timers. ARGV: now ms, lease-until ms, limit.
/// Returns the due members, each pushed to lease-until so that no other replica takes it meanwhile.
pub const CLAIM_TIMERS: &str = r#"#!lua
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return due
"#;

/// KEYS: outbox, deliveries. ARGV: now ms, lease-until ms, limit.
/// Returns the JSON of the due deliveries, leased like timers.
pub const CLAIM_DELIVERIES: &str = r#"#!lua
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local claimed = {}
for _, id in ipairs(due) do
  local json = redis.call('HGET', KEYS[2], id)
  if json then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    table.insert(claimed, json)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return claimed
"#;

/// KEYS: outbox, deliveries, dead. ARGV: id, delivery JSON, due ms.
/// Moves one dead letter back to the outbox, once even if two operators replay at the same time.
pub const REPLAY: &str = r#"#!lua
if redis.call('HDEL', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"#;

/// KEYS: outbox, deliveries, dead. ARGV: id, outcome (done | retry | dead), delivery JSON, next
/// attempt ms, dead-letter TTL ms. A delivery another replica already settled stays settled.
pub const SETTLE: &str = r#"#!lua
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
if ARGV[2] == 'retry' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[2] == 'dead' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
return 1
"#;

/// KEYS: the bucket's epoch marker. ARGV: a new epoch id, now ms.
/// The readiness probe: a write to the bucket's slot on its primary. Returns the marker's epoch
/// id, setting it to ARGV[1] when the store has none (a new store, or one that lost its data).
pub const PROBE: &str = r#"#!lua
local id = redis.call('HGET', KEYS[1], 'id')
if not id then
  id = ARGV[1]
  redis.call('HSET', KEYS[1], 'id', id)
end
redis.call('HSET', KEYS[1], 'probed', ARGV[2])
return id
"#;

#[cfg(test)]
mod tests {
    use redis::Script;

    /// The keys come right after their count and before the arguments: Redis reads the count to
    /// tell `KEYS` from `ARGV`, and the Cluster client routes `EVALSHA` by its first key.
    #[test]
    fn a_call_is_evalsha_with_the_key_count_then_the_keys_then_the_arguments() {
        let script = Script::new("return 1");
        let mut call = super::call(&script, &["{a}:1", "{a}:2"], 0);
        call.arg("x").arg(7);
        let mut expected = redis::cmd("EVALSHA");
        expected
            .arg(script.get_hash())
            .arg("2")
            .arg("{a}:1")
            .arg("{a}:2")
            .arg("x")
            .arg("7");
        assert_eq!(call.get_packed_command(), expected.get_packed_command());
    }

    #[test]
    fn every_script_is_marked_as_a_write_so_that_a_replica_redirects_it() {
        for script in [
            super::COMMIT,
            super::CLAIM_TIMERS,
            super::CLAIM_DELIVERIES,
            super::REPLAY,
            super::SETTLE,
            super::PROBE,
        ] {
            assert!(script.starts_with("#!lua\n"), "{script}");
        }
    }
}
