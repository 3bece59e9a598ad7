//! The journal on real files: group commits seen from another connection, what a
//! killed runner leaves pending, dedupe across restarts, retention, a corrupt file,
//! an unwritable directory, a newer schema, a full disk, file modes, and the
//! queries the commands use.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracim_hooks::journal::{
    Exit, HistoryFilter, Journal, JournalError, JournalSettings, NewEvent, Opened, PendingKind,
    Reader, RunEnd, RunOrigin, RunState, SyncMode, open,
};

/// Generous: the machine is shared, and this only bounds a wait for a positive sign.
const PATIENCE: Duration = Duration::from_secs(20);

fn event(id: u64) -> NewEvent {
    event_at(id, SystemTime::now())
}

fn event_at(id: u64, received: SystemTime) -> NewEvent {
    NewEvent {
        id,
        event_type: "content.modified.html-document".to_owned(),
        received,
        text: Arc::from(format!(
            r#"{{"event_id":{id},"event_type":"content.modified.html-document","fields":{{"label":"n°{id} \"é\""}}}}"#
        )),
    }
}

fn ok_end(stdout: &str) -> RunEnd {
    RunEnd {
        exit: Exit::Code(0),
        timed_out: false,
        stdout_tail: stdout.to_owned(),
        stderr_tail: String::new(),
        retry: false,
    }
}

fn failed_end(code: i32, retry: bool) -> RunEnd {
    RunEnd {
        exit: Exit::Code(code),
        timed_out: false,
        stdout_tail: String::new(),
        stderr_tail: format!("exit {code}\n"),
        retry,
    }
}

fn open_at(path: &Path) -> Opened {
    open(&JournalSettings::at(path)).unwrap_or_else(|e| panic!("opening {path:?}: {e}"))
}

/// How many events the file holds, read through a connection of the test's own.
fn events_in(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap()
}

/// Waits for a positive sign, or fails after [`PATIENCE`].
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
    start.elapsed()
}

#[test]
fn a_recorded_event_is_seen_by_another_connection_at_once_and_durable_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let Opened {
        journal, pending, ..
    } = open_at(&path);
    assert!(pending.runs.is_empty());
    let reader = Reader::open(&path).unwrap();

    let mut lags = Vec::new();
    for id in 1..=20u64 {
        assert!(journal.admit(id));
        let sent = event(id);
        let text = sent.text.clone();
        let runs = journal.record(sent, ["backup", "notify"]);
        assert_eq!(runs.len(), 2);
        // No flush: only the writer's own group commit makes it visible.
        lags.push(wait_for("the event in another connection", || {
            reader.event(id).unwrap().is_some()
        }));
        let stored = reader.event(id).unwrap().unwrap();
        assert_eq!(&*stored.event.text, &*text, "the text exactly as received");
        assert_eq!(stored.runs.len(), 2, "the runs committed with their event");
        assert!(
            stored
                .runs
                .iter()
                .all(|r| r.record.state == RunState::Queued)
        );
    }
    lags.sort();
    println!(
        "record -> visible to another connection: median {:?}, max {:?} (sync normal)",
        lags[lags.len() / 2],
        lags[lags.len() - 1]
    );

    // A burst, then flush: every record sent before it is on disk.
    for id in 100..1100u64 {
        journal.admit(id);
        let runs = journal.record(event(id), ["backup"]);
        journal.started(runs[0], 1);
        journal.ended(runs[0], 1, ok_end("saved\n"));
    }
    journal.flush().unwrap();
    let history = reader
        .history(&HistoryFilter {
            hook: Some("backup".into()),
            limit: 5000,
            ..HistoryFilter::default()
        })
        .unwrap();
    assert_eq!(history.len(), 1020);
    assert_eq!(
        history.iter().filter(|r| r.state == RunState::Ok).count(),
        1000
    );
    assert_eq!(history[0].event_id, 1099, "newest first");
    assert!(history[0].duration().is_some());
    assert_eq!(reader.last_event_id().unwrap(), Some(1099));
    assert_eq!(journal.last_event_id(), Some(1099));
    journal.close().unwrap();
}

