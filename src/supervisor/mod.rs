//! Supervision of hook runs: how many at once, in which order (lanes per hook
//! and `key`, debounce), retries, failure hooks, and a clean stop.
//!
//! [`Supervisor::submit`] never waits: it queues a run or refuses it (and says so)
//! under a short lock, so the caller, and the daemon link behind it, never waits
//! behind hook work. Scheduling lives in `queue`; what runs an attempt is a
//! [`Launcher`] (the real one spawns processes; tests use their own on paused time).

mod debounce;
mod failure;
mod launch;
mod queue;
mod record;
mod report;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, watch};
use tracim_daemon_sdk::protocol::Event;
use tracing::{error, info, warn};

use crate::exec::Outcome;
use crate::hook::{Defaults, Hook};
use crate::journal::{Journal, RunId};
use queue::{Job, Queued, Settle, State};
use record::Recorder;
use report::Counters;

pub use launch::{Attempt, Cancel, Failed, Launcher, ProcessLauncher, Running, hook_spec};
pub use report::{RunError, RunReport, Stats};

/// Limits that apply over all hooks; taken from `[defaults]` and changed on reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Runs at once.
    pub max_parallel: usize,
    /// Runs waiting for a slot.
    pub queue_limit: usize,
    /// Size budget of the `TRACIM_*` variables.
    pub env_budget: usize,
}

impl From<&Defaults> for Settings {
    fn from(d: &Defaults) -> Self {
        Settings {
            max_parallel: d.max_parallel,
            queue_limit: d.queue_limit,
            env_budget: d.env_budget,
        }
    }
}

/// A run to queue: a hook for an event, and what the journal knows of it.
#[derive(Clone)]
pub struct Run {
    /// The hook.
    pub hook: Arc<Hook>,
    /// The event.
    pub event: Event,
    /// The daemon's account, for `TRACIM_DAEMON_USER_ID`.
    pub daemon_user_id: Arc<str>,
    /// When the event arrived, for latency figures.
    pub arrived: Instant,
    /// The run in the journal; `None` for a run that is not recorded.
    pub id: Option<RunId>,
    /// The attempt it starts as: 1, or more for a run resumed from the journal.
    pub attempt: u32,
    /// It was running when the runner died: runs with `TRACIM_REDELIVERED=1`.
    pub redelivered: bool,
    /// Someone asked for it again: runs with `TRACIM_REPLAY=1`.
    pub replay: bool,
    /// A run of a failure hook: the run that failed (`TRACIM_FAILED_*`).
    pub failed: Option<Failed>,
}

impl Run {
    /// A first attempt, not recorded, arriving now.
    pub fn new(hook: Arc<Hook>, event: Event, daemon_user_id: Arc<str>) -> Run {
        Run {
            hook,
            event,
            daemon_user_id,
            arrived: Instant::now(),
            id: None,
            attempt: 1,
            redelivered: false,
            replay: false,
            failed: None,
        }
    }
}

/// Why a run was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `queue_limit` runs are already waiting.
    #[error("queue full ({0} runs waiting)")]
    QueueFull(usize),
    /// The supervisor is stopping.
    #[error("shutting down")]
    ShuttingDown,
}

struct Inner {
    state: Mutex<State>,
    counters: Counters,
    launcher: Arc<dyn Launcher>,
    changed: Notify,
    cancel: watch::Sender<bool>,
    closing: watch::Sender<bool>,
    reporter: Mutex<Option<mpsc::UnboundedSender<RunReport>>>,
    journal: Recorder,
}

