//! The JSON log line, written straight into the line buffer: one object per event with
//! `timestamp` (RFC 3339, milliseconds), `level`, the event's fields (`message` among them),
//! `target`, and `span` (the current span's fields and name) inside a span. The same shape as
//! tracing-subscriber's JSON format with flattened events, at a fraction of its cost: that
//! format builds a serde map per event, and the decision line is written for every event.

use crate::plain_text;
use std::cell::RefCell;
use std::fmt::{self, Write};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

pub struct JsonLine;

/// A line longer than this (a long error text, say) is not kept as the next line's buffer.
const KEPT_LINE_CAPACITY: usize = 4096;

thread_local! {
    /// Each thread's line, put together here and handed to tracing's writer in one write. Every
    /// write into tracing's `Writer` is a `dyn` call, and a line takes about fifty of them; into
    /// a `String` they are plain copies.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };

    /// The timestamp of this thread's last line, whose text up to the milliseconds serves every
    /// line of the same second: a line then writes three digits instead of working out a date.
    static LAST_STAMP: RefCell<Stamp> = const { RefCell::new(Stamp::new()) };
}

/// A line's timestamp, RFC 3339 with milliseconds.
struct Stamp {
    /// The epoch second `up_to_millis` is of.
    second: i64,
    /// That second's timestamp without its milliseconds: `2025-11-04T10:15:41.`.
    up_to_millis: String,
}

impl Stamp {
    /// A stamp of no second yet.
    const fn new() -> Self {
        Stamp {
            second: i64::MIN,
            up_to_millis: String::new(),
        }
    }

    /// Writes the timestamp of `epoch_ms` into `out`.
    fn write(&mut self, out: &mut String, epoch_ms: i64) -> fmt::Result {
        let second = epoch_ms.div_euclid(1_000);
        if second != self.second {
            self.second = i64::MIN; // until the new text is whole
            self.up_to_millis.clear();
            crate::clock::write_rfc3339_millis(&mut self.up_to_millis, epoch_ms)?;
            // The text ends in `mmmZ` whatever its year.
            self.up_to_millis.truncate(self.up_to_millis.len() - 4);
            self.second = second;
        }
        out.push_str(&self.up_to_millis);
        let millis = epoch_ms.rem_euclid(1_000) as u16;
        for digit in [millis / 100, millis / 10 % 10, millis % 10] {
            out.push(char::from(b'0' + digit as u8));
        }
        out.push('Z');
        Ok(())
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                let written =
                    write_line(&mut line, ctx, event).and_then(|()| writer.write_str(&line));
                if line.capacity() > KEPT_LINE_CAPACITY {
                    *line = String::new();
                }
                written
            }
            // Only if a line were written while this thread's is: tracing drops an event
            // dispatched from inside its subscriber, so a buffer of its own rather than a panic.
            Err(_) => {
                let mut line = String::new();
                write_line(&mut line, ctx, event)?;
                writer.write_str(&line)
            }
        })
    }
}

/// One event as a JSON object and a line break.
fn write_line<S>(
    out: &mut String,
    ctx: &FmtContext<'_, S, JsonFields>,
    event: &Event<'_>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let metadata = event.metadata();
    out.push_str("{\"timestamp\":\"");
    let now_ms = crate::clock::now_ms() as i64;
    // Nothing logs while the stamp is written, so it is never borrowed twice.
    LAST_STAMP.with_borrow_mut(|stamp| stamp.write(out, now_ms))?;
    out.push_str("\",\"level\":\"");
    out.push_str(metadata.level().as_str());
    out.push('"');
    let mut fields = Fields {
        out,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    out.push_str(",\"target\":");
    quoted(out, metadata.target())?;
    if let Some(span) = ctx.lookup_current() {
        out.push_str(",\"span\":{\"name\":");
        quoted(out, span.name())?;
        let extensions = span.extensions();
        if let Some(formatted) = extensions.get::<FormattedFields<JsonFields>>() {
            // JsonFields keeps a span's fields as one JSON object: its members go in as they are.
            let members = formatted.fields.trim();
            let members = members
                .strip_prefix('{')
                .and_then(|m| m.strip_suffix('}'))
                .unwrap_or("");
            if !members.is_empty() {
                out.push(',');
                out.push_str(members);
            }
        }
        out.push('}');
    }
    out.push_str("}\n");
    Ok(())
}

/// Writes each field as `,"name":value`.
struct Fields<'a> {
    out: &'a mut String,
    result: fmt::Result,
}

