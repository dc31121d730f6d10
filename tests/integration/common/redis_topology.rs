//! Redis as operators run it, on 127.0.0.1: TCP nodes that can be killed with SIGKILL, paused
//! (SIGSTOP, a replica that cannot keep up) and restarted; a cluster of primaries with replicas;
//! a primary with a replica behind three Sentinels; TLS from a private CA made by openssl.
//! Every process is stopped on drop.

use super::redis_server::send_signal;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A directory of its own under the system's temporary directory, removed by its owner.
pub fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "handover-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

/// A free port of 127.0.0.1 whose cluster bus port (+10000) is free too.
pub fn free_port() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// One redis-server (or Sentinel) process on a TCP port of 127.0.0.1.
pub struct Node {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    /// The arguments after the port, kept for restarts.
    args: Vec<String>,
    /// A config file as the first argument (Sentinel needs one it can rewrite).
    config: Option<PathBuf>,
}

impl Node {
    /// A redis-server on a fresh port with `args` (e.g. cluster or TLS options); no persistence
    /// unless `args` ask for it.
    pub fn start(args: &[&str]) -> Self {
        let port = free_port();
        let dir = scratch_dir("redis-node");
        let mut all = vec!["--save".to_owned(), String::new()];
        all.extend(["--appendonly".to_owned(), "no".to_owned()]);
        all.extend(args.iter().map(|a| (*a).to_owned()));
        // A TLS node listens with TLS on its port and on no plain port.
        if let Some(at) = all.iter().position(|a| a == "--tls-port") {
            all[at + 1] = port.to_string();
        }
        let mut node = Self {
            child: None,
            port,
            dir,
            args: all,
            config: None,
        };
        node.launch();
        node.wait_until_answering();
        node
    }

