//! Failed and timed-out runs retried after doubling delays. (That a `serial`
//! hook's retries keep its lane is tested on paused time in
//! src/supervisor/tests.rs.)

use std::time::Duration;
use tracim_hooks::exec::Exit;
use tracim_hooks::supervisor::RunReport;

use crate::common::logs::{capture_logs, logs_of};
use crate::common::{Place, lines};
use crate::*;

// ---------------------------------------------------------------------------
// 7. retries.

fn nanos(path: &Path) -> Vec<u128> {
    lines(path).iter().map(|l| l.parse().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_timed_out_runs_are_retried_with_doubling_delays() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "retry_delay = \"100ms\"",
        &[
            hook(
                "t7-fail",
                &out,
                "retries = 2",
                r#"date +%s%N >> "$OUT/fail"; exit 3"#,
            ),
            hook(
                "t7-slow",
                &out,
                "retries = 1\nretry_delay = \"50ms\"\ntimeout = \"150ms\"\nkill_after = \"100ms\"",
                r#"date +%s%N >> "$OUT/slow"; sleep 10"#,
            ),
            hook(
                "t7-flaky",
                &out,
                "retries = 3\nretry_delay = \"20ms\"",
                r#"date +%s%N >> "$OUT/flaky"; if [ -e "$OUT/flag" ]; then exit 0; fi; : > "$OUT/flag"; exit 1"#,
            ),
        ],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    for (name, id) in [("t7-fail", 71), ("t7-slow", 72), ("t7-flaky", 73)] {
        supervisor
            .submit(the_hook(&config, name), event(id), "".into())
            .unwrap();
    }
    let got = reports(&mut rx, 3 + 2 + 2).await;
    idle(&supervisor).await;

    // Two retries: 100 ms, then 200 ms after the failure.
    let times = nanos(&out.join("fail"));
    assert_eq!(times.len(), 3, "{times:?}");
    let gap = |i: usize| Duration::from_nanos((times[i + 1] - times[i]) as u64);
    assert!(gap(0) >= Duration::from_millis(100), "{:?}", gap(0));
    assert!(gap(0) < Duration::from_millis(100 + 700), "{:?}", gap(0));
    assert!(gap(1) >= Duration::from_millis(200), "{:?}", gap(1));
    assert!(gap(1) < Duration::from_millis(200 + 700), "{:?}", gap(1));
    let fail: Vec<&RunReport> = got.iter().filter(|r| r.hook == "t7-fail").collect();
    assert_eq!(
        fail.iter()
            .map(|r| (r.attempt, r.will_retry))
            .collect::<Vec<_>>(),
        [(1, true), (2, true), (3, false)]
    );
    assert!(
        fail.iter()
            .all(|r| r.result.as_ref().unwrap().exit == Exit::Code(3) && r.event_id == 71)
    );
    let delays: Vec<String> = logs_of("t7-fail")
        .iter()
        .filter_map(|l| l.get("retry_in_ms").map(str::to_owned))
        .collect();
    assert_eq!(delays, ["100", "200"]);

    // A timed-out run is retried too.
    let slow: Vec<&RunReport> = got.iter().filter(|r| r.hook == "t7-slow").collect();
    assert_eq!(slow.len(), 2);
    assert!(slow.iter().all(|r| r.result.as_ref().unwrap().timed_out));
    let times = nanos(&out.join("slow"));
    assert_eq!(times.len(), 2);
    // 150 ms of run, then 50 ms of delay.
    assert!(times[1] - times[0] >= 200_000_000, "{times:?}");

    // A run that succeeds on its second attempt stops there.
    let flaky: Vec<&RunReport> = got.iter().filter(|r| r.hook == "t7-flaky").collect();
    assert_eq!(flaky.len(), 2);
    assert!(flaky[1].result.as_ref().unwrap().success());
    assert!(!flaky[1].will_retry);
    assert_eq!(nanos(&out.join("flaky")).len(), 2);

    let stats = supervisor.stats();
    assert_eq!(stats.started, 7);
    assert_eq!(stats.retried, 2 + 1 + 1);
    assert_eq!(stats.failed, 2);
    assert_eq!(stats.succeeded, 1);
    assert_eq!(stats.timed_out, 2);
}
