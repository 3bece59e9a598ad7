//! Catch-up from Tracim (issue 17), with both simulators, real sockets and the real
//! binary: what a daemon restart or the runner's own stop made it miss runs once
//! after, an event delivered both ways runs once, and Tracim down during a
//! catch-up is retried without losing or doubling anything.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::tracim::*;
use common::*;
use tracim_daemon_sdk::sim::SimDaemon;
use tracim_daemon_sdk::tracim::sim::{Endpoint, TracimSim};

/// Only bounds waits for positive signs on a shared, noisy machine.
const LONG: Duration = Duration::from_secs(60);

/// hooks.toml: this place's daemon, its journal, `[tracim]` on `sim`, and a
/// recording hook on every event.
fn config(place: &Place, sim: &TracimSim, tracim_extra: &str) -> PathBuf {
    let out = place.out();
    place.write_config(&format!(
        "[journal]\npath = \"{}\"\n{}\n{}",
        journal_file(place).display(),
        tracim_table(place, sim, tracim_extra),
        recording_hook("rec", "\"*\"", &out)
    ))
}

/// Waits until every id of `ids` ran at least once.
async fn wait_ran(out: &Path, ids: &[u64], runner: &Runner) {
    let ok = wait_for(LONG, || {
        let runs = runs_by_id(out);
        ids.iter().all(|id| runs.contains_key(id))
    })
    .await;
    assert!(
        ok,
        "not all of {ids:?} ran; runs {:?}\nlog:\n{}",
        runs_by_id(out),
        runner.log()
    );
}

/// Every id ran exactly once, and nothing else ran.
fn assert_each_once(out: &Path, ids: &[u64], runner: &Runner) {
    let runs = runs_by_id(out);
    let expected: std::collections::BTreeMap<u64, usize> = ids.iter().map(|id| (*id, 1)).collect();
    assert_eq!(runs, expected, "log:\n{}", runner.log());
}

/// A runner on the place, registered, with its first catch-up done.
async fn running(place: &Place, daemon: &SimDaemon) -> Runner {
    let runner = place.started_runner().await;
    assert!(
        daemon.wait_for_client(&place.socket(), LONG).await,
        "never registered:\n{}",
        runner.log()
    );
    assert!(
        runner.wait_log("caught up", LONG).await,
        "no catch-up at start:\n{}",
        runner.log()
    );
    runner
}

