//! The journal wired into the runner, with real processes and a real database
//! file: a `kill -9` or a SIGTERM with runs queued loses none, an event id runs
//! once across deliveries and restarts, what the previous life left runs as the
//! config now says, retention prunes, a corrupt file is set aside.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use tracim_hooks::journal::{HistoryFilter, Reader, RunState};

/// Generous: the machine is shared; this only bounds waits for positive signs.
const LONG: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(20);

fn journal_path(place: &Place) -> PathBuf {
    place.path().join("state").join("journal.db")
}

/// A config on this place's sockets with its journal in the place.
fn config(place: &Place, defaults: &str, hooks: &str) -> PathBuf {
    place.write_config(&format!(
        "[defaults]\n{defaults}\n[journal]\npath = \"{}\"\n{hooks}",
        journal_path(place).display()
    ))
}

/// A hook that appends `ID REDELIVERED REPLAY` to `out/runs` as it starts and
/// `end ID` as it ends; the run of event 1 takes 3 s, so that it is surely going
/// on when the runner is stopped.
fn logging_hook(name: &str, out: &Path, extra: &str) -> String {
    format!(
        r#"
[[hook]]
name = "{name}"
on = "*"
env = {{ OUT = "{out}" }}
run = 'echo "$TRACIM_EVENT_ID ${{TRACIM_REDELIVERED:-0}} ${{TRACIM_REPLAY:-0}}" >> "$OUT/runs"; if [ "$TRACIM_EVENT_ID" = 1 ]; then sleep 3; fi; echo "end $TRACIM_EVENT_ID" >> "$OUT/ends"'
{extra}
"#,
        out = out.display()
    )
}

fn tlm(id: u64) -> String {
    format!(
        r#"{{"event_id": {id}, "event_type": "content.modified.html-document", "fields": {{"author": {{"user_id": 1}}, "content": {{"label": "n°{id}"}}}}, "read": null, "created": "2024-01-01T00:00:00Z"}}"#
    )
}

/// The runs of the journal, every attempt (the file read as the commands read it).
fn recorded(place: &Place) -> Vec<tracim_hooks::journal::RunRecord> {
    let Ok(reader) = Reader::open(&journal_path(place)) else {
        return Vec::new();
    };
    reader
        .history(&HistoryFilter {
            limit: 100_000,
            ..HistoryFilter::default()
        })
        .unwrap_or_default()
}

/// Each run's latest attempt, by run id.
fn latest(place: &Place) -> HashMap<u64, tracim_hooks::journal::RunRecord> {
    let mut by_run: HashMap<u64, tracim_hooks::journal::RunRecord> = HashMap::new();
    for r in recorded(place) {
        let newer = by_run.get(&r.run.0).is_none_or(|o| o.attempt < r.attempt);
        if newer {
            by_run.insert(r.run.0, r);
        }
    }
    by_run
}

/// `(event id, redelivered, replay)` of each start, in order.
fn starts(out: &Path) -> Vec<(u64, bool, bool)> {
    lines(&out.join("runs"))
        .iter()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            let id = parts.next()?.parse().ok()?;
            Some((id, parts.next()? == "1", parts.next()? == "1"))
        })
        .collect()
}

async fn start(place: &Place, sim: &tracim_daemon_sdk::sim::SimDaemon) -> Runner {
    let runner = place.runner();
    assert!(
        sim.wait_for_client(&place.socket(), SHORT).await,
        "not registered:\n{}",
        runner.log()
    );
    runner
}

async fn send_all(sim: &tracim_daemon_sdk::sim::SimDaemon, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        assert_eq!(sim.send_event(&tlm(id)).await.ok, 1, "event {id} not taken");
    }
}

