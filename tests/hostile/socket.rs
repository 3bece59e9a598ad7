//! The socket and other users: its mode from its first moment, and peers of
//! another uid refused even when the socket is opened up.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_0600_from_its_first_moment_even_under_umask_0() {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::process::CommandExt;
    let place = Place::new();
    place.write_config_with("", "");
    let mut command = Runner::command(&place.config_path());
    // SAFETY: umask is async-signal-safe and touches nothing but the child.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    // Every name created, moved in or changed in the directory, in order, from
    // before the runner starts: the kernel queues them, so no moment is missed.
    let events = DirEvents::watch(place.path());
    let runner = Runner::spawn(command, place.path());

    // Watch the directory as tightly as we can while the runner binds: every
    // socket seen at any moment must be 0600, every directory 0700.
    let socket = place.socket();
    let dir = place.path().to_path_buf();
    let watcher = std::thread::spawn(move || {
        let deadline = Instant::now() + SHORT;
        let mut seen_socket_since: Option<Instant> = None;
        let mut wider = Vec::new();
        let mut looks = 0u64;
        while Instant::now() < deadline {
            looks += 1;
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                let mode = meta.permissions().mode() & 0o777;
                let ft = meta.file_type();
                if ft.is_socket() && mode != 0o600 {
                    wider.push(format!("socket {} mode {mode:o}", path.display()));
                }
                if ft.is_dir() && mode & 0o077 != 0 {
                    wider.push(format!("dir {} mode {mode:o}", path.display()));
                }
                if ft.is_dir() {
                    // The staging directory: a socket inside it is shielded by it.
                    for inner in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                        if let Ok(m) = std::fs::symlink_metadata(inner.path())
                            && m.file_type().is_socket()
                            && mode & 0o077 != 0
                        {
                            wider.push(format!("{} in an open directory", inner.path().display()));
                        }
                    }
                }
            }
            match (seen_socket_since, socket.exists()) {
                (None, true) => seen_socket_since = Some(Instant::now()),
                (Some(t), _) if t.elapsed() > Duration::from_millis(300) => break,
                _ => {}
            }
        }
        (seen_socket_since.is_some(), wider, looks)
    });
    let (appeared, wider, looks) = watcher.join().unwrap();
    assert!(
        appeared,
        "no socket after {looks} looks; log:\n{}",
        runner.log()
    );
    assert!(
        runner.wait_log("tracim-hooks running", SHORT).await,
        "{}",
        runner.log()
    );
    // The socket came into place already narrowed: its name appeared (made or
    // moved in) and its mode was never changed after. Polling cannot see a
    // window of microseconds between bind and chmod; this sees it every time.
    let seen = events.read();
    let on_socket: Vec<&(u32, String)> = seen.iter().filter(|(_, n)| n == "hooks.sock").collect();
    assert!(
        on_socket
            .first()
            .is_some_and(|(mask, _)| mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0),
        "{seen:?}"
    );
    assert!(
        on_socket
            .iter()
            .all(|(mask, _)| mask & libc::IN_ATTRIB == 0),
        "the socket's mode changed after it appeared: {seen:?}"
    );
    assert!(wider.is_empty(), "seen wider than 0600/0700: {wider:?}");
    let mode = std::fs::metadata(place.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // No staging leftovers next to the socket.
    let names: Vec<String> = std::fs::read_dir(place.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tracim-hooks-bind"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

/// An inotify watch on one directory: what happened to the names in it.
struct DirEvents(std::os::fd::OwnedFd);

impl DirEvents {
    fn watch(dir: &Path) -> DirEvents {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: inotify calls on a descriptor we own, a valid C string.
        unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            assert!(fd >= 0, "{}", std::io::Error::last_os_error());
            let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mask = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_ATTRIB;
            let wd =
                libc::inotify_add_watch(std::os::fd::AsRawFd::as_raw_fd(&fd), path.as_ptr(), mask);
            assert!(wd >= 0, "{}", std::io::Error::last_os_error());
            DirEvents(fd)
        }
    }

    /// Every event queued so far: (mask, name).
    fn read(&self) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: read into a buffer of the given size.
            let n = unsafe {
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(&self.0),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n <= 0 {
                return out;
            }
            let mut at = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= n as usize {
                // SAFETY: the kernel wrote whole events; read_unaligned copes
                // with the buffer's alignment.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                let name = &buf[at + header..at + header + event.len as usize];
                let name = name.split(|b| *b == 0).next().unwrap_or_default();
                out.push((event.mask, String::from_utf8_lossy(name).into_owned()));
                at += header + event.len as usize;
            }
        }
    }
}

/// Connects `count` times as uid/gid 65534 and writes `message` each time; the
/// socket path comes as argv, never inside the script.
const AS_NOBODY: &str = r#"
import os, socket, sys
path, message, count = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
print("uid", os.getuid(), os.getgid(), flush=True)
for _ in range(count):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        print("connect errno", e.errno, flush=True)
        sys.exit(3)
    try:
        s.sendall(message)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        s.recv(1)  # until the runner hangs up
    except OSError:
        pass
    s.close()
print("connected", count, flush=True)
"#;

fn as_nobody(socket: &Path, message: &[u8], count: usize) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let python = ["/usr/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("python3 under /usr/bin (a pyenv shim under /root is unreadable to nobody)");
    let out = Command::new(python)
        .arg("-c")
        .arg(AS_NOBODY)
        .arg(socket)
        .arg(std::str::from_utf8(message).unwrap())
        .arg(count.to_string())
        .env_clear()
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_is_refused_even_when_the_socket_is_opened_up() {
    assert_eq!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() },
        0,
        "this test drops to another user: run it as root"
    );
    let place = Place::new();
    let out = place.out();
    place.write_config_with("", &recording_hook("all", "\"*\"", &out));
    let runner = place.started_runner().await;
    // Let the other user reach the socket itself: only its own mode stands in the way.
    std::fs::set_permissions(place.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // Mode 0600: the other user cannot even connect.
    let (code, said) = as_nobody(&place.socket(), &valid_event(&place, 66), 1);
    assert!(said.contains("uid 65534 65534"), "{said}");
    assert_eq!(code, Some(3), "{said}");
    assert!(
        said.contains(&format!("connect errno {}", libc::EACCES)),
        "{said}"
    );

    // A mistake opens the socket to everyone: the runner itself still refuses,
    // and says so at most 5 times however often it is tried.
    std::fs::set_permissions(place.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, said) = as_nobody(&place.socket(), &valid_event(&place, 66), 8);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("connected 8"), "{said}");
    assert!(
        runner
            .wait_log("connection refused: not this user: uid 65534", SHORT)
            .await,
        "{}",
        runner.log()
    );

    // A valid event from root right after runs its hook; the refused one never did.
    send_raw(&place.socket(), &valid_event(&place, 67))
        .await
        .unwrap();
    expect_run(&out, "all 67", &runner).await;
    all_dispatched_runs_ended(&runner).await;
    assert_eq!(lines(&out.join("runs")), ["all 67"], "{}", runner.log());
    let log = runner.log();
    let refusals = count(&log, "connection refused: not this user");
    assert!(
        (1..=5).contains(&refusals),
        "{refusals} refusals logged:\n{log}"
    );
    assert!(!log.contains("event_id=66"), "{log}");
}
