//! Reaping what hooks leave behind: the runner is a child subreaper, and a sweep
//! takes the zombies that no run waits for.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, Once, RwLock, RwLockReadGuard};

use rustix::process::{Pid, WaitOptions};
use tracing::debug;

/// Makes this process the reaper of its descendants' orphans, so that the
/// stragglers of a hook's group come back to us to be reaped whatever PID 1 is.
pub(super) fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
            debug!(error = %e, "cannot become a child subreaper");
        }
    });
}

/// Held for reading while a process is being spawned, for writing while orphans
/// are reaped: std's spawn waits for a child whose exec failed, and the sweep
/// must not take that child from it.
static SPAWNING: RwLock<()> = RwLock::new(());

/// Leaders spawned and not yet reaped by their [`Child`]: the sweep leaves them
/// to it, since their exit status is the run's result.
static LEADERS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

pub(super) fn leaders() -> MutexGuard<'static, BTreeSet<i32>> {
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
    let (me, my_group) = (rustix::process::getpid(), rustix::process::getpgrp());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut reaped = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
            .and_then(Pid::from_raw)
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
        let ppid = fields.next().and_then(|f| f.parse::<i32>().ok());
        let group = fields.next().and_then(|f| f.parse::<i32>().ok());
        let orphan_zombie = state == Some("Z")
            && ppid == Some(me.as_raw_pid())
            && group.is_some_and(|g| g != my_group.as_raw_pid());
        if orphan_zombie
            && !waited_for.contains(&pid.as_raw_pid())
            && let Ok(Some(_)) = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG)
        {
            reaped += 1;
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
