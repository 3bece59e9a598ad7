//! The second hostile review (issue 15): what an attacker or an unlucky user
//! tried on the release binary, each case failing before its fix.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::procfs::status_kb;
use common::*;
use serde_json::json;
use tracim_daemon_sdk::protocol::{AccountInfo, Envelope, Message};

/// Starts the runner and waits until it is registered with the simulated daemon.
async fn registered(place: &Place) -> Runner {
    let runner = place.runner();
    assert!(
        runner.wait_log("registered with TracimDaemon", SHORT).await,
        "the runner did not register:\n{}",
        runner.log()
    );
    runner
}

fn tlm(id: u64, author: u64) -> String {
    json!({
        "event_id": id,
        "event_type": "content.modified.html-document",
        "fields": {"author": {"user_id": author}, "content": {"label": "n"}},
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unasked_account_info_does_not_change_the_runners_account() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(Duration::from_secs(30)).await;
    place.write_config(
        &[
            recording_hook("own", "\"*\"", &out),
            "skip_own = true\n".into(),
        ]
        .concat(),
    );
    let runner = registered(&place).await;
    // Any process of the user can write to the runner's socket: it claims the
    // daemon's account is user 2.
    let forged = Envelope::new(
        place.master().to_string_lossy(),
        Message::AccountInfo(AccountInfo {
            user_id: "2".into(),
        }),
    )
    .encode();
    send_raw(&place.socket(), &forged).await.unwrap();
    // An event by user 2 is not the daemon's own (the daemon is user 1): it runs.
    // One by user 1 is skipped; it comes first, so once 21 ran, 20 was decided.
    assert_eq!(sim.send_event(&tlm(20, 1)).await.ok, 1);
    assert_eq!(sim.send_event(&tlm(21, 2)).await.ok, 1);
    assert!(
        wait_for(SHORT, || lines(&out.join("runs"))
            .contains(&"own 21".to_owned()))
        .await,
        "the event by user 2 was skipped as the daemon's own:\n{}",
        runner.log()
    );
    assert_eq!(lines(&out.join("runs")), ["own 21"], "{}", runner.log());
    assert!(
        runner.log().contains("nobody asked for"),
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_socket_that_is_a_directory_is_named_as_such() {
    let place = Place::new();
    std::fs::create_dir(place.master()).unwrap();
    let config = place.write_config("");
    let check = Command::new(bin())
        .args(["--config", &config.to_string_lossy(), "check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("a directory is there, not a socket"),
        "{stdout}"
    );
    let runner = place.runner();
    assert!(
        runner
            .wait_log(
                "waiting for TracimDaemon: a directory is there, not a socket",
                SHORT
            )
            .await,
        "{}",
        runner.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_is_a_fifo_is_refused_at_once() {
    let place = Place::new();
    let fifo = place.path().join("hooks.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for command in ["check", "run"] {
        let started = Instant::now();
        let output = Command::new(bin())
            .args(["--config", &fifo.to_string_lossy(), command])
            .output()
            .unwrap();
        assert!(started.elapsed() < SHORT, "{command} hung on a FIFO");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("is a FIFO, not a regular file"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_reach_hooks_and_conditions_as_the_daemon_wrote_them() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(Duration::from_secs(30)).await;
    place.write_config(
        &[
            recording_hook("all", "\"*\"", &out),
            // `where` compares the same text: 1E2, not 100.0.
            recording_hook("exp", "\"*\"", &out),
            "where = { fields.exp = \"1E2\" }\n".into(),
        ]
        .concat(),
    );
    let runner = registered(&place).await;
    let text = r#"{"event_id":31,"event_type":"content.modified.html-document","fields":{"big":123456789012345678901234567890,"negzero":-0,"exp":1E2,"tiny":1e-400,"huge":1e400}}"#;
    assert_eq!(sim.send_event(text).await.ok, 1);
    assert!(
        wait_for(SHORT, || lines(&out.join("runs")).len() == 2).await,
        "{:?}\n{}",
        lines(&out.join("runs")),
        runner.log()
    );
    let env = std::fs::read_to_string(out.join("all.31.env")).unwrap();
    for line in [
        "TRACIM_FIELDS_BIG=123456789012345678901234567890",
        "TRACIM_FIELDS_NEGZERO=-0",
        "TRACIM_FIELDS_EXP=1E2",
        "TRACIM_FIELDS_TINY=1e-400",
        "TRACIM_FIELDS_HUGE=1e400",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} not in\n{env}");
    }
    assert_eq!(
        std::fs::read_to_string(out.join("all.31.stdin")).unwrap(),
        format!("{text}\n")
    );
}

/// The runner's anonymous resident memory (its heaps and stacks, not its
/// binary's pages, which a debug build makes large), KiB.
fn heap_kib(pid: i32) -> u64 {
    status_kb(pid, "RssAnon")
}

/// Waits up to 10 s for the runner's anonymous memory to fall back within
/// 4 MiB of what it was idle (the release binary's whole RSS is then under
/// 16 MiB: see the benchmark).
async fn memory_falls_back(runner: &Runner, idle_kib: u64, after: &str) {
    let limit = idle_kib + 4 * 1024;
    let settled = wait_for(Duration::from_secs(10), || heap_kib(runner.pid()) < limit).await;
    assert!(
        settled,
        "after {after}: {} KiB anonymous memory 10 s later, {idle_kib} KiB idle (peak RSS {} KiB)",
        heap_kib(runner.pid()),
        status_kb(runner.pid(), "VmHWM")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_given_back_after_a_huge_message_and_a_huge_event() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(Duration::from_secs(30)).await;
    place.write_config(&recording_hook("all", "\"*\"", &out));
    let runner = registered(&place).await;
    let idle = heap_kib(runner.pid());
    // A 17 MiB message: over max_message (16 MiB), refused.
    let huge = vec![b'x'; 17 * 1024 * 1024];
    let _ = send_raw(&place.socket(), &huge).await;
    assert!(
        runner
            .wait_log("message over max_message dropped", SHORT)
            .await,
        "{}",
        runner.log()
    );
    memory_falls_back(&runner, idle, "a 17 MiB message refused").await;
    // A 15 MiB note whose run ends.
    let body = "y".repeat(15 * 1024 * 1024);
    let text = json!({
        "event_id": 41,
        "event_type": "content.modified.html-document",
        "fields": {"content": {"raw_content": body}},
    })
    .to_string();
    assert_eq!(sim.send_event(&text).await.ok, 1);
    assert!(
        wait_for(SHORT, || lines(&out.join("runs"))
            .contains(&"all 41".to_owned()))
        .await,
        "{}",
        runner.log()
    );
    assert!(
        runner.wait_log("run finished", SHORT).await,
        "{}",
        runner.log()
    );
    memory_falls_back(&runner, idle, "a 15 MiB event's run").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_cannot_starve_the_daemon() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(Duration::from_secs(30)).await;
    // Silent peers would hold their slots for 30 s.
    place.write_config_with(
        "read_timeout = \"30s\"",
        &recording_hook("all", "\"*\"", &out),
    );
    let runner = registered(&place).await;
    // More silent connections than there are read slots (512).
    let mut silent = Vec::new();
    for _ in 0..600 {
        silent.push(
            tokio::net::UnixStream::connect(place.socket())
                .await
                .unwrap(),
        );
    }
    // The daemon's next delivery is read at once all the same.
    let started = Instant::now();
    assert_eq!(sim.send_event(&tlm(51, 2)).await.ok, 1);
    assert!(
        wait_for(SHORT, || lines(&out.join("runs"))
            .contains(&"all 51".to_owned()))
        .await,
        "the event did not run while silent peers held the slots:\n{}",
        runner.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(runner.log().contains("connection shed"), "{}", runner.log());
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_ping_makes_the_runner_ask_the_daemon_at_once() {
    let place = Place::new();
    let sim = place.sim(Duration::from_millis(200)).await;
    // Neither the periodic check (60 s) nor the ping timeout (75 s) can notice
    // within the test: only a late ping can.
    place.write_config_with(
        "ping_interval = \"200ms\"\ncheck_interval = \"60s\"\nping_timeout = \"75s\"",
        "",
    );
    let runner = registered(&place).await;
    // The daemon drops us (as after a failed delivery) and so stops pinging us.
    sim.set_pinging(false);
    sim.forget(&place.socket().to_string_lossy());
    let started = Instant::now();
    assert!(
        runner
            .wait_log(
                "registering again: the daemon no longer lists this client",
                SHORT
            )
            .await,
        "{}",
        runner.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    sim.set_pinging(true);
    assert!(
        sim.wait_for_client(&place.socket(), SHORT).await,
        "{}",
        runner.log()
    );
}
