//! `tracim-hooks run` as a child process, its stderr going to a file: starting
//! it, waiting for its readiness and its log lines, and reading what it ran.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::place::Place;
use super::{SHORT, bin, lines, wait_for};

/// The runner as a child process, its stderr going to a file; killed on drop.
pub struct Runner {
    child: Child,
    log: PathBuf,
}

impl Runner {
    /// `tracim-hooks --config <config> run` at debug level, no `NOTIFY_SOCKET`:
    /// the command [`Runner::start`] spawns, for a test that must set more
    /// (a umask, a user).
    pub fn command(config: &Path) -> Command {
        Runner::command_of(Path::new(bin()), config)
    }

    /// [`Runner::command`] of another copy of the binary.
    pub fn command_of(binary: &Path, config: &Path) -> Command {
        let mut command = Command::new(binary);
        command
            .args(["--config", &config.to_string_lossy(), "run"])
            .env_remove("NOTIFY_SOCKET")
            // Each runner its own default journal next to its config, not the
            // user's (nor another test's).
            .env(
                "XDG_STATE_HOME",
                config.parent().unwrap_or(Path::new("/tmp")).join("state"),
            )
            .env(
                "TRACIM_HOOKS_LOG",
                "tracim_hooks=debug,tracim_daemon_sdk=debug",
            );
        command
    }

    pub fn start(config: &Path, dir: &Path, extra_env: &[(&str, &str)]) -> Runner {
        let mut command = Runner::command(config);
        command.envs(extra_env.iter().copied());
        Runner::spawn(command, dir)
    }

    /// Spawns `command` with no stdin or stdout and its stderr to a new log
    /// file in `dir`.
    pub fn spawn(mut command: Command, dir: &Path) -> Runner {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = dir.join(format!("runner.{n}.log"));
        let child = command
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

    /// Asserts that the runner says it runs and the place's socket is there.
    pub async fn wait_running(&self, place: &Place) {
        assert!(
            self.wait_log("tracim-hooks running", SHORT).await && place.socket().exists(),
            "the runner did not start:\n{}",
            self.log()
        );
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

/// Log lines holding `needle`.
pub fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Waits until `out/runs` (of a recording hook) holds `line`.
pub async fn expect_run(out: &Path, line: &str, runner: &Runner) {
    assert!(
        wait_for(SHORT, || lines(&out.join("runs")).iter().any(|l| l == line)).await,
        "`{line}` never ran; runs: {:?}\nlog:\n{}",
        lines(&out.join("runs")),
        runner.log()
    );
}

/// Waits until every run the runner dispatched has ended: the `hooks=` of
/// each "event received" line, summed, against the "run finished" and "run
/// failed" lines. Events are dispatched in the order they came, so once a
/// later event has run, this covers any earlier one that should not have.
pub async fn all_dispatched_runs_ended(runner: &Runner) {
    let settled = || {
        let log = runner.log();
        let dispatched: usize = log
            .lines()
            .filter(|l| l.contains("event received"))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("hooks="))?
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        dispatched > 0 && dispatched == count(&log, "run finished") + count(&log, "run failed")
    };
    assert!(
        wait_for(SHORT, settled).await,
        "runs dispatched and ended differ:\n{}",
        runner.log()
    );
}
