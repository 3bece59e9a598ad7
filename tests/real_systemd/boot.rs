//! A real systemd booted as PID 1 of a fresh PID and mount namespace, with a user
//! manager for a throwaway user, as `/work/shared/testing/REAL-SYSTEMD.md` says:
//! private tmpfs on `/tmp` and `/var/tmp` (booting empties `/tmp`), every shared
//! file under `/var/lib`, and the namespace ended by killing its PID 1.
//!
//! One more private tmpfs, on `/var/log/journal`: journald would otherwise keep
//! each boot's journal on the machine's disk.
//!
//! The user exists only inside the namespace: the namespace's `/etc/passwd`,
//! `/etc/group` and `/etc/shadow` are copies with one more line, bind-mounted over
//! the real ones before systemd starts, so the machine's accounts are untouched.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Commands run with this PATH and nothing else of the test's environment.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// The booted namespace and its user. Dropping it kills the namespace and removes
/// its directory.
pub struct Systemd {
    /// Everything shared with the namespace: `/var/lib/tracim-hooks-systemd-test.PID`.
    pub dir: PathBuf,
    /// The user's home, under `dir`.
    pub home: PathBuf,
    pub user: String,
    pub uid: u32,
    /// PID 1 of the namespace, as seen from here.
    pid1: u32,
    unshare: Child,
}

/// What a command run in the namespace did.
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    fn from(output: Output) -> Ran {
        Ran {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn both(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

impl Systemd {
    /// Boots systemd, waits until it runs, and starts the user's manager.
    pub fn boot() -> Systemd {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "booting systemd needs root (run through .ci/run)"
        );
        assert!(
            Path::new("/lib/systemd/systemd").exists(),
            "systemd is not installed (.ci/run installs it)"
        );
        let pid = std::process::id();
        let dir = PathBuf::from(format!("/var/lib/tracim-hooks-systemd-test.{pid}"));
        let _ = fs::remove_dir_all(&dir);
        // A regular user's uid: journald keeps a journal of their own only for
        // those (not for system or dynamic ones, 61184 and up).
        let (user, uid) = (format!("thtest{pid}"), 40_000 + pid % 10_000);
        let home = dir.join("home");
        let etc = dir.join("etc");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&etc).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        for (file, line) in [
            (
                "passwd",
                format!("{user}:x:{uid}:{uid}::{}:/bin/sh", home.display()),
            ),
            ("group", format!("{user}:x:{uid}:")),
            ("shadow", format!("{user}:!:19000:0:99999:7:::")),
        ] {
            let mut text = fs::read_to_string(Path::new("/etc").join(file)).unwrap();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&line);
            text.push('\n');
            fs::write(etc.join(file), text).unwrap();
        }
        fs::set_permissions(etc.join("shadow"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(&home, Some(uid), Some(uid)).unwrap();

        let binds: String = ["passwd", "group", "shadow"]
            .iter()
            .map(|f| format!(" && mount --bind {}/{f} /etc/{f}", etc.display()))
            .collect();
        let log = fs::File::create(dir.join("systemd.log")).unwrap();
        let unshare = Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--mount",
                "sh",
                "-c",
            ])
            .arg(format!(
                "mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /var/tmp && \
                 mount -t tmpfs tmpfs /var/log/journal{binds} && \
                 exec /lib/systemd/systemd --system --unit=basic.target"
            ))
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut systemd = Systemd {
            dir,
            home,
            user,
            uid,
            pid1: 0,
            unshare,
        };
        systemd.pid1 = systemd.find_pid1();
        systemd.wait_running();
        let started = systemd.ns(&["systemctl", "start", &format!("user@{uid}.service")]);
        assert!(started.ok, "the user manager: {}", started.both());
        systemd
    }

    /// The child of `unshare`: PID 1 inside.
    fn find_pid1(&mut self) -> u32 {
        let unshare = self.unshare.id();
        let children = format!("/proc/{unshare}/task/{unshare}/children");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = fs::read_to_string(&children).unwrap_or_default();
            if let Some(pid) = found.split_whitespace().next() {
                // The `sh` execs systemd: wait until it has.
                let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                if exe.ends_with("systemd") {
                    return pid.parse().unwrap();
                }
            }
            if let Ok(Some(status)) = self.unshare.try_wait() {
                panic!("unshare ended ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no PID 1 after 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_running(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let state = self.ns(&["systemctl", "is-system-running"]);
            // Until the flush, journald keeps entries in /run, where a user
            // cannot read their own: wait for the persistent (per-user) journal.
            let flushed = || {
                self.ns(&["systemctl", "is-active", "systemd-journal-flush.service"])
                    .stdout
                    .trim()
                    == "active"
            };
            if matches!(state.stdout.trim(), "running" | "degraded") && flushed() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "systemd not running after 90 s ({}): {}",
                state.both(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("systemd.log")).unwrap_or_default()
    }

    /// `nsenter -t PID1 -m -p ARGS`, as root.
    pub fn ns(&self, args: &[&str]) -> Ran {
        Ran::from(
            Command::new("nsenter")
                .args(["-t", &self.pid1.to_string(), "-m", "-p"])
                .args(args)
                .env_clear()
                .env("PATH", PATH)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    }

    /// ARGS as the user, in the namespace, with the session's variables.
    pub fn as_user(&self, args: &[&str]) -> Ran {
        let runtime = format!("XDG_RUNTIME_DIR=/run/user/{}", self.uid);
        let home = format!("HOME={}", self.home.display());
        let path = format!("PATH={PATH}");
        let user = format!("USER={}", self.user);
        let mut all = vec![
            "runuser", "-u", &self.user, "--", "env", "-i", &path, &runtime, &home, &user,
        ];
        all.extend_from_slice(args);
        self.ns(&all)
    }

    /// `systemctl --user show -p NAME --value UNIT`.
    pub fn property(&self, unit: &str, name: &str) -> String {
        let ran = self.as_user(&["systemctl", "--user", "show", "-p", name, "--value", unit]);
        assert!(ran.ok, "show {name}: {}", ran.both());
        ran.stdout.trim().to_owned()
    }

    /// The journal entries of a user unit (root reads every user's), as JSON
    /// objects, with these extra `journalctl` arguments.
    pub fn journal(&self, unit: &str, args: &[&str]) -> Vec<serde_json::Value> {
        let matched = format!("_SYSTEMD_USER_UNIT={unit}");
        let mut all = vec!["journalctl", "--no-pager", "-o", "json", &matched];
        all.extend_from_slice(args);
        let ran = self.ns(&all);
        ran.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        if self.pid1 != 0 {
            // SAFETY: kill has no memory preconditions; the pid is our namespace's init.
            unsafe { libc::kill(self.pid1 as libc::pid_t, libc::SIGKILL) };
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Waits for `check` to give something, polling every 100 ms up to `timeout`.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
