//! Running one hook process: its own process group, the event on stdin, its
//! output, its time limit, and every process it leaves behind stopped and reaped.
//!
//! Children are spawned with `std::process` and waited for through a pidfd, not
//! through `tokio::process`, so that the runner alone decides when a child is
//! reaped: it must reap the leader *and* the group's stragglers, which the runner
//! inherits as a child subreaper.

use std::ffi::OsString;
use std::fmt;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tracing::{debug, info, warn};

use crate::config::{Hook, Output};
use crate::env::event_vars;
use crate::protocol::Event;

/// A logged line of hook output is cut here.
pub const MAX_LINE: usize = 4096;
/// A run's logged output stops here.
pub const MAX_RUN_OUTPUT: usize = 64 * 1024;
/// After the group is gone, how long output readers may still drain.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);
/// Polling step while waiting for a group to empty.
const GROUP_POLL: Duration = Duration::from_millis(5);
/// A group that survives SIGKILL this long is given up on (stuck in the kernel).
const GROUP_GIVE_UP: Duration = Duration::from_secs(5);

/// Everything needed to start one process.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The argv; the first element is looked up in `PATH`.
    pub argv: Vec<String>,
    /// The complete environment (nothing else is inherited).
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
}

impl Exit {
    fn from_wait_status(status: libc::c_int) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }

    /// Exit code 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(f, "signal {signal} ({})", signal_name(*signal)),
        }
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGKILL => "SIGKILL",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        _ => "signal",
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// How the command itself ended.
    pub exit: Exit,
    /// Whether its time limit ran out.
    pub timed_out: bool,
    /// Whether the runner's shutdown killed it.
    pub cancelled: bool,
    /// From spawn to the group being gone.
    pub duration: Duration,
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

/// The spec a hook runs with for an event: the command, the environment (the
/// runner's, then the hook's `env`, then the `TRACIM_*` variables) and the event on stdin.
pub fn hook_spec(
    hook: &Hook,
    event: &Event,
    daemon_user_id: &str,
    env_budget: usize,
    inherited: &[(OsString, OsString)],
) -> Spec {
    let vars = event_vars(event, &hook.name, daemon_user_id, env_budget);
    if !vars.omitted.is_empty() {
        debug!(hook = %hook.name, event_id = event.id(), omitted = vars.omitted.len(), "variables over the size budget left out");
    }
    let mut env: Vec<(OsString, OsString)> = inherited.to_vec();
    env.extend(hook.env.iter().map(|(k, v)| (k.into(), v.into())));
    env.extend(vars.vars.into_iter().map(|(k, v)| (k.into(), v.into())));
    Spec {
        argv: hook.command.argv().into_iter().map(str::to_owned).collect(),
        env,
        cwd: hook.cwd.clone(),
        stdin: Some(event.raw_shared()),
        output: hook.output,
        label: Label {
            hook: hook.name.as_str().into(),
            event_id: event.id(),
        },
    }
}

/// A started process, leader of its own process group.
pub struct Child {
    pid: libc::pid_t,
    pidfd: Option<AsyncFd<OwnedFd>>,
    started: Instant,
    io: Vec<tokio::task::JoinHandle<()>>,
    stdin_writer: Option<tokio::task::JoinHandle<()>>,
    reaped: Option<Exit>,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child").field("pid", &self.pid).finish()
    }
}

/// Makes this process the reaper of its descendants' orphans, so that the
/// stragglers of a hook's group come back to us to be reaped whatever PID 1 is.
fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes a plain integer.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            debug!(error = %std::io::Error::last_os_error(), "cannot become a child subreaper");
        }
    });
}

/// Held for reading while a process is being spawned, for writing while orphans
/// are reaped: std's spawn waits for a child whose exec failed, and the sweep
/// must not take that child from it.
static SPAWNING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Leaders spawned and not yet reaped by their [`Child`]: the sweep leaves them
/// to it, since their exit status is the run's result.
static LEADERS: std::sync::Mutex<std::collections::BTreeSet<libc::pid_t>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn leaders() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<libc::pid_t>> {
    crate::lock(&LEADERS)
}

