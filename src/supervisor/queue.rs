//! The scheduling state: one FIFO queue of runs ready to start; for each
//! `serial` or `latest` hook and each value of its `key`, a lane holding its
//! further runs until the current one is done; and the runs of `debounce` hooks
//! still settling. Plain data under the supervisor's lock; no I/O, no sleeping.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tokio::time::Instant as TimerInstant;
use tracim_daemon_sdk::protocol::Event;

use super::Settings;
use super::launch::Failed;
use crate::hook::{Debounce, Hook, Mode};
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
    /// The text of the hook's `key` in the event ("" without a key).
    pub(super) lane: String,
    /// Ids of the older events this run stands for (`TRACIM_COALESCED`).
    pub(super) coalesced: Vec<u64>,
    /// For a run of a failure hook: the run that failed.
    pub(super) failed: Option<Failed>,
}

impl Job {
    /// The span of its records (see [`crate::logging::run_span`]).
    pub(super) fn span(&self) -> tracing::Span {
        crate::logging::run_span(&self.hook.name, self.event.event_type())
    }

    /// Its lane: the hook and the value of its key.
    fn lane_key(&self) -> LaneKey {
        (self.hook.name.clone(), self.lane.clone())
    }

    /// This newer job takes the place of `older`, and the events it stood for.
    fn absorb(&mut self, older: &mut Job) {
        let mut ids = std::mem::take(&mut older.coalesced);
        ids.push(older.event.id());
        ids.append(&mut self.coalesced);
        self.coalesced = ids;
    }
}

/// A hook's name and the value of its `key`.
pub(super) type LaneKey = (String, String);

/// A debounced run waiting for its events to settle.
struct Settling {
    job: Job,
    /// When the first event it holds came: `debounce_max` counts from here.
    first: TimerInstant,
    deadline: TimerInstant,
    /// Tells this wait from a later one of the same lane, for its timer.
    serial: u64,
}

/// What became of a debounced job offered to the queue.
pub(super) enum Settle {
    /// It waits alone: a timer must be set for this lane and serial.
    New(LaneKey, u64),
    /// It took the place of this older job, which is coalesced into it.
    Replaced(Job),
}

/// What a debounce timer finds when it wakes.
pub(super) enum Woke {
    /// The job is due: queue it.
    Due(Job),
    /// A newer event moved the deadline: sleep until then.
    Later(TimerInstant),
    /// The wait is over already (the queue was closed).
    Gone,
}

/// The runs of one `serial` or `latest` hook for one value of its key.
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
    /// Lanes with a run under way; one goes when its last run is over, so that
    /// keys (a note's id) do not pile up.
    lanes: HashMap<LaneKey, Lane>,
    settling: HashMap<LaneKey, Settling>,
    next_serial: u64,
    /// Runs waiting: always `ready.len()`, plus every lane's `pending.len()`,
    /// plus the settling runs.
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
            settling: HashMap::new(),
            next_serial: 0,
            queued: 0,
            running: 0,
            retry_timers: 0,
            closed: false,
        }
    }

    pub(super) fn idle(&self) -> bool {
        self.running == 0 && self.queued == 0 && self.retry_timers == 0
    }

    /// Whether `queue_limit` leaves room for this job: one that replaces a
    /// waiting run (a debounce settling, a `latest` lane's) never grows the queue.
    pub(super) fn has_room_for(&self, job: &Job) -> bool {
        if self.queued < self.settings.queue_limit {
            return true;
        }
        let key = job.lane_key();
        if job.hook.debounce.is_some() {
            self.settling.contains_key(&key)
        } else {
            job.hook.mode == Mode::Latest
                && self
                    .lanes
                    .get(&key)
                    .is_some_and(|lane| !lane.pending.is_empty())
        }
    }

    /// Queues a job by its hook's mode (room was checked by the caller).
    pub(super) fn enqueue(&mut self, mut job: Job) -> Queued {
        let mode = job.hook.mode;
        let mut outcome = Queued::Waiting;
        match mode {
            Mode::Parallel => self.ready.push_back(job),
            Mode::Serial | Mode::Latest => {
                let lane = self.lanes.entry(job.lane_key()).or_default();
                if !lane.busy {
                    lane.busy = true;
                    self.ready.push_back(job);
                } else {
                    if mode == Mode::Latest
                        && let Some(mut replaced) = lane.pending.pop_front()
                    {
                        self.queued -= 1;
                        job.absorb(&mut replaced);
                        outcome = Queued::Replaced(replaced);
                    }
                    lane.pending.push_back(job);
                }
            }
        }
        self.queued += 1;
        outcome
    }

    /// Holds a job of a `debounce` hook until its lane has been quiet for the
    /// debounce, or `debounce_max` has passed since the first event it holds.
    pub(super) fn settle(&mut self, mut job: Job, debounce: Debounce, now: TimerInstant) -> Settle {
        let key = job.lane_key();
        if let Some(waiting) = self.settling.get_mut(&key) {
            job.absorb(&mut waiting.job);
            waiting.deadline = (now + debounce.wait).min(waiting.first + debounce.max);
            return Settle::Replaced(std::mem::replace(&mut waiting.job, job));
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        self.settling.insert(
            key.clone(),
            Settling {
                job,
                first: now,
                deadline: now + debounce.wait.min(debounce.max),
                serial,
            },
        );
        self.queued += 1;
        Settle::New(key, serial)
    }

    /// The debounce timer of `key` woke at `now`.
    pub(super) fn wake(&mut self, key: &LaneKey, serial: u64, now: TimerInstant) -> Woke {
        match self.settling.get(key) {
            Some(waiting) if waiting.serial == serial => {
                if waiting.deadline > now {
                    return Woke::Later(waiting.deadline);
                }
            }
            _ => return Woke::Gone,
        }
        let Some(waiting) = self.settling.remove(key) else {
            return Woke::Gone;
        };
        self.queued -= 1;
        Woke::Due(waiting.job)
    }

    /// A retry goes first: it has waited already.
    pub(super) fn requeue_first(&mut self, job: Job) {
        self.ready.push_front(job);
        self.queued += 1;
    }

    /// The job's run is over: its lane takes its next waiting run, or goes.
    pub(super) fn release_lane(&mut self, job: &Job) {
        if job.hook.mode == Mode::Parallel {
            return;
        }
        let key = job.lane_key();
        if let Some(lane) = self.lanes.get_mut(&key) {
            match lane.pending.pop_front() {
                Some(next) => self.ready.push_back(next),
                None => {
                    self.lanes.remove(&key);
                }
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
        dropped.extend(self.settling.drain().map(|(_, waiting)| waiting.job));
        self.queued = 0;
        dropped
    }
}