#[test]
fn the_log_is_copied_into_the_file_at_a_lull_not_during_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let log = dir.path().join("journal.db-wal");
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let Opened { journal, .. } = open_at(&path);
    // 6 MiB of events, back to back: past the 4 MiB after which a checkpoint is due.
    let filler = "x".repeat(8 * 1024);
    for id in 1..=768u64 {
        assert!(journal.admit(id));
        let mut e = event(id);
        e.text = Arc::from(format!(
            r#"{{"event_id":{id},"fields":{{"body":"{filler}"}}}}"#
        ));
        journal.record(e, [] as [&str; 0]);
        if id % 64 == 0 {
            // Commits of 512 KiB, as a burst makes them.
            journal.flush().unwrap();
        }
    }
    // Had a checkpoint run within the burst (as SQLite's own, every 4 MiB, did), the
    // log would have started over from its beginning at the next commit, holding a
    // few MiB at most; nothing since has written to it.
    assert!(size(&log) >= 6 << 20, "log {} bytes", size(&log));
    // The lull after it: the checkpointer copies the log into the file.
    wait_for("the log copied into the file", || size(&path) >= 6 << 20);
    let reader = Reader::open(&path).unwrap();
    assert_eq!(reader.last_event_id().unwrap(), Some(768));
    journal.close().unwrap();
}

/// The child side of [`runs_left_by_a_killed_runner_are_pending_at_the_next_start`]:
/// records, says it is ready, and goes on recording until it is killed.
#[test]
#[ignore = "the child process of runs_left_by_a_killed_runner_are_pending_at_the_next_start"]
fn killed_runner_child() {
    let dir = PathBuf::from(std::env::var_os("JOURNAL_CHILD_DIR").expect("JOURNAL_CHILD_DIR"));
    let journal = open_at(&dir.join("journal.db")).journal;
    let mut runs = Vec::new();
    for id in 1..=200u64 {
        assert!(journal.admit(id));
        runs.extend(journal.record(event(id), ["backup"]));
    }
    journal.started(runs[0], 1);
    journal.started(runs[1], 1);
    journal.ended(runs[1], 1, ok_end("done\n"));
    journal.flush().unwrap();
    // On its own line: libtest may have printed "test NAME ... " before it.
    println!("\nJOURNAL-CHILD-READY");
    std::io::stdout().flush().unwrap();
    // Keep writing, unflushed, until the kill (or a minute, should the parent die).
    let start = Instant::now();
    let mut id = 1000u64;
    while start.elapsed() < Duration::from_secs(60) {
        journal.admit(id);
        journal.record(event(id), ["backup", "notify"]);
        id += 1;
        std::thread::sleep(Duration::from_micros(100));
    }
}

