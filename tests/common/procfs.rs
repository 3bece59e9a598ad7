//! What `/proc` tells of a process: its status figures, its state, the members
//! of a process group. Each file is parsed here once.

/// The fields of /proc/<pid>/stat after `pid (comm)`: state, ppid, pgrp, ...;
/// `None` when the process is gone (reaped). comm may hold spaces and
/// parentheses, so the split is at the last `)`.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    Some(
        stat[close + 1..]
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

/// A line of /proc/<pid>/status without its `key:`, trimmed; `None` when the
/// process or the key is not there.
fn status_field(pid: i32, key: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_owned())
}

/// A `kB` figure of /proc/<pid>/status (VmRSS, VmHWM, ...).
pub fn status_kb(pid: i32, key: &str) -> u64 {
    status_field(pid, key)
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// The process is there and not a zombie.
pub fn alive(pid: i32) -> bool {
    status_field(pid, "State").is_some_and(|s| !s.contains("zombie") && !s.contains("dead"))
}

/// The state letter of a process, or `None` when it is gone (reaped).
pub fn process_state(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// Processes whose process group is `pgid`, as /proc shows them: (pid, state),
/// zombies (`Z`) included.
pub fn group_members(pgid: i32) -> Vec<(i32, char)> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Some(rest) = stat_fields(pid) else {
            continue;
        };
        if rest.len() > 2 && rest[2].parse::<i32>() == Ok(pgid) {
            members.push((pid, rest[0].chars().next().unwrap_or('?')));
        }
    }
    members
}

/// Whether no process (zombies included) is left in the group, as `kill(-pgid, 0)` tells.
pub fn group_gone(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let rc = unsafe { libc::kill(-pgid, 0) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}
