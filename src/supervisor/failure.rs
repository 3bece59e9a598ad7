//! A run that failed for good calls its hook's `on_failure` hooks: runs of
//! them for the same event, told what failed.

use tracing::info;

use super::queue::Job;
use super::{Failed, Run, RunError, Supervisor};
use crate::exec::{Exit, Outcome};

impl Supervisor {
    /// The runs of the failure hooks of a job that failed for good, for the
    /// same event. They are not in the journal: the failed run is.
    pub(super) fn failure_runs(
        &self,
        job: &Job,
        result: &Result<Outcome, RunError>,
        attempts: u32,
    ) -> Vec<Run> {
        if job.hook.on_failure.is_empty() {
            return Vec::new();
        }
        let (exit, timed_out) = match result {
            Ok(outcome) => (
                match outcome.exit {
                    Exit::Code(code) => code.to_string(),
                    Exit::Signal(signal) => crate::exec::signal_name(signal)
                        .map_or_else(|| signal.to_string(), str::to_owned),
                    Exit::Unknown => "unknown".to_owned(),
                },
                outcome.timed_out,
            ),
            Err(_) => ("not-started".to_owned(), false),
        };
        let failed = Failed {
            hook: job.hook.name.clone(),
            exit,
            attempts,
            timed_out,
        };
        job.hook
            .on_failure
            .iter()
            .inspect(|hook| info!(hook = %hook.name, event_id = job.event.id(), failed_hook = %job.hook.name, exit = %failed.exit, attempts, "failed for good: its failure hook runs"))
            .map(|hook| Run {
                failed: Some(failed.clone()),
                ..Run::new(hook.clone(), job.event.clone(), job.daemon_user_id.clone())
            })
            .collect()
    }
}
