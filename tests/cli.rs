//! The command line as a user runs it: `check`, `test`, `test --run`, `init`.

mod common;

use std::path::Path;

use common::*;

/// The binary once, logging warnings only.
fn run(args: &[&str], env: &[(&str, &str)]) -> Ran {
    Cli::new(args).envs(env).log("warn").run()
}

/// The hooks of this config, their patterns, and the sample types they take.
const HOOKS: [(&str, &str); 5] = [
    ("everything", "\"*\""),
    ("content", "\"content.*\""),
    (
        "notes",
        "[\"content.created.html-document\", \"content.modified.*\"]",
    ),
    ("people", "\"{user,workspace_member}.*\""),
    ("not-comments", "[\"content.*\", \"!content.*.comment\"]"),
];

fn expected_hooks(event_type: &str) -> Vec<&'static str> {
    let mut hooks = vec!["everything"];
    if event_type.starts_with("content.") {
        hooks.push("content");
    }
    if event_type == "content.created.html-document" || event_type.starts_with("content.modified.")
    {
        hooks.push("notes");
    }
    if event_type.starts_with("user.") || event_type.starts_with("workspace_member.") {
        hooks.push("people");
    }
    if event_type.starts_with("content.") && !event_type.ends_with(".comment") {
        hooks.push("not-comments");
    }
    hooks
}

#[test]
fn test_run_on_every_sample_runs_exactly_the_matching_hooks() {
    let place = Place::new();
    let out = place.out();
    let hooks: String = HOOKS
        .iter()
        .map(|(name, on)| recording_hook(name, on, &out))
        .collect();
    let config = place.write_config(&hooks);
    let samples = all_fixtures();
    let files: Vec<String> = samples.iter().map(|(name, _)| fixture_path(name)).collect();
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "test",
        "--run",
        "--user-id",
        "1",
    ];
    args.extend(files.iter().map(String::as_str));
    let output = run(&args, &[]);
    assert!(
        output.status.success(),
        "{}\n{}",
        output.stdout,
        output.stderr
    );

    let mut expected_runs = Vec::new();
    for (name, tlm) in &samples {
        let event: serde_json::Value = serde_json::from_str(tlm).unwrap();
        let id = event["event_id"].as_u64().unwrap();
        let event_type = event["event_type"].as_str().unwrap();
        for hook in expected_hooks(event_type) {
            expected_runs.push(format!("{hook} {id}"));
            let stdin = std::fs::read(out.join(format!("{hook}.{id}.stdin"))).unwrap();
            assert_eq!(stdin, format!("{tlm}\n").as_bytes(), "{hook} {name}: stdin");
            let env = std::fs::read_to_string(out.join(format!("{hook}.{id}.env"))).unwrap();
            let (entity, rest) = event_type.split_once('.').unwrap();
            let (operation, sub) = rest.split_once('.').unwrap_or((rest, ""));
            for line in [
                format!("TRACIM_EVENT_ID={id}"),
                format!("TRACIM_EVENT_TYPE={event_type}"),
                "TRACIM_CREATED=2026-11-26T10:00:00.511Z".to_owned(),
                "TRACIM_READ=".to_owned(),
                format!("TRACIM_ENTITY_TYPE={entity}"),
                format!("TRACIM_CORE_EVENT_TYPE={operation}"),
                format!("TRACIM_SUB_TYPE={sub}"),
                format!("TRACIM_HOOK_NAME={hook}"),
                "TRACIM_DAEMON_USER_ID=1".to_owned(),
            ] {
                assert!(
                    env.lines().any(|l| l == line),
                    "{hook} {name}: no {line} in\n{env}"
                );
            }
            if let Some(author) = event["fields"]["author"]["username"].as_str() {
                let line = format!("TRACIM_FIELDS_AUTHOR_USERNAME={author}");
                assert!(env.lines().any(|l| l == line), "{hook} {name}: no {line}");
            }
        }
    }
    let mut ran = lines(&out.join("runs"));
    ran.sort();
    expected_runs.sort();
    assert_eq!(ran, expected_runs);
    let stdout = output.stdout;
    assert_eq!(
        stdout.matches("ran ").count(),
        expected_runs.len(),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "skip  people: event type matches none of on = [\"{user,workspace_member}.*\"]"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("skip  not-comments: event type excluded by \"!content.*.comment\""),
        "{stdout}"
    );
}

