//! A run's output: logged line by line with its hook and event, long lines
//! cut, the whole capped at 64 KiB, `null` and `inherit`; and the run record.

use crate::common::logs::{Log, capture_logs, logs_of, stream_lines};
use crate::common::{Cli, Place};
use crate::*;
use tracim_hooks::exec::{MAX_LINE, MAX_RUN_OUTPUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_lines_are_logged_and_a_long_line_is_cut() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "",
        &[
            hook(
                "t6-lines",
                &out,
                "",
                r#"
echo "plain line from $TRACIM_EVENT_ID"
echo "to stderr" >&2
head -c 5000 /dev/zero | tr '\0' a
echo
printf 'no newline at the end'
"#,
            ),
            hook(
                "t6-null",
                &out,
                "output = \"null\"",
                "echo secret; echo secret >&2",
            ),
        ],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    supervisor
        .submit(the_hook(&config, "t6-lines"), event(61), "".into())
        .unwrap();
    supervisor
        .submit(the_hook(&config, "t6-null"), event(62), "".into())
        .unwrap();
    let got = reports(&mut rx, 2).await;
    idle(&supervisor).await;
    assert!(got.iter().all(|r| r.result.as_ref().unwrap().success()));

    let stdout = stream_lines("t6-lines", "stdout");
    let texts: Vec<&str> = stdout.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[0], "plain line from 61");
    let cut = format!("{} [line cut at {MAX_LINE} bytes]", "a".repeat(MAX_LINE));
    assert_eq!(texts[1], cut);
    assert_eq!(texts[2], "no newline at the end");
    assert!(stdout.iter().all(|l| l.get("event_id") == Some("61")));
    let stderr = stream_lines("t6-lines", "stderr");
    assert_eq!(stderr.len(), 1);
    assert_eq!(stderr[0].message, "to stderr");
    assert_eq!(stderr[0].get("event_id"), Some("61"));

    // The run record of a success.
    let records: Vec<Log> = logs_of("t6-lines")
        .into_iter()
        .filter(|l| l.get("duration_ms").is_some())
        .collect();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].get("event_id"), Some("61"));
    assert_eq!(records[0].get("exit"), Some("exit code 0"));
    assert_eq!(records[0].get("timed_out"), Some("false"));

    // output = "null": nothing of it logged, but the run is recorded.
    assert!(logs_of("t6-null").iter().all(|l| l.get("stream").is_none()));
    assert!(
        logs_of("t6-null")
            .iter()
            .any(|l| l.get("duration_ms").is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_logged_output_is_capped_at_64_kib_and_says_so() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "",
        &[hook(
            "t6-cap",
            &out,
            "",
            // 100 lines of 999 bytes on stdout, 20 short ones on stderr after
            // them, once the runner has surely read stdout past the cap (the two
            // pipes are read concurrently).
            r#"
line=$(printf '%0999d' 0)
yes "$line" | head -n 100
sleep 0.5
i=0; while [ $i -lt 20 ]; do echo "late $i" >&2; i=$((i+1)); done
"#,
        )],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    supervisor
        .submit(the_hook(&config, "t6-cap"), event(63), "".into())
        .unwrap();
    let report = reports(&mut rx, 1).await.remove(0);
    idle(&supervisor).await;
    assert!(report.result.unwrap().success());

    let logs = logs_of("t6-cap");
    let output: Vec<&Log> = logs.iter().filter(|l| l.get("stream").is_some()).collect();
    // The hook's own lines (the note about the cap is a warning).
    let logged: usize = output
        .iter()
        .filter(|l| l.level == tracing::Level::INFO)
        .map(|l| l.message.len())
        .sum();
    assert!(logged <= MAX_RUN_OUTPUT, "{logged} bytes of output logged");
    assert!(
        logged >= MAX_RUN_OUTPUT - 1000,
        "only {logged} bytes logged"
    );
    assert!(output.len() < 100, "{} lines logged", output.len());
    assert!(output.iter().all(|l| l.get("event_id") == Some("63")));
    let notes: Vec<&Log> = output
        .iter()
        .copied()
        .filter(|l| l.message.contains("64 KiB"))
        .collect();
    // One note per stream that went past the cap: stdout filled it, and stderr
    // wrote after it (issue 15: said for stderr as for stdout).
    let streams: Vec<&str> = notes.iter().filter_map(|l| l.get("stream")).collect();
    assert_eq!(streams.len(), 2, "one note per capped stream: {notes:#?}");
    assert!(
        streams.contains(&"stdout") && streams.contains(&"stderr"),
        "{streams:?}"
    );
    assert!(notes.iter().all(|n| n.level == tracing::Level::WARN));
    // Nothing of the stream after the cap.
    assert!(
        !output.iter().any(|l| l.message.starts_with("late ")),
        "stderr lines after the cap were logged"
    );
}

/// Empty lines count too: once the cap is reached nothing more is logged,
/// not an empty record (and a cap note) per blank line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_cap_holds_for_empty_lines_too() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "",
        &[hook(
            "t6-blank",
            &out,
            "",
            r#"
line=$(printf '%0999d' 0)
yes "$line" | head -n 70
yes '' | head -n 200
"#,
        )],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    supervisor
        .submit(the_hook(&config, "t6-blank"), event(64), "".into())
        .unwrap();
    reports(&mut rx, 1).await;
    idle(&supervisor).await;

    let logs = logs_of("t6-blank");
    let output: Vec<&Log> = logs.iter().filter(|l| l.get("stream").is_some()).collect();
    let notes = output
        .iter()
        .filter(|l| l.message.contains("64 KiB"))
        .count();
    let blank = output.iter().filter(|l| l.message.is_empty()).count();
    assert_eq!(
        (notes, blank),
        (1, 0),
        "after the 64 KiB cap: {notes} cap notes and {blank} empty lines logged"
    );
    assert!(output.len() <= 70, "{} records of output", output.len());
}

