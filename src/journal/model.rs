//! The journal's plain data: what the runner records and what it gets back.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

pub use crate::text::OUTPUT_TAIL;
pub(crate) use crate::text::tail;

/// A run: one hook for one event (or one replay of it), across its attempts.
/// Given out by the journal without waiting for disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub u64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An event as received, to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Tracim's event id.
    pub id: u64,
    /// Its type, e.g. `content.modified.html-document`.
    pub event_type: String,
    /// When the runner read it.
    pub received: SystemTime,
    /// The TLM's text exactly as received (shared with the runs' stdin).
    pub text: Arc<str>,
}

/// Why a run is in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOrigin {
    /// The event arrived and the hook matched.
    Event,
    /// Someone asked for it again (`replay`): runs with `TRACIM_REPLAY=1`.
    Replay,
}

impl RunOrigin {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunOrigin::Event => "event",
            RunOrigin::Replay => "replay",
        }
    }

    pub(crate) fn parse(text: &str) -> RunOrigin {
        if text == "replay" {
            RunOrigin::Replay
        } else {
            RunOrigin::Event
        }
    }
}

/// Where one attempt of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Waiting for its turn.
    Queued,
    /// Its child was spawned.
    Running,
    /// Exited 0 within its timeout.
    Ok,
    /// Failed (non-zero, signal, timeout, could not spawn); no attempt follows.
    Failed,
    /// Failed, and another attempt is scheduled (it reads as failed once that starts).
    Retrying,
    /// Will never run (its hook was removed, or the queue refused it).
    Dropped,
    /// Merged into another run of its lane (a debounce or a mode).
    Coalesced,
    /// Was running when the runner died, and is not run again.
    Interrupted,
}

impl RunState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Ok => "ok",
            RunState::Failed => "failed",
            RunState::Retrying => "retrying",
            RunState::Dropped => "dropped",
            RunState::Coalesced => "coalesced",
            RunState::Interrupted => "interrupted",
        }
    }

    /// Reads what [`RunState::as_str`] wrote; anything else (a newer build's state)
    /// reads as failed, which at worst offers it to `replay --failed`.
    pub(crate) fn parse(text: &str) -> RunState {
        match text {
            "queued" => RunState::Queued,
            "running" => RunState::Running,
            "ok" => RunState::Ok,
            "retrying" => RunState::Retrying,
            "dropped" => RunState::Dropped,
            "coalesced" => RunState::Coalesced,
            "interrupted" => RunState::Interrupted,
            _ => RunState::Failed,
        }
    }

    /// Whether this attempt failed (what `history --failed` lists).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            RunState::Failed | RunState::Retrying | RunState::Interrupted
        )
    }

    /// Whether the run is still to do when this is its latest attempt.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            RunState::Queued | RunState::Running | RunState::Retrying
        )
    }
}

/// How a run's child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// It could not be spawned (or waited for): why.
    NotRun(String),
}

/// The end of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    /// How the child ended.
    pub exit: Exit,
    /// Whether it was killed for running past its timeout.
    pub timed_out: bool,
    /// The last [`OUTPUT_TAIL`] bytes of its stdout, escaped as in the logs (longer is cut).
    pub stdout_tail: String,
    /// The same of its stderr.
    pub stderr_tail: String,
    /// Whether another attempt is scheduled (a failure with retries left).
    pub retry: bool,
}

impl RunEnd {
    /// The state this end leaves the attempt in.
    pub fn state(&self) -> RunState {
        if self.exit == Exit::Code(0) && !self.timed_out {
            RunState::Ok
        } else if self.retry {
            RunState::Retrying
        } else {
            RunState::Failed
        }
    }
}

/// An event as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Tracim's event id.
    pub id: u64,
    /// Its type.
    pub event_type: String,
    /// When the runner read it.
    pub received: SystemTime,
    /// The TLM's text exactly as received.
    pub text: Arc<str>,
}

/// Why a run from the previous life is still to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingKind {
    /// Queued and never started.
    Queued,
    /// Its last attempt failed and another was due.
    Retry,
    /// It was running when the runner died: rerun with `TRACIM_REDELIVERED=1`, or close
    /// it with [`super::Journal::interrupted`].
    Interrupted,
}

/// A run left to do by the previous life of the runner.
#[derive(Debug, Clone)]
pub struct PendingRun {
    /// The run, to pass to [`super::Journal::started`] and the rest.
    pub run: RunId,
    /// The hook's name (it may no longer be in the config).
    pub hook: String,
    /// The attempt number to start it as.
    pub attempt: u32,
    /// Why it is pending.
    pub kind: PendingKind,
    /// Whether it is a replay (`TRACIM_REPLAY=1`).
    pub origin: RunOrigin,
    /// The event, shared by the runs of one event.
    pub event: Arc<StoredEvent>,
}

/// What the previous life of the runner left to do, in queue order.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    /// The runs, oldest first.
    pub runs: Vec<PendingRun>,
}

impl Pending {
    /// The runs of one kind.
    pub fn of(&self, kind: PendingKind) -> impl Iterator<Item = &PendingRun> {
        self.runs.iter().filter(move |r| r.kind == kind)
    }
}

/// How the journal's writes go, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Writes fail; what was sent waits in memory and is retried.
    pub degraded: bool,
    /// Since when (the first failure of this spell).
    pub since: Option<SystemTime>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Records waiting in memory for the next successful write.
    pub backlog: usize,
    /// Records given up because the backlog outgrew its bound (since the start).
    pub lost: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_gives_its_state() {
        let end = |exit, timed_out, retry| RunEnd {
            exit,
            timed_out,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            retry,
        };
        assert_eq!(end(Exit::Code(0), false, false).state(), RunState::Ok);
        assert_eq!(end(Exit::Code(0), true, false).state(), RunState::Failed);
        assert_eq!(end(Exit::Code(1), false, true).state(), RunState::Retrying);
        assert_eq!(end(Exit::Signal(9), false, false).state(), RunState::Failed);
        assert_eq!(
            end(Exit::NotRun("ENOENT".into()), false, false).state(),
            RunState::Failed
        );
    }

    #[test]
    fn states_read_back_as_written() {
        for state in [
            RunState::Queued,
            RunState::Running,
            RunState::Ok,
            RunState::Failed,
            RunState::Retrying,
            RunState::Dropped,
            RunState::Coalesced,
            RunState::Interrupted,
        ] {
            assert_eq!(RunState::parse(state.as_str()), state);
        }
        assert_eq!(RunState::parse("from-the-future"), RunState::Failed);
    }
}