#[test]
fn runs_left_by_a_killed_runner_are_pending_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_runner_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("JOURNAL_CHILD_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("the child ended before READY").unwrap();
        if line == "JOURNAL-CHILD-READY" {
            break;
        }
    }
    // Let it write unflushed for a moment, then SIGKILL: no destructor runs.
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    let path = dir.path().join("journal.db");
    let Opened {
        journal, pending, ..
    } = open_at(&path);
    let interrupted: Vec<_> = pending.of(PendingKind::Interrupted).collect();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0].event.id, 1);
    assert_eq!(interrupted[0].attempt, 2, "a rerun is the next attempt");
    assert!(interrupted[0].event.text.contains(r#""event_id":1,"#));

    let queued: Vec<_> = pending.of(PendingKind::Queued).collect();
    let early: Vec<u64> = queued
        .iter()
        .map(|r| r.event.id)
        .filter(|&id| id < 1000)
        .collect();
    assert_eq!(early, (3..=200).collect::<Vec<_>>(), "each queued run once");
    // What the child wrote after READY: each event that made it to disk made it
    // with both its runs (one transaction), and they are pending.
    let late: Vec<_> = queued.iter().filter(|r| r.event.id >= 1000).collect();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let late_events: i64 = conn
        .query_row("SELECT count(*) FROM events WHERE id >= 1000", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(late.len() as i64, late_events * 2);
    println!("after READY, the killed child had committed {late_events} more events");
    assert!(
        queued
            .iter()
            .all(|r| r.attempt == 1 && r.origin == RunOrigin::Event)
    );

    // Dedupe survives the kill; new ids run.
    assert!(!journal.admit(150));
    assert!(!journal.admit(1));
    assert!(journal.admit(10_000_000));

    // Closing the interrupted run and starting the rest leaves nothing pending.
    journal.interrupted(interrupted[0].run);
    for run in &queued {
        journal.started(run.run, run.attempt);
        journal.ended(run.run, run.attempt, ok_end(""));
    }
    journal.close().unwrap();
    let again = open_at(&path);
    assert!(
        again.pending.runs.is_empty(),
        "{:?}",
        again.pending.runs.len()
    );
    let reader = Reader::open(&path).unwrap();
    let first = reader.event(1).unwrap().unwrap();
    assert_eq!(first.runs.len(), 1);
    assert_eq!(first.runs[0].record.state, RunState::Interrupted);
}

#[test]
fn a_clean_stop_leaves_queued_retrying_and_running_work_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = open_at(&path).journal;
    let mut runs = Vec::new();
    for id in 1..=10u64 {
        journal.admit(id);
        runs.extend(journal.record(event(id), ["h"]));
    }
    journal.started(runs[0], 1);
    journal.ended(runs[0], 1, ok_end("fine"));
    journal.started(runs[1], 1);
    journal.ended(runs[1], 1, failed_end(3, true));
    journal.started(runs[2], 1);
    journal.dropped(runs[3], "hook removed from the config");
    journal.coalesced(runs[4], runs[5]);
    // Dropping the last handle drains the writer without an explicit close.
    drop(journal);

    let Opened {
        journal, pending, ..
    } = open_at(&path);
    let by_kind = |kind| {
        pending
            .of(kind)
            .map(|r| (r.run, r.attempt))
            .collect::<Vec<_>>()
    };
    assert_eq!(by_kind(PendingKind::Retry), vec![(runs[1], 2)]);
    assert_eq!(by_kind(PendingKind::Interrupted), vec![(runs[2], 2)]);
    assert_eq!(
        by_kind(PendingKind::Queued),
        runs[5..].iter().map(|&r| (r, 1)).collect::<Vec<_>>()
    );
    // New run ids continue after the old ones.
    let next = journal.record(event(11), ["h"]);
    assert!(next[0] > runs[9]);

    // The retry succeeds: its first attempt reads as failed, the second as ok.
    journal.started(runs[1], 2);
    journal.ended(runs[1], 2, ok_end("second time"));
    // The interrupted run runs again as attempt 2.
    journal.started(runs[2], 2);
    journal.ended(runs[2], 2, ok_end(""));
    journal.close().unwrap();

    let reader = Reader::open(&path).unwrap();
    // Attempts started and ended before a commit (one write) keep both times.
    let one = reader.event(1).unwrap().unwrap();
    let record = &one.runs[0].record;
    assert_eq!(record.state, RunState::Ok);
    assert!(
        record.started_at.is_some() && record.started_at <= record.ended_at,
        "{record:?}"
    );
    let two = reader.event(2).unwrap().unwrap();
    assert!(two.runs[1].record.started_at.is_some(), "{:?}", two.runs[1]);
    let states: Vec<_> = two
        .runs
        .iter()
        .map(|r| (r.record.attempt, r.record.state))
        .collect();
    assert_eq!(states, vec![(1, RunState::Failed), (2, RunState::Ok)]);
    assert_eq!(two.runs[0].stderr_tail, "exit 3\n");
    assert_eq!(two.runs[1].stdout_tail, "second time");
    let three = reader.event(3).unwrap().unwrap();
    assert_eq!(three.runs[0].record.state, RunState::Interrupted);
    assert_eq!(three.runs[1].record.state, RunState::Ok);
    let four = reader.event(4).unwrap().unwrap();
    assert_eq!(four.runs[0].record.state, RunState::Dropped);
    assert_eq!(
        four.runs[0].record.reason.as_deref(),
        Some("hook removed from the config")
    );
    let five = reader.event(5).unwrap().unwrap();
    assert_eq!(five.runs[0].record.state, RunState::Coalesced);
}

#[test]
fn an_event_id_runs_once_whichever_way_it_comes_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = open_at(&path).journal;
    assert!(journal.admit(42));
    journal.record(event(42), Vec::<String>::new());
    assert!(!journal.admit(42), "a second delivery");
    // Many threads offering the same ids: each id is admitted exactly once.
    let admitted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let journal = journal.clone();
                s.spawn(move || (100..600u64).filter(|&id| journal.admit(id)).count())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(admitted, 500);
    for id in 100..600u64 {
        journal.record(event(id), ["h"]);
    }
    journal.close().unwrap();
    let journal = open_at(&path).journal;
    assert!(
        !journal.admit(42),
        "after a restart (an event with no hook)"
    );
    assert!(!journal.admit(599), "a later catch-up");
    assert!(journal.admit(600));
    assert_eq!(journal.last_event_id(), Some(599));
}

