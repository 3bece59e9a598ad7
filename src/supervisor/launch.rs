//! The seam between scheduling and processes: a [`Launcher`] runs one attempt to
//! its end. [`ProcessLauncher`] builds the run's environment and spawns the real
//! process through `exec`; tests of the scheduling supply their own launcher and
//! run on paused time.

use std::ffi::OsString;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracim_daemon_sdk::protocol::Event;
use tracing::{Instrument, debug, trace};

use super::report::RunError;
use crate::env::event_vars;
use crate::exec::{self, Label, Limits, Outcome, Spec};
use crate::hook::Hook;

/// How often, at most, processes that hooks left outside their groups are reaped.
const ORPHAN_SWEEP: Duration = Duration::from_secs(1);

/// One attempt of a run, as the supervisor hands it to its launcher.
#[derive(Clone)]
pub struct Attempt {
    /// The hook, as configured when the run was queued.
    pub hook: Arc<Hook>,
    /// The event.
    pub event: Event,
    /// The daemon's account, for `TRACIM_DAEMON_USER_ID`.
    pub daemon_user_id: Arc<str>,
    /// 1 for the first attempt.
    pub number: u32,
    /// When the event arrived, for the queueing delay in the logs.
    pub arrived: Instant,
    /// Size budget of the `TRACIM_*` variables.
    pub env_budget: usize,
    /// It was running when the runner died and runs again: `TRACIM_REDELIVERED=1`.
    pub redelivered: bool,
    /// Someone asked for it again (`replay`): `TRACIM_REPLAY=1`.
    pub replay: bool,
    /// Ids of the older events this run stands for (a debounce, `latest`):
    /// `TRACIM_COALESCED`, space-separated.
    pub coalesced: Vec<u64>,
    /// For a run of a failure hook: the run that failed (`TRACIM_FAILED_*`).
    pub failed: Option<Failed>,
    /// The span of the attempt's records (see [`crate::logging::run_span`]): made
    /// once, as its fields are formatted by the subscriber each time one is made.
    pub span: tracing::Span,
}

/// A run that failed for good, as its failure hooks are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The hook whose run failed: `TRACIM_FAILED_HOOK`.
    pub hook: String,
    /// Its exit code, or its signal's name (`SIGKILL`), or `not-started`:
    /// `TRACIM_FAILED_EXIT`.
    pub exit: String,
    /// Attempts made: `TRACIM_FAILED_ATTEMPTS`.
    pub attempts: u32,
    /// Its last attempt ran out of time: `TRACIM_FAILED_TIMED_OUT=1`.
    pub timed_out: bool,
}

impl Attempt {
    /// The variables the supervisor adds to the event's: the flags of a
    /// redelivery or a replay, the coalesced events, the failed run.
    pub fn run_vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = Vec::new();
        if self.redelivered {
            vars.push(("TRACIM_REDELIVERED", "1".to_owned()));
        }
        if self.replay {
            vars.push(("TRACIM_REPLAY", "1".to_owned()));
        }
        if !self.coalesced.is_empty() {
            let ids: Vec<String> = self.coalesced.iter().map(u64::to_string).collect();
            vars.push(("TRACIM_COALESCED", ids.join(" ")));
        }
        if let Some(failed) = &self.failed {
            vars.push(("TRACIM_FAILED_HOOK", failed.hook.clone()));
            vars.push(("TRACIM_FAILED_EXIT", failed.exit.clone()));
            vars.push(("TRACIM_FAILED_ATTEMPTS", failed.attempts.to_string()));
            if failed.timed_out {
                vars.push(("TRACIM_FAILED_TIMED_OUT", "1".to_owned()));
            }
        }
        vars
    }
}

/// Resolves once the supervisor gives up on running hooks (shutdown past its grace).
pub struct Cancel(pub(super) watch::Receiver<bool>);

impl Cancel {
    /// Waits for the cancellation (forever if it never comes).
    pub async fn cancelled(mut self) {
        if self.0.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The boxed future of one attempt.
pub type Running = Pin<Box<dyn Future<Output = Result<Outcome, RunError>> + Send>>;

/// An attempt whose panic ends it with a [`RunError::Supervision`] instead of
/// ending the task that awaits it: the child's drop, in the unwinding, kills its
/// group, and the supervisor still hears of the end and gives the slot back. (In
/// place of a task of its own per attempt, which cost a spawn and a wake-up.)
pub(super) struct CatchPanic(pub(super) Running);

impl Future for CatchPanic {
    type Output = Result<Outcome, RunError>;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let running = &mut self.get_mut().0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| running.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                std::task::Poll::Ready(Err(RunError::Supervision(format!(
                    "the run's task panicked: {why}"
                ))))
            }
        }
    }
}

/// Runs attempts. The supervisor calls [`Launcher::launch`] once a slot is free,
/// and counts the slot until the future resolves.
pub trait Launcher: Send + Sync + 'static {
    /// Starts the attempt and runs it to its end (or until `cancel`).
    fn launch(&self, attempt: Attempt, cancel: Cancel) -> Running;
}

/// The real launcher: each attempt is a process in a group of its own.
pub struct ProcessLauncher {
    /// The runner's environment as it was at start, less the service manager's
    /// variables: what every hook inherits.
    inherited_env: Arc<[(OsString, OsString)]>,
}

