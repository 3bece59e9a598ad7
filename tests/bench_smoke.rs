//! The benchmark (examples/bench.rs) with tiny counts: it runs and prints all six
//! figures. The figures themselves are for release builds run by hand (README,
//! "Performance"); nothing here is timed.

use std::process::Command;

#[test]
fn the_benchmark_runs_and_reports_every_figure() {
    let exe = std::env::current_exe().unwrap();
    let examples = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples");
    let output = Command::new(examples.join("bench"))
        .args(["--quick", "--bin", env!("CARGO_BIN_EXE_tracim-hooks")])
        .args([
            "--events",
            "300",
            "--dispatch",
            "40",
            "--latency",
            "5",
            "--hooks",
            "1,100",
            "--reps",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for figure in [
        "1 receive, no hook matches",
        "2 dispatch, exec = [\"true\"]",
        "dispatch / ceiling",
        "3 arrival -> hook started",
        "4 RSS idle after start",
        "5 match, 1 hooks",
        "match, 100 hooks",
        "6 tracim stream: ",
        "`tracim-hooks check`, 10,000 hooks, distinct globs",
        "`tracim-hooks check`, 10,000 hooks, plain event types",
        "`tracim-hooks check`, 10,000 hooks, globs that each need their regex",
    ] {
        assert!(stdout.contains(figure), "no {figure:?} in:\n{stdout}");
    }
}
