//! One connection type for a single Redis server and for Redis Cluster, both connected lazily so
//! that the service starts (not ready) while Redis is away and recovers when it returns.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Where the state lives. No `Debug`: the URLs may carry a password.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server (or a primary behind a proxy or Sentinel-managed address).
    Single(String),
    /// Redis Cluster: the URLs of one or more seed nodes.
    Cluster(Vec<String>),
}

/// Hands out connections; cheap to call for every operation.
pub enum Connector {
    Single(ConnectionManager),
    Cluster(Box<LazyCluster>),
}

pub struct LazyCluster {
    client: ClusterClient,
    connection: OnceCell<ClusterConnection>,
}

impl Connector {
    pub fn new(target: &RedisTarget, timeout: Duration) -> RedisResult<Self> {
        Ok(match target {
            RedisTarget::Single(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let client = redis::Client::open(url.as_str())?;
                Connector::Single(ConnectionManager::new_lazy_with_config(client, config)?)
            }
            RedisTarget::Cluster(seeds) => {
                let client = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .build()?;
                Connector::Cluster(Box::new(LazyCluster {
                    client,
                    connection: OnceCell::new(),
                }))
            }
        })
    }

    pub async fn get(&self) -> RedisResult<Connection> {
        match self {
            Connector::Single(manager) => Ok(Connection::Single(manager.clone())),
            Connector::Cluster(lazy) => {
                let connection = lazy
                    .connection
                    .get_or_try_init(|| lazy.client.get_async_connection())
                    .await?;
                Ok(Connection::Cluster(connection.clone()))
            }
        }
    }
}

#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
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
            Connection::Single(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}
