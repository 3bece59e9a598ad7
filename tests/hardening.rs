//! The second hostile review (issue 15): what an attacker or an unlucky user
//! tried on the release binary, each case failing before its fix.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tracim_daemon_sdk::protocol::{AccountInfo, Envelope, Message};

const SHORT: Duration = Duration::from_secs(10);

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
