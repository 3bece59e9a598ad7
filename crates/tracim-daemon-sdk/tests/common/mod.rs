//! Shared helpers for the SDK's integration tests: a short temporary place for
//! sockets, the simulated daemon, the sample events, and (in `tracim`) the
//! simulated Tracim server with clients for each way of logging in.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracim_daemon_sdk::sim::{SimDaemon, SimOptions};

mod tracim;
#[allow(unused_imports)]
pub use tracim::*;

/// How long to wait for something that should come soon: only a hang reaches it.
pub const SHORT: Duration = Duration::from_secs(10);

/// A ping interval the tests never reach: the simulated daemon stays quiet.
pub const NO_PINGS: Duration = Duration::from_secs(30);

/// A sample TLM from tests/fixtures.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A directory for one test, removed at the end. Short paths: socket paths
/// are limited to 107 bytes.
pub struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    pub fn new() -> Place {
        Place {
            dir: tempfile::Builder::new()
                .prefix("tds")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn master(&self) -> PathBuf {
        self.path().join("master.sock")
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("client.sock")
    }

    pub async fn sim(&self, ping_interval: Duration) -> SimDaemon {
        SimDaemon::start(
            self.master(),
            SimOptions {
                ping_interval,
                ..SimOptions::default()
            },
        )
        .await
        .unwrap()
    }
}

/// Sends raw bytes to a socket the way the daemon does: connect, write, close.
pub async fn send_raw(socket: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    stream.write_all(bytes).await?;
    stream.shutdown().await
}
