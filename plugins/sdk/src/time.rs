//! Wall-clock times as vendors print them: a civil date and time at a fixed UTC offset.
//! Chinese vendors print China time, so the offset is a per-mount setting
//! (`utc-offset-minutes`, 480 by default) rather than UTC.

use crate::config;

/// Minutes east of UTC for printed times: setting `utc-offset-minutes`, 480 by default.
pub fn utc_offset_ms() -> i64 {
    config::get("utc-offset-minutes")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(480)
        * 60_000
}

/// `yyyy-MM-dd{sep}HH:mm:ss` for Unix milliseconds `ms` at `offset_ms` east of UTC.
pub fn format_at(ms: u64, offset_ms: i64, sep: char) -> String {
    let t = (ms as i64 + offset_ms).div_euclid(1000);
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}{sep}{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `format_at` with the configured offset.
pub fn format(ms: u64, sep: char) -> String {
    format_at(ms, utc_offset_ms(), sep)
}

#[cfg(test)]
mod tests {
    use super::format_at;

    #[test]
    fn civil_dates() {
        // 2019-05-16 08:28:57 UTC is 16:28:57 in China.
        assert_eq!(
            format_at(1_557_995_337_000, 8 * 3_600_000, ' '),
            "2019-05-16 16:28:57"
        );
        assert_eq!(format_at(0, 8 * 3_600_000, 'T'), "1970-01-01T08:00:00");
        // A leap day.
        assert_eq!(format_at(1_709_164_800_000, 0, ' '), "2024-02-29 00:00:00");
    }
}
