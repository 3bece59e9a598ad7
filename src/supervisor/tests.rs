//! Scheduling on paused time: a launcher whose attempts take a set time and end
//! as told, so limits, lanes, retries and shutdown are checked to the millisecond
//! without processes (exec's own tests and tests/supervision.rs use real ones).

use std::collections::HashMap;

use tokio::time::Instant as TokioInstant;

use super::*;
use crate::exec::Exit;
use crate::hook::{Mode, Output};

/// One attempt as the fake launcher saw it.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) hook: String,
    pub(super) event_id: u64,
    pub(super) number: u32,
    /// Milliseconds of paused time since the test's start.
    pub(super) started_ms: u64,
    /// `TRACIM_COALESCED`, as the launcher is asked to set it.
    pub(super) coalesced: Vec<u64>,
    /// What a failure hook's run is told.
    pub(super) failed: Option<Failed>,
}

/// Runs each attempt for `run_time`, failing the first `failures[hook]` attempts
/// of a hook with exit code 1; records every start and the most at once.
pub(super) struct FakeLauncher {
    t0: TokioInstant,
    run_time: Duration,
    failures: HashMap<String, u32>,
    seen: Mutex<Vec<Seen>>,
    /// (now, most at once)
    running: Arc<Mutex<(usize, usize)>>,
}

impl FakeLauncher {
    pub(super) fn new(run_time: Duration) -> Arc<FakeLauncher> {
        FakeLauncher::failing(run_time, &[])
    }

    pub(super) fn failing(run_time: Duration, failures: &[(&str, u32)]) -> Arc<FakeLauncher> {
        Arc::new(FakeLauncher {
            t0: TokioInstant::now(),
            run_time,
            failures: failures
                .iter()
                .map(|(h, n)| ((*h).to_owned(), *n))
                .collect(),
            seen: Mutex::new(Vec::new()),
            running: Arc::new(Mutex::new((0, 0))),
        })
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        crate::lock(&self.seen).clone()
    }

    pub(super) fn most_at_once(&self) -> usize {
        crate::lock(&self.running).1
    }
}

impl Launcher for FakeLauncher {
    fn launch(&self, attempt: Attempt, cancel: Cancel) -> Running {
        let started = TokioInstant::now();
        crate::lock(&self.seen).push(Seen {
            hook: attempt.hook.name.clone(),
            event_id: attempt.event.id(),
            number: attempt.number,
            started_ms: (started - self.t0).as_millis() as u64,
            coalesced: attempt.coalesced.clone(),
            failed: attempt.failed.clone(),
        });
        {
            let mut running = crate::lock(&self.running);
            running.0 += 1;
            running.1 = running.1.max(running.0);
        }
        let fails = attempt.number <= self.failures.get(&attempt.hook.name).copied().unwrap_or(0);
        let (run_time, running) = (self.run_time, self.running.clone());
        Box::pin(async move {
            let cancelled = tokio::select! {
                () = tokio::time::sleep(run_time) => false,
                () = cancel.cancelled() => true,
            };
            crate::lock(&running).0 -= 1;
            Ok(Outcome {
                exit: if fails || cancelled {
                    Exit::Code(1)
                } else {
                    Exit::Code(0)
                },
                timed_out: false,
                cancelled,
                duration: started.elapsed(),
                stdout_tail: String::new(),
                stderr_tail: format!("attempt {}\n", attempt.number),
            })
        })
    }
}

pub(super) fn hook(name: &str, mode: Mode, retries: u32) -> Arc<Hook> {
    Arc::new(Hook {
        mode,
        output: Output::Null,
        retries,
        retry_delay: Duration::from_millis(100),
        ..Hook::example(name)
    })
}

fn event(id: u64) -> Event {
    Event::from_text(format!(
        r#"{{"event_id":{id},"event_type":"content.modified.html-document","fields":{{}}}}"#
    ))
    .unwrap()
}

pub(super) fn settings(max_parallel: usize, queue_limit: usize) -> Settings {
    Settings {
        max_parallel,
        queue_limit,
        env_budget: Defaults::ENV_BUDGET,
    }
}

pub(super) fn submit(supervisor: &Supervisor, hook: &Arc<Hook>, id: u64) -> Result<(), Refused> {
    supervisor.submit(hook.clone(), event(id), "1".into())
}

#[test]
fn retry_delays_double() {
    let base = Duration::from_millis(100);
    assert_eq!(retry_delay(base, 0), Duration::from_millis(100));
    assert_eq!(retry_delay(base, 1), Duration::from_millis(200));
    assert_eq!(retry_delay(base, 3), Duration::from_millis(800));
    assert!(retry_delay(base, 40) >= Duration::from_secs(1000));
}

