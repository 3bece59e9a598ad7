//! Huge events against the kernel's exec limits: big variables are omitted
//! (and named in `TRACIM_OMITTED`) so that exec never fails, within a budget
//! the kernel can take.

use crate::common::*;
use serde_json::{Value, json};
use tracim_daemon_sdk::sim::event_message;

/// The largest `NAME=value` string (its NUL counted) the kernel passes to exec.
const KERNEL_MAX_ARG_STRLEN: usize = 128 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_events_still_run_their_hooks_with_big_variables_omitted() {
    let place = Place::new();
    let out = place.out();
    place.write_config_with("", &recording_hook("all", "\"*\"", &out));
    let runner = place.started_runner().await;
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
        place.write_config_with(
            "",
            &format!(
                "[defaults]\nenv_budget = {budget}\n{}",
                recording_hook("all", "\"*\"", &out)
            ),
        )
    };
    with_budget(64 * 1024 * 1024);
    let (code, _, stderr) = Cli::check(&place.config_path()).run().parts();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("env_budget"), "{stderr}");

    with_budget(1024 * 1024);
    let (code, _, stderr) = Cli::check(&place.config_path()).run().parts();
    assert_eq!(code, Some(0), "{stderr}");
    let runner = place.started_runner().await;
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
