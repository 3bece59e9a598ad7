//! `replay`: stored events run again with `TRACIM_REPLAY=1`, through the running
//! service when there is one, else in the foreground under the same supervision.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Failure;
use crate::cli::ReplayArgs;
use crate::config::{Config, parse_duration};
use crate::control::{self, ControlError, Request, Response};
use crate::journal::{self, JournalError, Reader};
use crate::replay::{self, Outcome, ReplayRequest};
use crate::supervisor::{ProcessLauncher, Settings, Supervisor};

/// What `--failed` looks back over when `--since` is not given.
const FAILED_SINCE: Duration = Duration::from_secs(24 * 3600);

/// `replay EVENT_ID [--hook NAME]` or `replay --failed [--since DURATION]`.
pub(super) async fn replay(path: &Path, args: ReplayArgs) -> Result<(), Failure> {
    let config = Config::load(path)?;
    if !config.journal.enabled {
        return Err(Failure::new(format!(
            "the journal is disabled in {}: there is nothing stored to replay",
            path.display()
        )));
    }
    let request = match (args.event_id, args.failed) {
        (Some(event_id), false) => ReplayRequest::Event {
            event_id,
            hook: args.hook.clone(),
        },
        _ => {
            let since = match &args.since {
                Some(text) => {
                    parse_duration(text).map_err(|e| Failure::new(format!("--since: {e}")))?
                }
                None => FAILED_SINCE,
            };
            ReplayRequest::Failed {
                since_secs: since.as_secs(),
            }
        }
    };
    if let Some(socket) = control::socket_path(&config.journal) {
        match control::ask(&socket, &Request::Replay(request.clone())).await {
            Ok(Response::Replayed(outcome)) => {
                print_outcome(&outcome, "by the running service");
                return if outcome.queued.is_empty() && !outcome.skipped.is_empty() {
                    Err(Failure::new("nothing was queued"))
                } else {
                    Ok(())
                };
            }
            Ok(Response::Error(message)) => return Err(Failure::new(message)),
            Ok(other) => return Err(Failure::new(format!("unexpected answer: {other:?}"))),
            Err(ControlError::NotRunning) => {}
            Err(e) => return Err(Failure::new(e.to_string())),
        }
    }
    foreground(config, request).await
}

/// No service: the command holds the journal itself and runs the hooks here.
async fn foreground(config: Config, request: ReplayRequest) -> Result<(), Failure> {
    let settings = config.journal.clone();
    let opened = tokio::task::spawn_blocking(move || journal::open(&settings))
        .await
        .map_err(|e| Failure::new(format!("opening the journal failed: {e}")))?;
    let journal = match opened {
        // What the previous life left stays for the service's next start.
        Ok(opened) => opened.journal,
        Err(e @ JournalError::Busy { .. }) => {
            return Err(Failure::new(format!(
                "{e}, which does not answer on its control socket: try again, or stop it"
            )));
        }
        Err(e) => return Err(Failure::new(e.to_string())),
    };
    let file = config.journal.path.clone();
    let planned = tokio::task::spawn_blocking(move || {
        let reader = Reader::open(&file)?;
        replay::plan(&reader, &request)
    })
    .await
    .map_err(|e| Failure::new(format!("reading the journal failed: {e}")))?
    .map_err(|e| Failure::new(e.to_string()))?;
    let supervisor = Supervisor::journaled(
        Settings::from(&config.defaults),
        ProcessLauncher::new(),
        journal.clone(),
    );
    let mut reports = supervisor.reports();
    let user_id: Arc<str> = "".into();
    let outcome = replay::queue(&planned, &config, &journal, &supervisor, &user_id);
    print_outcome(&outcome, "here (no service is running)");
    supervisor.wait_idle().await;
    let mut problems = Vec::new();
    while let Ok(report) = reports.try_recv() {
        super::failure::say_report(&mut std::io::stdout().lock(), &report, &mut problems);
    }
    drop(supervisor);
    match tokio::task::spawn_blocking(move || journal.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("the journal could not be written to the end: {e}")),
        Err(e) => problems.push(format!("closing the journal failed: {e}")),
    }
    if outcome.queued.is_empty() && !outcome.skipped.is_empty() {
        problems.push("nothing was queued".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure { lines: problems })
    }
}

fn print_outcome(outcome: &Outcome, where_: &str) {
    if outcome.queued.is_empty() && outcome.skipped.is_empty() {
        println!("nothing to replay");
    }
    for q in &outcome.queued {
        println!(
            "queued {} for event {} (run {}) {where_}",
            q.hook, q.event_id, q.run
        );
    }
    for s in &outcome.skipped {
        println!("skipped {} for event {}: {}", s.hook, s.event_id, s.reason);
    }
}