    /// A Sentinel watching `primary` under the name `master_name`.
    pub fn sentinel(master_name: &str, primary: u16, quorum: u32) -> Self {
        let port = free_port();
        let dir = scratch_dir("redis-sentinel");
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {master_name} 127.0.0.1 {primary} {quorum}\n\
                 sentinel down-after-milliseconds {master_name} 1000\n\
                 sentinel failover-timeout {master_name} 4000\n\
                 sentinel parallel-syncs {master_name} 1\n",
                dir = dir.display()
            ),
        )
        .expect("sentinel.conf");
        let mut node = Self {
            child: None,
            port,
            dir,
            args: vec!["--sentinel".to_owned()],
            config: Some(config),
        };
        node.launch();
        node.wait_until_answering();
        node
    }

    fn launch(&mut self) {
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.config {
            command.arg(config);
        }
        let plain_port = if self.tls() { 0 } else { self.port };
        command
            .args(["--bind", "127.0.0.1"])
            .args(["--port", &plain_port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(command.spawn().unwrap_or_else(|error| {
            panic!(
                "cannot start redis-server ({error}). The Redis tests need it: \
                 `apt-get install -y redis-server` (make test installs it when missing)"
            )
        }));
    }

    fn tls(&self) -> bool {
        self.args.iter().any(|a| a == "--tls-port")
    }

    fn wait_until_answering(&self) {
        if self.tls() {
            // A TLS node: wait for its port to accept.
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "redis-server (TLS) did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.try_query::<String>(&["PING"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn try_query<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let client = redis::Client::open(self.url())?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
        connection.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query(&mut connection)
    }

    /// Runs one command; panics with the node's port if it fails.
    pub fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        self.try_query(args)
            .unwrap_or_else(|error| panic!("{args:?} on {}: {error}", self.port))
    }

    /// `kill -9`.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, directory and arguments (and its saved data, if any).
    pub fn restart(&mut self) {
        self.kill_hard();
        self.launch();
        self.wait_until_answering();
    }

    fn signal(&self, signal: &str) {
        send_signal(self.child.as_ref().expect("running"), signal);
    }

    /// SIGSTOP: the process holds its connections but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Field `name` of `INFO <section>`.
    pub fn info(&self, section: &str, name: &str) -> String {
        let info: String = self.query(&["INFO", section]);
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Commands this node has processed since it started.
    pub fn commands_processed(&self) -> u64 {
        self.info("stats", "total_commands_processed")
            .parse()
            .expect("total_commands_processed")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused process must be woken to die promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill_hard();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `check` holds (polling every 50 ms), or panics after `limit` with `what`.
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Redis Cluster: three primaries, each with one replica; a node that dies is failed over after
/// one second. Nodes keep their cluster config, so a killed node rejoins when restarted.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A cluster whose nodes also get `args` (e.g. `--cluster-require-full-coverage no`).
    pub fn start_with(args: &[&str]) -> Self {
        let nodes: Vec<Node> = (0..6)
            .map(|_| {
                let mut all = vec![
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                ];
                all.extend_from_slice(args);
                Node::start(&all)
            })
            .collect();
        let addresses: Vec<String> = nodes.iter().map(Node::address).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs (it comes with redis-server)");
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self { nodes };
        cluster.wait_until_healthy();
        cluster
    }

    /// Every node answers, the cluster's state is ok and three replicas are in sync.
    pub fn wait_until_healthy(&self) {
        wait_until(Duration::from_secs(30), "the cluster is healthy", || {
            let ok = self.nodes.iter().all(|node| {
                node.try_query::<String>(&["CLUSTER", "INFO"])
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            ok && self.primaries().len() == 3 && self.replicas_in_sync() == 3
        });
    }

    fn role(node: &Node) -> Option<String> {
        let role: Vec<redis::Value> = node.try_query(&["ROLE"]).ok()?;
        match role.first() {
            Some(redis::Value::BulkString(bytes)) => Some(String::from_utf8_lossy(bytes).into()),
            _ => None,
        }
    }

    fn replicas_in_sync(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| Self::role(n).as_deref() == Some("slave"))
            .filter(|n| n.info("replication", "master_link_status") == "up")
            .count()
    }

    /// Indexes of the nodes that are primaries now.
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| Self::role(&self.nodes[*i]).as_deref() == Some("master"))
            .collect()
    }

    /// Indexes of the nodes that are replicas now.
    pub fn replicas(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| Self::role(&self.nodes[*i]).as_deref() == Some("slave"))
            .collect()
    }

    /// `HANDOVER_STORE` for this cluster: every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().map(Node::url).collect();
        seeds.join(",")
    }

    /// The indexes of the primary serving slot 0 and of its replica.
    pub fn shard_of_slot_zero(&self) -> (usize, usize) {
        let primary = self
            .primaries()
            .into_iter()
            .find(|p| {
                let nodes: String = self.nodes[*p].query(&["CLUSTER", "NODES"]);
                nodes
                    .lines()
                    .find(|line| line.contains("myself"))
                    .is_some_and(|line| line.split(' ').skip(8).any(|r| r.starts_with("0-")))
            })
            .expect("slot 0 is served");
        (primary, self.replica_of(primary))
    }

    /// The index of the replica of the primary at index `primary`.
    pub fn replica_of(&self, primary: usize) -> usize {
        let port = self.nodes[primary].port.to_string();
        self.replicas()
            .into_iter()
            .find(|r| self.nodes[*r].info("replication", "master_port") == port)
            .expect("the primary's replica")
    }

    /// Live resharding, as in maintenance: `count` slots, starting at slot 0, move (with their
    /// keys) from the primary that serves slot 0 to another primary.
    pub fn reshard(&self, count: u32) {
        let nodes: String = self.nodes[self.primaries()[0]].query(&["CLUSTER", "NODES"]);
        let primaries: Vec<(&str, bool)> = nodes
            .lines()
            .filter(|line| line.contains("master") && !line.contains("fail"))
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                (
                    fields[0],
                    fields[8..].iter().any(|range| range.starts_with("0-")),
                )
            })
            .collect();
        let from = primaries
            .iter()
            .find(|(_, first)| *first)
            .expect("slot 0 is served")
            .0;
        let to = primaries
            .iter()
            .find(|(_, first)| !*first)
            .expect("another primary")
            .0;
        let output = Command::new("redis-cli")
            .args([
                "--cluster",
                "reshard",
                &self.nodes[self.primaries()[0]].address(),
            ])
            .args(["--cluster-from", from, "--cluster-to", to])
            .args(["--cluster-slots", &count.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "reshard: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }

    /// `CLUSTER FAILOVER` on a replica: it and its primary swap roles, as in maintenance.
    pub fn planned_failover(&self) -> usize {
        let replica = self.replicas()[0];
        let before = self.primaries();
        let _: String = self.nodes[replica].query(&["CLUSTER", "FAILOVER"]);
        wait_until(Duration::from_secs(20), "the replica took over", || {
            Self::role(&self.nodes[replica]).as_deref() == Some("master")
                && self.primaries().len() == 3
        });
        // The old primary of that replica is now its replica.
        before
            .into_iter()
            .find(|p| !self.primaries().contains(p))
            .expect("one primary was demoted")
    }
}

/// A primary and one replica behind three Sentinels (quorum 2), all on 127.0.0.1.
pub struct SentinelGroup {
    pub data: Vec<Node>,
    pub sentinels: Vec<Node>,
}

pub const MASTER_NAME: &str = "handover";

impl SentinelGroup {
    pub fn start() -> Self {
        let primary = Node::start(&["--appendonly", "yes", "--appendfsync", "always"]);
        let replica = Node::start(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--replicaof",
            "127.0.0.1",
            &primary.port.to_string(),
        ]);
        let sentinels = (0..3)
            .map(|_| Node::sentinel(MASTER_NAME, primary.port, 2))
            .collect();
        let group = Self {
            data: vec![primary, replica],
            sentinels,
        };
        group.wait_until_stable();
        group
    }

    /// The index in `data` of the node the Sentinels call primary.
    pub fn primary(&self) -> usize {
        let address: Vec<String> =
            self.sentinels[0].query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]);
        let port: u16 = address[1].parse().unwrap();
        self.data
            .iter()
            .position(|n| n.port == port)
            .expect("a known node")
    }

    /// The Sentinels agree on a primary that says it is one, with its replica in sync and known.
    pub fn wait_until_stable(&self) {
        wait_until(
            Duration::from_secs(30),
            "the Sentinel group is stable",
            || {
                let Ok(address) = self.sentinels[0].try_query::<Vec<String>>(&[
                    "SENTINEL",
                    "GET-MASTER-ADDR-BY-NAME",
                    MASTER_NAME,
                ]) else {
                    return false;
                };
                let agreed = self.sentinels.iter().all(|s| {
                    s.try_query::<Vec<String>>(&[
                        "SENTINEL",
                        "GET-MASTER-ADDR-BY-NAME",
                        MASTER_NAME,
                    ])
                    .is_ok_and(|a| a == address)
                });
                let Some(primary) = self.data.iter().find(|n| n.port.to_string() == address[1])
                else {
                    return false;
                };
                let replicas_known = self.sentinels.iter().all(|s| {
                    s.try_query::<Vec<redis::Value>>(&["SENTINEL", "REPLICAS", MASTER_NAME])
                        .is_ok_and(|r| !r.is_empty())
                });
                agreed
                    && replicas_known
                    && Cluster::role(primary).as_deref() == Some("master")
                    && primary.info("replication", "connected_slaves") == "1"
                    && self
                        .data
                        .iter()
                        .filter(|n| n.port != primary.port)
                        .all(|n| n.info("replication", "master_link_status") == "up")
            },
        );
    }

    /// `HANDOVER_STORE` for this group.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self.sentinels.iter().map(Node::address).collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", sentinels.join(","))
    }
}