#[test]
fn test_without_run_shows_command_variables_and_stdin() {
    let place = Place::new();
    let config = place.write_config(
        "[[hook]]\nname = \"show\"\non = \"mention.*\"\nrun = 'notify-send \"$TRACIM_FIELDS_AUTHOR_PUBLIC_NAME\"'\n",
    );
    let wire = format!(
        "{}/crates/tracim-daemon-sdk/tests/fixtures/wire/tracim_event.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = run(&["--config", config.to_str().unwrap(), "test", &wire], &[]);
    assert!(output.status.success(), "{}", output.stderr);
    let stdout = output.stdout;
    assert!(stdout.contains("event 2 mention.created"), "{stdout}");
    assert!(stdout.contains("RUN   show"), "{stdout}");
    assert!(
        stdout.contains(r#"run: notify-send "$TRACIM_FIELDS_AUTHOR_PUBLIC_NAME""#),
        "{stdout}"
    );
    assert!(
        stdout.contains("TRACIM_FIELDS_AUTHOR_PUBLIC_NAME=John \"Q\" Doe é"),
        "{stdout}"
    );
    assert!(stdout.contains("stdin: {\"event_id\":2"), "{stdout}");
    // Nothing ran: no process was started without --run.
    assert!(!stdout.contains("ran show"), "{stdout}");
}

#[test]
fn test_reads_stdin_and_fails_on_bad_input_or_failed_hooks() {
    let place = Place::new();
    let config = place.write_config("[[hook]]\nname = \"fails\"\non = \"*\"\nrun = \"exit 3\"\n");
    let config = config.to_str().unwrap();
    let output = Cli::new(&["--config", config, "test", "--run", "-"])
        .log("error")
        .stdin(fixture("tag.created.json"))
        .run();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output
            .stdout
            .contains("ran fails for event 115: exit code 3"),
        "{}",
        output.stdout
    );
    assert!(
        output
            .stderr
            .contains("hook `fails` failed for event 115: exit code 3"),
        "{}",
        output.stderr
    );

    let bad = place.path().join("bad.json");
    std::fs::write(&bad, "{\"event_id\": 1}\n").unwrap();
    let output = run(&["--config", config, "test", bad.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output
            .stderr
            .contains("bad.json: not a Tracim event: missing field `event_type`"),
        "{}",
        output.stderr
    );
    let output = run(&["--config", config, "test", "/nonexistent.json"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output.stderr.contains("/nonexistent.json: No such file"),
        "{}",
        output.stderr
    );
}

/// Typos in globs too, each under its own hook with the hook's line; a glob
/// that matches a type (or whose `!` excludes one) is not pointed out.
#[test]
fn check_points_at_globs_that_match_no_type_under_their_hook() {
    let place = Place::new();
    let hooks = "[[hook]]\nname = \"fine\"\non = [\"content.*\", \"!content.*.comment\"]\nrun = \"true\"\n\n\
                 [[hook]]\nname = \"typos\"\non = [\"{mention,reactions}.created\", \"content.*.html-documents\", \"*.deleted\"]\nrun = \"true\"\n\n\
                 [[hook]]\nname = \"excluded\"\non = [\"!user.*\", \"!usr.*\"]\nrun = \"true\"\n";
    let config = place.write_raw_config(hooks);
    let output = run(&["--config", config.to_str().unwrap(), "check"], &[]);
    assert!(output.status.success(), "{}", output.stderr);
    let stdout = output.stdout;
    let block = |name: &str| {
        let start = stdout
            .find(&format!("hook `{name}`"))
            .unwrap_or_else(|| panic!("no hook {name}: {stdout}"));
        let end = stdout[start + 1..]
            .find("\nhook `")
            .map_or(stdout.len(), |e| start + 1 + e);
        stdout[start..end].to_owned()
    };
    let warnings = |name: &str| -> Vec<String> {
        block(name)
            .lines()
            .filter(|l| l.contains("warning"))
            .map(|l| l.trim().to_owned())
            .collect()
    };
    assert!(
        block("typos").starts_with("hook `typos` (line 6)"),
        "{stdout}"
    );
    assert_eq!(warnings("fine"), Vec::<String>::new());
    assert_eq!(
        warnings("typos"),
        ["warning: `content.*.html-documents` matches no event type Tracim sends today"]
    );
    assert_eq!(
        warnings("excluded"),
        ["warning: `!usr.*` matches no event type Tracim sends today"]
    );
}

#[test]
fn check_lists_hooks_and_points_at_mistakes() {
    let place = Place::new();
    let config = place.write_config(&recording_hook("rec", "\"content.*\"", Path::new("/tmp")));
    let output = run(&["--config", config.to_str().unwrap(), "check"], &[]);
    assert!(output.status.success(), "{}", output.stderr);
    let stdout = output.stdout;
    assert!(stdout.contains("ok, 1 hook\n"), "{stdout}");
    assert!(stdout.contains("hook `rec`"), "{stdout}");
    assert!(stdout.contains("on:      content.*"), "{stdout}");
    assert!(stdout.contains("limits:  timeout 1m, SIGKILL 5s later; mode parallel; output log; retries 0 (first after 1s)"), "{stdout}");
    assert!(stdout.contains("env:     OUT"), "{stdout}");
    assert!(!stdout.contains("warning"), "{stdout}");

    // A typo in an event type passes (Tracim adds types) but is pointed out.
    let typo = place.write_config(
        "[[hook]]\nname = \"t\"\non = [\"mentions.created\", \"tag.*\"]\nrun = \"true\"\n",
    );
    let output = run(&["--config", typo.to_str().unwrap(), "check"], &[]);
    assert!(output.status.success());
    assert!(
        output
            .stdout
            .contains("warning: `mentions.created` matches no event type Tracim sends today"),
        "{}",
        output.stdout
    );
    assert!(!output.stdout.contains("`tag.*` matches no"));

    let broken = "[defaults]\ntimeout = \"soon\"\n\n[[hook]]\nname = \"x\"\non = \"a[\"\nrun = \"true\"\nexec = [\"true\"]\n";
    let path = place.write_raw_config(broken);
    let output = run(&["--config", path.to_str().unwrap(), "check"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = output.stderr;
    let p = path.display();
    assert!(
        stderr.contains(&format!("{p}:2:11: invalid duration `soon`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{p}:6:6: hook `x`: bad glob `a[`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{p}:7:7: hook `x`: give either `run`")),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn the_config_location_follows_flag_then_variable_then_config_dir() {
    let place = Place::new();
    let home = place.path().join("home");
    let xdg = home.join(".config");
    let env = [
        ("HOME", home.to_str().unwrap()),
        ("XDG_CONFIG_HOME", xdg.to_str().unwrap()),
    ];
    // init writes to the config dir, refuses to overwrite, and check then passes.
    let output = run(&["init"], &env);
    assert!(output.status.success(), "{}", output.stderr);
    let written = xdg.join("tracim-hooks/hooks.toml");
    assert!(output.stdout.contains(&written.display().to_string()));
    assert!(output.stdout.contains("tracim-hooks check"));
    let output = run(&["init"], &env);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output.stderr.contains("already exists"),
        "{}",
        output.stderr
    );
    assert!(run(&["init", "--force"], &env).status.success());
    let output = run(&["check"], &env);
    assert!(output.status.success(), "{}", output.stderr);
    assert!(
        output
            .stdout
            .starts_with(&format!("{}: ok", written.display()))
    );

    // $TRACIM_HOOKS_CONFIG wins over the config dir, --config over both.
    let other =
        place.write_raw_config("[[hook]]\nname = \"via-var\"\non = \"*\"\nrun = \"true\"\n");
    let mut env_var = env.to_vec();
    env_var.push(("TRACIM_HOOKS_CONFIG", other.to_str().unwrap()));
    let output = run(&["check"], &env_var);
    assert!(output.stdout.contains("via-var"), "{}", output.stdout);
    let output = run(&["--config", written.to_str().unwrap(), "check"], &env_var);
    assert!(!output.stdout.contains("via-var"));
    assert!(output.status.success());
}

#[test]
fn demo_runs_every_sample_and_exits_zero() {
    let output = run(&["demo"], &[]);
    assert!(
        output.status.success(),
        "{}\n{}",
        output.stdout,
        output.stderr
    );
    let stdout = output.stdout;
    assert!(
        stdout.contains("18 events delivered, 18 hook runs, 0 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("event 106 content.modified.html-document   notes ok"),
        "{stdout}"
    );
    assert!(!stdout.contains("no hook"), "{stdout}");
}

#[test]
fn no_command_means_run() {
    let place = Place::new();
    let config = place.write_raw_config("[daemon]\nsocket = \"relative.sock\"\n");
    let output = run(&["--config", config.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output.stderr.contains("socket must be an absolute path"),
        "{}",
        output.stderr
    );
    let help = run(&["--help"], &[]);
    assert!(
        help.stdout
            .contains("Register with the TracimDaemon and run hooks")
    );
}

#[test]
fn test_explains_every_decision_over_the_samples() {
    let place = Place::new();
    let config = place.write_config(
        r#"
[[hook]]
name = "engineering-notes"
on = "content.*.html-document"
where = { fields.workspace.label = "Engineering" }
run = "true"

[[hook]]
name = "sales-only"
on = "content.*"
where = { "fields.workspace.label" = ["Sales", "Marketing"] }
run = "true"

[[hook]]
name = "pdf"
on = "content.created.file"
where = { fields.content.file_extension = ".PDF" }
where_case = "insensitive"
run = "true"

[[hook]]
name = "not-jdoe"
on = ["*", "!user.*"]
where = { fields.author.username = "!jdoe" }
run = "true"

[[hook]]
name = "mine"
on = "mention.created"
skip_own = true
run = "true"
"#,
    );
    let file = fixture_path;
    let output = run(
        &[
            "--config",
            config.to_str().unwrap(),
            "test",
            "--user-id",
            "2",
            &file("content.created.file.json"),
            &file("content.modified.html-document.json"),
            &file("mention.created.json"),
            &file("user.modified.json"),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", output.stderr);
    let stdout = output.stdout;
    let expected = [
        "event 107 content.created.file",
        "  skip  engineering-notes: event type matches none of on = [\"content.*.html-document\"]",
        "  skip  sales-only: where fields.workspace.label = [\"Sales\", \"Marketing\"] saw \"Engineering\"",
        "  RUN   pdf",
        "  skip  not-jdoe: where fields.author.username = [\"!jdoe\"] saw \"jdoe\"",
        "event 106 content.modified.html-document",
        "  RUN   engineering-notes",
        "  skip  pdf: event type matches none of on = [\"content.created.file\"]",
        "event 112 mention.created",
        "  skip  mine: skip_own: the author is the daemon's own account (user 2)",
        "event 101 user.modified",
        "  skip  not-jdoe: event type excluded by \"!user.*\"",
    ];
    let mut rest = stdout.as_str();
    for line in expected {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("missing or out of order: {line}\n{stdout}"));
        rest = &rest[at + line.len()..];
    }
}

#[test]
fn exec_passes_its_argv_untouched_and_run_goes_through_the_shell() {
    let place = Place::new();
    let out = place.out();
    let config = place.write_config(&format!(
        r#"
[[hook]]
name = "argv"
on = "*"
exec = ["/bin/sh", "-c", 'printf "%s|" "$0" "$@" > "{out}/argv"', "$HOME", "a b", "*"]

[[hook]]
name = "script"
on = "*"
run = 'printf "%s|" $TRACIM_ENTITY_TYPE "$TRACIM_FIELDS_TAG_TAG_NAME" > "{out}/script"'
cwd = "{out}"
"#,
        out = out.display()
    ));
    let output = run(
        &[
            "--config",
            config.to_str().unwrap(),
            "test",
            "--run",
            &fixture_path("tag.created.json"),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", output.stderr);
    // No shell between the runner and an exec hook: `$HOME`, the space and the
    // `*` arrive as written.
    assert_eq!(
        std::fs::read_to_string(out.join("argv")).unwrap(),
        "$HOME|a b|*|"
    );
    // A run script is the shell's to expand.
    assert_eq!(
        std::fs::read_to_string(out.join("script")).unwrap(),
        "tag|urgent|"
    );
}
