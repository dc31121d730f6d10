//! Readiness that means writable, and the signals of a store that lost its data or may evict it
//! (`docs/contract.md` §9.3).
//!
//! One check: the node is a primary (or every Cluster primary says the cluster is ok and every
//! slot is assigned), a probe write to every bucket's slot succeeds, the epoch markers those
//! writes find are the ones seen before, and no primary's `maxmemory-policy` can evict keys.

use super::connection::{Connection, is_primary, not_a_primary, refused_by_acl};
use super::{Bucket, RedisStore, scripts};
use crate::store::{StoreError, StoreHealth};
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};

pub async fn check(store: &RedisStore) -> Result<StoreHealth, StoreError> {
    let deadline = store.deadline();
    store
        .run(deadline, |mut connection| async move {
            accepts_writes(&mut connection).await
        })
        .await?;

    let fresh = format!("{:016x}", fastrand::u64(..));
    let now = crate::clock::now_ms();
    let mut found = Vec::new();
    for bucket in Bucket::all() {
        let script = &store.scripts.probe;
        let mut probe = scripts::call(script, &[bucket.epoch()], 64);
        probe.arg(&fresh).arg(now);
        let probe = &probe;
        let id: String = store
            .run(deadline, |mut c| async move {
                scripts::invoke(script, probe, &mut c).await
            })
            .await?;
        found.push(id);
    }
    let reset = {
        let mut known = store.epochs.lock().unwrap_or_else(|e| e.into_inner());
        let reset = known
            .iter()
            .zip(&found)
            .any(|(known, found)| known.as_ref().is_some_and(|k| k != found));
        for (known, found) in known.iter_mut().zip(found) {
            *known = Some(found);
        }
        reset
    };

    let infos = store
        .run(deadline, |mut connection| async move {
            let mut info = redis::cmd("INFO");
            info.arg("memory").arg("server");
            match connection.on_every_primary(info).await {
                // An ACL that refuses INFO hides the policy: nothing to report, nothing to fail.
                Err(error) if refused_by_acl(&error) => Ok(Vec::new()),
                answer => answer,
            }
        })
        .await?;
    if let Some(version) = infos
        .iter()
        .filter_map(|info| field(info, "redis_version"))
        .find(|version| !at_least_7(version))
    {
        return Err(StoreError::Unavailable(format!(
            "Redis {version} is too old: the store's scripts need Redis 7.0 or later"
        )));
    }
    let eviction_policy = infos
        .iter()
        .filter_map(|info| field(info, "maxmemory_policy"))
        .find(|policy| can_evict(policy));
    Ok(StoreHealth {
        reset,
        eviction_policy,
    })
}

/// The node is a primary; or, on a Cluster, every primary says the cluster is ok.
async fn accepts_writes(connection: &mut Connection) -> RedisResult<()> {
    match connection {
        Connection::Primary { .. } => {
            if !is_primary(connection).await? {
                return Err(not_a_primary());
            }
        }
        Connection::Cluster(_) => {
            let mut info = redis::cmd("CLUSTER");
            info.arg("INFO");
            for answer in connection.on_every_primary(info).await? {
                let ok = field(&answer, "cluster_state").as_deref() == Some("ok")
                    && field(&answer, "cluster_slots_assigned").as_deref() == Some("16384");
                if !ok {
                    return Err(RedisError::from((
                        ErrorKind::Server(ServerErrorKind::ClusterDown),
                        "the cluster's state is not ok",
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `name:value` of an INFO text.
fn field(info: &Value, name: &str) -> Option<String> {
    let text = match info {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::SimpleString(text) => text.clone(),
        _ => return None,
    };
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(|value| value.trim().to_owned())
}

/// Whether `redis_version` is 7.0 or later (`#!lua` scripts came with 7.0).
fn at_least_7(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 7)
}

/// Whether a `maxmemory-policy` may evict the service's keys: every `allkeys-*` policy does, and
/// every `volatile-*` one too, since conversation states carry a TTL.
fn can_evict(policy: &str) -> bool {
    policy.starts_with("allkeys-") || policy.starts_with("volatile-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_evicting_policy_is_unsafe_and_noeviction_is_safe() {
        for policy in [
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ] {
            assert!(can_evict(policy), "{policy}");
        }
        assert!(!can_evict("noeviction"));
    }

    #[test]
    fn redis_7_or_later_is_needed() {
        assert!(at_least_7("7.0.15") && at_least_7("7.2.4") && at_least_7("8.0.0"));
        assert!(!at_least_7("6.2.14") && !at_least_7("garbage"));
    }

    #[test]
    fn info_fields_are_read_by_exact_name() {
        let info = Value::BulkString(
            b"# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:volatile-lru\r\n".to_vec(),
        );
        assert_eq!(
            field(&info, "maxmemory_policy").as_deref(),
            Some("volatile-lru")
        );
        assert_eq!(field(&info, "maxmemory").as_deref(), Some("0"));
        assert_eq!(field(&info, "maxmemory_p"), None);
    }
}
