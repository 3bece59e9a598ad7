//! Hostile input and local security, over the real socket of the real binary:
//! other users, malformed and oversized messages, silent and trickling peers,
//! floods, huge events against the kernel's exec limits, unsafe config files,
//! and `skip_own`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tracim_daemon_sdk::protocol::{Envelope, Message};
use tracim_daemon_sdk::sim::event_message;

const SHORT: Duration = Duration::from_secs(10);

/// The largest `NAME=value` string (its NUL counted) the kernel passes to exec.
const KERNEL_MAX_ARG_STRLEN: usize = 128 * 1024;

// ---------------------------------------------------------------------------
// Helpers

/// A TLM's text.
fn tlm(id: u64, event_type: &str, fields: Value) -> String {
    json!({
        "event_id": id,
        "event_type": event_type,
        "created": "2026-11-26T10:00:00.511Z",
        "read": null,
        "fields": fields,
    })
    .to_string()
}

/// A valid `daemon_tracim_event` for a `content.created.file`, authored by user 2.
fn valid_event(place: &Place, id: u64) -> Vec<u8> {
    event_message(
        &place.master(),
        &tlm(
            id,
            "content.created.file",
            json!({"author": {"user_id": 2}, "content": {"label": "ok"}}),
        ),
    )
}

/// Writes hooks.toml with a `[daemon]` table of our own (`write_config` fixes
/// read_timeout at 1 s), then `rest`.
fn write_config(place: &Place, daemon_extra: &str, rest: &str) {
    place.write_raw_config(&format!(
        "[daemon]\nmaster_socket = \"{}\"\nsocket = \"{}\"\nwatch_interval = \"50ms\"\nretry_max = \"300ms\"\n{daemon_extra}\n{rest}",
        place.master().display(),
        place.socket().display(),
    ));
}

/// Starts the runner and waits until its socket takes deliveries.
async fn start(place: &Place) -> Runner {
    let runner = place.runner();
    assert!(
        runner.wait_log("tracim-hooks running", SHORT).await && place.socket().exists(),
        "the runner did not start:\n{}",
        runner.log()
    );
    runner
}

/// Waits until `out/runs` holds `line`.
async fn expect_run(out: &Path, line: &str, runner: &Runner) {
    assert!(
        wait_for(SHORT, || lines(&out.join("runs")).iter().any(|l| l == line)).await,
        "`{line}` never ran; runs: {:?}\nlog:\n{}",
        lines(&out.join("runs")),
        runner.log()
    );
}

/// Waits until every run the runner dispatched has ended: the `hooks=` of
/// each "event received" line, summed, against the "run finished" and "run
/// failed" lines. Events are dispatched in the order they came, so once a
/// later event has run, this covers any earlier one that should not have.
async fn all_dispatched_runs_ended(runner: &Runner) {
    let settled = || {
        let log = runner.log();
        let dispatched: usize = log
            .lines()
            .filter(|l| l.contains("event received"))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("hooks="))?
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        dispatched > 0 && dispatched == count(&log, "run finished") + count(&log, "run failed")
    };
    assert!(
        wait_for(SHORT, settled).await,
        "runs dispatched and ended differ:\n{}",
        runner.log()
    );
}

/// Log lines holding `needle`.
fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// A `kB` figure of /proc/<pid>/status (VmRSS, VmHWM, ...).
fn proc_kb(pid: i32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// The process is there and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("State:"))
            .is_some_and(|l| !l.contains("zombie") && !l.contains("dead"))
    })
}

