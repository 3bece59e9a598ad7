//! Timeouts kill the whole process group, double-forked processes included,
//! with SIGKILL `kill_after` after the SIGTERM.

use std::time::{Duration, Instant};
use tracim_hooks::exec::Exit;

use crate::common::logs::{Log, capture_logs, logs_of};
use crate::common::{HANG, Place, procfs, wait_for};
use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_a_double_forking_group_and_reaps_everything() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    // The shell waits on a sleeper; two more sleepers double-fork out of the
    // shell's reach (their parent exits at once), and one of those ignores SIGTERM,
    // so only SIGKILL ends it.
    let forker = r#"
echo $$ > "$OUT/pgid"
sleep 1000 &
echo $! >> "$OUT/pids"
( sleep 1000 & echo $! >> "$OUT/pids" )
( trap '' TERM; sleep 1000 & echo $! >> "$OUT/pids" )
echo up > "$OUT/ready"
wait
"#;
    let config = config(
        "kill_after = \"300ms\"",
        &[
            hook(
                "t1-forker",
                &out,
                "timeout = \"500ms\"\noutput = \"null\"",
                forker,
            ),
            // The issue's own example.
            hook(
                "t1-plain",
                &out,
                "timeout = \"1s\"",
                "echo $$ > \"$OUT/pgid2\"; sleep 1000 & sleep 1000",
            ),
        ],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    let start = Instant::now();
    supervisor
        .submit(the_hook(&config, "t1-forker"), event(11), "".into())
        .unwrap();
    supervisor
        .submit(the_hook(&config, "t1-plain"), event(12), "".into())
        .unwrap();

    let pgid = wait_numbers(&out.join("pgid"), 1).await[0] as i32;
    let pgid2 = wait_numbers(&out.join("pgid2"), 1).await[0] as i32;
    let mut cleanup = Cleanup(vec![pgid, pgid2]);
    assert!(wait_for(HANG, || out.join("ready").exists()).await);
    let pids: Vec<i32> = numbers(&out.join("pids"))
        .into_iter()
        .map(|p| p as i32)
        .collect();
    cleanup.0.extend(&pids);
    assert_eq!(pids.len(), 3);
    // Before the timeout, every sleeper runs, in the hook's group.
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "the hook took too long to start"
    );
    for &pid in &pids {
        assert!(
            matches!(procfs::process_state(pid), Some(s) if s != 'Z'),
            "sleeper {pid} is not running"
        );
    }
    let members = procfs::group_members(pgid);
    assert!(members.len() >= 4, "group {pgid}: {members:?}");
    // Each run has a group of its own.
    assert_ne!(pgid, pgid2);
    assert_ne!(pgid, std::process::id() as i32);

    let got = reports(&mut rx, 2).await;
    idle(&supervisor).await;
    let elapsed = start.elapsed();
    assert_all_gone(pgid, &pids);
    assert_all_gone(pgid2, &[]);
    // timeout + kill_after for the slower hook (1 s + 300 ms), plus slack.
    assert!(
        elapsed < Duration::from_millis(1300 + 700),
        "took {} ms",
        millis(elapsed)
    );

    let forker = got.iter().find(|r| r.hook == "t1-forker").unwrap();
    let outcome = forker.result.as_ref().unwrap();
    assert!(outcome.timed_out, "{forker:?}");
    assert!(!outcome.success());
    assert_eq!(outcome.exit, Exit::Signal(libc::SIGTERM));
    // SIGKILL was needed for the sleeper that ignores SIGTERM: it comes at
    // timeout + kill_after (500 + 300 ms), not before; 500 ms of slack after.
    assert!(
        outcome.duration >= Duration::from_millis(800),
        "{outcome:?}"
    );
    assert!(
        outcome.duration < Duration::from_millis(800 + 500),
        "{outcome:?}"
    );

    let plain = got.iter().find(|r| r.hook == "t1-plain").unwrap();
    let outcome = plain.result.as_ref().unwrap();
    assert!(outcome.timed_out);
    assert!(outcome.duration >= Duration::from_secs(1), "{outcome:?}");
    assert!(
        outcome.duration < Duration::from_millis(1300 + 600),
        "{outcome:?}"
    );

    let stats = supervisor.stats();
    assert_eq!(stats.timed_out, 2);
    assert_eq!(stats.failed, 2);
    assert_eq!(stats.succeeded, 0);

    // The run record: one line, with the hook, the event, the duration, how it
    // ended and that it timed out.
    let records: Vec<Log> = logs_of("t1-forker")
        .into_iter()
        .filter(|l| l.get("duration_ms").is_some())
        .collect();
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(record.get("event_id"), Some("11"));
    assert_eq!(record.get("timed_out"), Some("true"));
    assert!(
        record.get("exit").unwrap().contains("signal 15"),
        "{record:?}"
    );
    let ms: u64 = record.get("duration_ms").unwrap().parse().unwrap();
    assert!(ms >= 500, "{record:?}");
}

/// SIGKILL comes `kill_after` after the SIGTERM, not `kill_after` after the
/// leader finally exits: a leader that takes its time to die on SIGTERM must not
/// give a SIGTERM-proof process of its group more time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_comes_kill_after_the_sigterm_even_when_the_leader_dies_slowly() {
    capture_logs();
    let place = Place::new();
    let out = place.out();
    // The stubborn child ignores SIGTERM; the shell takes 500 ms to exit on it.
    let script = r#"
echo $$ > "$OUT/pgid"
( trap '' TERM; exec sleep 1000 ) &
echo $! > "$OUT/stubborn"
trap 'sleep 0.5; exit 7' TERM
sleep 1000 &
wait
"#;
    let config = config(
        "",
        &[hook(
            "t1-slow-leader",
            &out,
            "timeout = \"200ms\"\nkill_after = \"600ms\"\noutput = \"null\"",
            script,
        )],
    );
    let supervisor = supervisor(&config);
    let mut rx = supervisor.reports();
    let start = Instant::now();
    supervisor
        .submit(the_hook(&config, "t1-slow-leader"), event(13), "".into())
        .unwrap();
    let pgid = wait_numbers(&out.join("pgid"), 1).await[0] as i32;
    let stubborn = wait_numbers(&out.join("stubborn"), 1).await[0] as i32;
    let _cleanup = Cleanup(vec![pgid, stubborn]);

    let report = reports(&mut rx, 1).await.remove(0);
    idle(&supervisor).await;
    let elapsed = start.elapsed();
    assert_all_gone(pgid, &[stubborn]);
    let outcome = report.result.unwrap();
    assert!(outcome.timed_out);
    // The leader exited by itself 500 ms after its SIGTERM.
    assert_eq!(outcome.exit, Exit::Code(7));
    // SIGTERM at 200 ms, SIGKILL at 200 + 600 = 800 ms; 300 ms of slack.
    // (Were SIGKILL counted from the leader's exit, it would come at ~1300 ms.)
    assert!(
        elapsed < Duration::from_millis(800 + 300),
        "the group lived {} ms: more than timeout + kill_after (800 ms)",
        millis(elapsed)
    );
}
