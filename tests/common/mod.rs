//! Shared helpers for the integration tests, split by job: temporary places
//! and their configs ([`place`]), the real binary as a runner ([`runner`]) or
//! called once ([`cli`]), events ([`events`]), what `/proc` tells of a process ([`procfs`]), and the
//! crate's logs captured in-process ([`logs`]). This file holds the timeouts and
//! the small waits and readers every test file uses.

#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod events;
pub mod logs;
pub mod place;
pub mod procfs;
pub mod runner;
pub mod tracim;

pub use cli::{Cli, Ran};
pub use events::{tlm, valid_event};
pub use place::{Place, env_file, env_get, recording_hook};
pub use runner::{Runner, all_dispatched_runs_ended, count, expect_run};

use std::path::Path;
use std::time::{Duration, Instant};

/// How long to wait for something that should come soon: only a hang reaches
/// it, so it is generous for a shared, noisy machine.
pub const SHORT: Duration = Duration::from_secs(10);

/// Upper bound for a whole supervisor to go idle or a run to report; only
/// reached when something hangs.
pub const HANG: Duration = Duration::from_secs(15);

/// A ping interval the tests never reach: the simulated daemon stays quiet.
pub const NO_PINGS: Duration = Duration::from_secs(30);

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tracim-hooks")
}

/// The path of a sample TLM of src/samples.
pub fn fixture_path(name: &str) -> String {
    format!("{}/src/samples/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A sample TLM from src/samples.
pub fn fixture(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every sample TLM: (file name, text).
pub fn all_fixtures() -> Vec<(String, String)> {
    let dir = format!("{}/src/samples", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "json").then(|| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
        })
        .collect();
    out.sort();
    out
}

/// Polls `check` every 10 ms until it holds or the timeout passes.
pub async fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lines of a file, empty when it does not exist yet.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Sends raw bytes to a socket the way the daemon does: connect, write, close.
pub async fn send_raw(socket: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    stream.write_all(bytes).await?;
    stream.shutdown().await
}

/// Sends bytes the daemon's way and ignores a peer that hangs up early.
pub async fn send_lossy(socket: &Path, bytes: &[u8]) {
    let _ = send_raw(socket, bytes).await;
}
