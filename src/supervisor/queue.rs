//! The scheduling state: one FIFO queue of runs ready to start, and for each
//! `serial` or `latest` hook a lane holding its further runs until the current
//! one is done. Plain data under the supervisor's lock; no I/O, no time.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tracim_daemon_sdk::protocol::Event;

use super::Settings;
use crate::hook::{Hook, Mode};
use crate::journal::RunId;

/// A run waiting for its turn or under way.
pub(super) struct Job {
    pub(super) hook: Arc<Hook>,
    pub(super) event: Event,
    pub(super) daemon_user_id: Arc<str>,
    /// Attempts made so far (0 before the first).
    pub(super) attempts_made: u32,
    pub(super) arrived: Instant,
    /// The run in the journal, when it is recorded there.
    pub(super) id: Option<RunId>,
    /// `TRACIM_REDELIVERED=1`: it was running when the runner died.
    pub(super) redelivered: bool,
    /// `TRACIM_REPLAY=1`: someone asked for it again.
    pub(super) replay: bool,
}

impl Job {
    /// The span of its records (see [`crate::logging::run_span`]).
    pub(super) fn span(&self) -> tracing::Span {
        crate::logging::run_span(&self.hook.name, self.event.event_type())
    }
}

/// The runs of one `serial` or `latest` hook.
#[derive(Default)]
struct Lane {
    /// A run of the hook is under way: running, waiting in `ready`, or between
    /// retries. Only one is, ever; the next one waits in `pending`.
    busy: bool,
    pending: VecDeque<Job>,
}

/// What happened to a job offered to the queue.
pub(super) enum Queued {
    /// It waits (or is ready).
    Waiting,
    /// It waits, and replaced this older job of its `latest` lane.
    Replaced(Job),
}

pub(super) struct State {
    pub(super) settings: Settings,
    ready: VecDeque<Job>,
    lanes: HashMap<String, Lane>,
    /// Runs waiting: always `ready.len()` plus every lane's `pending.len()`.
    pub(super) queued: usize,
    pub(super) running: usize,
    pub(super) retry_timers: usize,
    pub(super) closed: bool,
}

impl State {
    pub(super) fn new(settings: Settings) -> State {
        State {
            settings,
            ready: VecDeque::new(),
            lanes: HashMap::new(),
            queued: 0,
            running: 0,
            retry_timers: 0,
            closed: false,
        }
    }

    pub(super) fn idle(&self) -> bool {
        self.running == 0 && self.queued == 0 && self.retry_timers == 0
    }

    /// Whether `queue_limit` leaves room for this job: a `latest` hook with a run
    /// already waiting replaces it, and so never grows the queue.
    pub(super) fn has_room_for(&self, job: &Job) -> bool {
        self.queued < self.settings.queue_limit
            || (job.hook.mode == Mode::Latest
                && self
                    .lanes
                    .get(&job.hook.name)
                    .is_some_and(|lane| !lane.pending.is_empty()))
    }

    /// Queues a job by its hook's mode (room was checked by the caller).
    pub(super) fn enqueue(&mut self, job: Job) -> Queued {
        let mode = job.hook.mode;
        let mut outcome = Queued::Waiting;
        match mode {
            Mode::Parallel => self.ready.push_back(job),
            Mode::Serial | Mode::Latest => {
                let lane = self.lanes.entry(job.hook.name.clone()).or_default();
                if !lane.busy {
                    lane.busy = true;
                    self.ready.push_back(job);
                } else {
                    if mode == Mode::Latest
                        && let Some(replaced) = lane.pending.pop_front()
                    {
                        self.queued -= 1;
                        outcome = Queued::Replaced(replaced);
                    }
                    lane.pending.push_back(job);
                }
            }
        }
        self.queued += 1;
        outcome
    }

    /// A retry goes first: it has waited already.
    pub(super) fn requeue_first(&mut self, job: Job) {
        self.ready.push_front(job);
        self.queued += 1;
    }

    /// The hook's run is over: its lane takes its next waiting run, or goes idle.
    pub(super) fn release_lane(&mut self, hook: &Hook) {
        if hook.mode == Mode::Parallel {
            return;
        }
        if let Some(lane) = self.lanes.get_mut(&hook.name) {
            match lane.pending.pop_front() {
                Some(next) => self.ready.push_back(next),
                None => lane.busy = false,
            }
        }
    }

    /// The jobs that may start now; their slots are counted before the lock drops.
    pub(super) fn take_startable(&mut self) -> Vec<Job> {
        let mut starts = Vec::new();
        while self.running < self.settings.max_parallel {
            let Some(job) = self.ready.pop_front() else {
                break;
            };
            self.queued -= 1;
            self.running += 1;
            starts.push(job);
        }
        starts
    }

    /// Closes the queue and hands back every job that was waiting.
    pub(super) fn close(&mut self) -> Vec<Job> {
        self.closed = true;
        let mut dropped: Vec<Job> = self.ready.drain(..).collect();
        for lane in self.lanes.values_mut() {
            dropped.extend(lane.pending.drain(..));
        }
        self.queued = 0;
        dropped
    }
}
