//! Running one hook process: its own process group, the event on stdin, its
//! output, its time limit, and every process it leaves behind stopped and reaped.
//!
//! Children are spawned with `std::process` and waited for through a pidfd, not
//! through `tokio::process`, so that the runner alone decides when a child is
//! reaped: it must reap the leader *and* the group's stragglers, which the runner
//! inherits as a child subreaper.

mod child;
mod io;
mod reaper;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::unix::pipe;
use tracing::Instrument;

use crate::hook::Output;

pub use child::{Child, group_exists};
pub use io::escape_controls;
pub use reaper::reap_orphans;

pub use crate::text::OUTPUT_TAIL;

/// A logged line of hook output is cut here.
pub const MAX_LINE: usize = 4096;
/// A run's logged output stops here.
pub const MAX_RUN_OUTPUT: usize = 64 * 1024;
/// After the group is gone, how long output readers may still drain.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);
/// Polling step while waiting for a group to empty.
const GROUP_POLL: Duration = Duration::from_millis(5);
/// After the leader has exited on its own, how long what it left in its group
/// may take to leave it (`setsid cmd &`: the child forks first and calls
/// `setsid()` a moment later) before the rest of the group is signalled.
const LEAVE_GRACE: Duration = Duration::from_millis(500);
/// A group that survives SIGKILL this long is given up on (stuck in the kernel).
const GROUP_GIVE_UP: Duration = Duration::from_secs(5);

/// Everything needed to start one process.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The argv; the first element is looked up in `PATH`.
    pub argv: Vec<String>,
    /// The environment every run inherits (the runner's own, as it was at start),
    /// shared by all runs rather than copied into each.
    pub inherited: Arc<[(OsString, OsString)]>,
    /// The run's own variables, set after the inherited ones (a later one of a
    /// name wins). Nothing else is inherited.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory, or the runner's.
    pub cwd: Option<PathBuf>,
    /// Written to stdin, followed by a newline; `None` gives an empty stdin.
    pub stdin: Option<Arc<str>>,
    /// What happens to stdout and stderr.
    pub output: Output,
    /// Names the run in logs: hook name and event id.
    pub label: Label,
}

/// The hook and the event of a run, for log lines.
#[derive(Debug, Clone)]
pub struct Label {
    /// The hook's name.
    pub hook: Arc<str>,
    /// The event's id.
    pub event_id: u64,
    /// The event's type.
    pub event_type: Arc<str>,
}

impl Label {
    /// The span the run's records are made in (see [`crate::logging::run_span`]).
    pub fn span(&self) -> tracing::Span {
        crate::logging::run_span(&self.hook, &self.event_type)
    }
}

/// Time limits of a run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// SIGTERM to the group after this long.
    pub timeout: Duration,
    /// SIGKILL this long after SIGTERM.
    pub kill_after: Duration,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
    /// Something else reaped it first, so how it ended is not known.
    Unknown,
}

impl Exit {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl Exit {
    /// How systemd says it of a unit's process: (`EXIT_CODE`, `EXIT_STATUS`).
    pub fn as_systemd(self) -> Option<(&'static str, i32)> {
        match self {
            Exit::Code(code) => Some(("exited", code)),
            Exit::Signal(signal) => Some(("killed", signal)),
            Exit::Unknown => None,
        }
    }
}

impl From<rustix::process::WaitStatus> for Exit {
    fn from(status: rustix::process::WaitStatus) -> Exit {
        match (status.exit_status(), status.terminating_signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            (None, None) => Exit::Unknown,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(
                f,
                "signal {signal} ({})",
                signal_name(*signal).unwrap_or("signal")
            ),
            Exit::Unknown => f.write_str("exit status unknown"),
        }
    }
}

/// The name of a signal, for messages and `TRACIM_FAILED_EXIT`; `None` for
/// one without a name here.
pub(crate) fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGKILL => "SIGKILL",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGALRM => "SIGALRM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return None,
    })
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// How the command itself ended.
    pub exit: Exit,
    /// Whether its time limit ran out.
    pub timed_out: bool,
    /// Whether the runner's shutdown killed it.
    pub cancelled: bool,
    /// From spawn to the group being gone.
    pub duration: Duration,
    /// The last [`OUTPUT_TAIL`] bytes of its stdout, escaped as in the logs
    /// (empty unless its output is logged).
    pub stdout_tail: String,
    /// The same of its stderr.
    pub stderr_tail: String,
}