/// Reaps the zombies among this process's children that no run waits for: what
/// a hook started in a session of its own (`setsid`) and left behind, which
/// came back to us as the subreaper. Only children outside our own process
/// group are taken, so a child spawned by other code of this process (which
/// stays in our group) is left to whoever waits for it. Returns how many.
pub fn reap_orphans() -> usize {
    let _no_spawn = SPAWNING.write().unwrap_or_else(|p| p.into_inner());
    let waited_for = leaders().clone();
    // SAFETY: getpid and getpgrp have no preconditions.
    let (me, my_group) = unsafe { (libc::getpid(), libc::getpgrp()) };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut reaped = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold anything, so fields
        // are counted from its closing parenthesis.
        let mut fields = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace())
            .into_iter()
            .flatten();
        let state = fields.next();
        let ppid = fields.next().and_then(|f| f.parse::<libc::pid_t>().ok());
        let group = fields.next().and_then(|f| f.parse::<libc::pid_t>().ok());
        let orphan_zombie =
            state == Some("Z") && ppid == Some(me) && group.is_some_and(|g| g != my_group);
        if orphan_zombie && !waited_for.contains(&pid) {
            let mut status = 0;
            // SAFETY: waitpid on a zombie child of ours with a valid status pointer.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                reaped += 1;
            }
        }
    }
    if reaped > 0 {
        debug!(
            reaped,
            "reaped processes that hooks left behind outside their group"
        );
    }
    reaped
}

/// Starts a process in a new process group. Must be called within a tokio runtime.
pub fn spawn(spec: &Spec) -> Result<Child, SpawnError> {
    become_subreaper();
    let program = spec.argv.first().cloned().unwrap_or_default();
    let error = |source| SpawnError {
        program: program.clone(),
        source,
    };
    // An absolute program path lets std use posix_spawn (vfork) instead of a
    // full fork that tries execve in each PATH directory: three times faster.
    let mut command = std::process::Command::new(resolve_program(&program, &spec.env));
    command
        .args(spec.argv.iter().skip(1))
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
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
    let spawning = SPAWNING.read().unwrap_or_else(|p| p.into_inner());
    let mut std_child = command.spawn().map_err(error)?;
    let started = Instant::now();
    let pid = std_child.id() as libc::pid_t;
    leaders().insert(pid);
    drop(spawning);
    let pidfd = open_pidfd(pid);

    let mut child = Child {
        pid,
        pidfd,
        started,
        io: Vec::new(),
        stdin_writer: None,
        reaped: None,
    };
    if let (Some(stdin), Some(text)) = (std_child.stdin.take(), spec.stdin.clone()) {
        child.stdin_writer = pipe::Sender::from_owned_fd(OwnedFd::from(stdin))
            .ok()
            .map(|sender| tokio::spawn(feed_stdin(sender, text, spec.label.clone())));
    }
    let budget = Arc::new(OutputBudget::new(MAX_RUN_OUTPUT));
    let readers = [
        (std_child.stdout.take().map(OwnedFd::from), "stdout"),
        (std_child.stderr.take().map(OwnedFd::from), "stderr"),
    ];
    for (fd, stream) in readers {
        if let Some(receiver) = fd.and_then(|fd| pipe::Receiver::from_owned_fd(fd).ok()) {
            child.io.push(tokio::spawn(log_output(
                receiver,
                stream,
                spec.label.clone(),
                budget.clone(),
            )));
        }
    }
    // The std handle is dropped without waiting: reaping is ours, through the pidfd.
    drop(std_child);
    Ok(child)
}

/// Finds a bare program name in the `PATH` the hook will have, as execvp would;
/// a name with a `/` (or one not found) is left as it is.
fn resolve_program(program: &str, env: &[(OsString, OsString)]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') || program.is_empty() {
        return PathBuf::from(program);
    }
    let path = env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v);
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

fn open_pidfd(pid: libc::pid_t) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the syscall returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd moves into the AsyncFd, which neither closes nor
    // replaces it while registered.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
}

async fn feed_stdin(mut sender: pipe::Sender, text: Arc<str>, label: Label) {
    let result = async {
        sender.write_all(text.as_bytes()).await?;
        sender.write_all(b"\n").await?;
        sender.flush().await
    }
    .await;
    // A hook that does not read its stdin is fine: the pipe just breaks.
    if let Err(e) = result {
        debug!(hook = %label.hook, event_id = label.event_id, error = %e, "stdin not fully read");
    }
}

/// The logged-output allowance of one run, shared by its stdout and stderr.
struct OutputBudget {
    left: AtomicUsize,
    capped_said: std::sync::atomic::AtomicBool,
}

