//! Times as the journal stores them (milliseconds since the Unix epoch), and the
//! UTC stamp in the name of a file set aside.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch; a time before it (a wrong clock) counts as the epoch.
pub(crate) fn to_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The inverse of [`to_ms`]; a negative value (not written by us) counts as the epoch.
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// `now` in milliseconds.
pub(crate) fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// `20261127T131306Z`: sortable, and free of characters a shell or a file manager minds.
/// Hand-written (days to a civil date, H. Hinnant's algorithm) rather than pulling a
/// date crate in for one file name.
pub(crate) fn stamp(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `2026-11-27 13:13:06Z`: a time as the commands print it (UTC).
pub(crate) fn utc(at: SystemTime) -> String {
    let s = stamp(at);
    format!(
        "{}-{}-{} {}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_civil_dates() {
        assert_eq!(stamp(UNIX_EPOCH), "19700101T000000Z");
        // 2000-02-29 23:59:59 (a leap day), checked with `date -u -d @951868799`.
        assert_eq!(
            stamp(UNIX_EPOCH + Duration::from_secs(951_868_799)),
            "20000229T235959Z"
        );
        // 2026-11-27 13:13:06 (`date -u -d @1795785186`).
        assert_eq!(
            stamp(UNIX_EPOCH + Duration::from_secs(1_795_785_186)),
            "20261127T131306Z"
        );
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(1_795_785_186)),
            "2026-11-27 13:13:06Z"
        );
    }

    #[test]
    fn milliseconds_round_trip() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_871_586_123);
        assert_eq!(from_ms(to_ms(at)), at);
        assert_eq!(to_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(from_ms(-3), UNIX_EPOCH);
    }
}
