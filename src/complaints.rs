//! Complaints about input refused on the socket, logged without flooding: at
//! most a few per kind and window, then a count of those left out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

/// Logs a kind of complaint at most `burst` times per `window`, then says how many
/// were left out, so a flood of bad input cannot flood the journal.
pub struct RateLimiter {
    /// The window; a caller flushes at least this often.
    pub window: Duration,
    burst: u32,
    seen: Mutex<HashMap<&'static str, (Instant, u32, u64)>>,
}

impl RateLimiter {
    pub fn new(window: Duration, burst: u32) -> Self {
        RateLimiter {
            window,
            burst,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Logs how many complaints of each kind were left out, for the windows that
    /// are over (or all of them).
    pub fn flush(&self, all: bool) {
        let mut seen = crate::lock(&self.seen);
        let now = Instant::now();
        for (what, entry) in seen.iter_mut() {
            if entry.2 > 0 && (all || now.duration_since(entry.0) > self.window) {
                warn!(suppressed = entry.2, "{what}: {} more not logged", entry.2);
                entry.2 = 0;
            }
        }
    }

    pub fn warn(&self, what: &'static str, detail: &str) {
        let mut seen = crate::lock(&self.seen);
        let now = Instant::now();
        let entry = seen.entry(what).or_insert((now, 0, 0));
        if now.duration_since(entry.0) > self.window {
            if entry.2 > 0 {
                warn!(suppressed = entry.2, "{what}: {} more not logged", entry.2);
            }
            *entry = (now, 0, 0);
        }
        if entry.1 < self.burst {
            entry.1 += 1;
            warn!("{what}: {detail}");
        } else {
            entry.2 += 1;
        }
    }
}
