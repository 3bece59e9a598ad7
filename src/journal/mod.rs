//! The journal: an SQLite file holding every event received and every hook run, so that
//! no accepted event is lost to a crash or a restart, each run is on record, and any
//! run can be run again.
//!
//! One writer thread owns the read-write connection and commits in groups, and a
//! checkpoint thread copies the write-ahead log into the file at lulls; the accept
//! path only touches memory ([`Journal::admit`]) and a channel ([`Journal::record`]).
//! Commands read through their own read-only connection ([`Reader`]), so they work
//! whether or not the service runs.
//!
//! # Wiring
//!
//! - **Start**: `let Opened { journal, pending, moved_aside } = journal::open(&settings)?;`
//!   An error is fatal: print it and refuse to start (it names the path and the cause).
//!   `moved_aside` is `Some(path)` when a corrupt file was set aside (already logged).
//!   With `settings.enabled == false` the same call gives a handle that keeps nothing on
//!   disk but still dedupes recent ids in memory (the old `Recent`), so the service has
//!   one code path.
//! - **Pending from the previous life**: for each [`PendingRun`] in `pending.runs`
//!   (in queue order), by [`PendingRun::kind`]:
//!   [`PendingKind::Queued`] and [`PendingKind::Retry`] run as usual, as attempt
//!   [`PendingRun::attempt`]; [`PendingKind::Interrupted`] reruns with
//!   `TRACIM_REDELIVERED=1` as attempt [`PendingRun::attempt`], or, for a hook with
//!   `rerun_interrupted = false`, is closed with [`Journal::interrupted`]. A run whose
//!   hook is no longer in the config is closed with [`Journal::dropped`] (and logged
//!   with hook and event id). Runs with [`RunOrigin::Replay`] get `TRACIM_REPLAY=1`.
//!   Until one of these calls is durable the run stays pending, so a second crash
//!   loses nothing.
//! - **Receive path**, per event: `if !journal.admit(id) { skip }` (a repeat, whichever
//!   way it came), match the hooks, then
//!   `let runs = journal.record(NewEvent { .. }, &hook_names)`: one [`RunId`] per hook,
//!   in order, to hand to the supervisor with the run. Record even when no hook
//!   matches: the id must stay known after a restart. Neither call waits for disk.
//! - **Supervisor**, per run: [`Journal::started`] when the child is spawned,
//!   [`Journal::ended`] when it is reaped (with `retry: true` when another attempt is
//!   scheduled), [`Journal::coalesced`] when merged into another run,
//!   [`Journal::dropped`] when it will never run. A clean stop records nothing for the
//!   runs still queued: they are pending at the next start.
//! - **Replay** (in the service, or the foreground command holding the journal):
//!   [`Reader::event`] gives the stored text; [`Journal::record_replay`] queues new
//!   runs for it (they bypass `admit`). [`Reader::failed_since`] lists what
//!   `replay --failed` should run.
//! - **Stop**: [`Journal::close`] after the supervisor is done: everything sent is
//!   then durable. Dropping the last handle also drains the writer, but cannot report.
//! - **status**: [`Journal::health`] when the service runs ([`Health::degraded`]);
//!   [`Reader::summary`] with `since = now - SUMMARY_WINDOW` from the file either way.
//!   **history**: [`Reader::history`]; with `--event`, [`Reader::event`].
//!   **catch-up**: [`Journal::last_event_id`] (or [`Reader::last_event_id`]).
//!
//! `flush` and `close` block: from async code, call them in `spawn_blocking`.

mod apply;
mod checkpoint;
mod error;
mod files;
mod handle;
mod model;
mod open;
mod prune;
mod query;
mod schema;
mod seen;
mod time;
mod writer;

pub mod measure;

use std::path::PathBuf;
use std::time::Duration;

pub use error::JournalError;
pub use handle::Journal;
pub use model::{
    Exit, Health, NewEvent, OUTPUT_TAIL, Pending, PendingKind, PendingRun, RunEnd, RunId,
    RunOrigin, RunState, StoredEvent,
};
pub use open::{Opened, open};
pub use prune::Pruned;
pub use query::{EventDetail, Failure, HistoryFilter, HookSummary, Reader, RunOutput, RunRecord};
pub(crate) use time::{from_ms, utc};

/// The defaults of the `[journal]` table, in one place.
pub mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::SyncMode;

    /// The journal is on unless turned off.
    pub const ENABLED: bool = true;
    /// Events and their runs are kept 30 days.
    pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
    /// At most this many events are kept (the oldest go first).
    pub const MAX_EVENTS: u64 = 100_000;
    /// Survives a crash of the runner, not a power loss.
    pub const SYNC: SyncMode = SyncMode::Normal;
    /// The file name inside the state directory.
    pub const FILE_NAME: &str = "journal.db";

    /// `$XDG_STATE_HOME/tracim-hooks/journal.db` (`~/.local/state/tracim-hooks/journal.db`).
    pub fn path() -> PathBuf {
        directories::ProjectDirs::from("", "", "tracim-hooks")
            .and_then(|d| d.state_dir().map(|s| s.to_path_buf()))
            .unwrap_or_else(|| PathBuf::from(".local/state/tracim-hooks"))
            .join(FILE_NAME)
    }
}

/// The window of [`Reader::summary`] that `status` shows.
pub const SUMMARY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// How hard each commit holds on to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Survives a crash of the runner (SQLite `synchronous = NORMAL` in WAL mode).
    Normal,
    /// Survives a power loss too: an fsync per commit (`synchronous = FULL`).
    Full,
}

/// The `[journal]` table, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSettings {
    /// Whether anything is kept on disk.
    pub enabled: bool,
    /// The database file.
    pub path: PathBuf,
    /// How long events and their runs are kept.
    pub retention: Duration,
    /// How many events are kept at most.
    pub max_events: u64,
    /// What a commit survives.
    pub sync: SyncMode,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            enabled: defaults::ENABLED,
            path: defaults::path(),
            retention: defaults::RETENTION,
            max_events: defaults::MAX_EVENTS,
            sync: defaults::SYNC,
        }
    }
}

impl JournalSettings {
    /// The defaults with another file: what tests and benchmarks use.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        JournalSettings {
            path: path.into(),
            ..JournalSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_is_in_the_state_dir() {
        let path = defaults::path();
        assert!(path.ends_with("tracim-hooks/journal.db"), "{path:?}");
        let settings = JournalSettings::default();
        assert!(settings.enabled);
        assert_eq!(settings.retention, Duration::from_secs(2_592_000));
        assert_eq!(settings.max_events, 100_000);
        assert_eq!(settings.sync, SyncMode::Normal);
    }

    #[test]
    fn sync_mode_reads_as_in_the_config() {
        #[derive(serde::Deserialize)]
        struct T {
            sync: SyncMode,
        }
        let t: T = toml::from_str(r#"sync = "full""#).unwrap();
        assert_eq!(t.sync, SyncMode::Full);
        assert!(toml::from_str::<T>(r#"sync = "fast""#).is_err());
    }
}
