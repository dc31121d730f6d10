//! A real redis-server per test, on a unix socket in a directory of its own, stopped on drop.
//! Tests never skip: without redis-server they fail and say how to install it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct RedisServer {
    child: Option<Child>,
    dir: PathBuf,
    pub socket: PathBuf,
}

impl RedisServer {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "handover-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let socket = dir.join("redis.sock");
        let mut server = Self {
            child: None,
            dir,
            socket,
        };
        server.launch();
        server
    }

    /// `HANDOVER_STORE` for this server.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&self.socket)
            .args(["--unixsocketperm", "700"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start redis-server ({error}). The Redis tests need it: \
                     `apt-get install -y redis-server` (make test installs it when missing)"
                )
            });
        self.child = Some(child);
        self.wait_until_answering();
    }

    fn wait_until_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).expect("socket URL");
        loop {
            let pong = client
                .get_connection()
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if pong.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (its data is gone: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts it again on the same socket.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Mean `MEMORY USAGE` of up to 2,000 conversation state keys.
    pub fn bytes_per_conversation(&self) -> f64 {
        let mut connection = self.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("hr:*:c:*")
            .query(&mut connection)
            .unwrap_or_default();
        let keys = &keys[..keys.len().min(2_000)];
        if keys.is_empty() {
            return 0.0;
        }
        let total: u64 = keys
            .iter()
            .map(|key| {
                redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(key)
                    .query::<Option<u64>>(&mut connection)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            })
            .sum();
        total as f64 / keys.len() as f64
    }

    /// A synchronous connection, for looking at what the service stored.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("socket URL")
            .get_connection()
            .expect("redis-server answers")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A real three-node Redis Cluster on 127.0.0.1 (cluster mode needs TCP), stopped on drop.
pub struct RedisCluster {
    nodes: Vec<Child>,
    dir: PathBuf,
    pub ports: Vec<u16>,
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port(taken: &[u16]) -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        if port < 55_000
            && !taken.contains(&port)
            && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "handover-redis-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut ports = Vec::new();
        let mut nodes = Vec::new();
        for n in 0..3 {
            let port = free_cluster_port(&ports);
            let node_dir = dir.join(format!("node-{n}"));
            std::fs::create_dir_all(&node_dir).expect("temporary directory");
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts (apt-get install -y redis-server)");
            ports.push(port);
            nodes.push(child);
        }
        let cluster = Self { nodes, dir, ports };
        for port in &cluster.ports {
            wait_for_ping(&format!("redis://127.0.0.1:{port}"));
        }
        let addresses: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs (it comes with redis-server)");
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stdout)
        );
        cluster.wait_until_ok();
        cluster
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = self.ports.iter().all(|port| {
                redis::Client::open(format!("redis://127.0.0.1:{port}"))
                    .and_then(|c| c.get_connection())
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `HANDOVER_STORE` for this cluster: every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect();
        seeds.join(",")
    }

    /// Keys held by each node.
    pub fn keys_per_node(&self) -> Vec<usize> {
        self.ports
            .iter()
            .map(|port| {
                let mut connection = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                    .and_then(|c| c.get_connection())
                    .expect("node answers");
                redis::cmd("DBSIZE").query(&mut connection).expect("DBSIZE")
            })
            .collect()
    }
}

fn wait_for_ping(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = redis::Client::open(url).expect("URL");
    while client
        .get_connection()
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "redis-server at {url} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
