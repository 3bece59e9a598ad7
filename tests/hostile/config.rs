//! What the config lets run: invalid environment names and NUL bytes refused
//! at load, config files others could write refused (at start and on reload),
//! and `skip_own`.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;
use serde_json::{Value, json};

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
    let (code, stdout, stderr) = Cli::check(&path).run().parts();
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
    place.write_config_with(
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
    let (code, stdout, stderr) = Cli::check(&path).run().parts();
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
    let (code, stdout, stderr) = Cli::check(&path).run().parts();
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
    place.write_config_with("", &recording_hook("all", "\"*\"", &out));
    let path = place.config_path();
    let set_mode =
        |mode| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();

    set_mode(0o644);
    let (code, _, stderr) = Cli::check(&path).run().parts();
    assert_eq!(code, Some(0), "{stderr}");

    for (mode, who) in [
        (0o664, "group"),
        (0o646, "others"),
        (0o666, "others"),
        (0o620, "group"),
    ] {
        set_mode(mode);
        let (code, stdout, stderr) = Cli::check(&path).run().parts();
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
    let (code, _, stderr) = Cli::check(&path).run().parts();
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
    let (code, _, stderr) = Cli::check(&link).run().parts();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("chmod go-w"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_a_config_others_can_write_is_refused_and_the_old_hooks_stay() {
    let place = Place::new();
    let out = place.out();
    place.write_config_with("", &recording_hook("old", "\"*\"", &out));
    let runner = place.started_runner().await;
    send_raw(&place.socket(), &valid_event(&place, 1))
        .await
        .unwrap();
    expect_run(&out, "old 1", &runner).await;

    // Someone else's hook lands in a file now writable by all.
    place.write_config_with("", &recording_hook("planted", "\"*\"", &out));
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
    let sim = place.sim(NO_PINGS).await;
    place.write_config_with(
        "",
        &[
            recording_hook("own", "\"*\"", &out),
            "skip_own = true\n".to_owned(),
            recording_hook("all", "\"*\"", &out),
        ]
        .concat(),
    );
    let runner = place.started_runner().await;
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
