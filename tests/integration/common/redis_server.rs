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
    /// The cores it runs on (a `taskset -c` list), when pinned.
    cpus: Option<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_on(None)
    }

    /// A server pinned to `cpus` (a `taskset -c` list), when given: the benchmark keeps it off
    /// the cores of the service it measures, as Redis runs on other machines in production.
    pub fn start_on(cpus: Option<&str>) -> Self {
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
            cpus: cpus.map(str::to_owned),
        };
        server.launch();
        server
    }

    /// `HANDOVER_STORE` for this server.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    fn launch(&mut self) {
        let mut command = match &self.cpus {
            Some(cpus) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", cpus, "redis-server"]);
                taskset
            }
            None => Command::new("redis-server"),
        };
        let child = command
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

    /// SIGSTOP: the server keeps its socket and connections but answers nothing, as a primary
    /// does that hangs (a long fork, a stalled disk, a frozen VM).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        send_signal(self.child.as_ref().expect("running"), signal);
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

/// Sends `signal` (`-STOP`, `-CONT`, …) to a redis-server process the tests started.
pub fn send_signal(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}