/// A private CA and a server certificate for 127.0.0.1 signed by it, plus a client certificate,
/// made by openssl in a directory of their own.
pub struct Certificates {
    pub dir: PathBuf,
}

impl Certificates {
    pub fn generate() -> Self {
        let dir = scratch_dir("tls");
        let run = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl runs (apt-get install -y openssl)");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=handover test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        // X.509 v3 (an extension makes it so): rustls refuses v1 certificates.
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, extensions) in [("server", "server.ext"), ("client", "client.ext")] {
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ]);
            let mut sign = vec![
                "x509",
                "-req",
                "-days",
                "2",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
            ];
            let csr = format!("{name}.csr");
            let out = format!("{name}.pem");
            sign.extend(["-in", &csr, "-out", &out, "-extfile", extensions]);
            run(&sign);
        }
        Self { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A redis-server that speaks only TLS with the server certificate; with `clients_need_a_cert`
    /// it refuses clients without a certificate signed by the CA.
    pub fn server(&self, clients_need_a_cert: bool) -> Node {
        Node::start(&[
            "--tls-port",
            "0",
            "--tls-cert-file",
            &self.path("server.pem"),
            "--tls-key-file",
            &self.path("server.key"),
            "--tls-ca-cert-file",
            &self.path("ca.pem"),
            "--tls-auth-clients",
            if clients_need_a_cert { "yes" } else { "no" },
        ])
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
