//! Running stored events again (`replay`): what to run, read from the journal, and
//! queuing it, with `TRACIM_REPLAY=1`, in whichever supervisor runs it (the
//! service's, or the command's own in the foreground).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tracim_daemon_sdk::protocol::Event;
use tracing::{info, warn};

use crate::config::Config;
use crate::journal::{Journal, JournalError, Reader, StoredEvent};
use crate::supervisor::{Run, Supervisor};

/// What to run again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayRequest {
    /// One event: its hooks (those that ran for it), or only `hook`.
    Event {
        /// The event.
        event_id: u64,
        /// Only this hook (which need not have run for it before).
        hook: Option<String>,
    },
    /// For each event and hook, its newest run when that run failed for good
    /// (or was interrupted) this recently.
    Failed {
        /// How far back, in seconds.
        since_secs: u64,
    },
}

/// Why a replay cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Reading the journal failed.
    #[error("{0}")]
    Journal(#[from] JournalError),
    /// The event is not (or no longer) in the journal.
    #[error("event {0} is not in the journal (never received, or pruned)")]
    UnknownEvent(u64),
    /// No hook ran for the event, and none was named.
    #[error("no hook ran for event {0}: name one with --hook")]
    NoHook(u64),
}

/// One stored event and the hooks to run it with.
#[derive(Debug, Clone)]
pub struct Item {
    /// The event as received.
    pub event: Arc<StoredEvent>,
    /// The hooks, by name, in order.
    pub hooks: Vec<String>,
}

/// A run queued again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// The new run's id in the journal.
    pub run: u64,
    /// The hook.
    pub hook: String,
    /// The event.
    pub event_id: u64,
}

/// A run that was asked for and not queued, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The hook.
    pub hook: String,
    /// The event.
    pub event_id: u64,
    /// Why.
    pub reason: String,
}

/// What a replay queued and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Runs queued.
    pub queued: Vec<Queued>,
    /// Runs not queued.
    pub skipped: Vec<Skipped>,
}

/// Reads from the journal what `request` asks to run.
pub fn plan(reader: &Reader, request: &ReplayRequest) -> Result<Vec<Item>, ReplayError> {
    match request {
        ReplayRequest::Event { event_id, hook } => {
            let detail = reader
                .event(*event_id)?
                .ok_or(ReplayError::UnknownEvent(*event_id))?;
            let hooks = match hook {
                Some(hook) => vec![hook.clone()],
                None => {
                    let mut hooks: Vec<String> = Vec::new();
                    for run in &detail.runs {
                        if !hooks.contains(&run.record.hook) {
                            hooks.push(run.record.hook.clone());
                        }
                    }
                    hooks
                }
            };
            if hooks.is_empty() {
                return Err(ReplayError::NoHook(*event_id));
            }
            Ok(vec![Item {
                event: Arc::new(detail.event),
                hooks,
            }])
        }
        ReplayRequest::Failed { since_secs } => {
            let since = SystemTime::now()
                .checked_sub(Duration::from_secs(*since_secs))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let mut items: Vec<Item> = Vec::new();
            for failed in reader.failed_since(since)? {
                if let Some(item) = items.iter_mut().find(|i| i.event.id == failed.event_id) {
                    if !item.hooks.contains(&failed.hook) {
                        item.hooks.push(failed.hook);
                    }
                    continue;
                }
                // A run whose event was pruned meanwhile has nothing to run.
                if let Some(detail) = reader.event(failed.event_id)? {
                    items.push(Item {
                        event: Arc::new(detail.event),
                        hooks: vec![failed.hook],
                    });
                }
            }
            Ok(items)
        }
    }
}

/// Records new runs for `items` in the journal and queues them as replays, with the
/// hooks as the config has them now. A hook no longer in the config is skipped.
pub fn queue(
    items: &[Item],
    config: &Config,
    journal: &Journal,
    supervisor: &Supervisor,
    daemon_user_id: &Arc<str>,
) -> Outcome {
    let mut outcome = Outcome::default();
    for item in items {
        let event_id = item.event.id;
        let skip = |hook: &str, reason: String| Skipped {
            hook: hook.to_owned(),
            event_id,
            reason,
        };
        let event = match Event::from_text(item.event.text.clone()) {
            Ok(event) => event,
            Err(e) => {
                warn!(event_id, "a stored event cannot be read again: {e}");
                outcome.skipped.extend(
                    item.hooks
                        .iter()
                        .map(|h| skip(h, format!("the stored event cannot be read: {e}"))),
                );
                continue;
            }
        };
        let mut hooks = Vec::new();
        for name in &item.hooks {
            match config.hook(name) {
                Some(hook) => hooks.push(hook.clone()),
                None => outcome
                    .skipped
                    .push(skip(name, "no such hook in the config".into())),
            }
        }
        let ids = journal.record_replay(event_id, hooks.iter().map(|h| h.name.as_str()));
        for (hook, id) in hooks.into_iter().zip(ids) {
            let name = hook.name.clone();
            let run = Run {
                id: Some(id),
                replay: true,
                ..Run::new(hook, event.clone(), daemon_user_id.clone())
            };
            match supervisor.submit_run(run) {
                Ok(()) => {
                    let _run = crate::logging::run_span(&name, event.event_type()).entered();
                    info!(hook = %name, event_id, run = id.0, "replay queued");
                    outcome.queued.push(Queued {
                        run: id.0,
                        hook: name,
                        event_id,
                    });
                }
                Err(refused) => outcome.skipped.push(skip(&name, refused.to_string())),
            }
        }
    }
    outcome
}
