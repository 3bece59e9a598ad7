//! Wall-clock times as the control socket and `status` carry them.

use std::time::SystemTime;

/// Milliseconds since the epoch, for the wire.
pub(crate) fn ms(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