/// Stops the runner in the middle of a queue (SIGKILL or SIGTERM), starts it
/// again, and returns the starts seen once every run is done.
async fn stop_with_a_queue_and_start_again(
    signal: i32,
    events: u64,
) -> (Vec<(u64, bool, bool)>, String) {
    let place = Place::new();
    let out = place.out();
    config(&place, "max_parallel = 1", &logging_hook("h", &out, ""));
    let sim = place.sim(Duration::from_secs(30)).await;
    let mut runner = start(&place, &sim).await;
    send_all(&sim, 1..=events).await;
    // Every event committed with its run, and the first run going on (3 s).
    assert!(
        wait_for(LONG, || recorded(&place).len() as u64 >= events).await,
        "the journal did not get every run:\n{}",
        runner.log()
    );
    assert!(wait_for(SHORT, || !starts(&out).is_empty()).await);
    assert_eq!(
        starts(&out),
        [(1, false, false)],
        "the queue moved past event 1"
    );
    runner.signal(signal);
    let status = runner.wait_exit(SHORT).await;
    let first_log = runner.log();
    if signal == libc::SIGTERM {
        assert!(status.success(), "{first_log}");
        assert!(
            first_log.contains("queued runs left in the journal: they run at the next start"),
            "{first_log}"
        );
        assert!(!first_log.contains("never started"), "{first_log}");
    }
    drop(runner);

    let runner = start(&place, &sim).await;
    let done = wait_for(LONG, || {
        let runs = latest(&place);
        runs.len() as u64 == events && runs.values().all(|r| r.state == RunState::Ok)
    })
    .await;
    assert!(done, "not every run ended ok:\n{}", runner.log());
    (starts(&out), runner.log())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_with_200_queued_runs_loses_none_and_reruns_only_the_running_one() {
    let (starts, log) = stop_with_a_queue_and_start_again(libc::SIGKILL, 200).await;
    let mut count: HashMap<u64, Vec<(bool, bool)>> = HashMap::new();
    for (id, redelivered, replay) in starts {
        count.entry(id).or_default().push((redelivered, replay));
    }
    for id in 1..=200 {
        assert!(count.contains_key(&id), "event {id} never ran:\n{log}");
    }
    assert_eq!(count.len(), 200);
    // Event 1 was running when the runner died: run again, and said so.
    assert_eq!(count[&1], [(false, false), (true, false)], "{log}");
    for id in 2..=200 {
        assert_eq!(count[&id], [(false, false)], "event {id}");
    }
    assert!(log.contains("runs left from before resumed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_with_a_queue_leaves_it_for_the_next_start_and_each_runs_once() {
    let (starts, _) = stop_with_a_queue_and_start_again(libc::SIGTERM, 100).await;
    let mut ids: Vec<u64> = starts.iter().map(|s| s.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=100).collect::<Vec<u64>>());
    assert!(
        starts
            .iter()
            .all(|&(_, redelivered, replay)| !redelivered && !replay)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_runs_once_delivered_twice_and_again_after_a_restart() {
    let place = Place::new();
    let out = place.out();
    config(&place, "", &logging_hook("h", &out, ""));
    let sim = place.sim(Duration::from_secs(30)).await;
    let mut runner = start(&place, &sim).await;
    send_all(&sim, 7..=7).await;
    send_all(&sim, 7..=7).await;
    send_all(&sim, 8..=8).await;
    assert!(wait_for(SHORT, || lines(&out.join("ends")).len() == 2).await);
    runner.signal(libc::SIGTERM);
    assert!(runner.wait_exit(SHORT).await.success());
    drop(runner);
    let runner = start(&place, &sim).await;
    send_all(&sim, 7..=7).await;
    send_all(&sim, 9..=9).await;
    assert!(wait_for(SHORT, || lines(&out.join("ends")).len() == 3).await);
    let mut ids: Vec<u64> = starts(&out).iter().map(|s| s.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, [7, 8, 9], "{}", runner.log());
    assert!(
        runner
            .log()
            .contains("event delivered twice (or already in the journal)"),
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_left_runs_as_the_config_now_says() {
    // Event 1 starts `keep` and `once` (max_parallel = 2); `gone` waits.
    let place = Place::new();
    let out = place.out();
    let out_s = out.display().to_string();
    let hook = |name: &str, body: &str, extra: &str| {
        format!(
            "[[hook]]\nname = \"{name}\"\non = \"*\"\nenv = {{ OUT = \"{out_s}\" }}\nrun = '{body}'\n{extra}\n"
        )
    };
    let before = [
        hook(
            "keep",
            r#"echo "keep-v1 ${TRACIM_REDELIVERED:-0}" >> "$OUT/runs"; sleep 30"#,
            "",
        ),
        hook(
            "once",
            r#"echo "once ${TRACIM_REDELIVERED:-0}" >> "$OUT/runs"; sleep 30"#,
            "rerun_interrupted = false",
        ),
        hook("gone", r#"echo "gone" >> "$OUT/runs""#, ""),
    ]
    .concat();
    config(&place, "max_parallel = 2", &before);
    let sim = place.sim(Duration::from_secs(30)).await;
    let runner = start(&place, &sim).await;
    send_all(&sim, 1..=1).await;
    assert!(wait_for(SHORT, || lines(&out.join("runs")).len() == 2).await);
    assert!(
        wait_for(SHORT, || recorded(&place)
            .iter()
            .filter(|r| r.state == RunState::Running)
            .count()
            == 2)
        .await
    );
    drop(runner); // SIGKILL
    // The leftover sleepers of the dead runner's hooks do not matter here.
    let after = [
        hook(
            "keep",
            r#"echo "keep-v2 ${TRACIM_REDELIVERED:-0}" >> "$OUT/runs""#,
            "",
        ),
        hook(
            "once",
            r#"echo "once ${TRACIM_REDELIVERED:-0}" >> "$OUT/runs""#,
            "rerun_interrupted = false",
        ),
    ]
    .concat();
    config(&place, "max_parallel = 2", &after);
    let runner = start(&place, &sim).await;
    assert!(
        wait_for(SHORT, || lines(&out.join("runs")).len() == 3).await,
        "{}",
        runner.log()
    );
    assert!(
        wait_for(SHORT, || latest(&place)
            .values()
            .all(|r| !r.state.is_pending()))
        .await,
        "{}",
        runner.log()
    );
    let mut runs = lines(&out.join("runs"));
    runs.sort();
    assert_eq!(
        runs,
        ["keep-v1 0", "keep-v2 1", "once 0"],
        "{}",
        runner.log()
    );
    let states: HashMap<String, (RunState, Option<String>)> = latest(&place)
        .into_values()
        .map(|r| (r.hook, (r.state, r.reason)))
        .collect();
    assert_eq!(states["keep"].0, RunState::Ok);
    assert_eq!(states["once"].0, RunState::Interrupted);
    assert_eq!(states["gone"].0, RunState::Dropped);
    assert!(
        states["gone"]
            .1
            .as_deref()
            .unwrap_or("")
            .contains("no longer in the config"),
        "{states:?}"
    );
    let log = runner.log();
    let line = log
        .lines()
        .find(|l| l.contains("its hook is no longer in the config"))
        .unwrap_or_else(|| panic!("no log line for the dropped run:\n{log}"));
    assert!(
        line.contains("hook=gone") && line.contains("event_id=1"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_by_count_and_by_age() {
    let place = Place::new();
    let out = place.out();
    let hooks = logging_hook("h", &out, "");
    let journal = |extra: &str| {
        format!(
            "[journal]\npath = \"{}\"\n{extra}\n{hooks}",
            journal_path(&place).display()
        )
    };
    place.write_config(&journal("max_events = 5"));
    let sim = place.sim(Duration::from_secs(30)).await;
    let event_ids = |place: &Place| {
        let mut ids: Vec<u64> = recorded(place).iter().map(|r| r.event_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut runner = start(&place, &sim).await;
    send_all(&sim, 2..=21).await;
    assert!(wait_for(LONG, || lines(&out.join("ends")).len() == 20).await);
    // The writer prunes as the count grows past the bound, and at its start.
    runner.signal(libc::SIGTERM);
    assert!(runner.wait_exit(SHORT).await.success());
    drop(runner);
    let mut runner = start(&place, &sim).await;
    assert!(
        wait_for(SHORT, || event_ids(&place) == [17, 18, 19, 20, 21]).await,
        "{:?}\n{}",
        event_ids(&place),
        runner.log()
    );
    runner.signal(libc::SIGTERM);
    assert!(runner.wait_exit(SHORT).await.success());
    drop(runner);

    place.write_config(&journal("retention = \"1s\""));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runner = start(&place, &sim).await;
    assert!(
        wait_for(SHORT, || event_ids(&place).is_empty()).await,
        "{:?}\n{}",
        event_ids(&place),
        runner.log()
    );
    let size = std::fs::metadata(journal_path(&place)).unwrap().len();
    assert!(size < 1024 * 1024, "{size}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_journal_is_moved_aside_and_a_new_one_started() {
    let place = Place::new();
    let out = place.out();
    config(&place, "", &logging_hook("h", &out, ""));
    let path = journal_path(&place);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // A header that is not SQLite's, and pages of noise.
    let noise: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &noise).unwrap();
    let sim = place.sim(Duration::from_secs(30)).await;
    let runner = start(&place, &sim).await;
    send_all(&sim, 5..=5).await;
    assert!(
        wait_for(SHORT, || lines(&out.join("ends")).len() == 1).await,
        "{}",
        runner.log()
    );
    let aside: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("journal.db.broken-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{}", runner.log());
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), noise);
    assert!(runner.log().contains("is corrupt"), "{}", runner.log());
    assert!(wait_for(SHORT, || recorded(&place).len() == 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_journal_stops_the_start_with_a_clear_message() {
    let place = Place::new();
    // The journal's directory is a file: nothing can be created in it.
    let blocker = place.path().join("state");
    std::fs::write(&blocker, "not a directory").unwrap();
    config(&place, "", "");
    let mut runner = place.runner();
    let status = runner.wait_exit(SHORT).await;
    assert_eq!(status.code(), Some(1));
    let log = runner.log();
    assert!(
        log.contains(&format!(
            "cannot use {} as the journal directory",
            blocker.display()
        )),
        "{log}"
    );
    assert!(
        !place.socket().exists(),
        "it listened before refusing to start"
    );
}
