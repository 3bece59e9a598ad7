//! Lanes per `key`, debounce and failure hooks on paused time, through the fake
//! launcher of `tests`.

use std::sync::Arc;
use std::time::Duration;

use tracim_daemon_sdk::protocol::Event;

use super::tests::{FakeLauncher, hook, settings, submit};
use super::{Failed, Run, Supervisor};
use crate::hook::{Debounce, Hook, Mode};

/// A note edit: `content.modified.html-document` of `content_id` (none: the
/// field is missing).
fn edit(id: u64, content_id: Option<u64>) -> Event {
    let content = content_id.map_or(String::new(), |c| {
        format!(r#""content":{{"content_id":{c}}}"#)
    });
    Event::from_text(format!(
        r#"{{"event_id":{id},"event_type":"content.modified.html-document","fields":{{{content}}}}}"#
    ))
    .unwrap()
}

fn keyed(name: &str, mode: Mode, debounce: Option<(u64, u64)>) -> Arc<Hook> {
    let mut hook = Arc::unwrap_or_clone(hook(name, mode, 0));
    hook.key = Some("fields.content.content_id".into());
    hook.debounce = debounce.map(|(wait, max)| Debounce {
        wait: Duration::from_millis(wait),
        max: Duration::from_millis(max),
    });
    Arc::new(hook)
}

/// (event id, start in ms, coalesced ids) of each attempt of `hook`.
fn runs_of(launcher: &FakeLauncher, hook: &str) -> Vec<(u64, u64, Vec<u64>)> {
    launcher
        .seen()
        .into_iter()
        .filter(|s| s.hook == hook)
        .map(|s| (s.event_id, s.started_ms, s.coalesced))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn latest_keeps_the_newest_event_of_each_key() {
    let launcher = FakeLauncher::new(Duration::from_millis(100));
    let supervisor = Supervisor::with_launcher(settings(8, 100), launcher.clone());
    let h = keyed("backup", Mode::Latest, None);
    // Notes 1 and 2 interleaved, and an event without the field (its own lane).
    let edits = [
        (1, Some(1)),
        (2, Some(2)),
        (3, Some(1)),
        (4, Some(2)),
        (5, Some(1)),
        (6, Some(2)),
        (7, Some(1)),
        (8, None),
        (9, None),
    ];
    for (id, note) in edits {
        supervisor
            .submit(h.clone(), edit(id, note), "1".into())
            .unwrap();
    }
    supervisor.wait_idle().await;
    let mut runs = runs_of(&launcher, "backup");
    runs.sort();
    assert_eq!(
        runs,
        [
            (1, 0, vec![]),
            (2, 0, vec![]),
            (6, 100, vec![4]),
            (7, 100, vec![3, 5]),
            (8, 0, vec![]),
            (9, 100, vec![]),
        ]
    );
    assert_eq!(supervisor.stats().coalesced, 3);
}

#[tokio::test(start_paused = true)]
async fn serial_holds_order_per_key_within_max_parallel() {
    let launcher = FakeLauncher::new(Duration::from_millis(100));
    let supervisor = Supervisor::with_launcher(settings(2, 100), launcher.clone());
    let h = keyed("sync", Mode::Serial, None);
    for (id, note) in [(1, 1), (2, 1), (3, 2), (4, 3), (5, 2)] {
        supervisor
            .submit(h.clone(), edit(id, Some(note)), "1".into())
            .unwrap();
    }
    supervisor.wait_idle().await;
    let runs: Vec<(u64, u64)> = runs_of(&launcher, "sync")
        .into_iter()
        .map(|(e, at, _)| (e, at))
        .collect();
    // Note 1's second edit waits for its first, not for notes 2 and 3; two
    // slots in all.
    assert_eq!(runs, [(1, 0), (3, 0), (4, 100), (2, 100), (5, 200)]);
    assert_eq!(launcher.most_at_once(), 2);
}

/// Five edits of one note within the debounce: one run, with the last event and
/// the four others in TRACIM_COALESCED, recorded as coalesced in the journal;
/// another note's edit in between settles on its own.
#[tokio::test(start_paused = true)]
async fn a_debounce_runs_once_with_the_newest_event_per_key() {
    use crate::journal::{self, HistoryFilter, JournalSettings, NewEvent, Reader, RunState};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let journal = journal::open(&JournalSettings::at(&path)).unwrap().journal;
    let launcher = FakeLauncher::new(Duration::from_millis(10));
    let supervisor = Supervisor::journaled(settings(8, 100), launcher.clone(), journal.clone());
    let h = keyed("backup", Mode::Parallel, Some((10_000, 100_000)));
    let submit = |id: u64, note: u64| {
        let e = edit(id, Some(note));
        let runs = journal.record(
            NewEvent {
                id,
                event_type: e.event_type().to_owned(),
                received: std::time::SystemTime::now(),
                text: e.raw_shared(),
            },
            ["backup"],
        );
        supervisor
            .submit_run(Run {
                id: Some(runs[0]),
                ..Run::new(h.clone(), e, "1".into())
            })
            .unwrap();
    };
    submit(1, 7); // t = 0
    tokio::time::sleep(Duration::from_secs(1)).await;
    submit(10, 8); // t = 1 s, another note
    for id in 2..=5 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        submit(id, 7); // t = 3, 5, 7, 9 s
    }
    assert_eq!(supervisor.load(), (0, 2), "two runs settling, none started");
    supervisor.wait_idle().await;
    assert_eq!(
        runs_of(&launcher, "backup"),
        [(10, 11_000, vec![]), (5, 19_000, vec![1, 2, 3, 4])]
    );
    assert_eq!(supervisor.stats().coalesced, 4);
    drop(supervisor);
    journal.flush().unwrap();
    let history = Reader::open(&path)
        .unwrap()
        .history(&HistoryFilter::default())
        .unwrap();
    let state = |event_id: u64| {
        history
            .iter()
            .find(|r| r.event_id == event_id)
            .map(|r| r.state)
    };
    for id in 1..=4 {
        assert_eq!(
            state(id),
            Some(RunState::Coalesced),
            "event {id}: {history:#?}"
        );
    }
    assert_eq!(state(5), Some(RunState::Ok));
    assert_eq!(state(10), Some(RunState::Ok));
}

/// An edit every 400 ms for 20 s, with a 1 s debounce bounded to 5 s: a run every
/// 5 s or so, not one at the end; every event is run or coalesced.
#[tokio::test(start_paused = true)]
async fn debounce_max_bounds_a_never_ending_spree() {
    let launcher = FakeLauncher::new(Duration::from_millis(10));
    let supervisor = Supervisor::with_launcher(settings(8, 100), launcher.clone());
    let h = keyed("sync", Mode::Latest, Some((1_000, 5_000)));
    for id in 0..50 {
        if id > 0 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        supervisor
            .submit(h.clone(), edit(id, Some(1)), "1".into())
            .unwrap();
    }
    supervisor.wait_idle().await;
    let runs = runs_of(&launcher, "sync");
    let starts: Vec<u64> = runs.iter().map(|r| r.1).collect();
    // Windows open at 0, 5.2, 10.4 and 15.6 s: each closes 5 s later, the last
    // one 1 s after the last edit (19.6 s).
    assert_eq!(starts, [5_000, 10_200, 15_400, 20_600]);
    let ran: Vec<u64> = runs.iter().map(|r| r.0).collect();
    assert_eq!(ran, [12, 25, 38, 49]);
    let mut all: Vec<u64> = runs
        .iter()
        .flat_map(|r| r.2.iter().copied().chain([r.0]))
        .collect();
    all.sort();
    assert_eq!(all, (0..50).collect::<Vec<_>>());
}

/// The failure hooks run once the run has failed for good (after its retry),
/// for the same event, told what failed; a run that succeeds calls none.
#[tokio::test(start_paused = true)]
async fn failure_hooks_run_after_the_last_attempt() {
    let launcher = FakeLauncher::failing(Duration::from_millis(10), &[("flaky", 9)]);
    let supervisor = Supervisor::with_launcher(settings(4, 100), launcher.clone());
    let notify = hook("notify", Mode::Parallel, 0);
    let with_hooks = |name: &str| {
        let mut h = Arc::unwrap_or_clone(hook(name, Mode::Parallel, 1));
        h.on_failure = vec![notify.clone()];
        Arc::new(h)
    };
    submit(&supervisor, &with_hooks("flaky"), 1).unwrap();
    submit(&supervisor, &with_hooks("fine"), 2).unwrap();
    supervisor.wait_idle().await;
    let seen: Vec<(String, u64, u32, u64)> = launcher
        .seen()
        .iter()
        .map(|s| (s.hook.clone(), s.event_id, s.number, s.started_ms))
        .collect();
    assert_eq!(
        seen,
        [
            ("flaky".into(), 1, 1, 0),
            ("fine".into(), 2, 1, 0),
            ("flaky".into(), 1, 2, 110),
            ("notify".into(), 1, 1, 120),
        ]
    );
    let told = launcher.seen().into_iter().find_map(|s| s.failed);
    assert_eq!(
        told,
        Some(Failed {
            hook: "flaky".into(),
            exit: "1".into(),
            attempts: 2,
            timed_out: false,
        })
    );
}