#[test]
fn retention_prunes_by_age_and_count_but_keeps_pending_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let settings = JournalSettings {
        max_events: 10,
        retention: Duration::from_secs(7 * 24 * 3600),
        ..JournalSettings::at(&path)
    };
    let journal = open(&settings).unwrap().journal;
    let old = SystemTime::now() - Duration::from_secs(8 * 24 * 3600);
    for id in 1..=5u64 {
        journal.admit(id);
        let runs = journal.record(event_at(id, old), ["h"]);
        if id != 3 {
            journal.started(runs[0], 1);
            journal.ended(runs[0], 1, ok_end(""));
        }
    }
    for id in 6..=25u64 {
        journal.admit(id);
        let runs = journal.record(event(id), ["h"]);
        journal.started(runs[0], 1);
        journal.ended(runs[0], 1, ok_end(""));
    }
    journal.flush().unwrap();
    let pruned = journal.prune_now().unwrap();
    let reader = Reader::open(&path).unwrap();
    let left: Vec<u64> = reader
        .history(&HistoryFilter {
            limit: 100,
            ..HistoryFilter::default()
        })
        .unwrap()
        .iter()
        .map(|r| r.event_id)
        .rev()
        .collect();
    // Event 3 is old but its run is still queued: kept, and it counts. The writer
    // may have pruned some by itself before prune_now, so only the end state is exact.
    let mut expected = vec![3];
    expected.extend(17..=25);
    assert_eq!(left, expected, "pruned {pruned:?}");
    assert!(reader.event(1).unwrap().is_none());
    assert_eq!(reader.last_event_id().unwrap(), Some(25));
    // A pruned id is no longer known: it would run again.
    assert!(journal.admit(1));
    assert!(!journal.admit(3));
    assert!(!journal.admit(17));
    journal.close().unwrap();

    // The file does not grow without bound: many events, ten kept.
    let journal = open(&settings).unwrap().journal;
    for id in 1000..3000u64 {
        journal.admit(id);
        journal.record(event(id), ["h"]).iter().for_each(|&r| {
            journal.started(r, 1);
            journal.ended(r, 1, ok_end(""));
        });
    }
    journal.flush().unwrap();
    journal.prune_now().unwrap();
    assert_eq!(events_in(&path), 10);
}

#[test]
fn past_max_events_the_oldest_go_by_themselves_once_a_burst_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let settings = JournalSettings {
        max_events: 100,
        ..JournalSettings::at(&path)
    };
    let journal = open(&settings).unwrap().journal;
    // The pruning every start begins with, over before the burst.
    journal.prune_now().unwrap();
    for id in 1..=400u64 {
        journal.admit(id);
        journal.record(event(id), [] as [&str; 0]);
    }
    journal.flush().unwrap();
    // No prune_now: the writer's own upkeep, at the lull after the burst.
    let reader = Reader::open(&path).unwrap();
    wait_for("the count back to max_events", || events_in(&path) == 100);
    assert!(reader.event(300).unwrap().is_none(), "the oldest went");
    assert!(reader.event(301).unwrap().is_some(), "the newest stay");
    journal.close().unwrap();
}

