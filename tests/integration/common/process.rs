//! Running the real executable and reading its JSON log lines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BINARY: &str = env!("CARGO_BIN_EXE_handover-receiver");

/// The executable under test: this build's, or `HANDOVER_TEST_BINARY` (e.g. the previous
/// release, to show that a test of a defect fails there).
pub fn binary() -> String {
    std::env::var("HANDOVER_TEST_BINARY").unwrap_or_else(|_| BINARY.to_owned())
}

/// The binary with a clean environment: only what the test sets.
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary());
    command.env_clear();
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A running service process and its log lines.
pub struct Process {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    /// `host:port` it listens on, read from its `listening` log line.
    pub addr: String,
}

impl Process {
    /// Starts the binary listening on a free port of 127.0.0.1, and waits until it listens.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let mut env = env.to_vec();
        env.push(("HANDOVER_LISTEN_ADDR", "127.0.0.1:0"));
        Self::spawn(command(&env))
    }

    /// Starts the binary through `sh -c "ulimit -n <files>"`: at most `files` open descriptors.
    pub fn start_with_file_limit(env: &[(&str, &str)], files: u32) -> Self {
        let mut shell = Command::new("sh");
        shell.env_clear();
        for (name, value) in env {
            shell.env(name, value);
        }
        shell.env("HANDOVER_LISTEN_ADDR", "127.0.0.1:0").args([
            "-c",
            &format!("ulimit -n {files} && exec \"$0\""),
            &binary(),
        ]);
        Self::spawn(shell)
    }

    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = Self {
            child,
            lines,
            seen: Vec::new(),
            addr: String::new(),
        };
        let listening: serde_json::Value =
            serde_json::from_str(&process.wait_for_line("\"listening\"")).expect("JSON log line");
        process.addr = listening["addr"]
            .as_str()
            .expect("listening names its address")
            .to_owned();
        process
    }

    /// Waits up to 10 s for a log line containing `needle`.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no log line with {needle:?}; saw {:#?}", self.seen));
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// POSTs `body` to the events path with the API key, as EventBridge does; status and body.
    pub async fn post(&self, body: String) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("http://{}{}", self.addr, super::app::EVENTS))
            .header("authorization", super::app::KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the service answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// Resident memory of the process, from /proc, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kib * 1024
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it still runs.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every line logged so far (waits briefly for stragglers).
    pub fn all_lines(&mut self) -> String {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// `kill -9`: no shutdown, no drain.
    pub fn kill_hard(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
