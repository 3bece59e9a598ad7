//! What fits the binary into a desktop: shell completions, the man page, and the
//! refusals of `service install`/`uninstall` (the install itself runs under a
//! real systemd in `tests/real_systemd.rs`).

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn completions_cover_every_command_and_bash_parses_its_script() {
    for shell in ["bash", "zsh", "fish"] {
        let ran = Cli::new(&["completions", shell]).run();
        assert!(ran.success(), "{shell}: {}", ran.both());
        for command in [
            "check",
            "history",
            "replay",
            "service",
            "completions",
            "man",
        ] {
            assert!(ran.stdout.contains(command), "{shell} lacks {command}");
        }
        if shell == "bash" {
            let mut bash = Command::new("bash")
                .arg("-n")
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            bash.stdin
                .take()
                .unwrap()
                .write_all(ran.stdout.as_bytes())
                .unwrap();
            assert!(bash.wait().unwrap().success(), "bash -n refused the script");
        }
    }
    let ran = Cli::new(&["completions", "tcsh"]).run();
    assert_eq!(ran.code(), Some(2), "{}", ran.both());
}

#[test]
fn man_prints_a_page_with_the_hooks_toml_reference() {
    let ran = Cli::new(&["man"]).run();
    assert!(ran.success(), "{}", ran.both());
    assert!(ran.stdout.contains(".TH tracim-hooks 1"), "{}", ran.stdout);
    assert!(ran.stdout.contains(".SH HOOKS.TOML"));
    assert!(ran.stdout.contains("\\fBrerun_interrupted\\fR"));
}

#[test]
fn service_install_and_uninstall_leave_a_unit_they_did_not_write_alone() {
    let home = tempfile::tempdir().unwrap();
    let units = home.path().join("config/systemd/user");
    std::fs::create_dir_all(&units).unwrap();
    let unit = units.join("tracim-hooks.service");
    let mine = "[Service]\nExecStart=/usr/local/bin/tracim-hooks run\n";
    std::fs::write(&unit, mine).unwrap();
    let config = home.path().join("config");
    let env = [
        ("HOME", home.path().to_str().unwrap()),
        ("XDG_CONFIG_HOME", config.to_str().unwrap()),
    ];
    // A config that loads: without one, install refuses before anything else.
    let ran = Cli::new(&["service", "install"]).envs(&env).run();
    assert_eq!(ran.code(), Some(1), "{}", ran.both());
    assert!(ran.stderr.contains("would not start"), "{}", ran.both());
    assert!(Cli::new(&["init"]).envs(&env).run().success());
    for (args, verb) in [
        (&["service", "install", "--now"][..], "overwrite"),
        (&["service", "uninstall"][..], "remove"),
    ] {
        let ran = Cli::new(args).envs(&env).run();
        assert_eq!(ran.code(), Some(1), "{}", ran.both());
        assert!(
            ran.stderr.contains(&format!("not going to {verb} it"))
                && ran.stderr.contains("--force"),
            "{}",
            ran.both()
        );
        assert_eq!(std::fs::read_to_string(&unit).unwrap(), mine);
    }
    std::fs::remove_file(&unit).unwrap();
    let ran = Cli::new(&["service", "uninstall"]).envs(&env).run();
    assert!(ran.success(), "{}", ran.both());
    assert!(ran.stdout.contains("Nothing to remove"), "{}", ran.both());
}

#[test]
fn outside_systemd_the_log_lines_stay_plain() {
    // Stderr is a pipe here, and JOURNAL_STREAM names something else: plain lines,
    // with the records' own fields and none of the journal's run fields.
    let place = Place::new();
    let config = place.write_config(
        "[[hook]]\nname = \"says\"\non = \"mention.created\"\nrun = 'echo said; exit 3'\n",
    );
    let ran = Cli::with_config(&config, &["test", "--run", "--sample", "mention.created"])
        .envs(&[("JOURNAL_STREAM", "1:1")])
        .run();
    assert_eq!(ran.code(), Some(1), "{}", ran.both());
    let failed = ran
        .stderr
        .lines()
        .find(|l| l.contains("run failed"))
        .unwrap_or_else(|| panic!("{}", ran.both()));
    assert!(
        failed.starts_with(" WARN run failed hook=says event_id="),
        "{failed}"
    );
    assert!(failed.contains("exit=exit code 3"), "{failed}");
    let said = ran.stderr.lines().find(|l| l.contains("said")).unwrap();
    assert!(said.starts_with(" INFO said hook=says"), "{said}");
    for line in ran.stderr.lines() {
        assert!(
            !line.contains("run{") && !line.contains("hook_name"),
            "{line}"
        );
    }
}
