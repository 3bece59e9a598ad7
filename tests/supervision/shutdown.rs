//! Shutdown: runs finish within the grace or are killed with their group,
//! waiting runs and retries are dropped and reported, no more runs are taken.

use std::time::{Duration, Instant};
use tracim_hooks::supervisor::Refused;

use crate::common::logs::{capture_logs, logs_of};
use crate::common::{HANG, Place, wait_for};
use crate::*;

// ---------------------------------------------------------------------------
// 8. shutdown.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_runs_finish_within_grace_then_kills_and_reports_the_queue() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "max_parallel = 2",
        &[
            hook(
                "t8-stubborn",
                &out,
                "",
                r#"
trap '' TERM
echo $$ > "$OUT/pgid"
sleep 1000 &
( sleep 1000 & echo $! > "$OUT/orphan" )
wait
"#,
            ),
            hook(
                "t8-quick",
                &out,
                "mode = \"serial\"",
                r#"sleep 0.2; echo "$TRACIM_EVENT_ID" >> "$OUT/done""#,
            ),
        ],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    let (stubborn, quick) = (
        the_hook(&config, "t8-stubborn"),
        the_hook(&config, "t8-quick"),
    );
    supervisor
        .submit(stubborn.clone(), event(81), "".into())
        .unwrap();
    supervisor
        .submit(quick.clone(), event(82), "".into())
        .unwrap();
    supervisor
        .submit(quick.clone(), event(83), "".into())
        .unwrap();
    supervisor
        .submit(stubborn.clone(), event(84), "".into())
        .unwrap();
    supervisor
        .submit(quick.clone(), event(85), "".into())
        .unwrap();
    // Running: 81 and 82. Waiting: 84 in the shared queue, 83 and 85 in the
    // serial hook's lane.
    assert_eq!(supervisor.load(), (2, 3));
    let pgid = wait_numbers(&out.join("pgid"), 1).await[0] as i32;
    let orphan = wait_numbers(&out.join("orphan"), 1).await[0] as i32;
    let _cleanup = Cleanup(vec![pgid, orphan]);

    let start = Instant::now();
    let grace = Duration::from_millis(400);
    tokio::time::timeout(HANG, supervisor.shutdown(grace))
        .await
        .expect("shutdown hangs");
    let elapsed = start.elapsed();
    assert!(elapsed >= grace, "{} ms", millis(elapsed));
    assert!(
        elapsed < grace + Duration::from_millis(1500),
        "{} ms",
        millis(elapsed)
    );
    // The running group is gone, its double-forked sleeper included.
    assert_all_gone(pgid, &[orphan]);

    // The quick run finished within the grace; the queued runs never started.
    assert_eq!(numbers(&out.join("done")), [82]);
    let got = reports(&mut rx, 2).await;
    let quick_report = got.iter().find(|r| r.event_id == 82).unwrap();
    let outcome = quick_report.result.as_ref().unwrap();
    assert!(outcome.success() && !outcome.cancelled, "{quick_report:?}");
    let stubborn_report = got.iter().find(|r| r.event_id == 81).unwrap();
    let outcome = stubborn_report.result.as_ref().unwrap();
    assert!(outcome.cancelled, "{stubborn_report:?}");
    assert!(!outcome.success());
    assert!(outcome.duration >= grace);

    let stats = supervisor.stats();
    assert_eq!(stats.never_started, 3);
    assert_eq!(stats.started, 2);
    let mut never: Vec<(String, String)> = ["t8-stubborn", "t8-quick"]
        .iter()
        .flat_map(|hook| logs_of(hook))
        .filter(|l| l.message.contains("never started"))
        .map(|l| {
            (
                l.get("hook").unwrap().to_owned(),
                l.get("event_id").unwrap().to_owned(),
            )
        })
        .collect();
    never.sort();
    assert_eq!(
        never,
        [
            ("t8-quick".to_owned(), "83".to_owned()),
            ("t8-quick".to_owned(), "85".to_owned()),
            ("t8-stubborn".to_owned(), "84".to_owned()),
        ]
    );

    // No more runs are taken.
    assert_eq!(
        supervisor.submit(quick.clone(), event(86), "".into()),
        Err(Refused::ShuttingDown)
    );
    assert_eq!(supervisor.stats().refused, 1);
    // Nothing is left to run: shutdown returned with nothing running or
    // waiting, and only the two runs that were running ever started.
    assert_eq!(supervisor.load(), (0, 0));
    assert_eq!(supervisor.stats().started, 2);
    assert_eq!(numbers(&out.join("done")), [82]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_once_runs_end_and_drops_waiting_retries() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    let config = config(
        "",
        &[
            hook(
                "t8-retry",
                &out,
                "retries = 3\nretry_delay = \"10s\"",
                r#"echo "$TRACIM_EVENT_ID" >> "$OUT/retry"; exit 1"#,
            ),
            hook(
                "t8-brief",
                &out,
                "",
                r#"sleep 0.2; echo "$TRACIM_EVENT_ID" >> "$OUT/brief""#,
            ),
        ],
    );
    let supervisor = supervisor(&config);
    supervisor
        .submit(the_hook(&config, "t8-retry"), event(87), "".into())
        .unwrap();
    supervisor
        .submit(the_hook(&config, "t8-brief"), event(88), "".into())
        .unwrap();
    assert!(wait_for(HANG, || supervisor.stats().retried == 1).await);
    let start = Instant::now();
    tokio::time::timeout(HANG, supervisor.shutdown(Duration::from_secs(10)))
        .await
        .expect("shutdown hangs");
    let elapsed = start.elapsed();
    // It waited for the brief run, not for the grace nor the retry delay.
    assert!(
        elapsed < Duration::from_millis(1500),
        "{} ms",
        millis(elapsed)
    );
    assert_eq!(numbers(&out.join("brief")), [88]);
    assert_eq!(numbers(&out.join("retry")), [87]);
    let stats = supervisor.stats();
    assert_eq!(stats.never_started, 1);
    assert_eq!(stats.started, 2);
    assert!(
        logs_of("t8-retry")
            .iter()
            .any(|l| l.message.contains("never started") && l.get("event_id") == Some("87"))
    );
}
