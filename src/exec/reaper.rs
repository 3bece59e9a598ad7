//! Reaping what hooks leave behind: the runner is a child subreaper, and a sweep
//! takes the zombies that no run waits for.

use std::sync::{Mutex, MutexGuard, Once, RwLock, RwLockReadGuard};

use tracing::debug;

/// Makes this process the reaper of its descendants' orphans, so that the
/// stragglers of a hook's group come back to us to be reaped whatever PID 1 is.
pub(super) fn become_subreaper() {
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
static SPAWNING: RwLock<()> = RwLock::new(());

/// Leaders spawned and not yet reaped by their [`Child`]: the sweep leaves them
/// to it, since their exit status is the run's result.
static LEADERS: Mutex<std::collections::BTreeSet<libc::pid_t>> =
    Mutex::new(std::collections::BTreeSet::new());

pub(super) fn leaders() -> MutexGuard<'static, std::collections::BTreeSet<libc::pid_t>> {
    crate::lock(&LEADERS)
}

/// Held while a process is being spawned (see [`SPAWNING`]).
pub(super) fn spawning() -> RwLockReadGuard<'static, ()> {
    SPAWNING.read().unwrap_or_else(|p| p.into_inner())
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
