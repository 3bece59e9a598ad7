//! Supervision of hook runs: how many at once, in which order, retries, and a
//! clean stop.
//!
//! [`Supervisor::submit`] never waits: it queues a run or refuses it (and says so)
//! under a short lock, so the caller, and the daemon link behind it, never waits
//! behind hook work. Scheduling is one FIFO queue of runs ready to start; a
//! `serial` or `latest` hook keeps its further runs in a lane of its own and sends
//! the next one to that queue when the current one is done.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::exec::{self, Limits, Outcome};
use crate::hook::{Defaults, Hook, Mode};
use tracim_daemon_sdk::protocol::Event;

/// How often processes that hooks left outside their groups are reaped.
const ORPHAN_SWEEP: Duration = Duration::from_secs(1);

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

/// Counters since start.
#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    retried: AtomicU64,
    refused: AtomicU64,
    coalesced: AtomicU64,
    never_started: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Processes started (retries included).
    pub started: u64,
    /// Runs that exited 0 in time.
    pub succeeded: u64,
    /// Runs that failed for good (after their retries).
    pub failed: u64,
    /// Attempts that ran out of time.
    pub timed_out: u64,
    /// Attempts run again.
    pub retried: u64,
    /// Runs refused (queue full or stopping).
    pub refused: u64,
    /// Waiting runs of `latest` hooks replaced by a newer event.
    pub coalesced: u64,
    /// Queued runs dropped at shutdown.
    pub never_started: u64,
}

/// One attempt of a run, as it ended: for callers that show results (`test --run`,
/// `demo`) or check them (tests).
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The hook.
    pub hook: String,
    /// The event's id.
    pub event_id: u64,
    /// The event's type.
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// How it ended, or why it could not start.
    pub result: Result<Outcome, String>,
    /// Whether another attempt follows.
    pub will_retry: bool,
}

impl RunReport {
    /// Exited 0 in time.
    pub fn success(&self) -> bool {
        matches!(&self.result, Ok(outcome) if outcome.success())
    }

    /// One line for people: how it ended, whether it timed out, how long it
    /// took, and which attempt it was when there were several.
    pub fn status(&self) -> String {
        let mut status = match &self.result {
            Ok(outcome) => {
                let timed_out = if outcome.timed_out { ", timed out" } else { "" };
                format!(
                    "{}{timed_out} in {} ms",
                    outcome.exit,
                    outcome.duration.as_millis()
                )
            }
            Err(e) => e.clone(),
        };
        if self.attempt > 1 || self.will_retry {
            status.push_str(&format!(
                " (attempt {}{})",
                self.attempt,
                if self.will_retry { ", will retry" } else { "" }
            ));
        }
        status
    }
}

struct Job {
    hook: Arc<Hook>,
    event: Event,
    daemon_user_id: Arc<str>,
    attempt: u32,
    arrived: Instant,
}

/// The runs of one `serial` or `latest` hook.
#[derive(Default)]
struct Lane {
    /// A run of the hook is under way: running, waiting in `ready`, or between
    /// retries. Only one is, ever; the next one waits in `pending`.
    busy: bool,
    pending: VecDeque<Job>,
}

struct State {
    settings: Settings,
    ready: VecDeque<Job>,
    lanes: HashMap<String, Lane>,
    /// Runs waiting: always `ready.len()` plus every lane's `pending.len()`.
    queued: usize,
    running: usize,
    retry_timers: usize,
    closed: bool,
}

impl State {
    fn idle(&self) -> bool {
        self.running == 0 && self.queued == 0 && self.retry_timers == 0
    }
}

struct Inner {
    state: Mutex<State>,
    counters: Counters,
    inherited_env: Vec<(OsString, OsString)>,
    changed: Notify,
    cancel: watch::Sender<bool>,
    closing: watch::Sender<bool>,
    spawn_latency: Mutex<Option<Vec<Duration>>>,
    reporter: Mutex<Option<mpsc::UnboundedSender<RunReport>>>,
}

