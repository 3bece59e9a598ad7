//! The writer thread: the only read-write connection, committing what the runner
//! sends in groups, pruning at lulls, and holding on to a batch that
//! failed (a full disk) until a write succeeds again.
//!
//! Group commit: the thread blocks for the first record, takes whatever else is
//! already waiting, and commits it all in one transaction. When idle a lone record
//! is committed at once; under load commits are at least [`COMMIT_GAP`] apart, and
//! what arrives meanwhile waits for the next one. Each commit rewrites the pages
//! every batch touches (the B-trees' inner pages, the index, `meta`) whatever its
//! size, so a batch of a few events costs nearly what a batch of many does; and a
//! writer asleep between commits is not woken by every record the runner sends.
//! So a record is on disk within [`COMMIT_GAP`] and one commit of being sent, with
//! no transaction per event on anyone's path.
//!
//! Upkeep, pruning and asking the checkpointer to copy the log into the file, waits
//! for a [`LULL`] (or a burst past [`BURST_BYTES`]), never slowing a burst down.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use tracing::{debug, error, info, warn};

use super::apply::{Op, commit};
use super::checkpoint::{self, Checkpointer};
use super::error::JournalError;
use super::model::Health;
use super::prune::{self, Pruned};
use super::seen::Seen;
use super::time;

/// Records in one transaction at most, so that one commit stays short.
const MAX_BATCH: usize = 4096;
/// Under load, the least time from one commit's start to the next one's: a record
/// waits at most this and one commit, well within the 10 ms the journal promises,
/// and commits stay few (bench, journal thread's CPU per run dispatched: 36-48 µs
/// with 2 ms, 22-26 µs with 5 ms).
const COMMIT_GAP: Duration = Duration::from_millis(5);
/// While writes fail, how often they are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// While writes fail, how much waits in memory before the oldest records are given up.
pub(crate) const BACKLOG_BYTES: usize = 64 * 1024 * 1024;
/// How often old events are looked for, besides when the count runs over.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Upkeep (the log copied into the file, pruning) waits for a lull, this long
/// with nothing to write, so that it never slows a burst of events down. In a
/// burst the copies and deletes took CPU the accept path wanted (bench, receive
/// in-process, bursts of 50,000 events, journal on / off: 0.83 to 0.89 with
/// SQLite's checkpoints in the commits and pruning as the count ran over).
const LULL: Duration = Duration::from_millis(50);
/// Records written since the last upkeep past which it is done at once, lull or
/// not: what bounds the log, and how far past `max_events` the journal may grow,
/// under a load that never pauses. Some 55,000 average events, far more than a
/// Tracim burst (a bulk import, a space moved). The log is cut back to 16 MiB
/// (`journal_size_limit`) once copied.
const BURST_BYTES: usize = 128 << 20;

/// What the runner's threads and the writer share.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) seen: Mutex<Seen>,
    /// The marks of the `meta` table a source keeps (see [`super::Journal::mark`]).
    pub(crate) marks: Mutex<std::collections::HashMap<String, u64>>,
    pub(crate) health: Mutex<Health>,
    pub(crate) degraded: AtomicBool,
}

/// What the writer is sent.
pub(crate) enum Msg {
    Op(Op),
    /// Answer once everything sent before is committed (or say why not).
    Flush(SyncSender<Result<(), JournalError>>),
    /// Prune now, to the end, and answer with what went.
    Prune(SyncSender<Result<Pruned, JournalError>>),
}

pub(crate) struct Writer {
    /// Declared before `conn`, so dropped first: the writer's connection is the
    /// last to close, and its close copies the rest of the log into the file.
    pub(crate) checkpointer: Checkpointer,
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    pub(crate) rx: Receiver<Msg>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) retention: Duration,
    pub(crate) max_events: u64,
    /// Events in the file, as far as this writer knows.
    pub(crate) events: u64,
    /// Held until the thread ends: the journal has one writer.
    pub(crate) _lock: File,
}