#[test]
fn a_corrupt_file_is_moved_aside_and_a_new_one_started() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    std::fs::write(
        &path,
        b"this is not an SQLite database, just bytes ".repeat(200),
    )
    .unwrap();
    let Opened {
        journal,
        moved_aside,
        ..
    } = open_at(&path);
    let aside = moved_aside.expect("the garbage was moved aside");
    let name = aside.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("journal.db.broken-"), "{name}");
    assert!(std::fs::read(&aside).unwrap().starts_with(b"this is not"));
    assert!(journal.admit(1));
    journal.record(event(1), ["h"]);
    journal.close().unwrap();
    assert!(Reader::open(&path).unwrap().event(1).unwrap().is_some());

    // Damage inside a valid file (its header intact) is found at open too.
    let journal = open_at(&path).journal;
    for id in 2..400u64 {
        journal.admit(id);
        journal.record(event(id), ["h"]);
    }
    journal.close().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8 * 4096, "{} bytes", bytes.len());
    for b in &mut bytes[3 * 4096..6 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let reopened = open_at(&path);
    assert!(
        reopened.moved_aside.is_some(),
        "damaged pages were not noticed"
    );
    assert!(reopened.journal.admit(1), "a new, empty journal");
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    open_at(&path).journal.close().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let err = open(&JournalSettings::at(&path)).err().expect("refused");
    assert!(
        matches!(err, JournalError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("99"), "{message}");
    // Commands refuse it the same way; the file is still there, untouched.
    assert!(matches!(
        Reader::open(&path),
        Err(JournalError::NewerSchema { .. })
    ));
    assert!(path.exists());
}

#[test]
fn files_are_private_and_a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").join("tracim-hooks");
    let path = state.join("journal.db");
    let journal = open_at(&path).journal;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&path), 0o600);
    journal.record(event(1), ["h"]);
    journal.flush().unwrap();
    assert_eq!(mode(&state.join("journal.db-wal")), 0o600);
    assert_eq!(mode(&state.join("journal.db-shm")), 0o600);

    let err = open(&JournalSettings::at(&path)).err().expect("refused");
    assert!(matches!(err, JournalError::Busy { .. }), "{err}");
    // A reader is fine while the writer runs.
    assert!(Reader::open(&path).unwrap().event(1).unwrap().is_some());
    journal.close().unwrap();
    // And once it is gone (the -wal and -shm files removed by the clean close).
    assert!(Reader::open(&path).unwrap().event(1).unwrap().is_some());
    // An existing file with loose permissions is brought back to 0600.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    open_at(&path).journal.close().unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn a_disabled_journal_keeps_nothing_but_still_drops_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let settings = JournalSettings {
        enabled: false,
        ..JournalSettings::at(&path)
    };
    let Opened { journal, .. } = open(&settings).unwrap();
    assert!(!journal.is_enabled());
    assert!(journal.admit(7));
    assert!(!journal.admit(7));
    let runs = journal.record(event(7), ["a", "b"]);
    assert_eq!(runs.len(), 2);
    assert_ne!(runs[0], runs[1]);
    journal.flush().unwrap();
    assert!(!path.exists());
    assert!(matches!(
        Reader::open(&path),
        Err(JournalError::NotFound { .. })
    ));
}

#[test]
fn the_queries_behind_status_history_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = open_at(&path).journal;
    let t0 = SystemTime::now();
    for id in 1..=6u64 {
        journal.admit(id);
        let runs = journal.record(event(id), ["backup", "notify"]);
        journal.started(runs[0], 1);
        if id % 3 == 0 {
            journal.ended(runs[0], 1, failed_end(2, false));
        } else {
            journal.ended(runs[0], 1, ok_end(&"x".repeat(20_000)));
        }
        if id == 6 {
            journal.started(runs[1], 1);
            journal.ended(
                runs[1],
                1,
                RunEnd {
                    exit: Exit::Signal(9),
                    timed_out: true,
                    stdout_tail: String::new(),
                    stderr_tail: String::new(),
                    retry: false,
                },
            );
        }
    }
    journal.flush().unwrap();
    let reader = Reader::open(&path).unwrap();

    let failed = reader
        .history(&HistoryFilter {
            failed_only: true,
            ..HistoryFilter::default()
        })
        .unwrap();
    let failed: Vec<_> = failed
        .iter()
        .map(|r| (r.event_id, r.hook.as_str()))
        .collect();
    assert_eq!(failed, vec![(6, "notify"), (6, "backup"), (3, "backup")]);
    let limited = reader
        .history(&HistoryFilter {
            hook: Some("notify".into()),
            limit: 2,
            ..HistoryFilter::default()
        })
        .unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].exit, Some(Exit::Signal(9)));
    assert!(limited[0].timed_out);
    assert_eq!(limited[1].state, RunState::Queued);
    assert!(
        reader
            .history(&HistoryFilter {
                since: Some(SystemTime::now() + Duration::from_secs(60)),
                ..HistoryFilter::default()
            })
            .unwrap()
            .is_empty()
    );

    let summary = reader
        .summary(SystemTime::now() - Duration::from_secs(24 * 3600))
        .unwrap();
    assert_eq!(summary.len(), 2);
    let backup = &summary[0];
    assert_eq!(
        (
            backup.hook.as_str(),
            backup.ok,
            backup.failed,
            backup.pending
        ),
        ("backup", 4, 2, 0)
    );
    assert_eq!(backup.last_failure.as_ref().map(|f| f.event_id), Some(6));
    let notify = &summary[1];
    assert_eq!((notify.ok, notify.failed, notify.pending), (0, 1, 5));

    let one = reader.event(1).unwrap().unwrap();
    assert_eq!(one.event.event_type, "content.modified.html-document");
    assert_eq!(one.runs[0].stdout_tail.len(), 8192, "the last 8 KiB only");

    // replay --failed: the newest run of each failed event and hook, until a
    // replay of it succeeds.
    let to_replay = reader.failed_since(t0).unwrap();
    let keys: Vec<_> = to_replay
        .iter()
        .map(|r| (r.event_id, r.hook.as_str()))
        .collect();
    assert_eq!(keys, vec![(3, "backup"), (6, "backup"), (6, "notify")]);
    let again = journal.record_replay(3, ["backup"]);
    journal.started(again[0], 1);
    journal.ended(again[0], 1, ok_end("replayed"));
    journal.flush().unwrap();
    let keys: Vec<_> = reader
        .failed_since(t0)
        .unwrap()
        .iter()
        .map(|r| r.event_id)
        .collect();
    assert_eq!(keys, vec![6, 6]);
    let three = reader.event(3).unwrap().unwrap();
    assert_eq!(three.runs.last().unwrap().record.origin, RunOrigin::Replay);
    journal.close().unwrap();
}

