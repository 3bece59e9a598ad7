//! A started hook process: waiting for it through its pidfd, its time limits,
//! and stopping and reaping what it leaves in its process group.

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions};
use tokio::io::unix::AsyncFd;
use tracing::{debug, warn};

use super::io::Tail;
use super::{Exit, GROUP_GIVE_UP, GROUP_POLL, LEAVE_GRACE, Limits, OUTPUT_DRAIN, Outcome, reaper};

/// A started process, leader of its own process group.
pub struct Child {
    pid: Pid,
    pidfd: Option<AsyncFd<OwnedFd>>,
    started: Instant,
    pub(super) io: Vec<tokio::task::JoinHandle<()>>,
    pub(super) stdin_writer: Option<tokio::task::JoinHandle<()>>,
    /// What the stdout and stderr readers keep of the end of each stream.
    pub(super) tails: [Arc<Mutex<Tail>>; 2],
    reaped: Option<Exit>,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child").field("pid", &self.pid).finish()
    }
}

pub(super) fn open_pidfd(pid: Pid) -> Option<AsyncFd<OwnedFd>> {
    let fd = rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok()?;
    // SAFETY: the OwnedFd moves into the AsyncFd, which neither closes nor
    // replaces it while registered (tokio's I/O-safety contract for raw fds).
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
}

impl Child {
    pub(super) fn new(pid: Pid, pidfd: Option<AsyncFd<OwnedFd>>, started: Instant) -> Child {
        Child {
            pid,
            pidfd,
            started,
            io: Vec::new(),
            stdin_writer: None,
            tails: Default::default(),
            reaped: None,
        }
    }

    /// The process id, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.pid.as_raw_pid() as u32
    }

    /// Sends a signal to the whole process group.
    pub fn signal_group(&self, signal: Signal) {
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
        let exit = match rustix::process::waitpid(Some(self.pid), WaitOptions::NOHANG) {
            Ok(None) => return None,
            Ok(Some((_, status))) => Exit::from(status),
            // ECHILD: someone else reaped it.
            Err(_) => Exit::Unknown,
        };
        reaper::leaders().remove(&self.pid.as_raw_pid());
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
                self.signal_group(Signal::TERM);
                sigterm_at = Some(Instant::now());
                tokio::select! {
                    exit = self.wait() => exit,
                    () = tokio::time::sleep(limits.kill_after) => {
                        self.signal_group(Signal::KILL);
                        sigkilled = true;
                        self.wait().await
                    }
                }
            }
            () = cancel => {
                cancelled = true;
                self.signal_group(Signal::KILL);
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
        // Only a leader that ended by itself leaves a group whose members may be
        // on their way out of it; after a timeout the group is being stopped.
        let may_leave = sigterm_at.is_none() && !sigkilled;
        stop_group(self.pid, grace, may_leave).await;
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
        let [stdout_tail, stderr_tail] = self.tails.clone().map(|t| crate::lock(&t).take());
        Outcome {
            exit,
            timed_out,
            cancelled,
            duration: self.started.elapsed(),
            stdout_tail,
            stderr_tail,
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A child dropped unfinished (its task was aborted) must not run on
        // unwatched; the orphan sweep reaps it once nobody waits for it.
        if self.reaped.is_none() {
            signal_group(self.pid, Signal::KILL);
            reaper::leaders().remove(&self.pid.as_raw_pid());
        }
        if let Some(writer) = self.stdin_writer.take() {
            writer.abort();
        }
        for reader in &self.io {
            reader.abort();
        }
    }
}

fn signal_group(pgid: Pid, signal: Signal) {
    // Gone already is fine: there is nothing left to signal.
    let _ = rustix::process::kill_process_group(pgid, signal);
}

/// Whether any process of the group is left (zombies included).
pub fn group_exists(pgid: u32) -> bool {
    let Some(pgid) = Pid::from_raw(pgid as i32) else {
        return false;
    };
    match rustix::process::test_kill_process_group(pgid) {
        Ok(()) => true,
        Err(e) => e == Errno::PERM,
    }
}

/// Reaps every exited member of the group that is our child.
fn reap_group_members(pgid: Pid) {
    while let Ok(Some(_)) = rustix::process::waitpgid(pgid, WaitOptions::NOHANG) {}
}

/// The leader has exited: whatever it left running in its group is stopped
/// (SIGTERM, then SIGKILL after `grace`) and reaped.
async fn stop_group(pgid: Pid, grace: Duration, may_leave: bool) {
    reap_group_members(pgid);
    if !group_exists(pgid.as_raw_pid() as u32) {
        return;
    }
    // Leftovers on their way out of the group (into a session of their own) get
    // LEAVE_GRACE to go before the group is signalled; those that exit meanwhile
    // are reaped.
    if may_leave {
        let until = Instant::now() + LEAVE_GRACE;
        while Instant::now() < until {
            tokio::time::sleep(GROUP_POLL).await;
            reap_group_members(pgid);
            if !group_exists(pgid.as_raw_pid() as u32) {
                return;
            }
        }
    }
    debug!(
        pgid = pgid.as_raw_pid(),
        "stopping what the hook left in its process group"
    );
    let start = Instant::now();
    let mut killed = grace.is_zero();
    signal_group(pgid, if killed { Signal::KILL } else { Signal::TERM });
    loop {
        tokio::time::sleep(GROUP_POLL).await;
        reap_group_members(pgid);
        if !group_exists(pgid.as_raw_pid() as u32) {
            return;
        }
        if !killed && start.elapsed() >= grace {
            signal_group(pgid, Signal::KILL);
            killed = true;
        }
        if start.elapsed() >= grace.saturating_add(GROUP_GIVE_UP) {
            warn!(
                pgid = pgid.as_raw_pid(),
                "processes of a hook's group survive SIGKILL; giving up on them"
            );
            return;
        }
    }
}