/// The writer's moving parts, apart from its setup.
struct Run {
    backlog: VecDeque<Op>,
    backlog_bytes: usize,
    flushes: Vec<SyncSender<Result<(), JournalError>>>,
    prunes: Vec<SyncSender<Result<Pruned, JournalError>>>,
    next_retry: Instant,
    next_prune: Instant,
    /// When the last commit started.
    last_commit: Instant,
    /// Records committed since the checkpointer was last asked for a checkpoint.
    unchecked: usize,
    pruning: bool,
    pruned: Pruned,
    prune_failed: bool,
    /// Pruning by count starts when the events grow past this (plus a slack): the
    /// count left by the last pruning, which may exceed `max_events` when what is
    /// past it is all pending work.
    count_floor: u64,
}

impl Writer {
    pub(crate) fn run(mut self) {
        let mut run = Run {
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            flushes: Vec::new(),
            prunes: Vec::new(),
            next_retry: Instant::now(),
            next_prune: Instant::now(),
            last_commit: Instant::now(),
            unchecked: 0,
            pruning: true,
            pruned: Pruned::default(),
            prune_failed: false,
            count_floor: self.max_events,
        };
        loop {
            let now = Instant::now();
            let upkeep_due = run.unchecked >= checkpoint::DUE_BYTES || self.prune_due(&run);
            let wait = if run.pruning {
                Duration::ZERO
            } else if self.degraded() && !run.backlog.is_empty() {
                run.next_retry
                    .min(run.next_prune)
                    .saturating_duration_since(now)
            } else if upkeep_due {
                LULL
            } else {
                run.next_prune.saturating_duration_since(now)
            };
            let (open, lull) = match self.rx.recv_timeout(wait) {
                Ok(msg) => {
                    run.take(msg);
                    (true, false)
                }
                Err(RecvTimeoutError::Timeout) => (true, upkeep_due),
                Err(RecvTimeoutError::Disconnected) => (false, false),
            };
            if open && !self.degraded() {
                let since = run.last_commit.elapsed();
                if since < COMMIT_GAP {
                    std::thread::sleep(COMMIT_GAP - since);
                }
            }
            while run.backlog.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(msg) => run.take(msg),
                    Err(_) => break,
                }
            }
            let asked = !run.flushes.is_empty() || !run.prunes.is_empty();
            if !run.backlog.is_empty()
                && (!self.degraded() || asked || !open || Instant::now() >= run.next_retry)
            {
                self.write(&mut run);
            }
            for flush in run.flushes.drain(..) {
                let answer = if run.backlog.is_empty() {
                    Ok(())
                } else {
                    Err(self.degraded_error())
                };
                // The asker may have given up waiting; nothing to do then.
                let _ = flush.send(answer);
            }
            if !open {
                self.finish(&run);
                return;
            }
            if lull || run.unchecked >= BURST_BYTES {
                if run.unchecked >= checkpoint::DUE_BYTES {
                    self.checkpointer.nudge();
                    run.unchecked = 0;
                }
                if self.prune_due(&run) {
                    run.pruning = true;
                }
            }
            if !run.prunes.is_empty() {
                run.pruning = true;
            }
            if run.pruning {
                self.prune_step(&mut run);
            }
        }
    }

    /// Whether old events are to be looked for: it is time, or the count ran over.
    fn prune_due(&self, run: &Run) -> bool {
        let slack = (self.max_events / 100).max(1);
        self.events > run.count_floor + slack || Instant::now() >= run.next_prune
    }

    fn degraded(&self) -> bool {
        self.shared.degraded.load(Ordering::Relaxed)
    }

    fn degraded_error(&self) -> JournalError {
        JournalError::Degraded {
            path: self.path.clone(),
            last_error: crate::lock(&self.shared.health)
                .last_error
                .clone()
                .unwrap_or_default(),
        }
    }

    /// Commits the whole backlog; on failure keeps it (bounded) for the next try.
    fn write(&mut self, run: &mut Run) {
        run.last_commit = Instant::now();
        match commit(&mut self.conn, run.backlog.make_contiguous()) {
            Ok(added) => {
                self.events += added;
                run.unchecked += run.backlog_bytes;
                run.backlog.clear();
                run.backlog_bytes = 0;
                if self.shared.degraded.swap(false, Ordering::Relaxed) {
                    let mut health = crate::lock(&self.shared.health);
                    info!(
                        path = %self.path.display(),
                        "journal writes succeed again; what waited in memory is written"
                    );
                    health.degraded = false;
                    health.since = None;
                    health.backlog = 0;
                }
            }
            Err(e) => {
                run.next_retry = Instant::now() + RETRY_EVERY;
                let mut health = crate::lock(&self.shared.health);
                if !self.shared.degraded.swap(true, Ordering::Relaxed) {
                    // Logged once per spell: a full disk fails every write.
                    error!(
                        path = %self.path.display(),
                        "journal write failed, keeping records in memory and retrying: {e}"
                    );
                    health.degraded = true;
                    health.since = Some(SystemTime::now());
                } else {
                    debug!(path = %self.path.display(), "journal write failed again: {e}");
                }
                health.last_error = Some(e.to_string());
                let mut lost = 0;
                while run.backlog_bytes > BACKLOG_BYTES {
                    let Some(op) = run.backlog.pop_front() else {
                        break;
                    };
                    run.backlog_bytes = run.backlog_bytes.saturating_sub(op.weight());
                    lost += 1;
                }
                if lost > 0 {
                    if health.lost == 0 {
                        warn!(
                            path = %self.path.display(),
                            "journal backlog over {} MiB: the oldest records are given up",
                            BACKLOG_BYTES >> 20
                        );
                    }
                    health.lost += lost;
                }
                health.backlog = run.backlog.len();
            }
        }
    }

    fn prune_step(&mut self, run: &mut Run) {
        let cutoff = time::to_ms(
            SystemTime::now()
                .checked_sub(self.retention)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        );
        let done = match prune::step(&mut self.conn, cutoff, self.max_events) {
            Ok(Some(step)) => {
                let count = step.ids.len() as u64;
                self.events = self.events.saturating_sub(count);
                if step.by_age {
                    run.pruned.by_age += count;
                } else {
                    run.pruned.by_count += count;
                }
                crate::lock(&self.shared.seen).forget(&step.ids);
                run.prune_failed = false;
                !step.more
            }
            Ok(None) => true,
            Err(e) => {
                if !run.prune_failed {
                    warn!(path = %self.path.display(), "journal pruning failed: {e}");
                    run.prune_failed = true;
                }
                for asker in run.prunes.drain(..) {
                    let _ = asker.send(Err(JournalError::Sqlite {
                        context: "pruning",
                        path: self.path.clone(),
                        source: clone_error(&e),
                    }));
                }
                true
            }
        };
        if done {
            if run.pruned != Pruned::default() {
                debug!(path = %self.path.display(), ?run.pruned, "journal pruned");
            }
            for asker in run.prunes.drain(..) {
                let _ = asker.send(Ok(run.pruned));
            }
            run.pruned = Pruned::default();
            run.pruning = false;
            run.next_prune = Instant::now() + PRUNE_EVERY;
            // Count exactly again now and then: `events` drifts if a commit that
            // failed had in fact added rows.
            if let Ok(count) = self
                .conn
                .query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))
            {
                self.events = count.unsigned_abs();
            }
            run.count_floor = self.events.max(self.max_events);
        }
    }

    /// The last handle is gone: what could not be written is said, once.
    fn finish(&mut self, run: &Run) {
        if !run.backlog.is_empty() {
            error!(
                path = %self.path.display(),
                "journal closing with {} records that could not be written",
                run.backlog.len()
            );
        }
    }
}

impl Run {
    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Op(op) => {
                self.backlog_bytes += op.weight();
                self.backlog.push_back(op);
            }
            Msg::Flush(answer) => self.flushes.push(answer),
            Msg::Prune(answer) => self.prunes.push(answer),
        }
    }
}

/// rusqlite errors are not `Clone`; the askers get the code and message.
fn clone_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => super::error::sqlite_failure(rusqlite::ffi::SQLITE_ERROR, other.to_string()),
    }
}
