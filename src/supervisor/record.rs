//! What the supervisor tells the journal about each run: its start, its end with
//! the output tails, a merge into another run, a refusal. A run without a journal
//! id (a `test --run`, a test's own) is not recorded.

use crate::exec::{self, Outcome};
use crate::journal::{Exit, Journal, RunEnd, RunId};

use super::RunError;

/// The supervisor's journal, when it has one.
pub(super) struct Recorder(pub(super) Option<Journal>);

impl Recorder {
    fn with(&self, run: Option<RunId>) -> Option<(&Journal, RunId)> {
        Some((self.0.as_ref()?, run?))
    }

    /// Whether runs left queued at a stop stay in the journal for the next start.
    pub(super) fn keeps(&self, run: Option<RunId>) -> bool {
        self.with(run).is_some_and(|(j, _)| j.is_enabled())
    }

    pub(super) fn started(&self, run: Option<RunId>, attempt: u32) {
        if let Some((journal, run)) = self.with(run) {
            journal.started(run, attempt);
        }
    }

    /// An attempt ended. One that the stop cancelled is not recorded: it stays
    /// running in the journal and is run again (redelivered) at the next start.
    pub(super) fn ended(
        &self,
        run: Option<RunId>,
        attempt: u32,
        result: &Result<Outcome, RunError>,
        retry: bool,
    ) {
        let Some((journal, run)) = self.with(run) else {
            return;
        };
        let end = match result {
            Ok(outcome) if outcome.cancelled => return,
            Ok(outcome) => RunEnd {
                exit: match outcome.exit {
                    exec::Exit::Code(code) => Exit::Code(code),
                    exec::Exit::Signal(signal) => Exit::Signal(signal),
                    exec::Exit::Unknown => Exit::NotRun("exit status unknown".into()),
                },
                timed_out: outcome.timed_out,
                stdout_tail: outcome.stdout_tail.clone(),
                stderr_tail: outcome.stderr_tail.clone(),
                retry,
            },
            Err(e) => RunEnd {
                exit: Exit::NotRun(e.to_string()),
                timed_out: false,
                stdout_tail: String::new(),
                stderr_tail: String::new(),
                retry,
            },
        };
        journal.ended(run, attempt, end);
    }

    pub(super) fn coalesced(&self, run: Option<RunId>, into: Option<RunId>) {
        if let (Some((journal, run)), Some(into)) = (self.with(run), into) {
            journal.coalesced(run, into);
        }
    }

    pub(super) fn dropped(&self, run: Option<RunId>, reason: &str) {
        if let Some((journal, run)) = self.with(run) {
            journal.dropped(run, reason);
        }
    }
}
