//! At start, the runs that the previous life of the runner left in the journal:
//! queued ones run as usual, interrupted ones run again with `TRACIM_REDELIVERED=1`
//! (or are closed as interrupted for a hook with `rerun_interrupted = false`), and
//! one whose hook was removed is closed as dropped. A hook that changed runs as it
//! is now.

use std::sync::Arc;

use tracim_daemon_sdk::protocol::Event;
use tracing::{info, warn};

use crate::config::Config;
use crate::journal::{Journal, Pending, PendingKind, RunOrigin};
use crate::supervisor::{Run, Supervisor};

/// What became of the pending runs, for the log and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// Queued again (first attempts, retries and reruns).
    pub queued: usize,
    /// Of those, reruns of interrupted runs.
    pub redelivered: usize,
    /// Closed as interrupted (`rerun_interrupted = false`).
    pub interrupted: usize,
    /// Closed as dropped (hook removed, event unreadable, queue full).
    pub dropped: usize,
}

/// Queues (or closes) every pending run, in queue order.
pub fn resume(
    pending: Pending,
    config: &Config,
    journal: &Journal,
    supervisor: &Supervisor,
    daemon_user_id: &Arc<str>,
) -> Resumed {
    let mut done = Resumed::default();
    for p in pending.runs {
        let event_id = p.event.id;
        let in_span = crate::logging::run_span(&p.hook, &p.event.event_type).entered();
        let Some(hook) = config.hook(&p.hook) else {
            warn!(hook = %p.hook, event_id, run = p.run.0, "a run left from before is dropped: its hook is no longer in the config");
            journal.dropped(p.run, "its hook is no longer in the config");
            done.dropped += 1;
            continue;
        };
        let redelivered = p.kind == PendingKind::Interrupted;
        if redelivered && !hook.rerun_interrupted {
            info!(hook = %p.hook, event_id, run = p.run.0, "a run interrupted by the runner's stop is not run again (rerun_interrupted = false)");
            journal.interrupted(p.run);
            done.interrupted += 1;
            continue;
        }
        let event = match Event::from_text(p.event.text.clone()) {
            Ok(event) => event,
            Err(e) => {
                warn!(hook = %p.hook, event_id, "a run left from before is dropped: its stored event cannot be read: {e}");
                journal.dropped(p.run, &format!("the stored event cannot be read: {e}"));
                done.dropped += 1;
                continue;
            }
        };
        // The supervisor makes its own records of the run in a span of its own.
        drop(in_span);
        let run = Run {
            id: Some(p.run),
            attempt: p.attempt,
            redelivered,
            replay: p.origin == RunOrigin::Replay,
            ..Run::new(hook.clone(), event, daemon_user_id.clone())
        };
        // A refusal (queue full) is logged and recorded by the supervisor.
        match supervisor.submit_run(run) {
            Ok(()) => {
                done.queued += 1;
                done.redelivered += usize::from(redelivered);
            }
            Err(_) => done.dropped += 1,
        }
    }
    if done != Resumed::default() {
        info!(
            queued = done.queued,
            redelivered = done.redelivered,
            interrupted = done.interrupted,
            dropped = done.dropped,
            "runs left from before resumed"
        );
    }
    done
}