/// Parses a recording hook's env file into (name, value).
fn env_file(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn env_get<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Sends bytes the daemon's way and ignores a peer that hangs up early.
async fn send_lossy(socket: &Path, bytes: &[u8]) {
    let _ = send_raw(socket, bytes).await;
}

/// `tracim-hooks --config <path> check`: (exit code, stdout, stderr).
fn check(config: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(bin())
        .args(["--config", &config.to_string_lossy(), "check"])
        .env_remove("TRACIM_HOOKS_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------
// The socket and other users

/// The runner started by hand, under umask 0 (the widest a socket could be
/// created), killed on drop.
struct Umask0Runner(std::process::Child, std::path::PathBuf);

impl Drop for Umask0Runner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_0600_from_its_first_moment_even_under_umask_0() {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::process::CommandExt;
    let place = Place::new();
    write_config(&place, "", "");
    let log = place.path().join("umask0.log");
    let mut command = Command::new(bin());
    command
        .args(["--config", &place.config_path().to_string_lossy(), "run"])
        .env(
            "TRACIM_HOOKS_LOG",
            "tracim_hooks=debug,tracim_daemon_sdk=debug",
        )
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
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
    let runner = Umask0Runner(command.spawn().unwrap(), log);

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
    let log = std::fs::read_to_string(&runner.1).unwrap_or_default();
    assert!(appeared, "no socket after {looks} looks; log:\n{log}");
    assert!(
        wait_for(SHORT, || std::fs::read_to_string(&runner.1)
            .is_ok_and(|l| l.contains("tracim-hooks running")))
        .await,
        "{log}"
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
    write_config(&place, "", &recording_hook("all", "\"*\"", &out));
    let runner = start(&place).await;
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

// ---------------------------------------------------------------------------
// Malformed, oversized, silent and trickling input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_logged_by_kind_and_the_next_event_still_runs() {
    let place = Place::new();
    let out = place.out();
    write_config(
        &place,
        "read_timeout = \"1s\"",
        &recording_hook("all", "\"*\"", &out),
    );
    let runner = start(&place).await;
    let master = place.master().to_string_lossy().into_owned();
    let event_with_data = |data: Value| {
        json!({"path": master, "type": "daemon_tracim_event", "data": data})
            .to_string()
            .into_bytes()
    };
    let tlm_text = |v: Value| Value::String(v.to_string());
    let whole = valid_event(&place, 999);
    let mut invalid_utf8 = valid_event(&place, 998);
    let at = invalid_utf8.len() / 2;
    invalid_utf8.splice(at..at, [0xff, 0xfe, 0xc3]);
    let nested: Vec<u8> = [
        &b"{\"path\":\"/m\",\"type\":\"x\",\"data\":"[..],
        &[b'['; 100_000],
    ]
    .concat();

    const MALFORMED: &str = "malformed message: ";
    const BAD_DATA: &str = "message with bad data: ";
    const BAD_TLM: &str = "malformed Tracim event: ";
    const NOT_UTF8: &str = "message not in UTF-8: ";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"garbage }{ bytes".to_vec(), MALFORMED),
        (
            "empty (a probe: debug, not a warning)",
            Vec::new(),
            "DEBUG empty connection",
        ),
        (
            "truncated JSON",
            whole[..whole.len() / 2].to_vec(),
            MALFORMED,
        ),
        ("a JSON array", b"[1,2,3]".to_vec(), MALFORMED),
        ("100000 nested arrays", nested, MALFORMED),
        ("data a number", event_with_data(json!(5)), BAD_DATA),
        ("data an array", event_with_data(json!([1, 2])), BAD_DATA),
        (
            "no data",
            json!({"path": master, "type": "daemon_tracim_event"})
                .to_string()
                .into_bytes(),
            BAD_DATA,
        ),
        (
            "event_type missing",
            event_with_data(tlm_text(json!({"event_id": 1, "fields": {}}))),
            BAD_TLM,
        ),
        (
            "event_type not a string",
            event_with_data(tlm_text(
                json!({"event_id": 1, "event_type": 7, "fields": {}}),
            )),
            BAD_TLM,
        ),
        (
            "fields an array",
            event_with_data(tlm_text(
                json!({"event_id": 1, "event_type": "a.b", "fields": []}),
            )),
            BAD_TLM,
        ),
        (
            "the TLM string not JSON",
            event_with_data(json!("not json {")),
            BAD_TLM,
        ),
        (
            "event_id negative",
            event_with_data(tlm_text(
                json!({"event_id": -1, "event_type": "a.b", "fields": {}}),
            )),
            BAD_TLM,
        ),
        ("binary", vec![0x00, 0xff, 0x80, 0xc3, 0x28, 0x01], NOT_UTF8),
        ("invalid UTF-8 inside an event", invalid_utf8, NOT_UTF8),
    ];
    let mut expected_runs = Vec::new();
    for (i, (what, bytes, kind)) in cases.into_iter().enumerate() {
        let before = count(&runner.log(), kind);
        send_lossy(&place.socket(), &bytes).await;
        assert!(
            wait_for(SHORT, || count(&runner.log(), kind) == before + 1).await,
            "{what}: no `{kind}` line logged:\n{}",
            runner.log()
        );
        let id = 100 + i as u64;
        send_raw(&place.socket(), &valid_event(&place, id))
            .await
            .unwrap();
        let line = format!("all {id}");
        expect_run(&out, &line, &runner).await;
        expected_runs.push(line);
        assert!(alive(runner.pid()), "{what}: the runner died");
    }
    // Only the valid events ran, each once, and in order.
    assert_eq!(lines(&out.join("runs")), expected_runs);
    let log = runner.log();
    assert!(!log.contains("panicked"), "{log}");
    for kind in [MALFORMED, BAD_DATA, BAD_TLM, NOT_UTF8] {
        assert!(count(&log, kind) <= 5, "{kind}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_logs_five_lines_then_a_summary_after_the_window() {
    const KIND: &str = "malformed message: ";
    let place = Place::new();
    let out = place.out();
    write_config(
        &place,
        "log_window = \"1s\"",
        &recording_hook("all", "\"*\"", &out),
    );
    let runner = start(&place).await;
    let flood_started = Instant::now();
    for i in 0..50 {
        send_lossy(&place.socket(), format!("garbage {i}").as_bytes()).await;
    }
    send_raw(&place.socket(), &valid_event(&place, 1))
        .await
        .unwrap();
    expect_run(&out, "all 1", &runner).await;
    // Connections are handed on in the order they came: the event ran, so
    // every garbage message before it was read and judged.
    let log = runner.log();
    assert_eq!(count(&log, KIND), 5, "{log}");
    assert!(!log.contains("more not logged"), "{log}");

    // After the limiter's window (1 s here) it says how many were left out,
    // and the next complaint of the kind is logged again.
    let window = Duration::from_secs(1);
    tokio::time::sleep(
        (window + Duration::from_millis(300)).saturating_sub(flood_started.elapsed()),
    )
    .await;
    send_lossy(&place.socket(), b"one more").await;
    assert!(
        runner
            .wait_log("malformed message: 45 more not logged", SHORT)
            .await,
        "{}",
        runner.log()
    );
    assert!(
        wait_for(SHORT, || count(&runner.log(), "(8 bytes)") == 1).await,
        "the complaint after the window is logged itself:\n{}",
        runner.log()
    );
    send_raw(&place.socket(), &valid_event(&place, 2))
        .await
        .unwrap();
    expect_run(&out, "all 2", &runner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_message_is_dropped_and_the_next_one_runs() {
    let place = Place::new();
    let out = place.out();
    write_config(
        &place,
        "max_message = 4096\nread_timeout = \"1s\"",
        &recording_hook("all", "\"*\"", &out),
    );
    let runner = start(&place).await;

    // An event of exactly 4096 bytes is taken.
    let padded = |id: u64, pad: usize| {
        event_message(
            &place.master(),
            &tlm(id, "content.created.file", json!({"pad": "x".repeat(pad)})),
        )
    };
    let base = padded(1, 0).len();
    let exact = padded(1, 4096 - base);
    assert_eq!(exact.len(), 4096);
    send_raw(&place.socket(), &exact).await.unwrap();
    expect_run(&out, "all 1", &runner).await;

    // One byte more is not; nor is 100 KB.
    let over = padded(2, 4097 - base);
    assert_eq!(over.len(), 4097);
    send_lossy(&place.socket(), &over).await;
    assert!(
        runner
            .wait_log("message over max_message dropped", SHORT)
            .await,
        "{}",
        runner.log()
    );
    let huge = padded(3, 100 * 1024);
    send_lossy(&place.socket(), &huge).await;
    assert!(
        wait_for(SHORT, || count(
            &runner.log(),
            "message over max_message dropped"
        ) == 2)
        .await,
        "{}",
        runner.log()
    );
    send_raw(&place.socket(), &valid_event(&place, 4))
        .await
        .unwrap();
    expect_run(&out, "all 4", &runner).await;
    all_dispatched_runs_ended(&runner).await;
    assert_eq!(lines(&out.join("runs")), ["all 1", "all 4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_peers_block_nobody_and_are_cut_at_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let place = Place::new();
    let out = place.out();
    write_config(
        &place,
        "read_timeout = \"2s\"",
        &recording_hook("all", "\"*\"", &out),
    );
    let runner = start(&place).await;

    // A peer that connects and never writes, and one that writes a byte every
    // 100 ms and never ends.
    let mut idle = tokio::net::UnixStream::connect(place.socket())
        .await
        .unwrap();
    let connected = Instant::now();
    let trickle_bytes = valid_event(&place, 77);
    let socket = place.socket();
    let trickler = tokio::spawn(async move {
        let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
        let started = Instant::now();
        for b in trickle_bytes.iter().take(200) {
            if stream.write_all(&[*b]).await.is_err() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    });

    // Meanwhile a valid event goes through at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = Instant::now();
    send_raw(&place.socket(), &valid_event(&place, 1))
        .await
        .unwrap();
    expect_run(&out, "all 1", &runner).await;
    let took = sent.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "a valid event took {took:?} while a silent peer was connected"
    );

    // The silent peer is hung up on at read_timeout.
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(SHORT, idle.read(&mut buf))
        .await
        .expect("the silent peer was never hung up on");
    let after = connected.elapsed();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(4),
        "silent peer hung up on after {after:?}"
    );
    // The trickling one too: the timeout is for the whole message, not per byte.
    let cut = tokio::time::timeout(SHORT, trickler)
        .await
        .unwrap()
        .unwrap();
    let cut = cut.expect("the trickling peer was never hung up on");
    assert!(cut < Duration::from_secs(5), "trickler cut after {cut:?}");
    assert!(
        runner
            .wait_log("connection timed out before its message ended", SHORT)
            .await,
        "{}",
        runner.log()
    );
    assert!(
        count(
            &runner.log(),
            "connection timed out before its message ended"
        ) >= 2
    );

    send_raw(&place.socket(), &valid_event(&place, 2))
        .await
        .unwrap();
    expect_run(&out, "all 2", &runner).await;
    assert_eq!(lines(&out.join("runs")), ["all 1", "all 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_connections_at_once_leave_the_runner_well_and_small() {
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt;
    const N: usize = 2000;
    let place = Place::new();
    let out = place.out();
    write_config(
        &place,
        "read_timeout = \"2s\"",
        &recording_hook("files", "\"content.*\"", &out),
    );
    let runner = start(&place).await;
    let pid = runner.pid();
    let rss_before = proc_kb(pid, "VmRSS");

    // Every connection opens first, then all write at once: garbage, invalid
    // UTF-8, valid events no hook takes, and pings (whose pongs go nowhere).
    let master = place.master();
    let ping = Envelope::new(master.to_string_lossy(), Message::Ping).encode();
    let other_event = event_message(&master, &tlm(5, "user.modified", json!({})));
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::with_capacity(N);
    for i in 0..N {
        let bytes = match i % 4 {
            0 => format!("garbage {i}").into_bytes(),
            1 => vec![0xff; 16],
            2 => other_event.clone(),
            _ => ping.clone(),
        };
        let socket = place.socket();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::UnixStream::connect(&socket).await;
            barrier.wait().await;
            let mut stream = stream?;
            stream.write_all(&bytes).await?;
            stream.shutdown().await
        }));
    }
    let mut ok = 0;
    let mut errors = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert_eq!(ok, N, "failed: {:?}", &errors[..errors.len().min(5)]);

    // A valid event right after runs its hook.
    let sent = Instant::now();
    send_raw(&place.socket(), &valid_event(&place, 4242))
        .await
        .unwrap();
    expect_run(&out, "files 4242", &runner).await;
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} after the flood"
    );
    assert!(alive(pid));
    let rss_after = proc_kb(pid, "VmRSS");
    let peak = proc_kb(pid, "VmHWM");
    eprintln!("RSS {rss_before} kB before, {rss_after} kB after, peak {peak} kB; {took:?}");
    assert!(
        peak < rss_before + 16 * 1024 && rss_after < rss_before + 16 * 1024,
        "RSS {rss_before} kB before, {rss_after} kB after, peak {peak} kB"
    );
    let log = runner.log();
    assert!(count(&log, "malformed message: ") <= 5, "{log}");
    assert!(count(&log, "message not in UTF-8: ") <= 5, "{log}");
    assert_eq!(lines(&out.join("runs")), ["files 4242"]);
}

// ---------------------------------------------------------------------------
// Huge events against the kernel's exec limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_events_still_run_their_hooks_with_big_variables_omitted() {
    let place = Place::new();
    let out = place.out();
    write_config(&place, "", &recording_hook("all", "\"*\"", &out));
    let runner = start(&place).await;
    let budget = 256 * 1024;

    // The longest single variable the kernel takes is passed whole: NAME=value
    // plus its NUL one byte under MAX_ARG_STRLEN.
    let edge_name = "TRACIM_FIELDS_EDGE";
    let edge_value = "e".repeat(KERNEL_MAX_ARG_STRLEN - 1 - edge_name.len() - 2);
    let cases = [
        (
            1u64,
            tlm(
                1,
                "content.modified.html-document",
                json!({"content": {"raw_content": "a".repeat(200 * 1024), "label": "200 KB"}}),
            ),
        ),
        (
            2,
            tlm(
                2,
                "content.modified.html-document",
                json!({"content": {"raw_content": "<p>".to_owned() + &"b".repeat(5 * 1024 * 1024), "label": "5 MB"}}),
            ),
        ),
        (3, {
            let fields: serde_json::Map<String, Value> = (0..20_000)
                .map(|i| (format!("f{i}"), Value::from("v".repeat(50))))
                .collect();
            tlm(3, "content.created.file", Value::Object(fields))
        }),
        (
            4,
            tlm(
                4,
                "content.created.file",
                json!({"edge": edge_value, "label": "edge"}),
            ),
        ),
        (
            5,
            tlm(
                5,
                "content.created.file",
                json!({"x": "a\u{0}b", "label": "nul"}),
            ),
        ),
    ];
    for (id, text) in &cases {
        send_raw(&place.socket(), &event_message(&place.master(), text))
            .await
            .unwrap();
        expect_run(&out, &format!("all {id}"), &runner).await;
        // The hook got the whole event on stdin.
        let stdin = std::fs::read(out.join(format!("all.{id}.stdin"))).unwrap();
        assert_eq!(stdin.len(), text.len() + 1, "event {id}");
        let vars = env_file(&out.join(format!("all.{id}.env")));
        // TRACIM_HOOKS_LOG is the runner's own, inherited: not an event variable.
        let total: usize = vars
            .iter()
            .filter(|(k, _)| k != "TRACIM_OMITTED" && k != "TRACIM_HOOKS_LOG")
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum();
        assert!(total <= budget, "event {id}: {total} bytes of variables");
        for (k, v) in &vars {
            assert!(
                k.len() + v.len() + 2 <= KERNEL_MAX_ARG_STRLEN,
                "event {id}: {k} is {} bytes",
                v.len()
            );
        }
        assert_eq!(
            env_get(&vars, "TRACIM_EVENT_ID"),
            Some(id.to_string().as_str())
        );
    }

    let v1 = env_file(&out.join("all.1.env"));
    assert_eq!(
        env_get(&v1, "TRACIM_OMITTED"),
        Some("TRACIM_FIELDS_CONTENT_RAW_CONTENT")
    );
    assert_eq!(env_get(&v1, "TRACIM_FIELDS_CONTENT_LABEL"), Some("200 KB"));
    assert_eq!(env_get(&v1, "TRACIM_FIELDS_CONTENT_RAW_CONTENT"), None);

    let v2 = env_file(&out.join("all.2.env"));
    assert_eq!(
        env_get(&v2, "TRACIM_OMITTED"),
        Some("TRACIM_FIELDS_CONTENT_RAW_CONTENT")
    );
    assert_eq!(env_get(&v2, "TRACIM_FIELDS_CONTENT_LABEL"), Some("5 MB"));

    let v3 = env_file(&out.join("all.3.env"));
    let omitted = env_get(&v3, "TRACIM_OMITTED").expect("TRACIM_OMITTED");
    assert!(omitted.starts_with("TRACIM_FIELDS_F"), "{}", &omitted[..50]);
    assert!(omitted.ends_with(" ..."));
    assert!(omitted.len() <= 32 * 1024, "{}", omitted.len());
    let kept = v3
        .iter()
        .filter(|(k, _)| k.starts_with("TRACIM_FIELDS_F"))
        .count();
    assert!((1000..20_000).contains(&kept), "{kept} fields kept");
    assert_eq!(
        env_get(&v3, "TRACIM_FIELDS_F0"),
        Some("v".repeat(50).as_str())
    );

    let v4 = env_file(&out.join("all.4.env"));
    assert_eq!(env_get(&v4, edge_name), Some(edge_value.as_str()));
    assert_eq!(env_get(&v4, "TRACIM_OMITTED"), None);

    let v5 = env_file(&out.join("all.5.env"));
    assert_eq!(env_get(&v5, "TRACIM_OMITTED"), Some("TRACIM_FIELDS_X"));
    assert_eq!(env_get(&v5, "TRACIM_FIELDS_LABEL"), Some("nul"));

    let log = runner.log();
    assert!(!log.contains("Argument list too long"), "{log}");
    assert!(!log.contains("run failed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_budget_beyond_the_kernels_limit_is_refused_or_held_to_it() {
    // The kernel takes at most ARG_MAX (here a quarter of the stack limit, 2 MiB
    // by default) of argv and environment together. A configured budget past
    // that must not let exec fail: 64 MiB is refused outright, and the largest
    // budget taken (1 MiB) is held to, an event of 3 MB of variables running.
    let place = Place::new();
    let out = place.out();
    let with_budget = |budget: usize| {
        write_config(
            &place,
            "",
            &format!(
                "[defaults]\nenv_budget = {budget}\n{}",
                recording_hook("all", "\"*\"", &out)
            ),
        )
    };
    with_budget(64 * 1024 * 1024);
    let (code, _, stderr) = check(&place.config_path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("env_budget"), "{stderr}");

    with_budget(1024 * 1024);
    let (code, _, stderr) = check(&place.config_path());
    assert_eq!(code, Some(0), "{stderr}");
    let runner = start(&place).await;
    let fields: serde_json::Map<String, Value> = (0..40_000)
        .map(|i| (format!("f{i}"), Value::from("v".repeat(60))))
        .collect();
    let text = tlm(1, "content.created.file", Value::Object(fields));
    send_raw(&place.socket(), &event_message(&place.master(), &text))
        .await
        .unwrap();
    assert!(
        wait_for(SHORT, || {
            lines(&out.join("runs")) == ["all 1"] || runner.log().contains("run failed")
        })
        .await,
        "{}",
        runner.log()
    );
    assert_eq!(
        lines(&out.join("runs")),
        ["all 1"],
        "exec failed:\n{}",
        runner
            .log()
            .lines()
            .filter(|l| l.contains("run failed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Held to the budget, and it was the budget that cut: past 256 KiB kept.
    let vars = env_file(&out.join("all.1.env"));
    let total: usize = vars
        .iter()
        .filter(|(k, _)| k != "TRACIM_OMITTED" && k != "TRACIM_HOOKS_LOG")
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    assert!(
        (256 * 1024..=1024 * 1024).contains(&total),
        "{total} bytes of variables"
    );
    assert!(env_get(&vars, "TRACIM_OMITTED").is_some_and(|o| o.ends_with(" ...")));
}

// ---------------------------------------------------------------------------
// What the config lets run

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_env_names_are_refused_at_load_with_their_position() {
    let place = Place::new();
    let text = r#"[[hook]]
name = "eq"
on = "*"
run = "true"
env = { "A=B" = "1", GOOD_ONE = "x" }

[[hook]]
name = "empty"
on = "*"
run = "true"
env = { "" = "1" }

[[hook]]
name = "nul"
on = "*"
run = "true"
env = { "A\u0000B" = "1" }

[[hook]]
name = "table"
on = "*"
run = "true"
[hook.env]
OK = "1"
"B=C" = "2"
"#;
    let path = place.write_raw_config(text);
    let (code, stdout, stderr) = check(&path);
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let p = path.display();
    for expected in [
        format!("{p}:5:9: hook `eq`: invalid environment variable name \"A=B\""),
        format!("{p}:11:9: hook `empty`: invalid environment variable name \"\""),
        format!("{p}:17:9: hook `nul`: invalid environment variable name \"A\\0B\""),
        format!("{p}:25:1: hook `table`: invalid environment variable name \"B=C\""),
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(&expected)),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert_eq!(stderr.lines().count(), 4, "{stderr}");
    assert!(
        !stderr.contains("GOOD_ONE") && !stderr.contains("\"OK\""),
        "{stderr}"
    );

    // `run` refuses it the same way, before any socket exists.
    write_config(
        &place,
        "",
        "[[hook]]\nname = \"x\"\non = \"*\"\nrun = \"true\"\nenv = { \"X=Y\" = \"1\" }\n",
    );
    let mut runner = place.runner();
    let status = runner.wait_exit(SHORT).await;
    assert_eq!(status.code(), Some(1), "{}", runner.log());
    assert!(
        runner.log().contains("invalid environment variable name"),
        "{}",
        runner.log()
    );
    assert!(!place.socket().exists());

    // Valid names pass.
    place.write_raw_config(
        "[[hook]]\nname = \"ok\"\non = \"*\"\nrun = \"true\"\nenv = { A_B = \"1\", lower = \"2\", \"DOT.TED\" = \"3\" }\n",
    );
    let (code, stdout, stderr) = check(&path);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

#[test]
fn nul_bytes_anywhere_exec_would_see_them_are_refused_at_load() {
    // A NUL can never reach exec: such a hook would fail every run with
    // "nul byte found in provided data". `check` must say so up front.
    let place = Place::new();
    let text = r#"[[hook]]
name = "value"
on = "*"
run = "true"
env = { A = "x\u0000y" }

[[hook]]
name = "script"
on = "*"
run = "echo a\u0000b"

[[hook]]
name = "argv"
on = "*"
exec = ["/bin/echo", "a\u0000b"]

[[hook]]
name = "dir"
on = "*"
run = "true"
cwd = "/tmp\u0000x"
"#;
    let path = place.write_raw_config(text);
    let (code, stdout, stderr) = check(&path);
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let p = path.display();
    for (line, hook) in [(5, "value"), (10, "script"), (15, "argv"), (21, "dir")] {
        let prefix = format!("{p}:{line}:");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(&format!("hook `{hook}`"))),
            "nothing at {prefix} about `{hook}` in:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_others_could_have_written_is_refused_with_the_fix() {
    use std::os::unix::ffi::OsStrExt;
    let place = Place::new();
    let out = place.out();
    write_config(&place, "", &recording_hook("all", "\"*\"", &out));
    let path = place.config_path();
    let set_mode =
        |mode| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();

    set_mode(0o644);
    let (code, _, stderr) = check(&path);
    assert_eq!(code, Some(0), "{stderr}");

    for (mode, who) in [
        (0o664, "group"),
        (0o646, "others"),
        (0o666, "others"),
        (0o620, "group"),
    ] {
        set_mode(mode);
        let (code, stdout, stderr) = check(&path);
        assert_eq!(code, Some(1), "mode {mode:o}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("writable by {who}"))
                && stderr.contains("chmod go-w")
                && stderr.contains(&path.display().to_string()),
            "mode {mode:o}: {stderr}"
        );
        assert!(!stdout.contains("ok,"), "{stdout}");
    }

    // `run` refuses it too, and never opens its socket.
    set_mode(0o666);
    let mut runner = place.runner();
    assert_eq!(runner.wait_exit(SHORT).await.code(), Some(1));
    assert!(runner.log().contains("chmod go-w"), "{}", runner.log());
    assert!(!place.socket().exists());

    // Owned by another user: refused, saying how to fix it.
    set_mode(0o644);
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: chown on a path we own, with a valid C string.
    assert_eq!(unsafe { libc::chown(c_path.as_ptr(), 65534, 65534) }, 0);
    let (code, _, stderr) = check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("owned by uid 65534") && stderr.contains("chown"),
        "{stderr}"
    );
    let mut runner = place.runner();
    assert_eq!(runner.wait_exit(SHORT).await.code(), Some(1));
    assert!(
        runner.log().contains("owned by uid 65534"),
        "{}",
        runner.log()
    );

    // A symlink does not launder a file others can write.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::chown(c_path.as_ptr(), 0, 0) }, 0);
    set_mode(0o666);
    let link = place.path().join("link.toml");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let (code, _, stderr) = check(&link);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("chmod go-w"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_a_config_others_can_write_is_refused_and_the_old_hooks_stay() {
    let place = Place::new();
    let out = place.out();
    write_config(&place, "", &recording_hook("old", "\"*\"", &out));
    let runner = start(&place).await;
    send_raw(&place.socket(), &valid_event(&place, 1))
        .await
        .unwrap();
    expect_run(&out, "old 1", &runner).await;

    // Someone else's hook lands in a file now writable by all.
    write_config(&place, "", &recording_hook("planted", "\"*\"", &out));
    std::fs::set_permissions(place.config_path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    runner.signal(libc::SIGHUP);
    assert!(
        runner.wait_log("reload refused", SHORT).await,
        "{}",
        runner.log()
    );
    assert!(runner.log().contains("chmod go-w"), "{}", runner.log());
    send_raw(&place.socket(), &valid_event(&place, 2))
        .await
        .unwrap();
    expect_run(&out, "old 2", &runner).await;
    all_dispatched_runs_ended(&runner).await;
    assert_eq!(lines(&out.join("runs")), ["old 1", "old 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_own_skips_the_daemons_own_events_only() {
    let place = Place::new();
    let out = place.out();
    let sim = place.sim(Duration::from_secs(30)).await;
    write_config(
        &place,
        "",
        &[
            recording_hook("own", "\"*\"", &out),
            "skip_own = true\n".to_owned(),
            recording_hook("all", "\"*\"", &out),
        ]
        .concat(),
    );
    let runner = start(&place).await;
    assert!(
        sim.wait_for_client(&place.socket(), SHORT).await,
        "{}",
        runner.log()
    );
    assert!(
        runner.wait_log("registered with TracimDaemon", SHORT).await,
        "{}",
        runner.log()
    );
    assert!(
        runner.log().contains("user_id=\"1\"") || runner.log().contains("user_id=1"),
        "{}",
        runner.log()
    );
    let by = |id: u64, author: Value| {
        tlm(
            id,
            "content.modified.html-document",
            json!({"author": author, "content": {"label": "n"}}),
        )
    };
    // By the daemon's own account (user 1), by user 2, by user 11, and by
    // nobody (a change made from Tracim's command line).
    for text in [
        by(11, json!({"user_id": 1, "username": "hooks"})),
        by(12, json!({"user_id": 2, "username": "jdoe"})),
        by(13, json!({"user_id": 11, "username": "x"})),
        by(14, Value::Null),
    ] {
        assert_eq!(sim.send_event(&text).await.ok, 1);
    }
    for line in [
        "all 11", "all 12", "all 13", "all 14", "own 12", "own 13", "own 14",
    ] {
        expect_run(&out, line, &runner).await;
    }
    all_dispatched_runs_ended(&runner).await;
    let mut runs = lines(&out.join("runs"));
    runs.sort();
    assert_eq!(
        runs,
        [
            "all 11", "all 12", "all 13", "all 14", "own 12", "own 13", "own 14"
        ],
        "{}",
        runner.log()
    );
}