/// A runner's first life: registered, one event delivered both ways and run, then
/// a clean stop. Returns that event's id.
async fn first_life(place: &Place, tracim: &TracimSim, daemon: &SimDaemon) -> u64 {
    let mut runner = running(place, daemon).await;
    let before = publish_both(tracim, daemon).await;
    wait_ran(&place.out(), &[before], &runner).await;
    runner.signal(libc::SIGTERM);
    assert!(runner.wait_exit(LONG).await.success());
    before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_down_while_five_events_happen_they_run_once_when_it_is_back() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let daemon = place.sim(NO_PINGS).await;
    config(&place, &tracim, "");
    let out = place.out();
    let runner = running(&place, &daemon).await;
    assert!(
        runner
            .log()
            .contains("empty journal: Tracim's newest event id")
    );

    let before = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[before], &runner).await;

    daemon.stop();
    assert!(
        runner.wait_log("lost the daemon", LONG).await,
        "{}",
        runner.log()
    );
    let missed: Vec<u64> = (0..5).map(|_| publish(&tracim)).collect();
    daemon.restart().await.unwrap();
    wait_ran(&out, &missed, &runner).await;
    let after = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[after], &runner).await;

    let mut all = vec![before];
    all.extend(&missed);
    all.push(after);
    assert_each_once(&out, &all, &runner);
    let line = format!("caught up 5 events (ids {}–{})", missed[0], missed[4]);
    assert!(
        runner.log().contains(&line),
        "no `{line}`:\n{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_restart_seen_only_as_a_new_registration_is_caught_up() {
    // The daemon restarts at once: the runner never shows `Waiting`, only registers
    // again; the events the daemon dropped on its way down run after all.
    let place = Place::new();
    let tracim = tracim_sim().await;
    let daemon = place.sim(NO_PINGS).await;
    config(&place, &tracim, "");
    let out = place.out();
    let runner = running(&place, &daemon).await;
    let before = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[before], &runner).await;

    let missed: Vec<u64> = (0..5).map(|_| publish(&tracim)).collect();
    daemon.restart().await.unwrap();
    wait_ran(&out, &missed, &runner).await;
    // Live events of the new registration do not hide the gap, nor run twice.
    let after = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[after], &runner).await;
    let mut all = vec![before];
    all.extend(&missed);
    all.push(after);
    assert_each_once(&out, &all, &runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_stopped_while_five_events_happen_they_run_once_at_its_start() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let daemon = place.sim(NO_PINGS).await;
    config(&place, &tracim, "");
    let out = place.out();
    let before = first_life(&place, &tracim, &daemon).await;

    let missed: Vec<u64> = (0..5).map(|_| publish(&tracim)).collect();
    let runner = running(&place, &daemon).await;
    wait_ran(&out, &missed, &runner).await;
    let after = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[after], &runner).await;
    let mut all = vec![before];
    all.extend(&missed);
    all.push(after);
    assert_each_once(&out, &all, &runner);
    let line = format!("caught up 5 events (ids {}–{})", missed[0], missed[4]);
    assert!(
        runner.log().contains(&line),
        "no `{line}`:\n{}",
        runner.log()
    );
    assert!(!runner.log().contains("empty journal"), "{}", runner.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_both_the_daemon_and_the_catch_up_deliver_runs_once() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let daemon = place.sim(NO_PINGS).await;
    config(&place, &tracim, "");
    let out = place.out();
    let runner = running(&place, &daemon).await;
    let before = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[before], &runner).await;

    daemon.stop();
    assert!(runner.wait_log("lost the daemon", LONG).await);
    let late: Vec<u64> = (0..3).map(|_| publish(&tracim)).collect();
    daemon.restart().await.unwrap();
    assert!(daemon.wait_for_client(&place.socket(), LONG).await);
    // The daemon delivers them too, racing the catch-up (whichever comes second
    // is dropped: by the journal, or left out of the catch-up as known)…
    for id in &late {
        daemon.send_event(&tlm_text(*id)).await;
    }
    wait_ran(&out, &late, &runner).await;
    // …and once more, surely after the catch-up ran them.
    for id in &late {
        daemon.send_event(&tlm_text(*id)).await;
    }
    let after = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[after], &runner).await;
    let mut all = vec![before];
    all.extend(&late);
    all.push(after);
    assert_each_once(&out, &all, &runner);
    assert!(
        count(
            &runner.log(),
            "event delivered twice (or already in the journal)"
        ) >= 3,
        "the repeats were not seen as such:\n{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracim_down_during_a_catch_up_is_retried_and_nothing_is_lost_or_doubled() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let daemon = place.sim(NO_PINGS).await;
    config(&place, &tracim, "");
    let out = place.out();
    let runner = running(&place, &daemon).await;
    let before = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[before], &runner).await;

    daemon.stop();
    assert!(runner.wait_log("lost the daemon", LONG).await);
    let missed: Vec<u64> = (0..5).map(|_| publish(&tracim)).collect();
    tracim.go_down().await;
    daemon.restart().await.unwrap();
    assert!(
        runner.wait_log("Tracim: catching up failed", LONG).await,
        "{}",
        runner.log()
    );
    // The daemon path keeps working meanwhile.
    let during = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[during], &runner).await;
    // Back, but answering 503 twice first: another kind of trouble, logged once too.
    tracim.fail_next_on(Endpoint::History, 2, 503);
    tracim.come_back().await.unwrap();
    wait_ran(&out, &missed, &runner).await;
    assert!(
        runner.wait_log("answers again", LONG).await,
        "{}",
        runner.log()
    );
    let after = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[after], &runner).await;

    let mut all = vec![before];
    all.extend(&missed);
    all.extend([during, after]);
    assert_each_once(&out, &all, &runner);
    let log = runner.log();
    assert_eq!(count(&log, "is unreachable"), 1, "{log}");
    assert_eq!(count(&log, "HTTP 503"), 1, "{log}");
    assert_eq!(count(&log, "answers again"), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_pending_across_a_stop_is_caught_up_from_where_it_began() {
    // Tracim is down when the daemon comes back, live events arrive, the runner
    // is stopped: the next start still catches up from before the gap, not from
    // the newest id in the journal.
    let place = Place::new();
    let tracim = tracim_sim().await;
    let daemon = place.sim(NO_PINGS).await;
    config(&place, &tracim, "");
    let out = place.out();
    let mut runner = running(&place, &daemon).await;
    let before = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[before], &runner).await;

    daemon.stop();
    assert!(runner.wait_log("lost the daemon", LONG).await);
    let missed: Vec<u64> = (0..5).map(|_| publish(&tracim)).collect();
    tracim.go_down().await;
    daemon.restart().await.unwrap();
    assert!(runner.wait_log("Tracim: catching up failed", LONG).await);
    let during = publish_both(&tracim, &daemon).await;
    wait_ran(&out, &[during], &runner).await;
    runner.signal(libc::SIGTERM);
    assert!(runner.wait_exit(LONG).await.success());

    tracim.come_back().await.unwrap();
    let runner = running(&place, &daemon).await;
    wait_ran(&out, &missed, &runner).await;
    let mut all = vec![before];
    all.extend(&missed);
    all.push(during);
    assert_each_once(&out, &all, &runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_max_and_window_skip_what_they_must_and_say_so() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let daemon = place.sim(NO_PINGS).await;
    config(
        &place,
        &tracim,
        "catch_up_max = 3\ncatch_up_window = \"1h\"",
    );
    let out = place.out();
    let before = first_life(&place, &tracim, &daemon).await;

    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    let old = tracim.publish_with(TRACIM_USER, |id| {
        tlm_text(id).replace(
            &rfc3339(std::time::SystemTime::now()),
            &rfc3339(two_hours_ago),
        )
    });
    let fresh: Vec<u64> = (0..5).map(|_| publish(&tracim)).collect();
    let runner = running(&place, &daemon).await;
    // The newest 3 run; the 2 oldest fresh ones are past the max, `old` too old.
    wait_ran(&out, &fresh[2..], &runner).await;
    let mut all = vec![before];
    all.extend(&fresh[2..]);
    assert_each_once(&out, &all, &runner);
    let line = format!(
        "catch-up skipped 3 events (ids {old}–{}): 1 older than catch_up_window, 2 past catch_up_max",
        fresh[1]
    );
    assert!(
        runner.log().contains(&line),
        "no `{line}`:\n{}",
        runner.log()
    );
}

/// The same skips when the catch-up at start is over before the daemon is there:
/// the catch-up its registration calls for starts after what the first one covered,
/// and does not run again what that one left out past `catch_up_max` (seen once in
/// CI, where the order of the two is left to timing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_after_the_first_catch_up_does_not_run_what_it_skipped() {
    let place = Place::new();
    let tracim = tracim_sim().await;
    let daemon = place.sim(NO_PINGS).await;
    config(&place, &tracim, "catch_up_max = 3");
    let out = place.out();
    let before = first_life(&place, &tracim, &daemon).await;
    daemon.stop();

    let fresh: Vec<u64> = (0..5).map(|_| publish(&tracim)).collect();
    // No daemon: the catch-up at start runs, and ends, alone.
    let runner = place.started_runner().await;
    wait_ran(&out, &fresh[2..], &runner).await;
    assert!(
        runner.wait_log("catch-up skipped 2 events", LONG).await,
        "{}",
        runner.log()
    );
    daemon.restart().await.unwrap();
    assert!(
        daemon.wait_for_client(&place.socket(), LONG).await,
        "never registered:\n{}",
        runner.log()
    );
    // The registration's catch-up has nothing left to run.
    let line = format!("caught up 0 events: nothing missed after id {}", fresh[4]);
    assert!(
        runner.wait_log(&line, LONG).await,
        "no `{line}`:\n{}",
        runner.log()
    );
    let mut all = vec![before];
    all.extend(&fresh[2..]);
    assert_each_once(&out, &all, &runner);
}