impl Fields<'_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut String) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.out.push_str(",\"");
        self.result = Escaped(&mut *self.out)
            .write_str(field.name())
            .and_then(|()| {
                self.out.push_str("\":");
                value(self.out)
            });
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| quoted(out, value));
    }

    // Numbers and booleans are copied in, not formatted: `write!` costs a pass through `fmt`'s
    // machinery, and the decision line has a number and a boolean for every event.
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| {
            out.push_str(itoa::Buffer::new().format(value));
            Ok(())
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| {
            out.push_str(itoa::Buffer::new().format(value));
            Ok(())
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| {
            out.push_str(if value { "true" } else { "false" });
            Ok(())
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.member(field, |out| write!(out, "{value}"));
        } else {
            self.member(field, |out| quoted(out, &value.to_string()));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |out| quoted(out, &value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// `text` as a JSON string.
fn quoted(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(text)?;
    out.write_char('"')
}

/// Escapes what JSON requires (quote, backslash, control characters) on the way through.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    // Inlined, so that a plain text (nearly every id and name) costs a scan and a copy, without
    // a call and the frame the loop below needs.
    #[inline]
    fn write_str(&mut self, text: &str) -> fmt::Result {
        match plain_text::first_not_plain(text.as_bytes()) {
            None => self.0.write_str(text),
            Some(first) => self.write_escaping(text, first),
        }
    }
}

impl<W: Write> Escaped<'_, W> {
    /// `text`, whose first byte that is not plain is at `first`.
    #[inline(never)]
    fn write_escaping(&mut self, text: &str, first: usize) -> fmt::Result {
        // Everything to escape is ASCII, or C1 (encoded 0xC2 0x80..0x9F), so a cut before any of
        // them is always on a character boundary. The scan stops at every byte that is not
        // plain ASCII; the other characters beyond ASCII are written as they are.
        let bytes = text.as_bytes();
        let mut plain = 0;
        let mut at = first;
        loop {
            let byte = bytes[at];
            let c1 = byte == 0xC2 && bytes.get(at + 1).is_some_and(|b| (0x80..=0x9F).contains(b));
            if byte >= 0x80 && !c1 {
                at += 1;
            } else {
                self.0.write_str(&text[plain..at])?;
                match byte {
                    b'"' => self.0.write_str("\\\"")?,
                    b'\\' => self.0.write_str("\\\\")?,
                    b'\n' => self.0.write_str("\\n")?,
                    b'\r' => self.0.write_str("\\r")?,
                    b'\t' => self.0.write_str("\\t")?,
                    // Every other control character, C1 included (0x9b opens a terminal sequence).
                    _ if c1 => write!(self.0, "\\u{:04x}", bytes[at + 1])?,
                    _ => write!(self.0, "\\u{byte:04x}")?,
                }
                at += if c1 { 2 } else { 1 };
                plain = at;
            }
            match plain_text::first_not_plain(&bytes[at..]) {
                Some(offset) => at += offset,
                None => break,
            }
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        quoted(&mut out, text).unwrap();
        out
    }

    #[test]
    fn random_strings_come_back_the_same() {
        let pool = [
            'a', 'Z', '0', ' ', '"', '\\', '\n', '\u{1}', '\u{7f}', 'é', '\u{85}', '\u{a0}', '✓',
        ];
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..20_000 {
            let text: String = (0..rng.usize(0..40))
                .map(|_| pool[rng.usize(0..pool.len())])
                .collect();
            let json = escaped(&text);
            let back: String =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(back, text);
            assert!(!json.chars().any(char::is_control), "{json}");
        }
    }

    #[test]
    fn strings_are_valid_json_whatever_they_hold() {
        for text in [
            "plain",
            "quote \" and backslash \\",
            "line\nbreak\r\ttab",
            "escape \u{1b}[31m and \u{0} and \u{7f}",
            "unicode é ✓ 𝄞",
            "C1 \u{9b}31m, \u{85} and \u{80}\u{9f} beside é\u{a0}ÿ",
            "ends with C1 \u{9f}",
            "a plain stretch of more than sixteen bytes, then \" and a short tail \u{1}",
            "\u{a2}",
            "\u{1}",
        ] {
            let json = escaped(text);
            let back: String =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(back, text);
            assert!(!json.chars().any(char::is_control), "{json}");
        }
    }

    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    /// The lines `log` writes through `JsonLine`, parsed.
    fn logged(log: impl FnOnce()) -> Vec<serde_json::Value> {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .with_writer(lines.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
            .collect()
    }

    #[test]
    fn a_field_that_logs_while_its_line_is_written_leaves_the_line_whole() {
        struct Chatty;
        impl fmt::Debug for Chatty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                tracing::info!(inner = "yes", "from inside");
                f.write_str("chatty")
            }
        }
        let parsed = logged(|| tracing::info!(before = "b", value = ?Chatty, after = "a", "outer"));
        // tracing drops an event dispatched from inside its subscriber: only the outer line.
        assert_eq!(parsed.len(), 1, "{parsed:?}");
        assert_eq!(parsed[0]["message"], "outer");
        assert_eq!(parsed[0]["before"], "b");
        assert_eq!(parsed[0]["value"], "chatty");
        assert_eq!(parsed[0]["after"], "a");
    }

    #[test]
    fn a_long_line_leaves_the_next_one_whole() {
        let long = "x".repeat(3 * KEPT_LINE_CAPACITY);
        let parsed = logged(|| {
            tracing::warn!(error = long.as_str(), "long");
            tracing::info!(conversationId = "c-2", "short");
        });
        assert_eq!(parsed.len(), 2);
        // The thread's line buffer did not keep the long line's room.
        LINE.with(|line| assert!(line.borrow().capacity() <= KEPT_LINE_CAPACITY));
        assert_eq!(parsed[0]["error"], long.as_str());
        assert_eq!(parsed[1]["message"], "short");
        assert_eq!(parsed[1]["conversationId"], "c-2");
        assert!(parsed[1].get("error").is_none());
    }

    #[test]
    fn a_kept_stamp_gives_each_millisecond_its_own_time() {
        let mut stamp = Stamp::new();
        // Within a second, across seconds and days, before 1970 and beyond year 9999, and back.
        let times = [
            1_762_251_341_000,
            1_762_251_341_007,
            1_762_251_341_999,
            1_762_251_342_050,
            1_762_300_800_000,
            -1,
            -1_000,
            -999,
            253_402_300_800_123,
            253_402_300_800_999,
            1_762_251_341_873,
        ];
        for ms in times {
            let mut line = String::new();
            stamp.write(&mut line, ms).unwrap();
            assert_eq!(line, crate::clock::rfc3339_millis(ms), "{ms}");
        }
    }

    #[test]
    fn numbers_and_booleans_are_json_numbers_and_booleans_at_their_extremes() {
        let parsed = logged(|| {
            tracing::info!(
                lowest = i64::MIN,
                negative = -7i64,
                zero = 0u64,
                highest = u64::MAX,
                yes = true,
                no = false,
                "numbers"
            )
        });
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0]["lowest"].as_i64(), Some(i64::MIN));
        assert_eq!(parsed[0]["negative"].as_i64(), Some(-7));
        assert_eq!(parsed[0]["zero"].as_u64(), Some(0));
        assert_eq!(parsed[0]["highest"].as_u64(), Some(u64::MAX));
        assert_eq!(parsed[0]["yes"], true);
        assert_eq!(parsed[0]["no"], false);
    }

    #[test]
    fn a_line_has_the_fields_of_the_event_and_of_its_span() {
        let parsed = logged(|| {
            tracing::info!(
                conversationId = "c-1",
                episode = 2u64,
                ok = true,
                "event \"processed\""
            );
            let span = tracing::info_span!("delivery", attempt = 3u64, organisationId = %"org");
            let _entered = span.enter();
            tracing::warn!(error = %"refused\nby peer", "not delivered");
        });
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0]["level"], "INFO");
        assert_eq!(parsed[0]["message"], "event \"processed\"");
        assert_eq!(parsed[0]["conversationId"], "c-1");
        assert_eq!(parsed[0]["episode"], 2);
        assert_eq!(parsed[0]["ok"], true);
        assert!(parsed[0]["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(parsed[0]["target"].as_str().unwrap().contains("json_log"));
        assert_eq!(parsed[1]["level"], "WARN");
        assert_eq!(parsed[1]["error"], "refused\nby peer");
        assert_eq!(parsed[1]["span"]["name"], "delivery");
        assert_eq!(parsed[1]["span"]["attempt"], 3);
        assert_eq!(parsed[1]["span"]["organisationId"], "org");
    }
}