impl OutputBudget {
    fn new(bytes: usize) -> Self {
        OutputBudget {
            left: AtomicUsize::new(bytes),
            capped_said: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Charges a line of `len` bytes and its newline; returns how many of its
    /// bytes may be logged, `None` once nothing is left.
    fn take(&self, len: usize) -> Option<usize> {
        let mut granted = 0;
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                (left > 0).then(|| {
                    granted = left.min(len + 1);
                    left - granted
                })
            })
            .ok()
            .map(|_| granted.min(len))
    }

    /// True the first time only: the cap is announced once per run.
    fn first_cap(&self) -> bool {
        !self.capped_said.swap(true, Ordering::Relaxed)
    }
}

/// Logs each line of one stream, a line cut at [`MAX_LINE`] and the run's logged
/// output capped at [`MAX_RUN_OUTPUT`]; reading goes on past the cap so the hook
/// never blocks on a full pipe.
async fn log_output(
    mut receiver: pipe::Receiver,
    stream: &'static str,
    label: Label,
    budget: Arc<OutputBudget>,
) {
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cut = false;
    let mut buf = vec![0u8; 8192];
    let emit = |line: &mut Vec<u8>, cut: &mut bool| {
        let allowed = budget.take(line.len());
        if let Some(n) = allowed {
            let text = String::from_utf8_lossy(&line[..n]);
            let text = text.trim_end_matches('\r');
            if *cut {
                info!(hook = %label.hook, event_id = label.event_id, stream, "{text} [line cut at {MAX_LINE} bytes]");
            } else {
                info!(hook = %label.hook, event_id = label.event_id, stream, "{text}");
            }
        }
        if allowed.is_none_or(|n| n < line.len()) && budget.first_cap() {
            warn!(hook = %label.hook, event_id = label.event_id, stream, "output past {} KiB of this run not logged", MAX_RUN_OUTPUT / 1024);
        }
        line.clear();
        *cut = false;
    };
    loop {
        let n = match receiver.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for chunk in buf[..n].split_inclusive(|&b| b == b'\n') {
            let (content, ends_line) = match chunk.strip_suffix(b"\n") {
                Some(content) => (content, true),
                None => (chunk, false),
            };
            let room = MAX_LINE.saturating_sub(line.len());
            if content.len() > room {
                cut = true;
            }
            line.extend_from_slice(&content[..content.len().min(room)]);
            if ends_line {
                emit(&mut line, &mut cut);
            }
        }
    }
    if !line.is_empty() {
        emit(&mut line, &mut cut);
    }
}

impl Child {
    /// The process id, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Sends a signal to the whole process group.
    pub fn signal_group(&self, signal: i32) {
        signal_group(self.pid, signal);
    }

    /// Waits for the leader to exit and reaps it.
    pub async fn wait(&mut self) -> Exit {
        if let Some(exit) = self.reaped {
            return exit;
        }
        loop {
            if let Some(exit) = self.try_reap() {
                self.reaped = Some(exit);
                return exit;
            }
            match &self.pidfd {
                Some(fd) => match fd.readable().await {
                    Ok(mut guard) => guard.clear_ready(),
                    Err(_) => tokio::time::sleep(GROUP_POLL).await,
                },
                None => tokio::time::sleep(GROUP_POLL).await,
            }
        }
    }

    fn try_reap(&self) -> Option<Exit> {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        let rc = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        let exit = match rc {
            0 => return None,
            pid if pid == self.pid => Exit::from_wait_status(status),
            // ECHILD: someone else reaped it; the status is unknown (signal 0).
            _ => Exit::Signal(0),
        };
        leaders().remove(&self.pid);
        Some(exit)
    }