/// Through the binary: `test --run` logs a hook's lines to stderr with the hook
/// and the event, and `output = "inherit"` hands the hook our stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_output_and_inherits_when_asked() {
    let place = Place::new();
    let out = place.out();
    let config = place.write_config(
        &[
            hook(
                "t6-logged",
                &out,
                "",
                r#"echo "logged line $TRACIM_EVENT_ID"; exit 4"#,
            ),
            hook(
                "t6-inherit",
                &out,
                "output = \"inherit\"",
                r#"echo "inherited line $TRACIM_EVENT_ID""#,
            ),
        ]
        .concat(),
    );
    let event_file = place.path().join("event.json");
    std::fs::write(&event_file, event(65).raw()).unwrap();
    let output = Cli::with_config(&config, &["test", "--run"])
        .arg(&event_file)
        .run_blocking()
        .await;
    let (stdout, stderr) = (&output.stdout, &output.stderr);
    let both = output.both();
    // The failing hook fails the command.
    assert!(!output.status.success(), "{both}");
    assert!(stdout.contains("inherited line 65"), "{both}");
    assert!(!stderr.contains("inherited line"), "{both}");
    let logged = stderr
        .lines()
        .find(|l| l.contains("logged line 65"))
        .unwrap_or_else(|| panic!("no logged line: {both}"));
    assert!(logged.contains("t6-logged"), "{logged}");
    assert!(logged.contains("65"), "{logged}");
    assert!(logged.contains("stdout"), "{logged}");
    assert!(!stdout.contains("logged line"), "{both}");
    // The run record, on stderr.
    let record = stderr
        .lines()
        .find(|l| l.contains("t6-logged") && l.contains("duration_ms"))
        .unwrap_or_else(|| panic!("no run record: {both}"));
    assert!(record.contains("exit code 4"), "{record}");
    assert!(record.contains("timed_out=false"), "{record}");
}