impl ProcessLauncher {
    /// A launcher whose hooks inherit the runner's environment as it is now. Within
    /// a tokio runtime it also starts the sweep that reaps what hooks leave behind
    /// outside their groups (see [`exec::reap_orphans`]), for as long as it lives.
    pub fn new() -> Arc<ProcessLauncher> {
        let launcher = Arc::new(ProcessLauncher {
            inherited_env: crate::env::inherited(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let alive = Arc::downgrade(&launcher);
            runtime.spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                // Woken by SIGCHLD, not by a timer: an idle runner sleeps.
                let mut children = signal(SignalKind::child()).ok();
                loop {
                    match children.as_mut() {
                        Some(signals) => {
                            if signals.recv().await.is_none() {
                                return;
                            }
                        }
                        None => tokio::time::sleep(ORPHAN_SWEEP).await,
                    }
                    if alive.strong_count() == 0 {
                        return;
                    }
                    let _ = tokio::task::spawn_blocking(exec::reap_orphans).await;
                    // At most one sweep a second, however many children end.
                    tokio::time::sleep(ORPHAN_SWEEP).await;
                }
            });
        }
        launcher
    }
}

impl Launcher for ProcessLauncher {
    /// Building the environment and the fork happen on a blocking thread: the
    /// supervisor's caller never waits on process creation.
    fn launch(&self, attempt: Attempt, cancel: Cancel) -> Running {
        let inherited = self.inherited_env.clone();
        let span = attempt.span.clone();
        let in_span = span.clone();
        Box::pin(async move {
            let hook = attempt.hook.clone();
            let (event, user) = (attempt.event.clone(), attempt.daemon_user_id.clone());
            let budget = attempt.env_budget;
            let run_vars = attempt.run_vars();
            let spawned = tokio::task::spawn_blocking(move || {
                let _in_span = in_span.enter();
                let mut spec = hook_spec(&hook, &event, &user, budget, &inherited);
                spec.env
                    .extend(run_vars.into_iter().map(|(k, v)| (k.into(), v.into())));
                exec::spawn(&spec)
            })
            .await
            .map_err(|e| RunError::Supervision(e.to_string()))??;
            let (hook, event_id) = (&attempt.hook.name, attempt.event.id());
            debug!(hook = %hook, event_id, pid = spawned.pid(), attempt = attempt.number, "run started");
            trace!(target: "tracim_hooks::timing", event_id, since_arrival_us = attempt.arrived.elapsed().as_micros() as u64, "run spawned");
            let limits = Limits {
                timeout: attempt.hook.timeout,
                kill_after: attempt.hook.kill_after,
            };
            // A panic in it is caught by the supervisor (see `CatchPanic`).
            Ok(spawned.finish(limits, cancel.cancelled()).await)
        }.instrument(span))
    }
}

/// The spec a hook runs with for an event: the command (its `exec`
/// placeholders replaced), the environment (the runner's, then the hook's
/// `env`, then the `TRACIM_*` variables) and the event on stdin.
pub fn hook_spec(
    hook: &Hook,
    event: &Event,
    daemon_user_id: &str,
    env_budget: usize,
    inherited: &Arc<[(OsString, OsString)]>,
) -> Spec {
    let vars = event_vars(event, &hook.name, daemon_user_id, env_budget);
    if !vars.omitted.is_empty() {
        debug!(hook = %hook.name, event_id = event.id(), omitted = vars.omitted.len(), "variables over the size budget left out");
    }
    // The variables' own vector, converted in place; the hook's `env` before them.
    let mut env: Vec<(OsString, OsString)> = vars
        .vars
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    env.splice(0..0, hook.env.iter().map(|(k, v)| (k.into(), v.into())));
    Spec {
        argv: crate::placeholder::argv(hook, event),
        inherited: inherited.clone(),
        env,
        cwd: hook.cwd.clone(),
        stdin: Some(event.raw_shared()),
        output: hook.output,
        label: Label {
            hook: hook.name.as_str().into(),
            event_id: event.id(),
            event_type: event.event_type().into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hook_runs_in_its_cwd() {
        // A relative path in the script lands in `cwd`, through the config and
        // hook_spec, as a hook would use it.
        let dir = tempfile::tempdir().unwrap();
        let name = format!("cwd-probe.{}", std::process::id());
        let text = format!(
            "[[hook]]\nname = \"h\"\non = \"*\"\ncwd = \"{}\"\nrun = 'pwd > {name}'\n",
            dir.path().display()
        );
        let config = crate::config::Config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        let event = Event::from_text(r#"{"event_id":1,"event_type":"a.b","fields":{}}"#.to_owned())
            .unwrap();
        let s = hook_spec(
            config.hook("h").unwrap(),
            &event,
            "1",
            crate::hook::Defaults::ENV_BUDGET,
            &crate::env::inherited(),
        );
        let limits = Limits {
            timeout: Duration::from_secs(20),
            kill_after: Duration::from_secs(1),
        };
        let outcome = exec::run(&s, limits, std::future::pending()).await.unwrap();
        // Were cwd ignored, the file is in the test's own directory: tidy up.
        let stray = std::path::Path::new(&name);
        let strayed = stray.exists();
        let _ = std::fs::remove_file(stray);
        assert!(outcome.success(), "{outcome:?}");
        assert!(!strayed, "the hook ran in the runner's directory");
        let said = std::fs::read_to_string(dir.path().join(&name)).unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(said.trim_end(), real.to_str().unwrap());
    }
}
