//! Wall-clock time in epoch milliseconds: the one clock the edges read and pass to the engine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// Epoch milliseconds as RFC 3339 with milliseconds: `2025-11-04T10:15:41.873Z`.
pub fn rfc3339_millis(epoch_ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(epoch_ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_event_times_as_genesys_does() {
        assert_eq!(
            super::rfc3339_millis(1_762_251_341_873),
            "2025-11-04T10:15:41.873Z"
        );
    }
}
