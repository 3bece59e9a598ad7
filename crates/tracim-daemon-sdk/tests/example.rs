//! examples/mini_client.rs, the SDK's smallest client, against the simulated daemon.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

/// `cargo test` builds the examples next to the test binaries' directory.
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    dir.join("examples").join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mini_client_prints_every_event_and_leaves_cleanly() {
    let place = Place::new();
    let sim = place.sim(NO_PINGS).await;
    let mut child = Command::new(example("mini_client"))
        .arg(place.master())
        .arg(place.socket())
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    for name in [
        "mention.created.json",
        "content.modified.html-document.json",
        "user.modified.json",
    ] {
        assert_eq!(sim.send_event(&fixture(name)).await.ok, 1);
    }
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(3)
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        lines,
        [
            "112 mention.created by John Doe",
            "106 content.modified.html-document by John Doe",
            "101 user.modified by ",
        ]
    );
    // SIGINT: it unregisters and removes its socket.
    // SAFETY: kill on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    // Its delete is in the socket before it exits, but the simulator may not
    // have read it yet: wait for it, then check it came once.
    assert!(
        sim.wait_until(SHORT, |s| !s.received_of("daemon_client_delete").is_empty())
            .await
    );
    assert_eq!(sim.received_of("daemon_client_delete").len(), 1);
    assert!(!place.socket().exists());
}
