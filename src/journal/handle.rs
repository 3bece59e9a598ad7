//! [`Journal`]: the runner's handle on the journal. Every call that records returns at
//! once (memory and a channel); only [`Journal::flush`], [`Journal::prune_now`] and
//! [`Journal::close`] wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tracing::{error, warn};

use super::apply::Op;
use super::error::JournalError;
use super::model::{Health, NewEvent, OUTPUT_TAIL, RunEnd, RunId, RunOrigin, RunState, tail};
use super::prune::Pruned;
use super::seen::Seen;
use super::time;
use super::writer::{Msg, Shared};

/// The runner's handle on the journal; clones share it. The writer thread stops
/// when the last clone is dropped, after writing what was sent.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `None` when the journal is off: records go nowhere.
    tx: Option<Sender<Msg>>,
    shared: Arc<Shared>,
    next_run: AtomicU64,
    /// The highest event id recorded, -1 for none (stored ids fit an i64).
    last_event: AtomicI64,
    thread: Mutex<Option<JoinHandle<()>>>,
    writer_gone: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer drain and stop; waiting for it
        // releases the file lock before a new journal may open the same file.
        drop(self.tx.take());
        if let Some(thread) = crate::lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Journal {
    pub(crate) fn start(
        path: PathBuf,
        tx: Option<Sender<Msg>>,
        shared: Arc<Shared>,
        next_run: u64,
        last_event: Option<i64>,
        thread: Option<JoinHandle<()>>,
    ) -> Journal {
        Journal {
            inner: Arc::new(Inner {
                path,
                tx,
                shared,
                next_run: AtomicU64::new(next_run),
                last_event: AtomicI64::new(last_event.unwrap_or(-1)),
                thread: Mutex::new(thread),
                writer_gone: AtomicBool::new(false),
            }),
        }
    }

    /// A journal that keeps nothing on disk (`[journal] enabled = false`): it still
    /// drops a repeat of a recent event id, and gives out run ids.
    pub fn disabled() -> Journal {
        let shared = Shared {
            seen: Mutex::new(Seen::recent()),
            ..Shared::default()
        };
        Journal::start(PathBuf::new(), None, Arc::new(shared), 1, None, None)
    }

    /// Whether records reach a file.
    pub fn is_enabled(&self) -> bool {
        self.inner.tx.is_some()
    }

    /// The database file (empty when disabled).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// True the first time an event id is offered, false for an id already in the
    /// journal (or admitted since): then its hooks must not run again. Memory only.
    pub fn admit(&self, event_id: u64) -> bool {
        crate::lock(&self.inner.shared.seen).admit(event_id)
    }

    /// Whether an event id is in the journal (or was admitted since), without
    /// admitting it: what a catch-up leaves out before counting against its limits.
    pub fn knows(&self, event_id: u64) -> bool {
        crate::lock(&self.inner.shared.seen).contains(event_id)
    }

    /// A source's mark: a value kept across restarts in the journal's `meta` table
    /// (where a catch-up must start from). Memory only; loaded at open.
    pub fn mark(&self, key: &str) -> Option<u64> {
        crate::lock(&self.inner.shared.marks).get(key).copied()
    }

    /// Sets (`Some`) or clears (`None`) a mark; committed with the next group, so in
    /// order with the events recorded before and after it.
    pub fn set_mark(&self, key: &str, value: Option<u64>) {
        {
            let mut marks = crate::lock(&self.inner.shared.marks);
            match value {
                Some(v) => marks.insert(key.to_owned(), v),
                None => marks.remove(key),
            };
        }
        let value = match value.map(i64::try_from) {
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => return,
            None => None,
        };
        self.send(Op::Mark {
            key: key.to_owned(),
            value,
        });
    }

    /// Records an admitted event with the runs it causes, one per hook in order, all
    /// queued; they are committed together. Returns their ids at once.
    pub fn record<S: AsRef<str>>(
        &self,
        event: NewEvent,
        hooks: impl IntoIterator<Item = S>,
    ) -> Vec<RunId> {
        let runs = self.new_runs(hooks);
        let ids = runs.iter().map(|(id, _)| *id).collect();
        let Ok(id) = i64::try_from(event.id) else {
            // Tracim's ids are database serials; one this large is not from it.
            warn!(
                event_id = event.id,
                "event id too large for the journal: its runs are not recorded"
            );
            return ids;
        };
        self.inner.last_event.fetch_max(id, Ordering::Relaxed);
        self.send(Op::Event {
            id,
            event_type: event.event_type,
            received_ms: time::to_ms(event.received),
            text: event.text,
            runs,
        });
        ids
    }

    /// Queues new runs of an event already in the journal (a replay): they do not go
    /// through [`Journal::admit`].
    pub fn record_replay<S: AsRef<str>>(
        &self,
        event_id: u64,
        hooks: impl IntoIterator<Item = S>,
    ) -> Vec<RunId> {
        let runs = self.new_runs(hooks);
        let ids = runs.iter().map(|(id, _)| *id).collect();
        if let Ok(event_id) = i64::try_from(event_id) {
            self.send(Op::Runs {
                event_id,
                origin: RunOrigin::Replay,
                at_ms: time::now_ms(),
                runs,
            });
        }
        ids
    }

    /// An attempt of a run started (its child was spawned). Attempts count from 1.
    pub fn started(&self, run: RunId, attempt: u32) {
        self.send(Op::Started {
            run,
            attempt,
            at_ms: time::now_ms(),
        });
    }

    /// An attempt of a run ended. The output tails are cut to [`OUTPUT_TAIL`].
    pub fn ended(&self, run: RunId, attempt: u32, mut end: RunEnd) {
        for text in [&mut end.stdout_tail, &mut end.stderr_tail] {
            if text.len() > OUTPUT_TAIL {
                *text = tail(text, OUTPUT_TAIL).to_owned();
            }
        }
        self.send(Op::Ended {
            run,
            attempt,
            at_ms: time::now_ms(),
            end,
        });
    }

    /// A run will never run (its hook was removed, or it was refused): why.
    pub fn dropped(&self, run: RunId, reason: &str) {
        self.close_run(run, RunState::Dropped, Some(reason.to_owned()));
    }

    /// A run was merged into another run of its lane.
    pub fn coalesced(&self, run: RunId, into: RunId) {
        self.close_run(run, RunState::Coalesced, Some(format!("into run {into}")));
    }

    /// A run that was running when the runner died is not run again.
    pub fn interrupted(&self, run: RunId) {
        self.close_run(
            run,
            RunState::Interrupted,
            Some("running when the runner stopped".to_owned()),
        );
    }

    /// Waits until everything sent before is committed. An error says it is not:
    /// the journal is degraded (it is kept in memory and retried) or gone.
    pub fn flush(&self) -> Result<(), JournalError> {
        let Some(tx) = &self.inner.tx else {
            return Ok(());
        };
        let (answer, wait) = mpsc::sync_channel(1);
        tx.send(Msg::Flush(answer)).map_err(|_| self.gone())?;
        wait.recv().map_err(|_| self.gone())?
    }

    /// Prunes now what retention and `max_events` allow, and says what went (the
    /// writer also does this by itself).
    pub fn prune_now(&self) -> Result<Pruned, JournalError> {
        let Some(tx) = &self.inner.tx else {
            return Ok(Pruned::default());
        };
        let (answer, wait) = mpsc::sync_channel(1);
        tx.send(Msg::Prune(answer)).map_err(|_| self.gone())?;
        wait.recv().map_err(|_| self.gone())?
    }

    /// Flushes, then lets this handle go; the writer stops with the last handle.
    pub fn close(self) -> Result<(), JournalError> {
        self.flush()
    }

    /// How writes go (for `status`).
    pub fn health(&self) -> Health {
        crate::lock(&self.inner.shared.health).clone()
    }

    /// The highest event id recorded: where a catch-up from Tracim starts from.
    pub fn last_event_id(&self) -> Option<u64> {
        u64::try_from(self.inner.last_event.load(Ordering::Relaxed)).ok()
    }

    fn new_runs<S: AsRef<str>>(&self, hooks: impl IntoIterator<Item = S>) -> Vec<(RunId, String)> {
        hooks
            .into_iter()
            .map(|hook| {
                let id = self.inner.next_run.fetch_add(1, Ordering::Relaxed);
                (RunId(id), hook.as_ref().to_owned())
            })
            .collect()
    }

    fn close_run(&self, run: RunId, state: RunState, reason: Option<String>) {
        self.send(Op::Closed {
            run,
            state,
            reason,
            at_ms: time::now_ms(),
        });
    }

    fn send(&self, op: Op) {
        let Some(tx) = &self.inner.tx else {
            return;
        };
        if tx.send(Msg::Op(op)).is_err() && !self.inner.writer_gone.swap(true, Ordering::Relaxed) {
            error!(path = %self.inner.path.display(), "the journal writer has stopped: nothing more is recorded");
            let mut health = crate::lock(&self.inner.shared.health);
            health.degraded = true;
            health.last_error = Some("the writer thread stopped".to_owned());
        }
    }

    fn gone(&self) -> JournalError {
        JournalError::WriterGone {
            path: self.inner.path.clone(),
        }
    }
}
