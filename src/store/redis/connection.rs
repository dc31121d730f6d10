//! Connections to the primary that holds the state: one server, the primary the Sentinels name,
//! or Redis Cluster. Each connects lazily, so that the service starts (not ready) while Redis is
//! away and recovers by itself when it returns.
//!
//! The redis crate follows Cluster redirections and asks Sentinels for the primary; what it
//! lacks is written here: a connection to one server that is dropped and made again when the
//! node stops being the primary (READONLY after a failover, behind a Sentinel or an address that
//! moves), and a role check before a new connection is used, so that writes only ever go to a
//! primary (`docs/contract.md` §9.1).

use super::target::{RedisTarget, Topology};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, TlsMode, Value,
};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;

/// What to do after a failed command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The node is gone or no longer the primary: connect again (asking the Sentinels anew).
    Reconnect,
    /// Redis is busy moving things (resharding, a cluster failover, out of memory): wait and
    /// try again on the same connection.
    Wait,
    /// Trying again will not help (a bug, a wrong password): fail now.
    GiveUp,
}

pub fn recovery(error: &RedisError) -> Recovery {
    match error.kind() {
        ErrorKind::Server(
            ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading,
        ) => Recovery::Reconnect,
        ErrorKind::Server(
            ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        ) => Recovery::Wait,
        ErrorKind::Io
        | ErrorKind::Parse
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel => Recovery::Reconnect,
        _ if error.code() == Some("OOM") => Recovery::Wait,
        _ if error.is_timeout() || error.is_connection_dropped() => Recovery::Reconnect,
        _ => Recovery::GiveUp,
    }
}

/// Hands out connections; cheap to call for every operation.
pub enum Connector {
    Primary(Box<PrimaryConnector>),
    Cluster(Box<ClusterConnector>),
}

/// Where the primary is found.
enum PrimarySource {
    Fixed(redis::Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

pub struct PrimaryConnector {
    source: PrimarySource,
    config: AsyncConnectionConfig,
    /// The connection in use and its generation.
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// One reconnection at a time: the others wait for it.
    connecting: tokio::sync::Mutex<()>,
    generations: AtomicU64,
}

pub struct ClusterConnector {
    client: ClusterClient,
    connection: OnceCell<ClusterConnection>,
}

/// Why a connection could not be had: the redis crate's error, or a node that is not a primary.
pub fn not_a_primary() -> RedisError {
    RedisError::from((
        ErrorKind::Server(ServerErrorKind::ReadOnly),
        "the node is not a primary",
    ))
}

impl Connector {
    pub fn new(target: &RedisTarget, timeout: Duration) -> RedisResult<Self> {
        // No response timeout of the client's own: every command is sent from the store's
        // `attempt`, which bounds it by the same timeout and by the operation's budget, and drops
        // the connection when it runs out. A second timer per command cost about 1,000
        // instructions per event (benches/load/NOTES.md).
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(None);
        let certificates = target.certificates();
        Ok(match &target.topology {
            Topology::Single(url) => {
                let client = match certificates {
                    Some(certificates) => {
                        redis::Client::build_with_tls(url.as_str(), certificates)?
                    }
                    None => redis::Client::open(url.as_str())?,
                };
                Connector::Primary(Box::new(PrimaryConnector::new(
                    PrimarySource::Fixed(client),
                    config,
                )))
            }
            Topology::Sentinel(sentinel) => {
                let mut builder = SentinelClientBuilder::new(
                    sentinel.addresses(),
                    sentinel.master_name.clone(),
                    SentinelServerType::Master,
                )?
                .set_client_to_redis_db(sentinel.db);
                if let Some(password) = &sentinel.password {
                    builder = builder.set_client_to_redis_password(password.clone());
                }
                if sentinel.tls {
                    builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
                    if let Some(certificates) = certificates {
                        builder = builder.set_client_to_redis_certificates(certificates);
                    }
                }
                Connector::Primary(Box::new(PrimaryConnector::new(
                    PrimarySource::Sentinel(tokio::sync::Mutex::new(builder.build()?)),
                    config,
                )))
            }
            Topology::Cluster(seeds) => {
                let mut builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2);
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates);
                }
                Connector::Cluster(Box::new(ClusterConnector {
                    client: builder.build()?,
                    connection: OnceCell::new(),
                }))
            }
        })
    }

    /// The connection in use, when there is one: no connecting, nothing to wait for.
    pub fn ready(&self) -> Option<Connection> {
        match self {
            Connector::Primary(primary) => primary.current(),
            Connector::Cluster(cluster) => {
                cluster.connection.get().cloned().map(Connection::Cluster)
            }
        }
    }

    /// The connection in use, connecting first when there is none.
    ///
    /// Boxed: connecting (Sentinel's discovery, TLS, the role check) is a future of over 3 KB.
    /// Inline, it would make every command's future that large, and each command would copy it
    /// whole when it starts, though it is taken only when no connection is ready.
    pub fn get(&self) -> RedisFuture<'_, Connection> {
        Box::pin(async move {
            match self {
                Connector::Primary(primary) => primary.get().await,
                Connector::Cluster(cluster) => {
                    let connection = cluster
                        .connection
                        .get_or_try_init(|| cluster.client.get_async_connection())
                        .await?;
                    Ok(Connection::Cluster(connection.clone()))
                }
            }
        })
    }

    /// Drops `connection` if it is still the one in use, so that the next `get` connects anew.
    /// (A Cluster connection repairs itself.)
    pub fn discard(&self, connection: &Connection) {
        if let (Connector::Primary(primary), Connection::Primary { generation, .. }) =
            (self, connection)
        {
            let mut current = primary.current.lock().unwrap_or_else(|e| e.into_inner());
            if current.as_ref().is_some_and(|(g, _)| g == generation) {
                *current = None;
            }
        }
    }
}

