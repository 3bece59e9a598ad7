//! `exec` placeholders and failure hooks with the real runner, real processes
//! and the simulated daemon: a hostile label arrives as one argument, untouched;
//! a run that fails for good (after its retries, or timed out) runs its failure
//! hooks with what failed, and a run that succeeds runs none.

mod common;

use std::path::Path;

use common::*;

/// The arguments a hook's process got, as it wrote them (NUL-terminated).
fn args(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// A TLM written by hand, so that its numbers stay as written.
fn edit(id: u64, label_json: &str) -> String {
    format!(
        r#"{{"event_id": {id}, "event_type": "content.modified.html-document", "created": "2024-01-01T00:00:00Z", "read": null, "fields": {{"author": {{"user_id": 1}}, "content": {{"content_id": 42, "revision": 10.50, "label": {label_json}}}}}}}"#
    )
}

async fn runner_with(place: &Place, hooks: &str) -> (Runner, tracim_daemon_sdk::sim::SimDaemon) {
    place.write_config(&format!(
        "[journal]\npath = \"{}\"\n{hooks}",
        place.path().join("journal.db").display()
    ));
    let sim = place.sim(NO_PINGS).await;
    let runner = place.runner();
    assert!(
        sim.wait_for_client(&place.socket(), SHORT).await,
        "not registered:\n{}",
        runner.log()
    );
    (runner, sim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placeholder_is_one_argument_whatever_the_label_holds() {
    let place = Place::new();
    let out = place.out();
    // The script is fixed; the fields reach it only as positional arguments.
    let hooks = format!(
        r#"
[[hook]]
name = "args"
on = "content.modified.*"
cwd = "{dir}"
env = {{ OUT = "{out}" }}
exec = ["/bin/sh", "-c", 'for a; do printf "%s\0" "$a"; done > "$OUT/args.tmp" && mv "$OUT/args.tmp" "$OUT/args"', "sh",
        "{{fields.content.label}}", "--id={{fields.content.content_id}}/{{fields.content.revision}}", "{{{{literal}}}}", "[{{fields.content.missing}}]", "{{fields.content}}"]
"#,
        dir = place.path().display(),
        out = out.display()
    );
    let (runner, sim) = runner_with(&place, &hooks).await;
    let label = "it's \"quoted\" $(touch PWNED) `touch PWNED2`; rm -rf x\n  two  spaces\tand * ? {braces} ~";
    let label_json = serde_json::to_string(label).unwrap();
    assert_eq!(sim.send_event(&edit(1, &label_json)).await.ok, 1);
    let file = out.join("args");
    assert!(
        wait_for(HANG, || file.exists()).await,
        "the hook never wrote its arguments:\n{}",
        runner.log()
    );
    assert_eq!(
        args(&file),
        [label, "--id=42/10.50", "{literal}", "[]", ""]
            .iter()
            .filter(|a| !a.is_empty())
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    );
    // Nothing was run by a shell from the label.
    for name in ["PWNED", "PWNED2"] {
        assert!(!place.path().join(name).exists(), "{name} exists");
    }
    let raw = std::fs::read(&file).unwrap();
    assert_eq!(
        raw.iter().filter(|&&b| b == 0).count(),
        5,
        "five arguments, the empty one (an object's) included"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_hooks_run_when_a_run_fails_for_good() {
    let place = Place::new();
    let out = place.out();
    let hooks = format!(
        r#"
[[hook]]
name = "flaky"
on = "content.modified.*"
where = {{ "fields.content.label" = "fails" }}
exec = ["/bin/sh", "-c", "echo try >> \"$OUT/flaky.tries\"; exit 3"]
env = {{ OUT = "{out}" }}
retries = 1
retry_delay = "100ms"
on_failure = ["notify-failure"]

[[hook]]
name = "slow"
on = "content.modified.*"
where = {{ "fields.content.label" = "hangs" }}
exec = ["sleep", "30"]
timeout = "300ms"
kill_after = "2s"
on_failure = ["notify-failure"]

[[hook]]
name = "fine"
on = "content.modified.*"
where = {{ "fields.content.label" = "works" }}
exec = ["/bin/sh", "-c", "echo ok >> \"$OUT/fine\""]
env = {{ OUT = "{out}" }}
on_failure = ["notify-failure"]

[[hook]]
name = "notify-failure"
on = []
env = {{ OUT = "{out}" }}
exec = ["/bin/sh", "-c", 'echo "$1 $TRACIM_EVENT_ID $TRACIM_FAILED_HOOK $TRACIM_FAILED_EXIT $TRACIM_FAILED_ATTEMPTS ${{{{TRACIM_FAILED_TIMED_OUT:-0}}}}" >> "$OUT/failures"', "sh", "{{fields.content.label}}"]
"#,
        out = out.display()
    );
    let (mut runner, sim) = runner_with(&place, &hooks).await;
    for (id, label) in [(1, "works"), (2, "fails"), (3, "hangs")] {
        assert_eq!(
            sim.send_event(&edit(id, &format!("\"{label}\""))).await.ok,
            1
        );
    }
    let failures = out.join("failures");
    assert!(
        wait_for(HANG, || lines(&failures).len() >= 2).await,
        "the failure hooks did not both run: {:?}\n{}",
        lines(&failures),
        runner.log()
    );
    assert!(
        wait_for(HANG, || lines(&out.join("fine")).len() == 1).await,
        "{}",
        runner.log()
    );
    // A graceful stop lets whatever still runs finish: nothing more may come.
    runner.signal(libc::SIGTERM);
    assert!(runner.wait_exit(HANG).await.success(), "{}", runner.log());
    let mut seen = lines(&failures);
    seen.sort();
    assert_eq!(
        seen,
        ["fails 2 flaky 3 2 0", "hangs 3 slow SIGTERM 1 1"],
        "{}",
        runner.log()
    );
    assert_eq!(lines(&out.join("flaky.tries")).len(), 2, "one retry");
    assert!(!runner.log().contains("never started"), "{}", runner.log());
}

/// `test` tells the lane, the debounce, the argv after substitution and the
/// failure hooks; `check` refuses a stray brace at its line and column.
#[test]
fn test_explains_and_check_refuses() {
    let place = Place::new();
    let config = place.write_config(
        r#"
[[hook]]
name = "backup-note"
on = "content.modified.html-document"
key = "fields.content.content_id"
mode = "latest"
debounce = "10s"
exec = ["backup-note", "--label={fields.content.label}", "{fields.content.revision}"]
on_failure = ["notify-failure"]

[[hook]]
name = "notify-failure"
on = []
exec = ["notify-send", "failed"]
"#,
    );
    let event = edit(5, r#""Meeting \"notes\" $(x)""#);
    let ran = Cli::with_config(&config, &["test", "-"]).stdin(event).run();
    assert!(ran.success(), "{}", ran.both());
    for line in [
        r#"argv:  ["backup-note", "--label=Meeting \"notes\" $(x)", "10.50"]"#,
        r#"lane:  fields.content.content_id = "42" (latest"#,
        "debounce: runs 10s after the last event of fields.content.content_id = \"42\" (at most 100s after the first)",
        "on failure (after 0 retries): notify-failure, with TRACIM_FAILED_HOOK=backup-note",
        "skip  notify-failure: on = []",
    ] {
        assert!(ran.stdout.contains(line), "no {line:?} in\n{}", ran.both());
    }

    let text = std::fs::read_to_string(&config).unwrap();
    place.write_raw_config(&text.replace("{fields.content.revision}", "{fields.content.revision"));
    let line = text
        .lines()
        .position(|l| l.contains("{fields.content.revision}"))
        .unwrap()
        + 1;
    let column = text
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("{fields.content.revision")
        .unwrap()
        + 1;
    let ran = Cli::check(&config).run();
    assert!(!ran.success());
    assert!(
        ran.stderr.contains(&format!(
            "hooks.toml:{line}:{column}: hook `backup-note`: a `{{` opens a placeholder that is never closed"
        )),
        "{}",
        ran.both()
    );
}