    /// Runs to the end within `limits`, or until `cancel` resolves (shutdown):
    /// SIGTERM to the group at the timeout, SIGKILL `kill_after` later; then
    /// whatever is left of the group is stopped and reaped.
    pub async fn finish(
        mut self,
        limits: Limits,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Outcome {
        let mut timed_out = false;
        let mut cancelled = false;
        let mut sigkilled = false;
        let mut sigterm_at = None;
        let exit = tokio::select! {
            exit = self.wait() => exit,
            () = tokio::time::sleep(limits.timeout) => {
                timed_out = true;
                self.signal_group(libc::SIGTERM);
                sigterm_at = Some(Instant::now());
                tokio::select! {
                    exit = self.wait() => exit,
                    () = tokio::time::sleep(limits.kill_after) => {
                        self.signal_group(libc::SIGKILL);
                        sigkilled = true;
                        self.wait().await
                    }
                }
            }
            () = cancel => {
                cancelled = true;
                self.signal_group(libc::SIGKILL);
                sigkilled = true;
                self.wait().await
            }
        };
        // What the leader left gets the rest of the same SIGTERM-to-SIGKILL window,
        // not a new one.
        let grace = match sigterm_at {
            _ if sigkilled => Duration::ZERO,
            Some(at) => limits.kill_after.saturating_sub(at.elapsed()),
            None => limits.kill_after,
        };
        stop_group(self.pid, grace).await;
        if let Some(writer) = self.stdin_writer.take() {
            writer.abort();
        }
        // One deadline for both streams: a process outside the group (setsid)
        // may hold them open, and the run must not keep its slot for it.
        let drained_by = tokio::time::Instant::now() + OUTPUT_DRAIN;
        for reader in std::mem::take(&mut self.io) {
            let abort = reader.abort_handle();
            if tokio::time::timeout_at(drained_by, reader).await.is_err() {
                abort.abort();
            }
        }
        Outcome {
            exit,
            timed_out,
            cancelled,
            duration: self.started.elapsed(),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A child dropped unfinished (its task was aborted) must not run on
        // unwatched; the orphan sweep reaps it once nobody waits for it.
        if self.reaped.is_none() {
            signal_group(self.pid, libc::SIGKILL);
            leaders().remove(&self.pid);
        }
        if let Some(writer) = self.stdin_writer.take() {
            writer.abort();
        }
        for reader in &self.io {
            reader.abort();
        }
    }
}

fn signal_group(pgid: libc::pid_t, signal: i32) {
    // SAFETY: kill with a negative pid signals a process group; no memory involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether any process of the group is left (zombies included).
pub fn group_exists(pgid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let rc = unsafe { libc::kill(-(pgid as libc::pid_t), 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Reaps every exited member of the group that is our child.
fn reap_group_members(pgid: libc::pid_t) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on the group's members with a valid status pointer.
        let rc = unsafe { libc::waitpid(-pgid, &mut status, libc::WNOHANG) };
        if rc <= 0 {
            break;
        }
    }
}

/// The leader has exited: whatever it left running in its group is stopped
/// (SIGTERM, then SIGKILL after `grace`) and reaped.
async fn stop_group(pgid: libc::pid_t, grace: Duration) {
    reap_group_members(pgid);
    if !group_exists(pgid as u32) {
        return;
    }
    debug!(pgid, "stopping what the hook left in its process group");
    let start = Instant::now();
    let mut killed = grace.is_zero();
    signal_group(pgid, if killed { libc::SIGKILL } else { libc::SIGTERM });
    loop {
        tokio::time::sleep(GROUP_POLL).await;
        reap_group_members(pgid);
        if !group_exists(pgid as u32) {
            return;
        }
        if !killed && start.elapsed() >= grace {
            signal_group(pgid, libc::SIGKILL);
            killed = true;
        }
        if start.elapsed() >= grace.saturating_add(GROUP_GIVE_UP) {
            warn!(
                pgid,
                "processes of a hook's group survive SIGKILL; giving up on them"
            );
            return;
        }
    }
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
mod tests {
    use super::*;

    fn spec(argv: &[&str], stdin: Option<&str>, output: Output) -> Spec {
        Spec {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            env: crate::env::inherited(),
            cwd: None,
            stdin: stdin.map(Into::into),
            output,
            label: Label {
                hook: "t".into(),
                event_id: 1,
            },
        }
    }

    const LIMITS: Limits = Limits {
        timeout: Duration::from_secs(20),
        kill_after: Duration::from_secs(1),
    };

    #[tokio::test]
    async fn exit_codes_and_signals() {
        let never = std::future::pending::<()>;
        let ok = run(&spec(&["true"], None, Output::Null), LIMITS, never())
            .await
            .unwrap();
        assert_eq!(ok.exit, Exit::Code(0));
        assert!(ok.success());
        let fail = run(
            &spec(&["sh", "-c", "exit 3"], None, Output::Null),
            LIMITS,
            never(),
        )
        .await
        .unwrap();
        assert_eq!(fail.exit, Exit::Code(3));
        let killed = run(
            &spec(&["sh", "-c", "kill -9 $$"], None, Output::Null),
            LIMITS,
            never(),
        )
        .await
        .unwrap();
        assert_eq!(killed.exit, Exit::Signal(9));
        let missing = run(
            &spec(&["/nonexistent/prog"], None, Output::Null),
            LIMITS,
            never(),
        )
        .await;
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/prog")
        );
    }

    #[tokio::test]
    async fn stdin_is_byte_exact_and_unread_stdin_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let text = "{\"a\":\"é ✅ \\u0000\"}";
        let s = spec(
            &["sh", "-c", &format!("cat > '{}'", out.display())],
            Some(text),
            Output::Null,
        );
        let outcome = run(&s, LIMITS, std::future::pending()).await.unwrap();
        assert!(outcome.success());
        assert_eq!(std::fs::read(&out).unwrap(), format!("{text}\n").as_bytes());

        // 5 MB that the hook never reads: the run still ends at once.
        let big = "x".repeat(5 * 1024 * 1024);
        let s = spec(&["true"], Some(&big), Output::Null);
        let outcome = run(&s, LIMITS, std::future::pending()).await.unwrap();
        assert!(outcome.success());
        assert!(outcome.duration < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // The shell starts two sleepers in the background and waits on a third;
        // one sleeper double-forks out of the shell's reach.
        let script = format!(
            "sleep 1000 & echo $! >> '{p}'; (sleep 1000 & echo $! >> '{p}') ; sleep 1000",
            p = pids.display()
        );
        let child = spawn(&spec(&["sh", "-c", &script], None, Output::Null)).unwrap();
        let pgid = child.pid();
        let limits = Limits {
            timeout: Duration::from_millis(300),
            kill_after: Duration::from_millis(300),
        };
        let outcome = child.finish(limits, std::future::pending()).await;
        assert!(outcome.timed_out);
        assert_eq!(outcome.exit, Exit::Signal(libc::SIGTERM));
        assert!(outcome.duration < Duration::from_secs(3), "{outcome:?}");
        assert!(!group_exists(pgid), "processes of group {pgid} remain");
        for pid in std::fs::read_to_string(&pids).unwrap().lines() {
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
            assert!(!alive, "pid {pid} still exists (process or zombie)");
        }
    }

    #[tokio::test]
    async fn sigterm_ignored_means_sigkill_after_kill_after() {
        let child = spawn(&spec(
            &["sh", "-c", "trap '' TERM; sleep 1000 & wait"],
            None,
            Output::Null,
        ))
        .unwrap();
        let pgid = child.pid();
        let limits = Limits {
            timeout: Duration::from_millis(200),
            kill_after: Duration::from_millis(200),
        };
        let start = Instant::now();
        let outcome = child.finish(limits, std::future::pending()).await;
        assert!(outcome.timed_out);
        assert_eq!(outcome.exit, Exit::Signal(libc::SIGKILL));
        assert!(start.elapsed() >= Duration::from_millis(400));
        assert!(!group_exists(pgid));
    }

    #[tokio::test]
    async fn leftovers_are_stopped_when_the_leader_exits() {
        let child = spawn(&spec(
            &["sh", "-c", "sleep 1000 & exit 0"],
            None,
            Output::Null,
        ))
        .unwrap();
        let pgid = child.pid();
        let outcome = child.finish(LIMITS, std::future::pending()).await;
        assert!(outcome.success());
        assert!(!group_exists(pgid));
    }

    #[tokio::test]
    async fn cancel_kills_at_once() {
        let child = spawn(&spec(&["sleep", "1000"], None, Output::Null)).unwrap();
        let pgid = child.pid();
        let outcome = child
            .finish(LIMITS, tokio::time::sleep(Duration::from_millis(100)))
            .await;
        assert!(outcome.cancelled);
        assert!(!outcome.success());
        assert!(!group_exists(pgid));
    }

    #[tokio::test]
    async fn what_a_hook_leaves_in_a_session_of_its_own_is_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // The background process leaves the group (setsid), outlives the hook,
        // and comes back to us, the subreaper, when it ends.
        let script = format!(
            "setsid sleep 0.2 & echo $! > '{}'; sleep 0.05",
            pid_file.display()
        );
        let outcome = run(
            &spec(&["sh", "-c", &script], None, Output::Null),
            LIMITS,
            std::future::pending(),
        )
        .await
        .unwrap();
        assert!(outcome.success());
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
        assert!(
            proc_dir.exists(),
            "it must outlive the hook for this test to mean anything"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while proc_dir.exists() {
            assert!(
                Instant::now() < deadline,
                "pid {pid} is still there (a zombie?)"
            );
            reap_orphans();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn stdin_far_over_a_pipe_buffer_arrives_whole_to_a_hook_that_reads_it() {
        // 2 MB, every part of it different: a short write, a lost or repeated
        // chunk all show. (The 64 KiB pipe buffer takes far less at once.)
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let text: String = (0..400_000u32).map(|i| format!("{i},")).collect();
        assert!(text.len() > 2_000_000);
        let s = spec(
            &["sh", "-c", &format!("cat > '{}'", out.display())],
            Some(&text),
            Output::Null,
        );
        let outcome = run(&s, LIMITS, std::future::pending()).await.unwrap();
        assert!(outcome.success(), "{outcome:?}");
        let got = std::fs::read(&out).unwrap();
        assert_eq!(got.len(), text.len() + 1);
        assert!(got == format!("{text}\n").as_bytes(), "stdin differs");
    }

    #[tokio::test]
    async fn on_timeout_sigterm_reaches_the_whole_group_at_once() {
        // The leader, on SIGTERM, waits for its child and writes how that
        // child ended. Only a SIGTERM to the group ends the child then; one
        // to the leader alone leaves it running until the SIGKILL, which ends
        // the leader too before it writes anything.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("child");
        let script = format!(
            "trap 'wait $c; echo \"child $?\" > \"{}\"; exit 0' TERM; sleep 1000 & c=$!; while :; do sleep 0.1; done",
            out.display()
        );
        let child = spawn(&spec(&["sh", "-c", &script], None, Output::Null)).unwrap();
        let pgid = child.pid();
        let limits = Limits {
            // Long enough for the shell to have set its trap.
            timeout: Duration::from_secs(1),
            kill_after: Duration::from_secs(3),
        };
        let outcome = child.finish(limits, std::future::pending()).await;
        assert!(outcome.timed_out);
        assert_eq!(
            std::fs::read_to_string(&out).ok().as_deref(),
            Some("child 143\n"),
            "the child did not end by SIGTERM while the leader waited: {outcome:?}"
        );
        assert_eq!(outcome.exit, Exit::Code(0));
        assert!(!group_exists(pgid));
    }

    #[tokio::test]
    async fn a_hook_runs_in_its_cwd() {
        // A relative path in the script lands in `cwd`, through the config and
        // hook_spec, as a hook would use it.
        let dir = tempfile::tempdir().unwrap();
        let name = format!("cwd-probe.{}", std::process::id());
        let text = format!(
            "[[hook]]\nname = \"h\"\non = \"*\"\ncwd = \"{}\"\nrun = 'pwd > {name}'\n",
            dir.path().display()
        );
        let config = crate::config::Config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        let event = Event::from_text(r#"{"event_id":1,"event_type":"a.b","fields":{}}"#.to_owned())
            .unwrap();
        let s = hook_spec(
            config.hook("h").unwrap(),
            &event,
            "1",
            crate::env::DEFAULT_BUDGET,
            &crate::env::inherited(),
        );
        let outcome = run(&s, LIMITS, std::future::pending()).await.unwrap();
        // Were cwd ignored, the file is in the test's own directory: tidy up.
        let stray = std::path::Path::new(&name);
        let strayed = stray.exists();
        let _ = std::fs::remove_file(stray);
        assert!(outcome.success(), "{outcome:?}");
        assert!(!strayed, "the hook ran in the runner's directory");
        let said = std::fs::read_to_string(dir.path().join(&name)).unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(said.trim_end(), real.to_str().unwrap());
    }

    #[test]
    fn programs_are_found_in_the_hooks_path() {
        let env = vec![
            ("PATH".into(), "/nonexistent:/bin:/usr/bin".into()),
            ("OTHER".into(), "x".into()),
        ];
        let sh = resolve_program("sh", &env);
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        assert_eq!(
            resolve_program("no-such-program-here", &env),
            PathBuf::from("no-such-program-here")
        );
        assert_eq!(resolve_program("./local", &env), PathBuf::from("./local"));
        // The last PATH given wins, as it does in the environment itself.
        let later = vec![
            ("PATH".into(), "/bin".into()),
            ("PATH".into(), "/nonexistent".into()),
        ];
        assert_eq!(resolve_program("sh", &later), PathBuf::from("sh"));
    }

    #[test]
    fn output_budget_is_shared_and_said_once() {
        let budget = OutputBudget::new(10);
        assert_eq!(budget.take(3), Some(3)); // 4 with the newline
        assert_eq!(budget.take(10), Some(6));
        assert_eq!(budget.take(0), None);
        assert!(budget.first_cap());
        assert!(!budget.first_cap());
    }
}
