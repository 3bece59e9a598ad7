//! The binary called once (`check`, `test`, `init`, `demo`, ...): one builder for
//! every such call, and what it said.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use super::bin;

/// One call of the binary: built, then [`Cli::run`]. By default it logs at its
/// own default level (`TRACIM_HOOKS_LOG` removed), has no `NOTIFY_SOCKET` and
/// reads an empty stdin.
pub struct Cli {
    command: Command,
    stdin: Option<Vec<u8>>,
}

/// What a call did: its status and its output as text.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// (exit code, stdout, stderr).
    pub fn parts(self) -> (Option<i32>, String, String) {
        (self.status.code(), self.stdout, self.stderr)
    }

    /// Both streams, for an assertion's message.
    pub fn both(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

impl Cli {
    /// `tracim-hooks <args>`.
    pub fn new(args: &[&str]) -> Cli {
        Cli::of(Path::new(bin()), args)
    }

    /// `tracim-hooks --config <config> <args>`.
    pub fn with_config(config: &Path, args: &[&str]) -> Cli {
        let mut cli = Cli::new(&["--config"]);
        cli.command.arg(config).args(args);
        cli
    }

    /// `tracim-hooks --config <config> check`.
    pub fn check(config: &Path) -> Cli {
        Cli::with_config(config, &["check"])
    }

    /// Another copy of the binary, with `args`.
    pub fn of(binary: &Path, args: &[&str]) -> Cli {
        let mut command = Command::new(binary);
        command
            .args(args)
            .env_remove("TRACIM_HOOKS_LOG")
            .env_remove("NOTIFY_SOCKET");
        Cli {
            command,
            stdin: None,
        }
    }

    /// Logs by this `TRACIM_HOOKS_LOG` filter.
    pub fn log(mut self, filter: &str) -> Cli {
        self.command.env("TRACIM_HOOKS_LOG", filter);
        self
    }

    pub fn envs(mut self, vars: &[(&str, &str)]) -> Cli {
        self.command.envs(vars.iter().copied());
        self
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Cli {
        self.command.arg(arg);
        self
    }

    /// Feeds `bytes` on stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cli {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs as `uid` (and the group of the same number), from `/`.
    pub fn user(mut self, uid: u32) -> Cli {
        self.command.current_dir("/").uid(uid).gid(uid);
        self
    }

    /// Runs it to its end.
    pub fn run(mut self) -> Ran {
        let output = match self.stdin.take() {
            None => self.command.stdin(Stdio::null()).output().unwrap(),
            Some(bytes) => {
                use std::io::Write;
                let mut child = self
                    .command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(&bytes).unwrap();
                child.wait_with_output().unwrap()
            }
        };
        Ran {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs it to its end off the test's runtime.
    pub async fn run_blocking(self) -> Ran {
        tokio::task::spawn_blocking(move || self.run())
            .await
            .unwrap()
    }
}