impl PrimaryConnector {
    fn new(source: PrimarySource, config: AsyncConnectionConfig) -> Self {
        Self {
            source,
            config,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            generations: AtomicU64::new(0),
        }
    }

    fn current(&self) -> Option<Connection> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .map(|(generation, connection)| Connection::Primary {
                generation: *generation,
                connection: connection.clone(),
            })
    }

    async fn get(&self) -> RedisResult<Connection> {
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let client = match &self.source {
            PrimarySource::Fixed(client) => client.clone(),
            PrimarySource::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await?,
        };
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        if !is_primary(&mut connection).await? {
            return Err(not_a_primary());
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((generation, connection.clone()));
        Ok(Connection::Primary {
            generation,
            connection,
        })
    }
}

/// `ROLE` says `master`. A user whose ACL refuses `ROLE` (it is in `@dangerous`) is taken at
/// its word: the probe write still finds a replica out (READONLY).
pub async fn is_primary(connection: &mut impl ConnectionLike) -> RedisResult<bool> {
    match redis::cmd("ROLE")
        .query_async::<Vec<Value>>(connection)
        .await
    {
        Ok(role) => Ok(matches!(role.first(), Some(Value::BulkString(role)) if role == b"master")),
        Err(error) if refused_by_acl(&error) => Ok(true),
        Err(error) => Err(error),
    }
}

/// The user's ACL does not allow the command.
pub fn refused_by_acl(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::NoPerm)
}

#[derive(Clone)]
pub enum Connection {
    Primary {
        generation: u64,
        connection: MultiplexedConnection,
    },
    Cluster(ClusterConnection),
}

impl Connection {
    /// Sends `command` to the primary that serves `slot` (Cluster) or to the one server.
    pub async fn on_slot(&mut self, slot: u16, command: Cmd) -> RedisResult<Value> {
        match self {
            Connection::Primary { connection, .. } => command.query_async(connection).await,
            Connection::Cluster(connection) => {
                let route = Route::new(slot, SlotAddr::Master);
                routed(
                    connection,
                    command,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
            }
        }
    }

    /// Sends `command` to every primary; one answer each.
    pub async fn on_every_primary(&mut self, command: Cmd) -> RedisResult<Vec<Value>> {
        match self {
            Connection::Primary { connection, .. } => {
                Ok(vec![command.query_async(connection).await?])
            }
            Connection::Cluster(connection) => {
                let answers = routed(
                    connection,
                    command,
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                )
                .await?;
                Ok(match answers {
                    Value::Map(pairs) => pairs.into_iter().map(|(_, v)| v).collect(),
                    Value::Array(items) => items,
                    other => vec![other],
                })
            }
        }
    }
}

/// `command` sent on a Cluster connection as `routing` says.
///
/// Boxed: the Cluster client's routing future is over 1 KB. Inline, every future that may send
/// a routed command (each commit, for its `WAIT`) would carry it and copy it whole when it
/// starts, on a single server too (`Connector::get`).
fn routed(
    connection: &mut ClusterConnection,
    command: Cmd,
    routing: RoutingInfo,
) -> RedisFuture<'_, Value> {
    Box::pin(connection.route_command(command, routing))
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Primary { connection, .. } => connection.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Primary { connection, .. } => {
                connection.req_packed_commands(cmd, offset, count)
            }
            Connection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Primary { connection, .. } => connection.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// The Cluster hash slot of a key (CRC16/XMODEM of its hash tag, or of the whole key).
pub fn slot_of(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|b| *b == b'{').and_then(|open| {
        let close = bytes[open + 1..].iter().position(|b| *b == b'}')?;
        (close > 0).then(|| &bytes[open + 1..open + 1 + close])
    });
    crc16(tagged.unwrap_or(bytes)) % 16_384
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_computes() {
        // Values from Redis' own documentation and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot_of("foo"), 12_182);
        assert_eq!(
            slot_of("{user1000}.following"),
            slot_of("{user1000}.followers")
        );
        assert_eq!(slot_of("foo{}{bar}"), slot_of("foo{}{bar}"));
        assert_eq!(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    }

    #[test]
    fn a_demoted_primary_means_connect_again_and_resharding_means_wait() {
        let readonly = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        ));
        assert_eq!(recovery(&readonly), Recovery::Reconnect);
        assert_eq!(recovery(&not_a_primary()), Recovery::Reconnect);
        let try_again = RedisError::from((ErrorKind::Server(ServerErrorKind::TryAgain), "x"));
        assert_eq!(recovery(&try_again), Recovery::Wait);
        let oom = redis::make_extension_error(
            "OOM".into(),
            Some("command not allowed when used memory > 'maxmemory'".into()),
        );
        assert_eq!(recovery(&oom), Recovery::Wait);
        let moved = RedisError::from((ErrorKind::Server(ServerErrorKind::Moved), "x"));
        assert_eq!(recovery(&moved), Recovery::Wait);
        let dropped = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(recovery(&dropped), Recovery::Reconnect);
        let script_bug = RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "x"));
        assert_eq!(recovery(&script_bug), Recovery::GiveUp);
    }
}