/// A tmpfs mounted for one test, unmounted when dropped. `None` when this process
/// may not mount (not root, or no CAP_SYS_ADMIN).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn an_unwritable_directory_is_refused_with_a_clear_message() {
    let Some(ro) = Tmpfs::mount("ro,size=1m") else {
        return;
    };
    for path in [
        ro.path().join("journal.db"),
        ro.path().join("state").join("journal.db"),
    ] {
        let err = open(&JournalSettings::at(&path)).err().expect("refused");
        assert!(matches!(err, JournalError::Unwritable { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("not writable"), "{message}");
        assert!(
            message.contains(&ro.path().display().to_string()),
            "{message}"
        );
    }
}

/// The log lines of every thread, from the moment [`capture_logs`] is called. Only
/// the full-disk test calls it: the lines it counts come from no other test.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

fn capture_logs() -> Captured {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
    captured
}

#[test]
fn a_full_disk_degrades_the_journal_and_it_recovers() {
    let Some(disk) = Tmpfs::mount("size=2m") else {
        return;
    };
    let logs = capture_logs();
    let path = disk.path().join("journal.db");
    let journal: Journal = open_at(&path).journal;
    let mut sent = Vec::new();
    let mut id = 1u64;
    let mut record = |journal: &Journal| {
        journal.admit(id);
        let mut e = event(id);
        e.text = Arc::from(format!("{}{}", e.text, " ".repeat(16 * 1024)));
        journal.record(e, ["h"]);
        sent.push(id);
        id += 1;
    };
    record(&journal);
    journal.flush().unwrap();
    // Fill the rest of the disk.
    let filler = disk.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    while file.write_all(&[0u8; 64 * 1024]).is_ok() {}
    drop(file);
    let mut failure = None;
    for _ in 0..200 {
        record(&journal);
        if let Err(e) = journal.flush() {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("writes kept succeeding on a full disk");
    assert!(
        matches!(failure, JournalError::Degraded { .. }),
        "{failure}"
    );
    let health = journal.health();
    assert!(health.degraded);
    assert!(health.since.is_some());
    assert!(health.backlog > 0);
    println!("degraded: {:?}", health.last_error);
    // The runner goes on: ids are still admitted and records still accepted.
    for _ in 0..5 {
        record(&journal);
        // Each flush tries the write again, and fails again.
        assert!(journal.flush().is_err());
    }
    assert!(!journal.admit(1));
    assert_eq!(logs.count("journal write failed"), 1, "logged once");

    std::fs::remove_file(&filler).unwrap();
    journal.flush().expect("writes succeed once there is room");
    let health = journal.health();
    assert!(!health.degraded, "{health:?}");
    assert_eq!((health.backlog, health.lost), (0, 0));
    assert_eq!(logs.count("journal writes succeed again"), 1);
    let reader = Reader::open(&path).unwrap();
    for &id in &sent {
        assert!(reader.event(id).unwrap().is_some(), "event {id} was lost");
    }
    journal.close().unwrap();
}

#[test]
fn sync_full_works_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let settings = JournalSettings {
        sync: SyncMode::Full,
        ..JournalSettings::at(&path)
    };
    let journal = open(&settings).unwrap().journal;
    journal.record(event(1), ["h"]);
    journal.close().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(Reader::open(&path).unwrap().event(1).unwrap().is_some());
}
