//! Logging: JSON lines by default, human-readable with `HANDOVER_LOG_FORMAT=pretty`.
//!
//! Fields come from the network (correlation ids, disconnect types, ...). JSON escapes them by
//! construction; the pretty format writes every field through [`escape_controls`], so that no
//! field can forge a log line (CR, LF) or send a terminal escape (ESC).

use crate::config::LogFormat;
use crate::json_log::JsonLine;
use crate::log_writer::QueuedWriter;
use std::fmt::Write as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::JsonFields;

/// Log lines go through a queue to one writing thread (`log_writer`): formatting stays on the
/// request path, writing leaves it.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(QueuedWriter::start(std::io::stdout()));
    match format {
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .init(),
        LogFormat::Pretty => builder
            .fmt_fields(
                tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
                    let text = escape_controls(&format!("{value:?}"));
                    if field.name() == "message" {
                        writer.write_str(&text)
                    } else {
                        write!(writer, "{field}={text}")
                    }
                })
                .delimited(" "),
            )
            .init(),
    }
}

/// Control characters as `\u{..}` escapes; everything else as it is.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain"), "plain");
        assert_eq!(
            escape_controls("a\r\nb\u{1b}[31mc\u{7f}"),
            "a\\u{d}\\u{a}b\\u{1b}[31mc\\u{7f}"
        );
    }
}