/// Runs hooks for events, within the configured limits. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Supervisor {
    /// A supervisor with these limits. Hooks inherit the runner's environment as it
    /// is now, less the service manager's variables.
    pub fn new(settings: Settings) -> Supervisor {
        let supervisor = Supervisor {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    settings,
                    ready: VecDeque::new(),
                    lanes: HashMap::new(),
                    queued: 0,
                    running: 0,
                    retry_timers: 0,
                    closed: false,
                }),
                counters: Counters::default(),
                inherited_env: crate::env::inherited(),
                changed: Notify::new(),
                cancel: watch::channel(false).0,
                closing: watch::channel(false).0,
                spawn_latency: Mutex::new(None),
                reporter: Mutex::new(None),
            }),
        };
        supervisor.sweep_orphans();
        supervisor
    }

    /// Reaps, every second, what hooks left behind outside their process groups
    /// (see [`exec::reap_orphans`]), for as long as the supervisor lives.
    fn sweep_orphans(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(ORPHAN_SWEEP);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if inner.strong_count() == 0 {
                    return;
                }
                let _ = tokio::task::spawn_blocking(exec::reap_orphans).await;
            }
        });
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
            take_startable(&mut state)
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
        let job = Job {
            hook,
            event,
            daemon_user_id,
            attempt: 0,
            arrived,
        };
        let starts = {
            let mut state = self.lock();
            self.enqueue(&mut state, job)?;
            take_startable(&mut state)
        };
        self.start_all(starts);
        Ok(())
    }

    fn enqueue(&self, state: &mut State, job: Job) -> Result<(), Refused> {
        let refuse = |refused: Refused, job: &Job| {
            self.inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            let total = self.inner.counters.refused.load(Ordering::Relaxed);
            error!(hook = %job.hook.name, event_id = job.event.id(), refused_total = total, "run refused: {refused}");
            Err(refused)
        };
        if state.closed {
            return refuse(Refused::ShuttingDown, &job);
        }
        let mode = job.hook.mode;
        if state.queued >= state.settings.queue_limit {
            // A `latest` hook with a run already waiting replaces it: no growth.
            let replaces = mode == Mode::Latest
                && state
                    .lanes
                    .get(&job.hook.name)
                    .is_some_and(|lane| !lane.pending.is_empty());
            if !replaces {
                return refuse(Refused::QueueFull(state.queued), &job);
            }
        }
        match mode {
            Mode::Parallel => state.ready.push_back(job),
            Mode::Serial | Mode::Latest => {
                let lane = state.lanes.entry(job.hook.name.clone()).or_default();
                if !lane.busy {
                    lane.busy = true;
                    state.ready.push_back(job);
                } else {
                    if mode == Mode::Latest
                        && let Some(skipped) = lane.pending.pop_front()
                    {
                        state.queued -= 1;
                        self.inner
                            .counters
                            .coalesced
                            .fetch_add(1, Ordering::Relaxed);
                        info!(hook = %skipped.hook.name, event_id = skipped.event.id(), newer_event_id = job.event.id(), "skipped: a newer event replaced it (mode = \"latest\")");
                    }
                    lane.pending.push_back(job);
                }
            }
        }
        state.queued += 1;
        Ok(())
    }

    fn start_all(&self, jobs: Vec<Job>) {
        for job in jobs {
            self.start(job);
        }
    }

    /// Starts a job taken from the queue (a slot is already counted for it).
    /// Building the environment and the fork happen on a blocking thread, not
    /// here: `submit` only queues, so its caller never waits on process creation.
    fn start(&self, job: Job) {
        let this = self.clone();
        tokio::spawn(async move {
            let budget = this.lock().settings.env_budget;
            let (hook, event, user) = (
                job.hook.clone(),
                job.event.clone(),
                job.daemon_user_id.clone(),
            );
            let inner = this.inner.clone();
            let spawned = tokio::task::spawn_blocking(move || {
                let spec = exec::hook_spec(&hook, &event, &user, budget, &inner.inherited_env);
                exec::spawn(&spec)
            })
            .await;
            this.inner.counters.started.fetch_add(1, Ordering::Relaxed);
            if let Some(samples) = crate::lock(&this.inner.spawn_latency).as_mut() {
                samples.push(job.arrived.elapsed());
            }
            let result = match spawned {
                Ok(Ok(child)) => {
                    debug!(hook = %job.hook.name, event_id = job.event.id(), pid = child.pid(), attempt = job.attempt + 1, "run started");
                    let limits = Limits {
                        timeout: job.hook.timeout,
                        kill_after: job.hook.kill_after,
                    };
                    let mut cancel = this.inner.cancel.subscribe();
                    let cancelled = async move {
                        let _ = cancel.wait_for(|c| *c).await;
                    };
                    // In a task of its own: were it to panic, the child's drop kills
                    // its group and this run still gives its slot back.
                    tokio::spawn(child.finish(limits, cancelled))
                        .await
                        .map_err(|e| format!("the run's supervision failed: {e}"))
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("the run could not be started: {e}")),
            };
            this.finished(job, result);
        });
    }

    /// Records a finished attempt: logs it, retries it, or frees its lane.
    fn finished(&self, job: Job, result: Result<Outcome, String>) {
        let hook = &job.hook;
        let event_id = job.event.id();
        let attempt = job.attempt + 1;
        let success = match &result {
            Ok(outcome) => {
                let ms = outcome.duration.as_millis() as u64;
                if outcome.timed_out {
                    self.inner
                        .counters
                        .timed_out
                        .fetch_add(1, Ordering::Relaxed);
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
        let mut report = RunReport {
            hook: hook.name.clone(),
            event_id,
            event_type: job.event.event_type().to_owned(),
            attempt,
            result,
            will_retry: false,
        };
        let starts = {
            let mut state = self.lock();
            state.running -= 1;
            if !success && !cancelled && job.attempt < hook.retries && !state.closed {
                report.will_retry = true;
                let delay = retry_delay(hook.retry_delay, job.attempt);
                state.retry_timers += 1;
                self.inner.counters.retried.fetch_add(1, Ordering::Relaxed);
                info!(hook = %hook.name, event_id, attempt, retry_in_ms = delay.as_millis() as u64, "will retry");
                let this = self.clone();
                let job = Job { attempt, ..job };
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
                counter.fetch_add(1, Ordering::Relaxed);
                release_lane(&mut state, &job.hook);
            }
            // Reported before the lock drops, so that whoever sees the supervisor
            // idle also finds the report of its last run.
            if let Some(reporter) = crate::lock(&self.inner.reporter).as_ref() {
                let _ = reporter.send(report);
            }
            take_startable(&mut state)
        };
        self.start_all(starts);
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
                self.inner
                    .counters
                    .never_started
                    .fetch_add(1, Ordering::Relaxed);
                warn!(hook = %job.hook.name, event_id = job.event.id(), "retry never started: shutting down");
                release_lane(&mut state, &job.hook);
            } else {
                // A retry goes first: it has waited already.
                state.ready.push_front(job);
                state.queued += 1;
            }
            take_startable(&mut state)
        };
        self.start_all(starts);
        self.inner.changed.notify_waiters();
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            started: get(&c.started),
            succeeded: get(&c.succeeded),
            failed: get(&c.failed),
            timed_out: get(&c.timed_out),
            retried: get(&c.retried),
            refused: get(&c.refused),
            coalesced: get(&c.coalesced),
            never_started: get(&c.never_started),
        }
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

    /// Starts recording the time from each event's arrival to its process start.
    pub fn record_spawn_latency(&self) {
        *crate::lock(&self.inner.spawn_latency) = Some(Vec::new());
    }

    /// Takes the recorded latencies.
    pub fn take_spawn_latency(&self) -> Vec<Duration> {
        crate::lock(&self.inner.spawn_latency)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Stops taking runs, logs every queued run that will never start, lets the
    /// running ones finish for up to `grace`, then kills their process groups.
    pub async fn shutdown(&self, grace: Duration) {
        let dropped: Vec<Job> = {
            let mut state = self.lock();
            state.closed = true;
            let mut dropped: Vec<Job> = state.ready.drain(..).collect();
            for lane in state.lanes.values_mut() {
                dropped.extend(lane.pending.drain(..));
            }
            state.queued = 0;
            dropped
        };
        self.inner.closing.send_replace(true);
        for job in &dropped {
            warn!(hook = %job.hook.name, event_id = job.event.id(), "run never started: shutting down");
        }
        self.inner
            .counters
            .never_started
            .fetch_add(dropped.len() as u64, Ordering::Relaxed);
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

/// The hook's run is over: its lane takes its next waiting run, or goes idle.
fn release_lane(state: &mut State, hook: &Hook) {
    if hook.mode == Mode::Parallel {
        return;
    }
    if let Some(lane) = state.lanes.get_mut(&hook.name) {
        match lane.pending.pop_front() {
            Some(next) => state.ready.push_back(next),
            None => lane.busy = false,
        }
    }
}

/// The jobs that may start now; their slots are counted before the lock drops.
fn take_startable(state: &mut State) -> Vec<Job> {
    let mut starts = Vec::new();
    while state.running < state.settings.max_parallel {
        let Some(job) = state.ready.pop_front() else {
            break;
        };
        state.queued -= 1;
        state.running += 1;
        starts.push(job);
    }
    starts
}

/// `base`, doubled for each retry already made.
fn retry_delay(base: Duration, retries_made: u32) -> Duration {
    base.saturating_mul(1u32.checked_shl(retries_made).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double() {
        let base = Duration::from_millis(100);
        assert_eq!(retry_delay(base, 0), Duration::from_millis(100));
        assert_eq!(retry_delay(base, 1), Duration::from_millis(200));
        assert_eq!(retry_delay(base, 3), Duration::from_millis(800));
        assert!(retry_delay(base, 40) >= Duration::from_secs(1000));
    }
}
