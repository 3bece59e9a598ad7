//! Shared helpers for the integration tests: a temporary home for sockets and
//! files, configs with short intervals, the real binary as a child process, and
//! the simulated daemon in the test process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tracim_daemon_sdk::sim::{SimDaemon, SimOptions};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tracim-hooks")
}

/// A sample TLM from src/samples.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/src/samples/{name}", env!("CARGO_MANIFEST_DIR"));
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

/// A directory for one test, removed at the end. Short paths: socket paths
/// are limited to 107 bytes.
pub struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    pub fn new() -> Place {
        Place {
            dir: tempfile::Builder::new()
                .prefix("th")
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
        self.path().join("hooks.sock")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("hooks.toml")
    }

    /// Where hooks of [`recording_hook`] write.
    pub fn out(&self) -> PathBuf {
        let out = self.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        out
    }

    /// Writes hooks.toml: a `[daemon]` table on this place's sockets with short
    /// intervals, then `rest` (more tables and hooks).
    pub fn write_config(&self, rest: &str) -> PathBuf {
        let text = format!(
            "[daemon]\nmaster_socket = \"{}\"\nsocket = \"{}\"\nwatch_interval = \"50ms\"\nretry_max = \"300ms\"\nread_timeout = \"1s\"\n{rest}",
            self.master().display(),
            self.socket().display(),
        );
        self.write_raw_config(&text)
    }

    /// Replaces hooks.toml at once (write aside, rename), as editors save, so
    /// that a reload never reads a half-written file.
    pub fn write_raw_config(&self, text: &str) -> PathBuf {
        let path = self.config_path();
        let aside = self.path().join(".hooks.toml.new");
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, &path).unwrap();
        path
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

    /// Starts `tracim-hooks run` on this place's config.
    pub fn runner(&self) -> Runner {
        Runner::start(&self.config_path(), self.path(), &[])
    }
}

/// A hook that writes its stdin and its `TRACIM_*` variables under `out`, one
/// file each per hook and event, and appends its name to `out/runs`.
pub fn recording_hook(name: &str, on: &str, out: &Path) -> String {
    format!(
        r#"
[[hook]]
name = "{name}"
on = {on}
env = {{ OUT = "{out}" }}
run = 'cat > "$OUT/$TRACIM_HOOK_NAME.$TRACIM_EVENT_ID.stdin"; env | grep "^TRACIM_" | sort > "$OUT/$TRACIM_HOOK_NAME.$TRACIM_EVENT_ID.env"; echo "$TRACIM_HOOK_NAME $TRACIM_EVENT_ID" >> "$OUT/runs"'
"#,
        out = out.display()
    )
}

/// The runner as a child process, its stderr going to a file.
pub struct Runner {
    child: Child,
    log: PathBuf,
}

impl Runner {
    pub fn start(config: &Path, dir: &Path, extra_env: &[(&str, &str)]) -> Runner {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = dir.join(format!("runner.{n}.log"));
        let child = Command::new(bin())
            .args(["--config", &config.to_string_lossy(), "run"])
            .env_remove("NOTIFY_SOCKET")
            // Each runner its own default journal, not the user's (nor another test's).
            .env("XDG_STATE_HOME", dir.join("state"))
            .env(
                "TRACIM_HOOKS_LOG",
                "tracim_hooks=debug,tracim_daemon_sdk=debug",
            )
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Runner { child, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill on our own child's pid.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit, polling (the test's runtime must not block).
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "runner did not exit; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.log().contains(needle)).await
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
