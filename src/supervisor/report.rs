//! What the supervisor tells about runs: a report per attempt, typed run errors,
//! and counters since start.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::exec::{Outcome, SpawnError};

/// Why an attempt produced no [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The process could not be started (program missing, not executable, bad cwd…).
    #[error("cannot start `{program}`: {reason}")]
    Spawn {
        /// argv\[0\] as configured.
        program: String,
        /// The kind of the system's error, for callers that tell cases apart.
        kind: std::io::ErrorKind,
        /// The system's message.
        reason: String,
    },
    /// The task watching the run ended abnormally (a panic); its process group
    /// was killed and its slot freed.
    #[error("the run's supervision failed: {0}")]
    Supervision(String),
}

impl From<SpawnError> for RunError {
    fn from(e: SpawnError) -> Self {
        RunError::Spawn {
            program: e.program,
            kind: e.source.kind(),
            reason: e.source.to_string(),
        }
    }
}

/// One attempt of a run, as it ended: for callers that show results (`test --run`,
/// `demo`) or check them (tests).
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The hook.
    pub hook: String,
    /// The event's id.
    pub event_id: u64,
    /// The event's type.
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// How it ended, or why it could not start.
    pub result: Result<Outcome, RunError>,
    /// Whether another attempt follows.
    pub will_retry: bool,
}

impl RunReport {
    /// Exited 0 in time.
    pub fn success(&self) -> bool {
        matches!(&self.result, Ok(outcome) if outcome.success())
    }

    /// One line for people: how it ended, whether it timed out, how long it
    /// took, and which attempt it was when there were several.
    pub fn status(&self) -> String {
        let mut status = match &self.result {
            Ok(outcome) => {
                let timed_out = if outcome.timed_out { ", timed out" } else { "" };
                format!(
                    "{}{timed_out} in {} ms",
                    outcome.exit,
                    outcome.duration.as_millis()
                )
            }
            Err(e) => e.to_string(),
        };
        if self.attempt > 1 || self.will_retry {
            status.push_str(&format!(
                " (attempt {}{})",
                self.attempt,
                if self.will_retry { ", will retry" } else { "" }
            ));
        }
        status
    }
}

/// Counters since start.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) started: AtomicU64,
    pub(super) succeeded: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) timed_out: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) coalesced: AtomicU64,
    pub(super) never_started: AtomicU64,
}

impl Counters {
    /// Adds one, returning the new total.
    pub(super) fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(super) fn snapshot(&self) -> Stats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            started: get(&self.started),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            timed_out: get(&self.timed_out),
            retried: get(&self.retried),
            refused: get(&self.refused),
            coalesced: get(&self.coalesced),
            never_started: get(&self.never_started),
        }
    }
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Processes started (retries included).
    pub started: u64,
    /// Runs that exited 0 in time.
    pub succeeded: u64,
    /// Runs that failed for good (after their retries).
    pub failed: u64,
    /// Attempts that ran out of time.
    pub timed_out: u64,
    /// Attempts run again.
    pub retried: u64,
    /// Runs refused (queue full or stopping).
    pub refused: u64,
    /// Waiting runs of `latest` hooks replaced by a newer event.
    pub coalesced: u64,
    /// Queued runs dropped at shutdown.
    pub never_started: u64,
}
