//! `status`, `history` and `replay` against a live service and without one, a full
//! disk that degrades the journal and recovers, `test --run` keeping out of the
//! journal, and hook output escaped and capped per stream in the logs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const SHORT: Duration = Duration::from_secs(20);

fn journal_path(place: &Place) -> PathBuf {
    place.path().join("state").join("journal.db")
}

/// `tracim-hooks --config … ARGS`: (exit code, stdout, stderr).
fn cli(place: &Place, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin())
        .args(["--config", &place.config_path().to_string_lossy()])
        .args(args)
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

fn tlm(id: u64) -> String {
    format!(
        r#"{{"event_id": {id}, "event_type": "content.modified.html-document", "fields": {{"content": {{"label": "note {id}"}}}}}}"#
    )
}

/// `ok` echoes, `fails` complains and exits 3; each appends a line to `out/runs`.
fn write_config(place: &Place, out: &Path, journal: &str) {
    place.write_config(&format!(
        r#"
[journal]
path = "{journal}"

[[hook]]
name = "ok"
on = "*"
env = {{ OUT = "{out}" }}
run = 'echo "ok $TRACIM_EVENT_ID ${{TRACIM_REPLAY:-0}}" >> "$OUT/runs"; echo "said hello to $TRACIM_EVENT_ID"'

[[hook]]
name = "fails"
on = "*"
env = {{ OUT = "{out}" }}
run = 'echo "fails $TRACIM_EVENT_ID ${{TRACIM_REPLAY:-0}}" >> "$OUT/runs"; echo "oops on $TRACIM_EVENT_ID" >&2; exit 3'
"#,
        out = out.display(),
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_history_and_replay_with_and_without_the_service() {
    let place = Place::new();
    let out = place.out();
    write_config(&place, &out, &journal_path(&place).to_string_lossy());

    // Before anything ran: no journal yet, and no service.
    let (code, stdout, _) = cli(&place, &["status"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("service: not running"), "{stdout}");
    assert!(stdout.contains("ok 0  failed 0  pending 0"), "{stdout}");

    let sim = place.sim(Duration::from_secs(30)).await;
    let mut runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    assert_eq!(sim.send_event(&tlm(41)).await.ok, 1);
    assert!(wait_for(SHORT, || lines(&out.join("runs")).len() == 2).await);
    let ended = || {
        let (_, stdout, _) = cli(&place, &["history", "--json"]);
        stdout
            .lines()
            .filter(|l| l.contains("\"ended\":\""))
            .count()
    };
    assert!(wait_for(SHORT, || ended() == 2).await);

    // The control socket is the user's alone.
    let socket = PathBuf::from(format!("{}.sock", journal_path(&place).display()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let (code, stdout, stderr) = cli(&place, &["status"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("pid {}", runner.pid())),
        "{stdout}"
    );
    assert!(stdout.contains("registered with"), "{stdout}");
    assert!(stdout.contains("(ok)"), "{stdout}");
    let ok_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("ok "))
        .unwrap();
    assert!(ok_line.contains("ok 1  failed 0  pending 0"), "{stdout}");
    let fails_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("fails "))
        .unwrap();
    assert!(fails_line.contains("ok 0  failed 1  pending 0"), "{stdout}");
    assert!(
        fails_line.contains("last failure: event 41 at "),
        "{stdout}"
    );

    let (_, stdout, _) = cli(&place, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["service"]["state"], "registered");
    assert_eq!(status["service"]["journal"]["degraded"], false);
    assert_eq!(status["hooks"][1]["last_failure"]["event_id"], 41);

    let (_, stdout, _) = cli(&place, &["history"]);
    let history: Vec<&str> = stdout.lines().collect();
    assert_eq!(history.len(), 2, "{stdout}");
    assert!(
        history.iter().any(|l| l
            .contains("  fails  event 41  content.modified.html-document  attempt 1  ")
            && l.ends_with("failed (exit code 3)")),
        "{stdout}"
    );
    assert!(
        history
            .iter()
            .any(|l| l.contains("  ok  event 41  ") && l.ends_with("  ok")),
        "{stdout}"
    );
    let (_, stdout, _) = cli(&place, &["history", "--failed", "--json"]);
    let failed: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["hook"], "fails");
    assert_eq!(failed[0]["exit_code"], 3);
    let (_, stdout, _) = cli(&place, &["history", "--event", "41"]);
    assert!(
        stdout.starts_with("event 41 content.modified.html-document received "),
        "{stdout}"
    );
    assert!(stdout.contains("\"label\": \"note 41\""), "{stdout}");
    assert!(stdout.contains("      said hello to 41"), "{stdout}");
    assert!(stdout.contains("      oops on 41"), "{stdout}");
    let (_, stdout, _) = cli(&place, &["history", "--hook", "ok", "--since", "1h"]);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");

    // Replay through the service: one hook, then every failure.
    let (code, stdout, stderr) = cli(&place, &["replay", "41", "--hook", "ok"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("queued ok for event 41 (run "),
        "{stdout}"
    );
    assert!(stdout.contains("by the running service"), "{stdout}");
    assert!(
        wait_for(SHORT, || lines(&out.join("runs"))
            .contains(&"ok 41 1".to_owned()))
        .await
    );
    let (code, stdout, _) = cli(&place, &["replay", "--failed"]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("queued fails for event 41"), "{stdout}");
    assert!(
        wait_for(SHORT, || lines(&out.join("runs"))
            .contains(&"fails 41 1".to_owned()))
        .await
    );
    let (code, _, stderr) = cli(&place, &["replay", "999"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("event 999 is not in the journal"),
        "{stderr}"
    );
    assert!(wait_for(SHORT, || ended() == 4).await);

    // Without the service: from the file, and replay in the foreground.
    runner.signal(libc::SIGTERM);
    assert!(runner.wait_exit(SHORT).await.success());
    assert!(!socket.exists());
    let (_, stdout, _) = cli(&place, &["status"]);
    assert!(stdout.contains("service: not running"), "{stdout}");
    let fails_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("fails "))
        .unwrap();
    assert!(fails_line.contains("ok 0  failed 2  pending 0"), "{stdout}");
    let (_, stdout, _) = cli(&place, &["history", "--hook", "ok"]);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stdout.lines().next().unwrap().ends_with("ok  (replay)"),
        "{stdout}"
    );
    let (code, stdout, stderr) = cli(&place, &["replay", "41"]);
    assert_eq!(
        code,
        Some(1),
        "the failing hook fails again: {stdout}{stderr}"
    );
    assert!(stdout.contains("queued ok for event 41"), "{stdout}");
    assert!(stdout.contains("queued fails for event 41"), "{stdout}");
    assert!(stdout.contains("no service is running"), "{stdout}");
    assert!(
        stdout.contains("ran ok for event 41: exit code 0"),
        "{stdout}"
    );
    assert!(
        stderr.contains("hook `fails` failed for event 41: exit code 3"),
        "{stderr}"
    );
    let replays = lines(&out.join("runs"));
    assert_eq!(
        replays.iter().filter(|l| l.as_str() == "ok 41 1").count(),
        2
    );
    let (_, stdout, _) = cli(&place, &["history", "--json"]);
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
}

/// A tmpfs mounted for one test, unmounted when dropped; `None` when this
/// process may not mount (then the test says so and passes without checking).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here");
            return None;
        }
        Some(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_degrades_the_journal_and_it_recovers() {
    let place = Place::new();
    let Some(disk) = Tmpfs::mount(place.path().join("disk"), "size=2m") else {
        return;
    };
    let out = place.out();
    let journal = disk.0.join("journal.db");
    write_config(&place, &out, &journal.to_string_lossy());
    let sim = place.sim(Duration::from_secs(30)).await;
    let runner = place.runner();
    assert!(sim.wait_for_client(&place.socket(), SHORT).await);
    // Fill the disk to the last byte.
    let filler = disk.0.join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![7u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.flush();
    }
    // Events too big for what is left: hooks run, the journal cannot keep up.
    let big = "x".repeat(50_000);
    for id in 1..=10u64 {
        let text = format!(
            r#"{{"event_id": {id}, "event_type": "content.modified.html-document", "fields": {{"pad": "{big}"}}}}"#
        );
        assert_eq!(sim.send_event(&text).await.ok, 1);
    }
    assert!(
        wait_for(SHORT, || lines(&out.join("runs")).len() == 20).await,
        "{}",
        runner.log()
    );
    let degraded = || cli(&place, &["status"]).1.contains("DEGRADED");
    assert!(wait_for(SHORT, degraded).await, "{}", runner.log());
    let (_, stdout, _) = cli(&place, &["status", "--json"]);
    assert!(stdout.contains("\"degraded\":true"), "{stdout}");
    // Once per spell, not once per failed write.
    let log = runner.log();
    assert_eq!(log.matches("ERROR").count(), 1, "{log}");

    std::fs::remove_file(&filler).unwrap();
    let recovered = || {
        let (_, stdout, _) = cli(&place, &["status"]);
        stdout.contains(&format!("journal: {} (ok", journal.display()))
    };
    assert!(wait_for(SHORT, recovered).await, "{}", runner.log());
    // Nothing sent meanwhile was lost: every event and run is in the file now.
    let (_, stdout, _) = cli(&place, &["history", "--json", "--limit", "1000"]);
    let ended = stdout
        .lines()
        .filter(|l| l.contains("\"ended\":\""))
        .count();
    assert_eq!(ended, 20, "{stdout}");
    drop(runner);
}

#[test]
fn test_run_leaves_the_journal_alone() {
    let place = Place::new();
    let out = place.out();
    write_config(&place, &out, &journal_path(&place).to_string_lossy());
    let (code, stdout, _) = cli(&place, &["test", "--run", "--sample", "tag.created"]);
    assert_eq!(code, Some(1), "`fails` fails: {stdout}");
    assert!(stdout.contains("ran ok for event"), "{stdout}");
    assert!(!journal_path(&place).exists());
    assert!(!journal_path(&place).parent().unwrap().exists());
}

#[test]
fn hook_output_is_escaped_and_each_stream_says_when_it_passes_the_cap() {
    let place = Place::new();
    place.write_config(
        r#"
[[hook]]
name = "loud"
on = "*"
run = 'printf "x\033]0;pwned\007\000y\n"; yes out-line | head -n 20000; yes err-line | head -n 20000 >&2'
"#,
    );
    let out = Command::new(bin())
        .args(["--config", &place.config_path().to_string_lossy()])
        .args(["test", "--run", "--sample", "tag.created"])
        .env("TRACIM_HOOKS_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = &out.stderr;
    for byte in [0x1b_u8, 0x00, 0x07] {
        assert!(!log.contains(&byte), "raw byte {byte:#x} in the log");
    }
    let log = String::from_utf8_lossy(log);
    assert!(
        log.contains(r"x\x1b]0;pwned\x07\x00y"),
        "{}",
        &log[..log.len().min(2000)]
    );
    let capped = |stream: &str| {
        log.lines()
            .filter(|l| {
                l.contains(&format!(
                    "{stream} output past 64 KiB of this run not logged"
                ))
            })
            .count()
    };
    assert_eq!(
        capped("stdout"),
        1,
        "{}",
        &log[log.len().saturating_sub(3000)..]
    );
    assert_eq!(
        capped("stderr"),
        1,
        "{}",
        &log[log.len().saturating_sub(3000)..]
    );
}
