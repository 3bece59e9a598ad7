//! "Your own uid or root" seen from both sides: the runner run as an
//! unprivileged user (a uid switch in its child; CI runs as root, where "own
//! uid" and "root" are the same and the rule cannot be told from "root only" or
//! "own uid only"). Peer credentials on the socket, and who may own the config.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;
use tracim_daemon_sdk::sim::event_message;

const SHORT: Duration = Duration::from_secs(10);

/// The unprivileged user the runner runs as: a uid no account has, so that
/// nothing else on the machine is it. Another user, to be refused.
const USER: u32 = 61_234;
const OTHER: u32 = 65_534;

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

/// The binary, where `USER` can run it: in place when it can, else a copy
/// in `dir` (a checkout under /root is closed to other users).
fn binary_for_user(dir: &Path) -> PathBuf {
    let reachable = Command::new(bin())
        .arg("--version")
        .uid(USER)
        .gid(USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if reachable {
        return PathBuf::from(bin());
    }
    let copy = dir.join("tracim-hooks");
    std::fs::copy(bin(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// `tracim-hooks` as `USER`, with `args`.
fn command_as_user(binary: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .current_dir("/")
        .uid(USER)
        .gid(USER)
        .stdin(Stdio::null());
    command
}

/// A place `USER` owns: the directory, its `out`, and room for the socket.
fn users_place() -> (Place, PathBuf) {
    let place = Place::new();
    let out = place.out();
    for dir in [place.path(), &out] {
        chown(dir, USER);
        // Open to look into: the other user must reach the socket itself.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (place, out)
}

/// Connects as `uid` and sends `message` the daemon's way; the socket path
/// comes as argv, never inside the script.
const SEND_AS: &str = r#"
import os, socket, sys
path, message = sys.argv[1], sys.argv[2].encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
print("connected as", os.getuid(), flush=True)
try:
    # A refused peer finds the connection closed under it: a broken pipe.
    s.sendall(message)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    s.recv(1)  # until the runner hangs up
except OSError:
    pass
"#;

fn send_as(uid: u32, socket: &Path, message: &[u8]) {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(SEND_AS)
        .arg(socket)
        .arg(std::str::from_utf8(message).unwrap())
        .env_clear()
        .current_dir("/")
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("connected as {uid}")),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn event(place: &Place, id: u64) -> Vec<u8> {
    let tlm = json!({"event_id": id, "event_type": "content.created.file", "fields": {}});
    event_message(&place.master(), &tlm.to_string())
}

/// The runner as `USER`, killed on drop.
struct UserRunner {
    child: std::process::Child,
    log: PathBuf,
}

impl UserRunner {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for UserRunner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_runner_takes_its_own_user_and_root_and_refuses_others() {
    assert!(as_root(), "this test switches users: run it as root");
    let (place, out) = users_place();
    let binary = binary_for_user(place.path());
    place.write_config(&recording_hook("all", "\"*\"", &out));
    chown(&place.config_path(), USER);
    let log = place.path().join("runner.log");
    let child = command_as_user(
        &binary,
        &["--config", &place.config_path().to_string_lossy(), "run"],
    )
    .env(
        "TRACIM_HOOKS_LOG",
        "tracim_hooks=debug,tracim_daemon_sdk=debug",
    )
    // Its journal where it may write (HOME is still root's).
    .env("XDG_STATE_HOME", place.path().join("state"))
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let runner = UserRunner { child, log };
    assert!(
        wait_for(SHORT, || runner.log().contains("tracim-hooks running")).await,
        "{}",
        runner.log()
    );
    let socket = place.socket();
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), USER);
    // Let every user reach it: only the runner's own check stands in the way.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();

    // Root (the daemon of a system install, or an admin) is taken.
    send_raw(&socket, &event(&place, 1)).await.unwrap();
    // So is the runner's own user.
    send_as(USER, &socket, &event(&place, 2));
    // Another user is refused, and says so.
    send_as(OTHER, &socket, &event(&place, 3));
    assert!(
        wait_for(SHORT, || runner.log().contains(&format!(
            "connection refused: not this user: uid {OTHER}"
        )))
        .await,
        "{}",
        runner.log()
    );
    // A last event from root: once it ran, the refused one would have been
    // dispatched before it (connections are handed on in order).
    send_raw(&socket, &event(&place, 4)).await.unwrap();
    assert!(
        wait_for(SHORT, || lines(&out.join("runs")).len() >= 3).await,
        "runs: {:?}\n{}",
        lines(&out.join("runs")),
        runner.log()
    );
    let mut runs = lines(&out.join("runs"));
    runs.sort();
    assert_eq!(runs, ["all 1", "all 2", "all 4"], "{}", runner.log());
    assert!(!runner.log().contains("event_id=3"), "{}", runner.log());
    // The hooks ran as the runner's user.
    let stdin = out.join("all.2.stdin");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(stdin).unwrap()),
        USER
    );
}

#[test]
fn an_unprivileged_runner_takes_a_config_of_its_own_or_roots_and_refuses_others() {
    assert!(as_root(), "this test switches users: run it as root");
    let (place, out) = users_place();
    let binary = binary_for_user(place.path());
    place.write_config(&recording_hook("all", "\"*\"", &out));
    let path = place.config_path();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let check = || {
        let out = command_as_user(&binary, &["--config", &path.to_string_lossy(), "check"])
            .env_remove("TRACIM_HOOKS_LOG")
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    for (owner, taken) in [(USER, true), (0, true), (OTHER, false)] {
        chown(&path, owner);
        let (code, said) = check();
        if taken {
            assert_eq!(code, Some(0), "owned by {owner}: {said}");
        } else {
            assert_eq!(code, Some(1), "owned by {owner}: {said}");
            assert!(
                said.contains(&format!("owned by uid {owner}, not by you (uid {USER})")),
                "{said}"
            );
        }
    }
}
