//! Prometheus metrics. Each service has its own recorder (no global state), so that several
//! services in one process, as in the tests, count separately.
//!
//! Labels stay bounded: topics, outcomes, reasons, decisions, routes and statuses are closed
//! sets; the organisation label is kept for the first [`MAX_ORGANISATION_LABELS`] organisations
//! and is `other` beyond; conversation ids never become labels.

use crate::engine::{Decision, EndNotice};
use crate::store::StoreCounts;
use metrics::{Counter, Histogram, Key, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const MAX_ORGANISATION_LABELS: usize = 20;

const EVENTS: &str = "handover_events_total";
const DECISIONS: &str = "handover_decisions_total";
const ENDS: &str = "handover_ends_total";
const FORWARD_ATTEMPTS: &str = "handover_forward_attempts_total";
const FORWARD_DURATION: &str = "handover_forward_duration_seconds";
const HTTP_DURATION: &str = "handover_http_request_duration_seconds";
const STORE_ERRORS: &str = "handover_store_errors_total";
const PASSTHROUGH: &str = "handover_passthrough_total";
const OPEN_WINDOWS: &str = "handover_open_grace_windows";
const CONVERSATIONS: &str = "handover_conversations_tracked";
const OUTBOX: &str = "handover_outbox_depth";
const DEAD_LETTERS: &str = "handover_dead_letters";
const UNAUTHORIZED: &str = "handover_unauthorized_total";
const CONNECTIONS_OPEN: &str = "handover_connections_open";
const CONNECTIONS_LIMITED: &str = "handover_connections_limited_total";
const CONNECTIONS_TIMED_OUT: &str = "handover_connections_timed_out_total";
const ACCEPT_ERRORS: &str = "handover_accept_errors_total";
const LARGE_CONVERSATIONS: &str = "handover_conversations_too_large_total";
const STORE_RESETS: &str = "handover_store_resets_total";
const STORE_EVICTION_UNSAFE: &str = "handover_store_eviction_unsafe";
const STORE_READY: &str = "handover_store_ready";
const LOG_LINES_DROPPED: &str = "handover_log_lines_dropped_total";

/// Every metric family this service exports (histograms add `_bucket`, `_sum`, `_count`).
pub const NAMES: &[&str] = &[
    EVENTS,
    DECISIONS,
    ENDS,
    FORWARD_ATTEMPTS,
    FORWARD_DURATION,
    HTTP_DURATION,
    STORE_ERRORS,
    PASSTHROUGH,
    OPEN_WINDOWS,
    CONVERSATIONS,
    OUTBOX,
    DEAD_LETTERS,
    UNAUTHORIZED,
    CONNECTIONS_OPEN,
    CONNECTIONS_LIMITED,
    CONNECTIONS_TIMED_OUT,
    ACCEPT_ERRORS,
    LARGE_CONVERSATIONS,
    STORE_RESETS,
    STORE_EVICTION_UNSAFE,
    STORE_READY,
    LOG_LINES_DROPPED,
];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// A counter's name and up to three labels, all `'static`: a key looked up without allocating.
type StaticKey = (Static, [(Static, Static); 3]);

/// A `'static` text as a cache key, compared and hashed by where it lives rather than by its
/// letters: the key is looked up twice per event, and hashing the letters of seven texts cost
/// more than the counting. One text at two addresses (a literal copied into two crates) only
/// makes two cache entries for one counter, since registering a key again gives the same counter.
#[derive(Debug, Clone, Copy)]
struct Static(&'static str);

impl PartialEq for Static {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Static {}

impl Hash for Static {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.as_ptr() as usize);
        state.write_usize(self.0.len());
    }
}

/// A hash for the handle caches: a multiply and a rotation per word. Their keys are the
/// service's own (addresses, statuses, route patterns), never text from the network, so they
/// need no defence against chosen collisions, and SipHash's was most of a lookup's cost.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
}

type Cache<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// Request-duration histograms by route.
type ByRoute = Cache<Box<str>, Histogram>;

