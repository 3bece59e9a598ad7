//! Real processes: exit codes, stdin, time limits, groups, reaping.

use super::*;

fn spec(argv: &[&str], stdin: Option<&str>, output: Output) -> Spec {
    Spec {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        inherited: crate::env::inherited(),
        env: Vec::new(),
        cwd: None,
        stdin: stdin.map(Into::into),
        output,
        label: Label {
            hook: "t".into(),
            event_id: 1,
            event_type: "a.b".into(),
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

#[test]
fn programs_are_found_in_the_hooks_path() {
    let path = Some(OsStr::new("/nonexistent:/bin:/usr/bin"));
    let sh = resolve_program("sh", path);
    assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
    assert_eq!(
        resolve_program("no-such-program-here", path),
        PathBuf::from("no-such-program-here")
    );
    assert_eq!(resolve_program("./local", path), PathBuf::from("./local"));
    assert_eq!(resolve_program("sh", None), PathBuf::from("sh"));
}

#[test]
fn a_runs_own_variable_wins_over_the_inherited_one_and_the_last_one_set_wins() {
    let mut s = spec(&["true"], None, Output::Null);
    s.inherited = vec![
        ("PATH".into(), "/bin".into()),
        ("HOME".into(), "/home/h".into()),
    ]
    .into();
    assert_eq!(s.var("PATH"), Some(OsStr::new("/bin")));
    s.env = vec![
        ("PATH".into(), "/usr/bin".into()),
        ("PATH".into(), "/nonexistent".into()),
    ];
    assert_eq!(s.var("PATH"), Some(OsStr::new("/nonexistent")));
    assert_eq!(s.var("HOME"), Some(OsStr::new("/home/h")));
    assert_eq!(s.var("NONE"), None);
    assert_eq!(
        resolve_program("sh", s.var("PATH")),
        PathBuf::from("sh"),
        "searched in the PATH the run gets, not the inherited one"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_started_with_setsid_outlives_its_hook_every_time() {
    // As in the review: another process keeps the second core busy, and the
    // shell exits at once, before its child has reached setsid().
    let mut busy = std::process::Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut survived = 0;
    let mut pids = Vec::new();
    for i in 0..100 {
        let pidfile = dir.path().join(i.to_string());
        let script = format!(
            "setsid sh -c 'echo $$ > {}.tmp && mv {0}.tmp {0}; exec sleep 30' &",
            pidfile.display()
        );
        let outcome = run(
            &spec(&["sh", "-c", &script], None, Output::Null),
            LIMITS,
            std::future::pending(),
        )
        .await
        .unwrap();
        assert!(outcome.success(), "{outcome:?}");
        // The run is over; its background process, in a session of its own,
        // must be alive (it writes its pid once it runs there).
        let deadline = Instant::now() + Duration::from_secs(3);
        let pid = loop {
            if let Ok(text) = std::fs::read_to_string(&pidfile) {
                break text.trim().parse::<i32>().ok();
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        if let Some(pid) = pid {
            // SAFETY: signal 0 only checks that the process exists.
            if unsafe { libc::kill(pid, 0) } == 0 {
                survived += 1;
            }
            pids.push(pid);
        }
    }
    for pid in pids {
        // SAFETY: kill on the test's own leftover sleep processes.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = busy.kill();
    let _ = busy.wait();
    assert_eq!(
        survived, 100,
        "only {survived} of 100 background processes outlived their hook"
    );
}

#[tokio::test]
async fn outcomes_keep_the_escaped_end_of_each_stream() {
    let script = r"printf 'a\033[31mb\000c\r\n'; printf 'bell\007' >&2";
    let outcome = run(
        &spec(&["sh", "-c", script], None, Output::Log),
        LIMITS,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.stdout_tail, "a\\x1b[31mb\\x00c\n");
    assert_eq!(outcome.stderr_tail, "bell\\x07\n");

    // Far past the logging cap: the tail is still the real end, within 8 KiB.
    let script = "i=0; while [ $i -lt 12000 ]; do echo \"out $i\"; i=$((i+1)); done; echo last >&2";
    let outcome = run(
        &spec(&["sh", "-c", script], None, Output::Log),
        LIMITS,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(
        outcome.stdout_tail.len() <= OUTPUT_TAIL,
        "{}",
        outcome.stdout_tail.len()
    );
    assert!(outcome.stdout_tail.len() > OUTPUT_TAIL - 20);
    assert!(outcome.stdout_tail.ends_with("out 11998\nout 11999\n"));
    assert_eq!(outcome.stderr_tail, "last\n");

    let quiet = run(
        &spec(&["sh", "-c", "echo x"], None, Output::Null),
        LIMITS,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(
        (quiet.stdout_tail.as_str(), quiet.stderr_tail.as_str()),
        ("", "")
    );
}