/// Runs hooks for events, within the configured limits. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Supervisor {
    /// A supervisor that runs hooks as processes ([`ProcessLauncher`]).
    pub fn new(settings: Settings) -> Supervisor {
        Supervisor::with_launcher(settings, ProcessLauncher::new())
    }

    /// A supervisor whose attempts are run by `launcher`.
    pub fn with_launcher(settings: Settings, launcher: Arc<dyn Launcher>) -> Supervisor {
        Supervisor::build(settings, launcher, None)
    }

    /// A supervisor that records in `journal` how each run with a journal id goes:
    /// started, ended (with its output tails), coalesced, dropped.
    pub fn journaled(
        settings: Settings,
        launcher: Arc<dyn Launcher>,
        journal: Journal,
    ) -> Supervisor {
        Supervisor::build(settings, launcher, Some(journal))
    }

    fn build(
        settings: Settings,
        launcher: Arc<dyn Launcher>,
        journal: Option<Journal>,
    ) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(settings)),
                counters: Counters::default(),
                launcher,
                changed: Notify::new(),
                cancel: watch::channel(false).0,
                closing: watch::channel(false).0,
                reporter: Mutex::new(None),
                journal: Recorder(journal),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock must not stop all hooks.
        crate::lock(&self.inner.state)
    }

    /// Applies new limits (on reload); runs already started are not touched.
    pub fn configure(&self, settings: Settings) {
        let starts = {
            let mut state = self.lock();
            state.settings = settings;
            state.take_startable()
        };
        self.start_all(starts);
    }

    /// Queues one run of `hook` for `event`. Never waits. A refusal is logged
    /// (with the hook and the event id) and counted here.
    pub fn submit(
        &self,
        hook: Arc<Hook>,
        event: Event,
        daemon_user_id: Arc<str>,
    ) -> Result<(), Refused> {
        self.submit_at(hook, event, daemon_user_id, Instant::now())
    }

    /// As [`submit`](Self::submit), with the time the event arrived, for latency figures.
    pub fn submit_at(
        &self,
        hook: Arc<Hook>,
        event: Event,
        daemon_user_id: Arc<str>,
        arrived: Instant,
    ) -> Result<(), Refused> {
        self.submit_run(Run {
            arrived,
            ..Run::new(hook, event, daemon_user_id)
        })
    }

    /// Queues a run as described. Never waits. A refusal is logged (with the
    /// hook and the event id), counted, and recorded as dropped when the queue is
    /// full; a run refused because the supervisor stops stays queued in the journal.
    pub fn submit_run(&self, run: Run) -> Result<(), Refused> {
        let lane = match &run.hook.key {
            Some(path) => crate::placeholder::field_text(&run.event, path).into_owned(),
            None => String::new(),
        };
        let job = Job {
            hook: run.hook,
            event: run.event,
            daemon_user_id: run.daemon_user_id,
            attempts_made: run.attempt.saturating_sub(1),
            arrived: run.arrived,
            id: run.id,
            redelivered: run.redelivered,
            replay: run.replay,
            lane,
            coalesced: Vec::new(),
            failed: run.failed,
        };
        let starts = {
            let mut state = self.lock();
            let refused = if state.closed {
                Some(Refused::ShuttingDown)
            } else if !state.has_room_for(&job) {
                Some(Refused::QueueFull(state.queued))
            } else {
                None
            };
            if let Some(refused) = refused {
                let total = Counters::bump(&self.inner.counters.refused);
                let _run = job.span().entered();
                error!(hook = %job.hook.name, event_id = job.event.id(), refused_total = total, "run refused: {refused}");
                if let Refused::QueueFull(_) = refused {
                    self.inner.journal.dropped(job.id, &refused.to_string());
                }
                return Err(refused);
            }
            match job.hook.debounce {
                Some(debounce) => {
                    let (newer_event_id, newer_run) = (job.event.id(), job.id);
                    match state.settle(job, debounce, tokio::time::Instant::now()) {
                        Settle::New(key, serial) => self.debounce_timer(key, serial),
                        Settle::Replaced(replaced) => {
                            self.coalesced(&replaced, newer_event_id, newer_run, "debounce")
                        }
                    }
                }
                None => self.enqueue(&mut state, job),
            }
            state.take_startable()
        };
        self.start_all(starts);
        Ok(())
    }

    /// Queues a job by its hook's mode, under the lock.
    fn enqueue(&self, state: &mut State, job: Job) {
        let (newer_event_id, newer_run) = (job.event.id(), job.id);
        if let Queued::Replaced(replaced) = state.enqueue(job) {
            self.coalesced(&replaced, newer_event_id, newer_run, "mode = \"latest\"");
        }
    }

    /// A waiting run gave its place to a newer one, which carries its event id
    /// in `TRACIM_COALESCED`: counted, logged and recorded, never dropped silently.
    fn coalesced(&self, replaced: &Job, newer_event_id: u64, newer_run: Option<RunId>, why: &str) {
        Counters::bump(&self.inner.counters.coalesced);
        self.inner.journal.coalesced(replaced.id, newer_run);
        let _run = replaced.span().entered();
        info!(hook = %replaced.hook.name, event_id = replaced.event.id(), newer_event_id, lane = %replaced.lane, "skipped: a newer event replaced it ({why})");
    }

    fn start_all(&self, jobs: Vec<Job>) {
        for job in jobs {
            self.start(job);
        }
    }

    /// Starts a job taken from the queue (a slot is already counted for it).
    fn start(&self, job: Job) {
        let attempt = Attempt {
            hook: job.hook.clone(),
            event: job.event.clone(),
            daemon_user_id: job.daemon_user_id.clone(),
            number: job.attempts_made + 1,
            arrived: job.arrived,
            env_budget: self.lock().settings.env_budget,
            redelivered: job.redelivered,
            replay: job.replay,
            coalesced: job.coalesced.clone(),
            failed: job.failed.clone(),
            span: job.span(),
        };
        let span = attempt.span.clone();
        self.inner.journal.started(job.id, attempt.number);
        let running = self
            .inner
            .launcher
            .launch(attempt, Cancel(self.inner.cancel.subscribe()));
        Counters::bump(&self.inner.counters.started);
        let this = self.clone();
        tokio::spawn(async move {
            let result = launch::CatchPanic(running).await;
            this.finished(job, result, span);
        });
    }

    /// Records a finished attempt: logs it, retries it, or frees its lane.
    fn finished(&self, job: Job, result: Result<Outcome, RunError>, span: tracing::Span) {
        let hook = &job.hook;
        let event_id = job.event.id();
        let attempt = job.attempts_made + 1;
        if let Ok(outcome) = &result {
            if let Some((code, status)) = outcome.exit.as_systemd() {
                crate::logging::record_exit(&span, code, status);
            }
        }
        let in_span = span.entered();
        let success = match &result {
            Ok(outcome) => {
                let ms = outcome.duration.as_millis() as u64;
                if outcome.timed_out {
                    Counters::bump(&self.inner.counters.timed_out);
                }
                if outcome.success() {
                    info!(hook = %hook.name, event_id, duration_ms = ms, exit = %outcome.exit, timed_out = false, attempt, "run finished");
                } else {
                    warn!(hook = %hook.name, event_id, duration_ms = ms, exit = %outcome.exit, timed_out = outcome.timed_out, cancelled = outcome.cancelled, attempt, "run failed");
                }
                outcome.success()
            }
            Err(e) => {
                warn!(hook = %hook.name, event_id, attempt, "run failed: {e}");
                false
            }
        };
        let cancelled = matches!(&result, Ok(o) if o.cancelled);
        let report_id = job.id;
        let mut report = RunReport {
            hook: hook.name.clone(),
            event_id,
            event_type: job.event.event_type().to_owned(),
            attempt,
            result,
            will_retry: false,
        };
        let mut failure_runs = Vec::new();
        let starts = {
            let mut state = self.lock();
            state.running -= 1;
            if !success && !cancelled && job.attempts_made < hook.retries && !state.closed {
                report.will_retry = true;
                let delay = retry_delay(hook.retry_delay, job.attempts_made);
                state.retry_timers += 1;
                Counters::bump(&self.inner.counters.retried);
                info!(hook = %hook.name, event_id, attempt, retry_in_ms = delay.as_millis() as u64, "will retry");
                let this = self.clone();
                let job = Job {
                    attempts_made: attempt,
                    ..job
                };
                let mut closing = self.inner.closing.subscribe();
                tokio::spawn(async move {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = closing.wait_for(|c| *c) => {}
                    }
                    this.retry_due(job);
                });
            } else {
                let counter = if success {
                    &self.inner.counters.succeeded
                } else {
                    &self.inner.counters.failed
                };
                Counters::bump(counter);
                state.release_lane(&job);
                if !success && !cancelled {
                    failure_runs = self.failure_runs(&job, &report.result, attempt);
                }
            }
            if cancelled && self.inner.journal.keeps(report_id) {
                info!(hook = %report.hook, event_id, attempt, "the stop cut this run short: it runs again at the next start");
            }
            self.inner
                .journal
                .ended(report_id, attempt, &report.result, report.will_retry);
            // Reported before the lock drops, so that whoever sees the supervisor
            // idle also finds the report of its last run.
            if let Some(reporter) = crate::lock(&self.inner.reporter).as_ref() {
                let _ = reporter.send(report);
            }
            state.take_startable()
        };
        // The runs started next are not about this one.
        drop(in_span);
        self.start_all(starts);
        // After the lock: a refusal is logged by submit_run.
        for run in failure_runs {
            let _ = self.submit_run(run);
        }
        self.inner.changed.notify_waiters();
    }

    /// Receives a [`RunReport`] for every attempt that ends from now on (one
    /// receiver at a time: a new call replaces the previous one).
    pub fn reports(&self) -> mpsc::UnboundedReceiver<RunReport> {
        let (tx, rx) = mpsc::unbounded_channel();
        *crate::lock(&self.inner.reporter) = Some(tx);
        rx
    }

    fn retry_due(&self, job: Job) {
        let starts = {
            let mut state = self.lock();
            state.retry_timers -= 1;
            if state.closed {
                Counters::bump(&self.inner.counters.never_started);
                let _run = job.span().entered();
                if self.inner.journal.keeps(job.id) {
                    info!(hook = %job.hook.name, event_id = job.event.id(), "retry left in the journal: it runs at the next start");
                } else {
                    warn!(hook = %job.hook.name, event_id = job.event.id(), "retry never started: shutting down");
                }
                state.release_lane(&job);
            } else {
                state.requeue_first(job);
            }
            state.take_startable()
        };
        self.start_all(starts);
        self.inner.changed.notify_waiters();
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Runs going on now, and runs waiting.
    pub fn load(&self) -> (usize, usize) {
        let state = self.lock();
        (state.running, state.queued)
    }

    /// Waits until nothing runs, waits or is due for a retry.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.changed.notified();
            if self.lock().idle() {
                return;
            }
            notified.await;
        }
    }

    /// Stops taking runs, logs every queued run that will never start (with a
    /// journal, they stay queued there for the next start), lets the running ones finish for up to `grace`, then cancels them (their launcher
    /// kills their process groups).
    pub async fn shutdown(&self, grace: Duration) {
        let dropped = self.lock().close();
        self.inner.closing.send_replace(true);
        let mut kept = 0;
        for job in &dropped {
            Counters::bump(&self.inner.counters.never_started);
            if self.inner.journal.keeps(job.id) {
                kept += 1;
            } else {
                let _run = job.span().entered();
                warn!(hook = %job.hook.name, event_id = job.event.id(), "run never started: shutting down");
            }
        }
        if kept > 0 {
            info!(
                runs = kept,
                "queued runs left in the journal: they run at the next start"
            );
        }
        let (running, _) = self.load();
        if running > 0 {
            info!(
                running,
                grace_ms = grace.as_millis() as u64,
                "waiting for running hooks to finish"
            );
        }
        if tokio::time::timeout(grace, self.wait_idle()).await.is_err() {
            let (running, _) = self.load();
            warn!(
                running,
                "shutdown grace over: killing the remaining hooks' process groups"
            );
            self.inner.cancel.send_replace(true);
            self.wait_idle().await;
        }
    }
}

/// `base`, doubled for each retry already made.
fn retry_delay(base: Duration, retries_made: u32) -> Duration {
    base.saturating_mul(1u32.checked_shl(retries_made).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lanes;
