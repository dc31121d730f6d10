//! Log lines leave the request path: each formatted line goes into a bounded queue, and one
//! thread writes whatever has queued up in one `write` to stdout. Under load that is one system
//! call for many lines instead of one per line under the stdout lock.
//!
//! A full queue never blocks a request: the line is dropped and counted
//! (`handover_log_lines_dropped_total`), and once the queue drains the writer itself logs how
//! many were dropped. Nothing is dropped silently. `flush` waits (bounded) for the queue to
//! drain, so the last lines before exit are written.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// Lines waiting at most: a burst far beyond this is better dropped (and counted) than queued.
const CAPACITY: usize = 16_384;
/// One `write` carries at most this much.
const BATCH_BYTES: usize = 64 * 1024;
/// How often the writing thread looks at the queue: lines reach stdout at most this late.
const PACE: Duration = Duration::from_millis(5);

enum Message {
    Line(Vec<u8>),
    /// Answered once everything sent before it is written.
    Flush(SyncSender<()>),
}

/// The process's writer (the first one started): what `flush` waits for and `dropped` reports.
static PROCESS_WRITER: OnceLock<QueuedWriter> = OnceLock::new();

/// Lines the process's writer dropped since start.
pub fn dropped() -> u64 {
    PROCESS_WRITER
        .get()
        .map_or(0, |writer| writer.dropped.load(Ordering::Relaxed))
}

/// The writer to give tracing-subscriber: lines to the queue of one background thread that
/// writes to `out` (stdout in the service).
#[derive(Clone)]
pub struct QueuedWriter {
    queue: SyncSender<Message>,
    /// Lines this writer dropped since start.
    dropped: Arc<AtomicU64>,
}

impl QueuedWriter {
    /// Starts the writing thread for `out` and makes it the one `flush` waits for.
    pub fn start(out: impl Write + Send + 'static) -> Self {
        let (queue, lines) = sync_channel(CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_lines(lines, out, &counted))
            .expect("the log writer thread starts");
        let writer = Self { queue, dropped };
        let _ = PROCESS_WRITER.set(writer.clone());
        writer
    }
}

/// Waits up to `limit` for every line logged so far to be written.
pub fn flush(limit: Duration) {
    let Some(writer) = PROCESS_WRITER.get() else {
        return;
    };
    let (done, written) = sync_channel(1);
    if writer.queue.send(Message::Flush(done)).is_ok() {
        let _ = written.recv_timeout(limit);
    }
}

impl<'a> MakeWriter<'a> for QueuedWriter {
    type Writer = LineSender<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineSender {
            writer: self,
            line: Vec::new(),
        }
    }
}

/// One log line on its way: tracing-subscriber writes the whole formatted line, then drops it.
pub struct LineSender<'a> {
    writer: &'a QueuedWriter,
    line: Vec<u8>,
}

impl Write for LineSender<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineSender<'_> {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.line);
        match self.writer.queue.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.writer.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Wakes every [`PACE`], writes what queued up meanwhile, and sleeps again: waking per line
/// would cost a thread switch per event, more than the write it saves.
fn write_lines(lines: Receiver<Message>, mut out: impl Write, dropped: &AtomicU64) {
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
    let mut reported = 0;
    loop {
        std::thread::sleep(PACE);
        let mut waiting = Vec::new();
        loop {
            match lines.try_recv() {
                Ok(Message::Line(line)) => batch.extend_from_slice(&line),
                Ok(Message::Flush(done)) => waiting.push(done),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    write_out(&mut out, &mut batch);
                    return;
                }
            }
            if batch.len() >= BATCH_BYTES {
                write_out(&mut out, &mut batch);
            }
        }
        let dropped = dropped.load(Ordering::Relaxed);
        if dropped > reported {
            let _ = writeln!(
                batch,
                "{{\"level\":\"WARN\",\"message\":\"log lines dropped: the log writer could not keep up\",\"droppedSinceStart\":{dropped}}}"
            );
            reported = dropped;
        }
        write_out(&mut out, &mut batch);
        for done in waiting {
            let _ = done.send(());
        }
    }
}

fn write_out(out: &mut impl Write, batch: &mut Vec<u8>) {
    if batch.is_empty() {
        return;
    }
    // A closed stdout has no one to tell; the lines are gone either way.
    let _ = out.write_all(batch).and_then(|()| out.flush());
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A slow stdout: lines pile up while it writes.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>, Arc<AtomicU64>);

    impl Write for Collected {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(2));
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_and_in_order_in_few_writes() {
        let out = Collected::default();
        let writer = QueuedWriter::start(out.clone());
        for n in 0..1_000 {
            let mut line = writer.make_writer();
            writeln!(line, "line {n}").unwrap();
        }
        // `flush` waits for the process's writer, which may be another test's: wait for ours.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out.0.lock().unwrap().len() < 1_000 * 7 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1_000);
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(n, l)| *l == format!("line {n}"))
        );
        assert!(
            out.1.load(Ordering::Relaxed) < 100,
            "{} writes for 1,000 lines",
            out.1.load(Ordering::Relaxed)
        );
    }

    /// A stdout that blocks while the test holds its gate.
    #[derive(Clone, Default)]
    struct Gated(Arc<Mutex<()>>, Collected);

    impl Write for Gated {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _open = self.0.lock().unwrap();
            self.1.write(bytes)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_lines_counts_them_and_says_so() {
        let gated = Gated::default();
        let out = gated.1.clone();
        let writer = QueuedWriter::start(gated.clone());
        let before = writer.dropped.load(Ordering::Relaxed);
        {
            let _stdout_stuck = gated.0.lock().unwrap();
            // Enough to fill a 64 KB batch (whose write then blocks) and the queue behind it.
            for n in 0..(CAPACITY * 4) {
                let mut line = writer.make_writer();
                writeln!(line, "line {n}").unwrap();
            }
            std::thread::sleep(PACE * 4);
            for n in 0..(CAPACITY * 2) {
                let mut line = writer.make_writer();
                writeln!(line, "more {n}").unwrap();
            }
        }
        assert!(
            writer.dropped.load(Ordering::Relaxed) - before >= 1,
            "nothing was dropped"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
            if text.contains("log lines dropped") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the drop was never logged"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
