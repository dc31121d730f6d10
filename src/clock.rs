//! Wall-clock time in epoch milliseconds: the one clock the edges read and pass to the engine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

const MS_PER_DAY: i64 = 86_400_000;

/// Epoch milliseconds as RFC 3339 with milliseconds: `2025-11-04T10:15:41.873Z`. Total: any
/// `i64` formats (years beyond 9999 or before 0 with a sign, as ISO 8601's expanded years), so
/// that no time from the network can panic a log line, a forward body or the admin view.
pub fn rfc3339_millis(epoch_ms: i64) -> String {
    let mut text = String::with_capacity(24);
    let _ = write_rfc3339_millis(&mut text, epoch_ms);
    text
}

/// [`rfc3339_millis`] written into `out`, without allocating: the log line's timestamp. The
/// text is put together on the stack and written in one call: each write into a log line goes
/// through a `dyn Write`, and a dozen of them cost more than the arithmetic.
pub fn write_rfc3339_millis(out: &mut impl std::fmt::Write, epoch_ms: i64) -> std::fmt::Result {
    let days = epoch_ms.div_euclid(MS_PER_DAY);
    let in_day = epoch_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let four_digit_year = (0..=9_999).contains(&year);
    if four_digit_year {
        put_digits(&mut text[0..4], year as u32);
    } else {
        write!(out, "{year:+05}")?;
    }
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], (in_day / 3_600_000) as u32);
    put_digits(&mut text[14..16], (in_day / 60_000 % 60) as u32);
    put_digits(&mut text[17..19], (in_day / 1_000 % 60) as u32);
    put_digits(&mut text[20..23], (in_day % 1_000) as u32);
    let text = if four_digit_year {
        &text[..]
    } else {
        &text[4..]
    };
    out.write_str(std::str::from_utf8(text).expect("ASCII digits"))
}

/// The lowest `slot.len()` decimal digits of `value`, zero-padded, into `slot`.
fn put_digits(slot: &mut [u8], mut value: u32) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's `civil_from_days`). In `i64` no input overflows: `|days|` is at most about 1.1e11
/// for any `i64` of milliseconds, so the year stays within about ±3e8.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::rfc3339_millis;

    #[test]
    fn formats_event_times_as_genesys_does() {
        assert_eq!(
            rfc3339_millis(1_762_251_341_873),
            "2025-11-04T10:15:41.873Z"
        );
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn agrees_with_humantime_over_its_whole_range() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..20_000 {
            let ms = rng.i64(0..253_402_300_800_000);
            let expected = humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64),
            )
            .to_string();
            assert_eq!(rfc3339_millis(ms), expected, "{ms}");
        }
    }

    #[test]
    fn absurd_times_format_without_panicking() {
        assert_eq!(
            rfc3339_millis(253_402_300_800_000),
            "+10000-01-01T00:00:00.000Z"
        );
        for ms in [i64::MIN, i64::MIN + 1, -62_135_596_800_001, i64::MAX] {
            let text = rfc3339_millis(ms);
            assert!(text.ends_with('Z'), "{text}");
        }
    }
}