/// A number per `Metrics`, so that the handle caches of several (as in the tests) stay apart.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Handles of the counters counted on every event, by `Metrics` and key, registered once:
    /// registering builds the labels and looks the key up in the recorder, more work than
    /// counting. One cache per thread, so that no lock is shared on every event's path. (The
    /// handles of a dropped `Metrics` stay behind: a few per label set, in tests only.)
    static COUNTERS: RefCell<Cache<(u64, StaticKey), Counter>> = RefCell::default();
    /// Request-duration histograms by `Metrics` and status, then route; the same way.
    static DURATIONS: RefCell<Cache<(u64, u16), ByRoute>> = RefCell::default();
}

pub struct Metrics {
    /// This one's key in the per-thread handle caches.
    id: u64,
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    organisations: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            recorder,
            handle,
            organisations: Mutex::default(),
        };
        metrics.describe();
        metrics
    }

    fn describe(&self) {
        let counters = [
            (
                EVENTS,
                "Events received, by topic and outcome (accepted, duplicate, ignored with reason, rejected with status)",
            ),
            (
                DECISIONS,
                "What accepted events did, by decision (transfer, reject, takeover, end_candidate, candidate_cancelled, late, ...)",
            ),
            (ENDS, "Handover ends decided, by reason and organisation"),
            (
                FORWARD_ATTEMPTS,
                "Attempts to deliver an end to Cognigy, by result",
            ),
            (
                STORE_ERRORS,
                "State store operations that failed, by operation",
            ),
            (PASSTHROUGH, "Open Messaging webhooks relayed, by result"),
            (
                UNAUTHORIZED,
                "Requests refused with 401, by caller (eventbridge: EventBridge's User-Agent; other)",
            ),
            (
                CONNECTIONS_LIMITED,
                "Times a new connection had to wait because HANDOVER_MAX_CONNECTIONS were open",
            ),
            (
                CONNECTIONS_TIMED_OUT,
                "Connections closed by a timeout, by limit (header_read_timeout, idle_timeout)",
            ),
            (
                ACCEPT_ERRORS,
                "Failed accepts (e.g. file descriptors exhausted); the listener retries",
            ),
            (
                LARGE_CONVERSATIONS,
                "Events ignored because their conversation reached HANDOVER_MAX_LEGS",
            ),
            (
                LOG_LINES_DROPPED,
                "Log lines dropped because the log writer could not keep up (each drop is also logged)",
            ),
            (
                STORE_RESETS,
                "Times the store was found to have lost its data (epoch marker gone): ends may be lost",
            ),
        ];
        for (name, help) in counters {
            self.recorder
                .describe_counter(name.into(), None, SharedString::const_str(help));
        }
        let gauges = [
            (OPEN_WINDOWS, "Grace windows open (end candidates waiting)"),
            (CONNECTIONS_OPEN, "Client connections open"),
            (CONVERSATIONS, "Conversations held by the in-memory store"),
            (OUTBOX, "Ends waiting to be delivered to Cognigy"),
            (
                DEAD_LETTERS,
                "Ends given up on, waiting for an operator's replay",
            ),
            (
                STORE_EVICTION_UNSAFE,
                "1 while Redis' maxmemory-policy may evict the service's keys (allkeys-*, volatile-*)",
            ),
            (
                STORE_READY,
                "1 while the store accepts writes (what /readyz reports)",
            ),
        ];
        for (name, help) in gauges {
            self.recorder
                .describe_gauge(name.into(), None, SharedString::const_str(help));
        }
        self.recorder.describe_histogram(
            FORWARD_DURATION.into(),
            Some(Unit::Seconds),
            SharedString::const_str("Duration of one call to Cognigy"),
        );
        self.recorder.describe_histogram(
            HTTP_DURATION.into(),
            Some(Unit::Seconds),
            SharedString::const_str("HTTP request duration, by route and status"),
        );
    }

    /// Counts one on a counter whose labels are all `'static`, through its cached handle.
    fn count(&self, name: &'static str, labels: &[(&'static str, &'static str)]) {
        let mut key: StaticKey = (Static(name), [(Static(""), Static("")); 3]);
        for (slot, (label, value)) in key.1.iter_mut().zip(labels) {
            *slot = (Static(label), Static(value));
        }
        COUNTERS.with_borrow_mut(|cache| {
            cache
                .entry((self.id, key))
                .or_insert_with(|| {
                    let parts: Vec<Label> =
                        labels.iter().map(|(k, v)| Label::new(*k, *v)).collect();
                    self.recorder
                        .register_counter(&Key::from_parts(name, parts), &METADATA)
                })
                .increment(1);
        });
    }

    fn increment(&self, name: &'static str, labels: Vec<Label>) {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
            .increment(1);
    }

    fn observe(&self, name: &'static str, labels: Vec<Label>, seconds: f64) {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
            .record(seconds);
    }

    fn gauge(&self, name: &'static str, value: usize) {
        self.recorder
            .register_gauge(&Key::from_name(name), &METADATA)
            .set(value as f64);
    }

    /// A request refused with 401. Only EventBridge's count toward de-authorizing the
    /// connection, so the alert that pages watches `caller="eventbridge"` alone.
    pub fn unauthorized(&self, from_eventbridge: bool) {
        let caller = if from_eventbridge {
            "eventbridge"
        } else {
            "other"
        };
        self.increment(UNAUTHORIZED, vec![Label::new("caller", caller)]);
    }

    pub fn connections_limited(&self) {
        self.increment(CONNECTIONS_LIMITED, Vec::new());
    }

    pub fn accept_error(&self) {
        self.increment(ACCEPT_ERRORS, Vec::new());
    }

    pub fn connection_timed_out(&self, limit: &'static str) {
        self.increment(CONNECTIONS_TIMED_OUT, vec![Label::new("limit", limit)]);
    }

    pub fn conversation_too_large(&self) {
        self.increment(LARGE_CONVERSATIONS, Vec::new());
    }

    /// Counts an open connection until the returned guard is dropped.
    pub fn connection_opened(&self) -> impl Drop + use<> {
        let gauge = self
            .recorder
            .register_gauge(&Key::from_name(CONNECTIONS_OPEN), &METADATA);
        gauge.increment(1.0);
        OnDrop(Some(move || gauge.decrement(1.0)))
    }

    /// An event answered 2xx: `accepted`, `duplicate`, or `ignored` with its reason.
    pub fn event(&self, topic: &'static str, outcome: &'static str, reason: Option<&'static str>) {
        self.count(
            EVENTS,
            &[
                ("topic", topic),
                ("outcome", outcome),
                ("reason", reason.unwrap_or("")),
            ],
        );
    }

    /// An event refused with a 4xx or 5xx.
    pub fn rejected(&self, status: u16) {
        self.increment(
            EVENTS,
            vec![
                Label::new("topic", "unknown"),
                Label::new("outcome", "rejected"),
                Label::new("reason", status.to_string()),
            ],
        );
    }

    pub fn decision(&self, decision: Decision, candidate_cancelled: bool) {
        self.count(DECISIONS, &[("decision", decision.as_str())]);
        if candidate_cancelled {
            self.count(DECISIONS, &[("decision", "candidate_cancelled")]);
        }
    }

    pub fn end(&self, end: &EndNotice) {
        let organisation = self.organisation_label(end.key.organisation_id.as_str());
        self.increment(
            ENDS,
            vec![
                Label::new("reason", end.reason.as_str()),
                Label::new("organisation", organisation),
            ],
        );
    }

    /// `delivered`, `not_found`, `shadow`, `retry`, `configuration_error`, `dead_letter`.
    pub fn forward_attempt(&self, result: &'static str, took: Option<Duration>) {
        self.increment(FORWARD_ATTEMPTS, vec![Label::new("result", result)]);
        if let Some(took) = took {
            self.observe(FORWARD_DURATION, Vec::new(), took.as_secs_f64());
        }
    }

    pub fn http_request(&self, route: &str, status: u16, took: Duration) {
        DURATIONS.with_borrow_mut(|cache| {
            let routes = cache.entry((self.id, status)).or_default();
            if let Some(histogram) = routes.get(route) {
                return histogram.record(took.as_secs_f64());
            }
            let labels = vec![
                Label::new("route", route.to_owned()),
                Label::new("status", status.to_string()),
            ];
            let histogram = self
                .recorder
                .register_histogram(&Key::from_parts(HTTP_DURATION, labels), &METADATA);
            histogram.record(took.as_secs_f64());
            routes.insert(route.into(), histogram);
        });
    }

    /// `relayed`, `bad_signature`, `upstream_error`.
    pub fn passthrough(&self, result: &'static str) {
        self.increment(PASSTHROUGH, vec![Label::new("result", result)]);
    }

    pub fn store_error(&self, operation: &'static str) {
        self.increment(STORE_ERRORS, vec![Label::new("operation", operation)]);
    }

    pub fn store_reset(&self) {
        self.increment(STORE_RESETS, Vec::new());
    }

    pub fn store_eviction_unsafe(&self, unsafe_policy: bool) {
        self.gauge(STORE_EVICTION_UNSAFE, usize::from(unsafe_policy));
    }

    pub fn store_ready(&self, ready: bool) {
        self.gauge(STORE_READY, usize::from(ready));
    }

    pub fn store_counts(&self, counts: &StoreCounts) {
        self.gauge(OPEN_WINDOWS, counts.open_windows);
        self.gauge(OUTBOX, counts.outbox);
        self.gauge(DEAD_LETTERS, counts.dead_letters);
        if let Some(conversations) = counts.conversations {
            self.gauge(CONVERSATIONS, conversations);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.recorder
            .register_counter(&Key::from_name(LOG_LINES_DROPPED), &METADATA)
            .absolute(crate::log_writer::dropped());
        self.handle.run_upkeep();
        self.handle.render()
    }

    fn organisation_label(&self, organisation: &str) -> String {
        let mut known = self
            .organisations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.contains(organisation) {
            return organisation.to_owned();
        }
        if known.len() < MAX_ORGANISATION_LABELS {
            known.insert(organisation.to_owned());
            return organisation.to_owned();
        }
        "other".to_owned()
    }
}

struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(action) = self.0.take() {
            action();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisation_labels_are_bounded() {
        let metrics = Metrics::new();
        for n in 0..MAX_ORGANISATION_LABELS {
            assert_eq!(
                metrics.organisation_label(&format!("org-{n}")),
                format!("org-{n}")
            );
        }
        assert_eq!(metrics.organisation_label("one-too-many"), "other");
        assert_eq!(metrics.organisation_label("org-3"), "org-3");
    }

    #[test]
    fn renders_counters_with_help() {
        let metrics = Metrics::new();
        metrics.event("user.end", "accepted", None);
        metrics.event("user.end", "accepted", None);
        let text = metrics.render();
        assert!(text.contains("# HELP handover_events_total"), "{text}");
        assert!(
            text.contains(
                r#"handover_events_total{topic="user.end",outcome="accepted",reason=""} 2"#
            ),
            "{text}"
        );
    }

    /// The counter cache tells texts apart by address: the same label text at another address
    /// must still count on the same counter.
    #[test]
    fn one_label_text_at_two_addresses_counts_on_one_counter() {
        let metrics = Metrics::new();
        let copied: &'static str = String::from("user.end").leak();
        assert!(!std::ptr::eq(copied, "user.end"));
        metrics.event("user.end", "accepted", None);
        metrics.event(copied, "accepted", None);
        let text = metrics.render();
        assert!(
            text.contains(
                r#"handover_events_total{topic="user.end",outcome="accepted",reason=""} 2"#
            ),
            "{text}"
        );
    }

    /// The handle caches are per thread and shared by every `Metrics` on it: each must still
    /// count only its own events and requests.
    #[test]
    fn two_on_one_thread_count_apart() {
        let (first, second) = (Metrics::new(), Metrics::new());
        first.event("user.end", "accepted", None);
        for _ in 0..3 {
            second.event("user.end", "accepted", None);
        }
        first.http_request("/handover/genesysCloudOM", 202, Duration::from_millis(1));
        let line = |n| {
            format!(r#"handover_events_total{{topic="user.end",outcome="accepted",reason=""}} {n}"#)
        };
        let requests = r#"handover_http_request_duration_seconds_count{route="/handover/genesysCloudOM",status="202"} 1"#;
        let (first, second) = (first.render(), second.render());
        assert!(
            first.contains(&line(1)) && first.contains(requests),
            "{first}"
        );
        assert!(
            second.contains(&line(3)) && !second.contains(requests),
            "{second}"
        );
    }
}