#[tokio::test(start_paused = true)]
async fn max_parallel_is_never_exceeded_and_slots_are_reused_at_once() {
    let launcher = FakeLauncher::new(Duration::from_millis(100));
    let supervisor = Supervisor::with_launcher(settings(3, 100), launcher.clone());
    let h = hook("p", Mode::Parallel, 0);
    for id in 1..=10 {
        submit(&supervisor, &h, id).unwrap();
    }
    supervisor.wait_idle().await;
    assert_eq!(launcher.most_at_once(), 3);
    let starts: Vec<u64> = launcher.seen().iter().map(|s| s.started_ms).collect();
    assert_eq!(starts, [0, 0, 0, 100, 100, 100, 200, 200, 200, 300]);
    let ids: Vec<u64> = launcher.seen().iter().map(|s| s.event_id).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>(), "FIFO order");
    assert_eq!(supervisor.stats().succeeded, 10);
}

#[tokio::test(start_paused = true)]
async fn a_serial_hook_runs_one_at_a_time_in_order_beside_a_parallel_one() {
    let launcher = FakeLauncher::new(Duration::from_millis(100));
    let supervisor = Supervisor::with_launcher(settings(8, 100), launcher.clone());
    let (serial, parallel) = (hook("s", Mode::Serial, 0), hook("p", Mode::Parallel, 0));
    for id in 1..=4 {
        submit(&supervisor, &serial, id).unwrap();
        submit(&supervisor, &parallel, 100 + id).unwrap();
    }
    supervisor.wait_idle().await;
    let of = |name: &str| -> Vec<(u64, u64)> {
        launcher
            .seen()
            .iter()
            .filter(|s| s.hook == name)
            .map(|s| (s.event_id, s.started_ms))
            .collect()
    };
    assert_eq!(of("s"), [(1, 0), (2, 100), (3, 200), (4, 300)]);
    assert!(of("p").iter().all(|&(_, at)| at == 0), "{:?}", of("p"));
}

#[tokio::test(start_paused = true)]
async fn latest_keeps_only_the_newest_waiting_event() {
    let launcher = FakeLauncher::new(Duration::from_millis(100));
    let supervisor = Supervisor::with_launcher(settings(8, 100), launcher.clone());
    let h = hook("l", Mode::Latest, 0);
    for id in 1..=5 {
        submit(&supervisor, &h, id).unwrap();
    }
    supervisor.wait_idle().await;
    let ran: Vec<(u64, u64)> = launcher
        .seen()
        .iter()
        .map(|s| (s.event_id, s.started_ms))
        .collect();
    assert_eq!(ran, [(1, 0), (5, 100)]);
    assert_eq!(supervisor.stats().coalesced, 3);
}

