//! Reload (SIGHUP) of the real binary against the simulated daemon: what it
//! swaps in, what it refuses, and how a moved socket changes registration
//! without a moment when the daemon has no way to reach the runner.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use tracim_daemon_sdk::protocol::Message;
use tracim_daemon_sdk::sim::{SimDaemon, SimOptions};

/// A copy of `fixture` with another event id (every fixture's id is unique).
fn with_id(fixture_name: &str, old_id: u64, id: u64) -> String {
    let text = fixture(fixture_name);
    let from = format!("\"event_id\": {old_id}");
    assert!(text.contains(&from), "{fixture_name} has no {from}");
    text.replace(&from, &format!("\"event_id\": {id}"))
}

/// The current config text with `from` replaced by `to` (paths of `[daemon]`).
fn config_with(place: &Place, from: &Path, to: &Path) -> String {
    std::fs::read_to_string(place.config_path())
        .unwrap()
        .replace(&*from.to_string_lossy(), &to.to_string_lossy())
}

/// Signals a reload and waits until the runner has dealt with it: reloaded
/// or refused, `n` times in all so far.
async fn reload(runner: &Runner, n: usize) {
    runner.signal(libc::SIGHUP);
    assert!(
        wait_for(SHORT, || {
            let log = runner.log();
            log.matches("configuration reloaded").count() + log.matches("reload refused").count()
                >= n
        })
        .await,
        "reload {n} not dealt with:\n{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_whose_new_socket_cannot_be_bound_keeps_the_whole_old_config() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(NO_PINGS).await;
    place.write_config(&recording_hook("old", "\"*\"", &out));
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);

    // The new config moves the socket under a regular file (no directory can
    // be made there) and has another hook in place of the old one.
    let blocker = place.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let unbindable = blocker.join("x.sock");
    place.write_raw_config(
        &config_with(&place, &place.socket(), &unbindable)
            .replace("name = \"old\"", "name = \"new\""),
    );
    reload(&runner, 1).await;
    assert!(runner.log().contains("reload refused"), "{}", runner.log());
    assert!(
        !runner.log().contains("configuration reloaded"),
        "{}",
        runner.log()
    );

    // The next event runs under the old config alone: the old hook, not the new.
    assert_eq!(sim.send_event(&fixture("tag.created.json")).await.ok, 1);
    assert!(
        wait_for(SHORT, || !lines(&out.join("runs")).is_empty()).await,
        "{}",
        runner.log()
    );
    assert_eq!(lines(&out.join("runs")), ["old 115"], "{}", runner.log());
    assert_eq!(sim.clients().len(), 1);
    assert_eq!(
        sim.clients()[0].path,
        place.socket().to_string_lossy(),
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_new_defaults_to_the_next_runs() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(NO_PINGS).await;
    let hook = recording_hook("all", "\"*\"", &out);
    place.write_config(&hook);
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);

    // With the default budget (256 KiB) the note's 20 KB body is passed.
    sim.send_event(&with_id("content.modified.html-document.json", 106, 1))
        .await;
    assert!(wait_for(SHORT, || lines(&out.join("runs")) == ["all 1"]).await);
    let env = std::fs::read_to_string(out.join("all.1.env")).unwrap();
    assert!(env.contains("TRACIM_FIELDS_CONTENT_RAW_CONTENT="), "{env}");
    assert!(!env.contains("TRACIM_OMITTED="), "{env}");

    // The same hook, a budget of 8 KiB: the body is left out and said so.
    place.write_config(&format!("[defaults]\nenv_budget = 8192\n{hook}"));
    reload(&runner, 1).await;
    assert!(
        runner.log().contains("configuration reloaded"),
        "{}",
        runner.log()
    );
    sim.send_event(&with_id("content.modified.html-document.json", 106, 2))
        .await;
    assert!(wait_for(SHORT, || lines(&out.join("runs")) == ["all 1", "all 2"]).await);
    let env = std::fs::read_to_string(out.join("all.2.env")).unwrap();
    assert!(!env.contains("TRACIM_FIELDS_CONTENT_RAW_CONTENT="), "{env}");
    assert!(
        env.lines()
            .any(|l| l.starts_with("TRACIM_OMITTED=")
                && l.contains("TRACIM_FIELDS_CONTENT_RAW_CONTENT")),
        "{env}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_delivered_twice_runs_once() {
    // While a reload moves the socket, both registrations receive what the
    // daemon sends. The runner must run each event once however often it comes.
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(NO_PINGS).await;
    // Serial: runs happen in arrival order, so once the last event has run,
    // a second run of the first would already be on record.
    place.write_config(&format!(
        "[[hook]]\nname = \"ids\"\non = \"*\"\nmode = \"serial\"\nrun = 'echo $TRACIM_EVENT_ID >> \"{}/ids\"'\n",
        out.display()
    ));
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    let first = with_id("tag.created.json", 115, 7);
    assert_eq!(sim.send_event(&first).await.ok, 1);
    assert_eq!(sim.send_event(&first).await.ok, 1);
    assert_eq!(
        sim.send_event(&with_id("tag.created.json", 115, 8))
            .await
            .ok,
        1
    );
    assert!(
        wait_for(SHORT, || lines(&out.join("ids")).contains(&"8".to_owned())).await,
        "{}",
        runner.log()
    );
    assert_eq!(lines(&out.join("ids")), ["7", "8"], "{}", runner.log());
    assert!(
        runner.log().contains("event delivered twice"),
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_socket_leaves_the_old_registration_only_once_the_new_one_holds() {
    let place = Place::new();
    let out = place.out();
    let first = place.sim(Duration::from_millis(100)).await;
    place.write_config(&recording_hook("all", "\"*\"", &out));
    let runner = place.runner();
    assert!(first.wait_for_client(&place.socket(), SHORT).await);
    let old_path = place.socket().to_string_lossy().into_owned();

    // Both sockets move to a daemon not started yet: the new registration
    // cannot hold until it is.
    let second_master = place.path().join("second.sock");
    let moved = place.path().join("moved.sock");
    let text = config_with(&place, &place.master(), &second_master)
        .replace(&*place.socket().to_string_lossy(), &moved.to_string_lossy());
    place.write_raw_config(&text);
    runner.signal(libc::SIGHUP);
    let second_path = second_master.to_string_lossy().into_owned();
    assert!(
        wait_for(SHORT, || runner.log().lines().any(|l| l
            .contains("waiting for TracimDaemon")
            && l.contains(&second_path)))
        .await,
        "{}",
        runner.log()
    );

    // Meanwhile the old registration still holds: it answers the next ping,
    // and nothing left the first daemon.
    let pongs = first.received_of("daemon_pong").len();
    assert!(
        first
            .wait_until(Duration::from_secs(3), |s| s
                .received_of("daemon_pong")
                .len()
                > pongs)
            .await,
        "the old socket stopped answering before the new one held:\n{}",
        runner.log()
    );
    assert!(
        first.received_of("daemon_client_delete").is_empty(),
        "{}",
        runner.log()
    );
    assert!(first.clients().iter().any(|c| c.path == old_path));

    // The second daemon comes: the new registration holds, then the old one goes.
    let second = SimDaemon::start(&second_master, SimOptions::default())
        .await
        .unwrap();
    assert!(
        second.wait_for_client(&moved, SHORT).await,
        "{}",
        runner.log()
    );
    assert!(
        first
            .wait_until(SHORT, |s| !s.received_of("daemon_client_delete").is_empty())
            .await,
        "{}",
        runner.log()
    );
    let (added_at, _) = second.received_of("daemon_client_add")[0];
    let deletes = first.received_of("daemon_client_delete");
    let (deleted_at, delete) = &deletes[0];
    let Message::ClientDelete(info) = &delete.message else {
        unreachable!()
    };
    assert_eq!(info.path, old_path);
    assert!(*deleted_at > added_at, "the old one left first");
    assert!(runner.wait_log("configuration reloaded", SHORT).await);
    second.send_event(&fixture("tag.created.json")).await;
    assert!(
        wait_for(SHORT, || lines(&out.join("runs")) == ["all 115"]).await,
        "{}",
        runner.log()
    );
}