impl Outcome {
    /// Exited 0 within its time.
    pub fn success(&self) -> bool {
        self.exit.success() && !self.timed_out && !self.cancelled
    }
}

/// A process that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start `{program}`: {source}")]
pub struct SpawnError {
    /// argv\[0\].
    pub program: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Starts a process in a new process group. Must be called within a tokio runtime.
pub fn spawn(spec: &Spec) -> Result<Child, SpawnError> {
    reaper::become_subreaper();
    let program = spec.argv.first().cloned().unwrap_or_default();
    let error = |source| SpawnError {
        program: program.clone(),
        source,
    };
    // An absolute program path lets std use posix_spawn (vfork) instead of a
    // full fork that tries execve in each PATH directory: three times faster.
    let mut command = std::process::Command::new(resolve_program(&program, spec.var("PATH")));
    command
        .args(spec.argv.iter().skip(1))
        .env_clear()
        .envs(spec.inherited.iter().chain(&spec.env).map(|(k, v)| (k, v)))
        .process_group(0)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    let (stdout, stderr) = match spec.output {
        Output::Log => (Stdio::piped(), Stdio::piped()),
        Output::Inherit => (Stdio::inherit(), Stdio::inherit()),
        Output::Null => (Stdio::null(), Stdio::null()),
    };
    command.stdout(stdout).stderr(stderr);
    let spawning = reaper::spawning();
    let mut std_child = command.spawn().map_err(error)?;
    let started = Instant::now();
    let Some(pid) = rustix::process::Pid::from_raw(std_child.id() as i32) else {
        return Err(error(std::io::Error::other("the child has no pid")));
    };
    reaper::leaders().insert(pid.as_raw_pid());
    drop(spawning);
    let pidfd = child::open_pidfd(pid);

    // The caller's span when it is this run's (the supervisor's launcher), else one
    // of its own: a span is made once per run, not once per task of it.
    let current = tracing::Span::current();
    let span = if current.metadata().is_some_and(crate::logging::is_run_span) {
        current
    } else {
        spec.label.span()
    };
    let mut child = Child::new(pid, pidfd, started);
    if let (Some(stdin), Some(text)) = (std_child.stdin.take(), spec.stdin.clone()) {
        child.stdin_writer = pipe::Sender::from_owned_fd(OwnedFd::from(stdin))
            .ok()
            .map(|sender| {
                tokio::spawn(
                    io::feed_stdin(sender, text, spec.label.clone()).instrument(span.clone()),
                )
            });
    }
    let budget = Arc::new(io::OutputBudget::new(MAX_RUN_OUTPUT));
    let readers = [
        (std_child.stdout.take().map(OwnedFd::from), "stdout"),
        (std_child.stderr.take().map(OwnedFd::from), "stderr"),
    ];
    for ((fd, stream), tail) in readers.into_iter().zip(child.tails.clone()) {
        if let Some(receiver) = fd.and_then(|fd| pipe::Receiver::from_owned_fd(fd).ok()) {
            child.io.push(tokio::spawn(
                io::log_output(receiver, stream, spec.label.clone(), budget.clone(), tail)
                    .instrument(span.clone()),
            ));
        }
    }
    // The std handle is dropped without waiting: reaping is ours, through the pidfd.
    drop(std_child);
    Ok(child)
}

impl Spec {
    /// The value the run gets for `name`: the last one set, as in the environment
    /// the process is given.
    pub fn var(&self, name: &str) -> Option<&OsStr> {
        self.env
            .iter()
            .rev()
            .chain(self.inherited.iter().rev())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }
}

/// Finds a bare program name in the `PATH` the hook will have, as execvp would;
/// a name with a `/` (or one not found) is left as it is.
fn resolve_program(program: &str, path: Option<&OsStr>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') || program.is_empty() {
        return PathBuf::from(program);
    }
    for dir in path.into_iter().flat_map(std::env::split_paths) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let candidate = dir.join(program);
        if std::fs::metadata(&candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        {
            return candidate;
        }
    }
    PathBuf::from(program)
}

/// Spawns and runs a spec to its end; a spawn failure is returned as such.
pub async fn run(
    spec: &Spec,
    limits: Limits,
    cancel: impl std::future::Future<Output = ()>,
) -> Result<Outcome, SpawnError> {
    let child = spawn(spec)?;
    Ok(child.finish(limits, cancel).await)
}

#[cfg(test)]
mod tests;