#[tokio::test(start_paused = true)]
async fn the_queue_limit_refuses_and_a_latest_replacement_does_not_grow_it() {
    let launcher = FakeLauncher::new(Duration::from_millis(100));
    let supervisor = Supervisor::with_launcher(settings(1, 2), launcher.clone());
    let (p, l) = (hook("p", Mode::Parallel, 0), hook("l", Mode::Latest, 0));
    submit(&supervisor, &p, 1).unwrap(); // runs
    submit(&supervisor, &l, 2).unwrap(); // waits (ready)
    submit(&supervisor, &l, 3).unwrap(); // waits in l's lane
    assert_eq!(supervisor.load(), (1, 2));
    assert_eq!(submit(&supervisor, &p, 4), Err(Refused::QueueFull(2)));
    // A newer event for `l` replaces its waiting one: the queue does not grow.
    submit(&supervisor, &l, 5).unwrap();
    assert_eq!(supervisor.load(), (1, 2));
    supervisor.wait_idle().await;
    let ids: Vec<u64> = launcher.seen().iter().map(|s| s.event_id).collect();
    assert_eq!(ids, [1, 2, 5]);
    let stats = supervisor.stats();
    assert_eq!((stats.refused, stats.coalesced), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_are_retried_after_doubling_delays_ahead_of_the_queue() {
    let launcher = FakeLauncher::failing(Duration::from_millis(10), &[("f", 2)]);
    let supervisor = Supervisor::with_launcher(settings(1, 100), launcher.clone());
    let mut reports = supervisor.reports();
    submit(&supervisor, &hook("f", Mode::Parallel, 3), 1).unwrap();
    supervisor.wait_idle().await;
    let seen = launcher.seen();
    let attempts: Vec<(u32, u64)> = seen.iter().map(|s| (s.number, s.started_ms)).collect();
    // 10 ms run, 100 ms wait; 10 ms run, 200 ms wait; the third succeeds.
    assert_eq!(attempts, [(1, 0), (2, 110), (3, 320)]);
    let mut got = Vec::new();
    while let Ok(report) = reports.try_recv() {
        got.push((report.attempt, report.success(), report.will_retry));
    }
    assert_eq!(got, [(1, false, true), (2, false, true), (3, true, false)]);
    let stats = supervisor.stats();
    assert_eq!((stats.retried, stats.succeeded, stats.failed), (2, 1, 0));
}

/// Panics in the middle of every attempt of event 1; runs the others as told.
struct PanickingLauncher(Arc<FakeLauncher>);

impl Launcher for PanickingLauncher {
    fn launch(&self, attempt: Attempt, cancel: Cancel) -> Running {
        let panics = attempt.event.id() == 1;
        let running = self.0.launch(attempt, cancel);
        Box::pin(async move {
            if panics {
                tokio::time::sleep(Duration::from_millis(5)).await;
                panic!("a bug in a launcher");
            }
            running.await
        })
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_panics_fails_and_gives_its_slot_back() {
    let fake = FakeLauncher::new(Duration::from_millis(10));
    let launcher = Arc::new(PanickingLauncher(fake.clone()));
    let supervisor = Supervisor::with_launcher(settings(1, 100), launcher);
    let mut reports = supervisor.reports();
    let h = hook("p", Mode::Parallel, 0);
    submit(&supervisor, &h, 1).unwrap();
    submit(&supervisor, &h, 2).unwrap();
    supervisor.wait_idle().await;
    let stats = supervisor.stats();
    assert_eq!((stats.failed, stats.succeeded), (1, 1), "{stats:?}");
    let first = reports.try_recv().unwrap();
    assert_eq!(first.event_id, 1);
    match first.result {
        Err(RunError::Supervision(why)) => assert!(why.contains("a bug in a launcher"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        reports.try_recv().unwrap().event_id,
        2,
        "the slot was given back"
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_out_of_retries_fails_for_good() {
    let launcher = FakeLauncher::failing(Duration::from_millis(10), &[("f", 5)]);
    let supervisor = Supervisor::with_launcher(settings(1, 100), launcher.clone());
    submit(&supervisor, &hook("f", Mode::Serial, 1), 1).unwrap();
    submit(&supervisor, &hook("f", Mode::Serial, 1), 2).unwrap();
    supervisor.wait_idle().await;
    let runs: Vec<(u64, u32)> = launcher
        .seen()
        .iter()
        .map(|s| (s.event_id, s.number))
        .collect();
    // The serial lane holds event 2 until event 1's retries are over.
    assert_eq!(runs, [(1, 1), (1, 2), (2, 1), (2, 2)]);
    assert_eq!(supervisor.stats().failed, 2);
}

#[tokio::test(start_paused = true)]
async fn shutdown_drops_the_queue_waits_the_grace_then_cancels() {
    let launcher = FakeLauncher::new(Duration::from_secs(3600));
    let supervisor = Supervisor::with_launcher(settings(2, 100), launcher.clone());
    let mut reports = supervisor.reports();
    let h = hook("p", Mode::Parallel, 2);
    for id in 1..=5 {
        submit(&supervisor, &h, id).unwrap();
    }
    let t0 = TokioInstant::now();
    supervisor.shutdown(Duration::from_secs(10)).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    let stats = supervisor.stats();
    assert_eq!((stats.started, stats.never_started), (2, 3));
    // Cancelled runs are not retried, whatever their retries.
    let mut cancelled = 0;
    while let Ok(report) = reports.try_recv() {
        assert!(!report.will_retry);
        cancelled += usize::from(report.result.is_ok_and(|o| o.cancelled));
    }
    assert_eq!(cancelled, 2);
    assert_eq!(submit(&supervisor, &h, 9), Err(Refused::ShuttingDown));
}

#[tokio::test(start_paused = true)]
async fn new_limits_apply_to_waiting_runs_at_once() {
    let launcher = FakeLauncher::new(Duration::from_millis(100));
    let supervisor = Supervisor::with_launcher(settings(1, 100), launcher.clone());
    let h = hook("p", Mode::Parallel, 0);
    for id in 1..=4 {
        submit(&supervisor, &h, id).unwrap();
    }
    supervisor.configure(settings(4, 100));
    supervisor.wait_idle().await;
    assert!(launcher.seen().iter().all(|s| s.started_ms == 0));
    assert_eq!(launcher.most_at_once(), 4);
}

/// Every run with a journal id leaves its life in the journal: attempts with their
/// ends and output, a merge into a newer run, a refusal; a stop leaves the queue.
#[tokio::test(start_paused = true)]
async fn runs_are_recorded_in_the_journal() {
    use crate::journal::{self, HistoryFilter, JournalSettings, NewEvent, Reader, RunState};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let opened = journal::open(&JournalSettings::at(&path)).unwrap();
    let journal = opened.journal;
    let launcher = FakeLauncher::failing(Duration::from_millis(100), &[("flaky", 1)]);
    let supervisor = Supervisor::journaled(settings(1, 2), launcher.clone(), journal.clone());
    let (flaky, latest) = (
        hook("flaky", Mode::Serial, 1),
        hook("latest", Mode::Latest, 0),
    );
    let submit_recorded = |hook: &Arc<Hook>, id: u64| {
        let e = event(id);
        let ids = journal.record(
            NewEvent {
                id,
                event_type: e.event_type().to_owned(),
                received: std::time::SystemTime::now(),
                text: e.raw_shared(),
            },
            [hook.name.as_str()],
        );
        supervisor.submit_run(Run {
            id: Some(ids[0]),
            ..Run::new(hook.clone(), e, "1".into())
        })
    };
    submit_recorded(&flaky, 1).unwrap(); // starts, fails, retries
    submit_recorded(&latest, 2).unwrap(); // waits for the one slot
    submit_recorded(&latest, 3).unwrap(); // waits in the lane behind 2
    submit_recorded(&latest, 4).unwrap(); // replaces 3
    submit_recorded(&latest, 5).unwrap(); // replaces 4
    assert!(submit_recorded(&flaky, 6).is_err()); // 2 waiting: refused
    supervisor.wait_idle().await;
    supervisor.shutdown(Duration::from_secs(1)).await;
    drop(supervisor);
    journal.flush().unwrap();

    let reader = Reader::open(&path).unwrap();
    let history = reader.history(&HistoryFilter::default()).unwrap();
    let of = |event_id: u64| -> Vec<(u32, RunState, String)> {
        let mut runs: Vec<_> = history
            .iter()
            .filter(|r| r.event_id == event_id)
            .map(|r| (r.attempt, r.state, r.reason.clone().unwrap_or_default()))
            .collect();
        runs.sort_by_key(|r| r.0);
        runs
    };
    assert_eq!(of(1)[0].1, RunState::Failed, "{history:#?}");
    assert_eq!(of(1)[1].1, RunState::Ok);
    assert_eq!(of(1).len(), 2);
    assert_eq!(of(2)[0].1, RunState::Ok);
    assert_eq!(of(3)[0].1, RunState::Coalesced);
    assert_eq!(of(4)[0].1, RunState::Coalesced);
    assert_eq!(of(5)[0].1, RunState::Ok);
    assert_eq!(of(6)[0].1, RunState::Dropped);
    assert!(of(6)[0].2.contains("queue full"), "{:?}", of(6));
    let detail = reader.event(1).unwrap().unwrap();
    assert_eq!(detail.runs[0].stderr_tail, "attempt 1\n");
    assert_eq!(detail.runs[1].stderr_tail, "attempt 2\n");

    // A stop with a queue: what waits stays queued for the next start.
    let supervisor = Supervisor::journaled(settings(1, 10), launcher.clone(), journal.clone());
    let slow = hook("slow", Mode::Parallel, 0);
    let ids = journal.record(
        NewEvent {
            id: 7,
            event_type: "a.b".into(),
            received: std::time::SystemTime::now(),
            text: event(7).raw_shared(),
        },
        ["slow", "slow"],
    );
    for id in &ids {
        supervisor
            .submit_run(Run {
                id: Some(*id),
                ..Run::new(slow.clone(), event(7), "1".into())
            })
            .unwrap();
    }
    supervisor.shutdown(Duration::from_secs(1)).await;
    drop(supervisor);
    journal.close().unwrap();
    let pending = journal::open(&JournalSettings::at(&path)).unwrap().pending;
    let left: Vec<_> = pending.runs.iter().map(|r| (r.run, r.kind)).collect();
    assert_eq!(left, [(ids[1], journal::PendingKind::Queued)]);
}
