//! `docs/contract.md` §5: what one client connection may hold, and a shutdown that ends whatever clients do.
//! These run the executable and talk to it over raw sockets.

use crate::common::app::KEY;
use crate::common::process::Process;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const HALF_HEAD: &[u8] = b"GET /livez HTTP/1.1\r\nHost: x\r\n";
const FULL_REQUEST: &[u8] = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n";

fn connect(process: &Process) -> TcpStream {
    let stream = TcpStream::connect(&process.addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection; how long that took, or `None` if it stayed open
/// for the whole read timeout.
fn closed_within(stream: &mut TcpStream) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}

/// One response read off a keep-alive connection (its head up to the blank line, and the body
/// by Content-Length).
fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("a response");
        assert!(
            n == 1,
            "closed mid-response: {}",
            String::from_utf8_lossy(&received)
        );
        received.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&received).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head
}

fn livez(process: &Process) -> u16 {
    let mut stream = connect(process);
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let head = read_response(&mut stream);
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn metric(process: &Process, name: &str) -> f64 {
    let mut stream = connect(process);
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Defect: SIGTERM never completed while one client held a half-sent request head (still
/// running 40 s later).
#[test]
fn sigterm_completes_while_a_client_holds_a_half_sent_head() {
    let mut process = Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_SHUTDOWN_GRACE_SECS", "1"),
        ("HANDOVER_REQUEST_TIMEOUT_MS", "1000"),
        ("HANDOVER_HEADER_READ_TIMEOUT_MS", "60000"),
    ]);
    let mut stalled = connect(&process);
    stalled.write_all(HALF_HEAD).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    process.signal("-TERM");
    // Bound: grace (1 s) + request timeout (1 s), with room for a loaded machine.
    let status = process.wait_for_exit(Duration::from_secs(8));
    assert!(status.is_some(), "still running 8 s after SIGTERM");
    assert!(status.unwrap().success());
    assert!(closed_within(&mut stalled).is_some());
}

/// Defect: no header-read timeout, so unfinished heads pinned memory and connections for ever.
/// Other clients are served meanwhile.
#[test]
fn a_stalled_head_is_closed_by_the_header_read_timeout_while_others_are_served() {
    let process = Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_HEADER_READ_TIMEOUT_MS", "700"),
    ]);
    let mut half = connect(&process);
    half.write_all(HALF_HEAD).unwrap();
    let mut silent = connect(&process);
    let mut padded = connect(&process);
    padded.write_all(HALF_HEAD).unwrap();
    padded
        .write_all(format!("X-Pad: {}\r\n", "p".repeat(60_000)).as_bytes())
        .unwrap();
    assert_eq!(livez(&process), 200, "another client is served meanwhile");
    for (name, stream) in [
        ("half head", &mut half),
        ("nothing sent", &mut silent),
        ("60 KB head", &mut padded),
    ] {
        assert!(
            closed_within(stream).is_some(),
            "{name}: still open after 8 s"
        );
    }
    assert!(
        metric(
            &process,
            "handover_connections_timed_out_total{limit=\"header_read_timeout\"}"
        ) >= 3.0
    );
}

/// An idle keep-alive connection is kept past the (short) header timeout, then closed after the
/// idle timeout.
#[test]
fn idle_keep_alive_connections_live_until_the_idle_timeout() {
    let process = Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_HEADER_READ_TIMEOUT_MS", "300"),
        ("HANDOVER_IDLE_TIMEOUT_SECS", "2"),
    ]);
    let mut stream = connect(&process);
    stream.write_all(FULL_REQUEST).unwrap();
    assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(900));
    stream.write_all(FULL_REQUEST).unwrap();
    assert!(
        read_response(&mut stream).starts_with("HTTP/1.1 200"),
        "closed by the header timeout while idle"
    );
    let closed = closed_within(&mut stream).expect("closed after the idle timeout");
    assert!(
        closed >= Duration::from_millis(1_500),
        "closed after {closed:?}, before the idle timeout"
    );
    assert!(
        metric(
            &process,
            "handover_connections_timed_out_total{limit=\"idle_timeout\"}"
        ) >= 1.0
    );
}

/// hyper's own header timer (30 s by default once a timer is installed) also runs between
/// kept-alive requests; it must not cut an idle connection before HANDOVER_IDLE_TIMEOUT_SECS.
#[test]
fn idle_connections_outlive_hypers_own_30_s_header_timer() {
    let process = Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_IDLE_TIMEOUT_SECS", "45"),
    ]);
    let mut stream = connect(&process);
    stream.write_all(FULL_REQUEST).unwrap();
    assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_secs(32));
    stream.write_all(FULL_REQUEST).unwrap();
    assert!(
        read_response(&mut stream).starts_with("HTTP/1.1 200"),
        "closed after 30 s of idleness, before the 45 s idle timeout"
    );
}

/// An event whose body never finishes arriving is answered with the request timeout's 503 (its
/// head came in time, so the header timeout does not apply). The events path has no timer around
/// the whole request: the body's read is bounded by the request's deadline where it waits.
#[test]
fn an_event_body_that_stops_arriving_gets_the_request_timeouts_503() {
    let process = Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_REQUEST_TIMEOUT_MS", "1000"),
        ("HANDOVER_HEADER_READ_TIMEOUT_MS", "60000"),
    ]);
    let mut stream = connect(&process);
    let head = format!(
        "POST /handover/genesysCloudOM HTTP/1.1\r\nHost: x\r\nAuthorization: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"version\":"
    );
    let sent = Instant::now();
    stream.write_all(head.as_bytes()).unwrap();
    let answer = read_response(&mut stream);
    let waited = sent.elapsed();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "answered after {waited:?}: the request timeout is 1 s"
    );
}

/// Defect: no connection cap. Beyond HANDOVER_MAX_CONNECTIONS a new connection waits (in the
/// backlog) and is counted, then served once a slot frees.
#[test]
fn connections_beyond_the_limit_wait_and_are_counted() {
    let process = Process::start(&[
        ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
        ("HANDOVER_MAX_CONNECTIONS", "3"),
        ("HANDOVER_HEADER_READ_TIMEOUT_MS", "1000"),
    ]);
    let idle: Vec<TcpStream> = (0..3).map(|_| connect(&process)).collect();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        livez(&process),
        200,
        "the waiting connection is served once a slot frees"
    );
    drop(idle);
    assert!(metric(&process, "handover_connections_limited_total") >= 1.0);
}

/// Defect: under a low file-descriptor limit the service silently stopped accepting. Failed
/// accepts are logged and counted, and accepting resumes once connections are closed.
#[test]
fn exhausted_file_descriptors_are_reported_and_recovered_from() {
    let mut process = Process::start_with_file_limit(
        &[
            ("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY", KEY),
            ("HANDOVER_HEADER_READ_TIMEOUT_MS", "1000"),
        ],
        64,
    );
    let hogs: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect(&process.addr).ok())
        .collect();
    process.wait_for_line("cannot accept connections");
    drop(hogs);
    let deadline = Instant::now() + Duration::from_secs(10);
    while livez_or_error(&process) != Some(200) {
        assert!(Instant::now() < deadline, "never accepts again");
        std::thread::sleep(Duration::from_millis(100));
    }
    process.wait_for_line("accepting connections again");
    assert!(metric(&process, "handover_accept_errors_total") >= 1.0);
}

fn livez_or_error(process: &Process) -> Option<u16> {
    let mut stream = TcpStream::connect(&process.addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}
